# The README's two commands are `make demo` and `make test`; each sets itself up.
VENV := .venv
BIN := $(VENV)/bin
READY := $(VENV)/.ready

.PHONY: demo test lint bench clean

$(READY): pyproject.toml scripts/bootstrap.sh scripts/install-home-assistant.sh
	bash scripts/bootstrap.sh
	touch $@

demo: $(READY)  ## run the hub on embedded defaults with a simulated sensor
	$(BIN)/spottypotty demo

test: lint  ## lint, type-check and run every test
	$(BIN)/pytest

lint: $(READY)
	$(BIN)/ruff check hub tests firmware
	$(BIN)/ruff format --check hub tests firmware
	$(BIN)/mypy

bench: $(READY)  ## benchmarks: figures and ratios against baselines measured in the same run
	$(BIN)/python -m tests.bench

clean:
	rm -rf $(VENV) .venv-esphome .venv-ha var .pytest_cache .mypy_cache .ruff_cache
