"""`python -m tests.bench`: prepare the dataset, run every bench_* module, then summarize.

Each benchmark module has `ORDER` (lower runs first), `TITLE` and
`run(dataset) -> list[Figure]`. The summary lists every figure in its own unit (ms, MB,
B/event, /s) with its target and its ratio to the baseline measured beside it; a MISS is
reported, not raised, so the exit status is 0 whenever every benchmark ran.
"""

from __future__ import annotations

import importlib
import os
import platform
import sqlite3
import sys
import time
from collections.abc import Callable
from types import ModuleType

import tests.bench
from tests.bench._dataset import REPO, SESSIONS_ENV, Dataset, prepare
from tests.bench._report import Figure, header, summary


def _modules() -> list[ModuleType]:
    folder = REPO / "tests" / "bench"
    modules = [
        importlib.import_module(f"{tests.bench.__name__}.{path.stem}")
        for path in folder.glob("bench_*.py")
    ]
    return sorted(modules, key=lambda module: (module.ORDER, module.__name__))


def main() -> int:
    started = time.perf_counter()
    header("environment")
    print(f"  python {platform.python_version()} ({sys.executable})")
    print(f"  SQLite {sqlite3.sqlite_version}; {platform.platform()}; {os.cpu_count()} CPU(s)")
    dataset = prepare(lambda line: print(f"  {line}"))
    built = (
        f"built in {dataset.build_seconds:.1f} s"
        if dataset.build_seconds is not None
        else "reused from the cache"
    )
    print(
        f"  dataset: {dataset.rows:,} sessions ({dataset.completed:,} completed + "
        f"{dataset.active} active) over {len(dataset.sensors)} sensors and "
        f"{len(dataset.users)} users in {dataset.year}; {dataset.megabytes:,.0f} MB; {built}"
    )
    if SESSIONS_ENV in os.environ:
        print(f"  ({SESSIONS_ENV}={os.environ[SESSIONS_ENV]}: not the issue's 1,000,000)")

    figures: list[Figure] = []
    for module in _modules():
        name = module.__name__.rpartition(".")[2]
        title: str = module.TITLE
        run: Callable[[Dataset], list[Figure]] = module.run
        header(title)
        module_started = time.perf_counter()
        figures.extend(run(dataset))
        print(f"  ({name} took {time.perf_counter() - module_started:.1f} s)")

    header("summary")
    print(summary(figures))
    judged = [figure for figure in figures if figure.target is not None]
    missed = [figure for figure in judged if figure.verdict == "MISS"]
    print()
    print(
        f"{len(judged) - len(missed)} PASS, {len(missed)} MISS of {len(judged)} targets; "
        f"{dataset.rows:,} sessions, {dataset.megabytes:,.0f} MB, SQLite {sqlite3.sqlite_version}; "
        f"whole run {time.perf_counter() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
