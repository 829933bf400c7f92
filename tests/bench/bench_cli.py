"""`spottypotty --help`, `sessions` and `invoke` as whole processes, against `python -c pass`.

What someone typing a read-only command waits for: the interpreter's start, the imports,
the config, the database (sessions, invoke) and the output. The commands run as the
console script beside this interpreter (`python -m hub` if there is none), as installed
(bytecode cached), on a temporary config and database holding one page of sessions; the
`invoke` event is the seed's `get_active_session` for one of them. Each round runs the
baseline and the three commands once, the order rotating from round to round. The figure
is the best of the rounds: start-up has a hard floor and only noise above it, so the
minimum is the steady statistic (medians are printed beside it).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from tests.bench._dataset import CACHE_DIR, Dataset
from tests.bench._process import installed_env, run_process
from tests.bench._report import Figure, Samples, show_ms, table, timed

ORDER = 2
TITLE = "CLI start-up: spottypotty --help, sessions, invoke as whole processes"

WARMUP, RUNS = 2, 7
SESSIONS = 20  # one page of `spottypotty sessions` (its default --limit)
SENSOR = "bench-cli-{:02d}"

_IMPORT_LINE = re.compile(r"^import time:\s+\d+\s+\|")


@dataclass(frozen=True, slots=True)
class Case:
    label: str
    args: list[str]  # after the interpreter (`-c pass`) or the command (`--help`)
    stdin: str
    expect: Callable[[str], bool]  # on stdout: the command did its work, not an error
    command: bool = True  # False: the bare interpreter


def run(dataset: Dataset) -> list[Figure]:
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    env = installed_env()
    launcher, python_args = _spottypotty()
    print(f"  command: {' '.join(launcher)}")
    with tempfile.TemporaryDirectory(dir=CACHE_DIR, prefix="cli-") as tmp:
        config = Path(tmp) / "hub.toml"
        # A JSON string is a valid TOML basic string.
        database, timezone = json.dumps(str(Path(tmp) / "hub.db")), json.dumps(dataset.timezone)
        config.write_text(
            f"[hub]\ndatabase = {database}\ntimezone = {timezone}\n", encoding="utf-8"
        )
        # Through the command itself: also the first runs that fill the bytecode cache.
        for index in range(SESSIONS):
            event = {"action": "create_session", "sensorId": SENSOR.format(index), "userId": "u"}
            done = run_process(
                [*launcher, "invoke", "--config", str(config)], json.dumps(event), env
            )
            _check(done, lambda out: json.loads(out)["statusCode"] == 200)
        active = json.dumps({"action": "get_active_session", "sensorId": SENSOR.format(0)})
        cases = [
            Case("python -c pass", ["-c", "pass"], "", lambda _: True, command=False),
            Case("spottypotty --help", ["--help"], "", lambda out: "usage: spottypotty" in out),
            Case(
                f"spottypotty sessions ({SESSIONS} rows)",
                ["sessions", "--config", str(config)],
                "",
                lambda out: out.rstrip().endswith(f"\n{SESSIONS} session(s)"),
            ),
            Case(
                "spottypotty invoke get_active_session",
                ["invoke", "--config", str(config)],
                active,
                lambda out: json.loads(out)["statusCode"] == 200,
            ),
        ]
        samples = _rounds(cases, launcher, env)
        modules = {
            case.label: _imported_modules(
                [*(python_args if case.command else []), *case.args], case.stdin, env
            )
            for case in cases
        }
    base = samples[cases[0].label]
    for case in cases:
        print(samples[case.label].line())
    rows = [
        (
            case.label,
            show_ms(min(samples[case.label].ms)),
            show_ms(samples[case.label].p50),
            f"{min(samples[case.label].ms) / min(base.ms):.2f}x",
            show_ms(min(samples[case.label].ms) - min(base.ms)) if case.command else "-",
            f"{modules[case.label]:,}",
        )
        for case in cases
    ]
    headings = ["process", f"best of {RUNS}", "median", "vs pass", "above pass", "imports"]
    print("\n".join("  " + line for line in table(headings, rows).splitlines()))
    return [
        Figure(
            f"{case.label}, whole process, best of {RUNS}",
            min(samples[case.label].ms),
            None,
            min(base.ms),
        )
        for case in cases[1:]
    ]


def _spottypotty() -> tuple[list[str], list[str]]:
    """How to start the command: as run, and as arguments to the interpreter (for -X)."""
    script = Path(sys.executable).with_name("spottypotty")
    if script.exists():
        return [str(script)], [str(script)]
    return [sys.executable, "-m", "hub"], ["-m", "hub"]


def _rounds(cases: list[Case], launcher: list[str], env: Mapping[str, str]) -> dict[str, Samples]:
    times: dict[str, list[float]] = {case.label: [] for case in cases}
    for number in range(WARMUP + RUNS):
        shift = number % len(cases)
        for case in cases[shift:] + cases[:shift]:
            argv = [*launcher, *case.args] if case.command else [sys.executable, *case.args]
            took, done = timed(partial(run_process, argv, case.stdin, env))
            _check(done, case.expect)
            if number >= WARMUP:
                times[case.label].append(took)
    return {label: Samples(label, tuple(ms)) for label, ms in times.items()}


def _imported_modules(python_args: list[str], stdin: str, env: Mapping[str, str]) -> int:
    """How many modules one run imports, site's included (-X importtime lists each once)."""
    done = run_process([sys.executable, "-X", "importtime", *python_args], stdin, env)
    _check(done, lambda _: True)
    return sum(1 for line in done.stderr.splitlines() if _IMPORT_LINE.match(line))


def _check(done: subprocess.CompletedProcess[str], expect: Callable[[str], bool]) -> None:
    """A failed or empty run would be fast for the wrong reason: stop the benchmark."""
    try:
        ok = done.returncode == 0 and expect(done.stdout)
    except (json.JSONDecodeError, KeyError):
        ok = False
    if not ok:
        raise RuntimeError(
            f"{' '.join(map(str, done.args))} failed ({done.returncode}): {done.stdout}"
            f"{done.stderr}"
        )
