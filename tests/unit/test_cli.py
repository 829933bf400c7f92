"""Argument parsing of the `spottypotty` command line, and its exit statuses."""

from __future__ import annotations

import argparse
import sys

import pytest

from hub.cli.common import EXIT_CONFIG, EXIT_DATA, EXIT_FAILURE
from hub.cli.main import build_parser, main
from hub.errors import ConfigError, DamagedDatabaseError, StoreError


@pytest.mark.parametrize(
    "argv",
    [
        ["--config", "X", "invoke"],
        ["invoke", "--config", "X"],
        ["--config", "X", "sensors", "list"],
        ["sensors", "list", "--config", "X"],
    ],
)
def test_config_is_taken_before_or_after_the_command(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert (args.config, args.verbose) == ("X", False)


CLI = sys.modules[main.__module__]  # `hub.cli.main` the attribute is the function
DAMAGED = DamagedDatabaseError("/var/lib/spottypotty/hub.db", "database disk image is malformed")
BAD_CONFIG = ConfigError(["mqtt.port: must be 1..65535"], "/etc/spottypotty/hub.toml")


@pytest.mark.parametrize(
    ("raised", "status"),
    [
        pytest.param(DAMAGED, EXIT_DATA, id="damaged"),
        pytest.param(ExceptionGroup("daemon", [DAMAGED]), EXIT_DATA, id="damaged-in-a-group"),
        pytest.param(
            ExceptionGroup("daemon", [ExceptionGroup("inner", [DAMAGED])]),
            EXIT_DATA,
            id="damaged-in-a-nested-group",
        ),
        pytest.param(BAD_CONFIG, EXIT_CONFIG, id="config"),
        pytest.param(ExceptionGroup("daemon", [BAD_CONFIG]), EXIT_CONFIG, id="config-in-a-group"),
        pytest.param(StoreError("database is locked"), EXIT_FAILURE, id="other-store-error"),
    ],
)
def test_what_a_restart_cannot_fix_exits_with_a_status_systemd_does_not_restart_on(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    raised: BaseException,
    status: int,
) -> None:
    def run(args: argparse.Namespace) -> int:
        raise raised

    monkeypatch.setattr(CLI, "_run", run)
    assert main(["run"]) == status
    captured = capsys.readouterr()
    assert captured.out == ""
    if status == EXIT_DATA:
        assert captured.err == f"spottypotty: {DAMAGED}\n"  # one line, no traceback
        assert DAMAGED.path in captured.err


def test_a_damaged_database_beside_another_failure_is_not_hidden(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only a group of refusals alone is a refusal; a bug beside one keeps its traceback."""
    group = ExceptionGroup("daemon", [DAMAGED, RuntimeError("a bug")])

    def run(args: argparse.Namespace) -> int:
        raise group

    monkeypatch.setattr(CLI, "_run", run)
    with pytest.raises(ExceptionGroup) as raised:
        main(["run"])
    assert raised.value is group
