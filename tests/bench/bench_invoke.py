"""`spottypotty invoke create_session` as a whole process, against a copy of the dataset.

The copy makes the process open, migrate-check, write and checkpoint a file of the
dataset's size, and keeps the cached dataset untouched. Each run names a fresh sensor,
so none is refused with a 409. The baseline is `python -c pass` on the same interpreter,
timed in the same loop: the start-up cost no hub code can remove.

The processes run as an installed hub does, with its bytecode compiled: the cache goes
to var/bench/pycache (PYTHONPYCACHEPREFIX), never beside the sources, and the warm-up
runs fill it. An environment with PYTHONDONTWRITEBYTECODE would otherwise recompile the
hub's modules in every process; that is measured too, for information.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

from hub.store import close_database, open_database
from tests.bench._dataset import CACHE_DIR, REPO, Dataset
from tests.bench._process import PYCACHE, installed_env, run_process
from tests.bench._report import Figure, Samples, show_ms, table, timed

ORDER = 2
TITLE = "invoke create_session as a whole process (python -m hub invoke)"

TARGET_MS = 300.0
SEED_CLOUD_MS = 1_207.0  # the seed's Lambda + DynamoDB create_session
WARMUP, RUNS = 2, 20
INHERITED_RUNS = 5
OPEN_RUNS = 5
TOP_IMPORTS = 5

_IMPORT_LINE = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|( *)(\S.*)$")


def run(dataset: Dataset) -> list[Figure]:
    with tempfile.TemporaryDirectory(dir=CACHE_DIR, prefix="invoke-") as tmp:
        copy = Path(tmp) / "hub.db"
        copy_ms, _ = timed(partial(shutil.copyfile, dataset.path, copy))
        print(f"  copied the dataset ({dataset.megabytes:,.0f} MB) in {show_ms(copy_ms)}")
        config = Path(tmp) / "hub.toml"
        # A JSON string is a valid TOML basic string.
        database, timezone = json.dumps(str(copy)), json.dumps(dataset.timezone)
        config.write_text(
            f"[hub]\ndatabase = {database}\ntimezone = {timezone}\n", encoding="utf-8"
        )
        invoke = [sys.executable, "-m", "hub", "invoke", "--config", str(config)]
        env = installed_env()
        process, empty, version, inside = _invoke_loop(invoke, env, WARMUP, RUNS, "installed")
        inherited_flag = os.environ.get("PYTHONDONTWRITEBYTECODE", "")
        inherited, _, _, _ = _invoke_loop(invoke, os.environ, 1, INHERITED_RUNS, "inherited")
        opened = _open_close(copy)
        print(f"  bytecode cached under {PYCACHE.relative_to(REPO)} (as installed):")
        for samples in (process, empty, version):
            print(samples.line())
        print(
            Samples(
                f"  same, inherited env (PYTHONDONTWRITEBYTECODE={inherited_flag or 'unset'})",
                inherited.ms,
            ).line()
        )
        print(opened.line())
        print(
            f"  median: process {show_ms(process.p50)} - empty interpreter "
            f"{show_ms(empty.p50)} = {show_ms(process.p50 - empty.p50)} of hub work, of which "
            f"`--version` (imports of the CLI alone) {show_ms(version.p50 - empty.p50)} and "
            f"handle() itself {show_ms(inside)}"
        )
        print(
            f"  the seed's cloud call took {show_ms(SEED_CLOUD_MS)}: "
            f"{SEED_CLOUD_MS / process.p50:.1f}x the hub's median"
        )
        _print_imports(invoke, env)
    return [
        Figure("invoke create_session process median", process.p50, TARGET_MS, empty.p50),
        Figure("invoke create_session process p95", process.p95, None, empty.p95),
        Figure("open_database + close_database on the copy", opened.p50, None, None),
    ]


def _invoke_loop(
    invoke: list[str], env: Mapping[str, str], warmup: int, runs: int, tag: str
) -> tuple[Samples, Samples, Samples, float]:
    """Interleaved runs of invoke, `python -c pass` and `--version`; handle()'s median."""
    process_ms: list[float] = []
    empty_ms: list[float] = []
    version_ms: list[float] = []
    inside_ms: list[float] = []
    for iteration in range(warmup + runs):
        event = json.dumps(
            {
                "action": "create_session",
                "sensorId": f"bench-{tag}-{iteration:03d}",
                "userId": "user-bench",
            }
        )
        took, done = timed(partial(run_process, invoke, event, env))
        response = _created(done)
        empty_took, _ = timed(partial(run_process, [sys.executable, "-c", "pass"], "", env))
        version_took, _ = timed(
            partial(run_process, [sys.executable, "-m", "hub", "--version"], "", env)
        )
        if iteration >= warmup:
            process_ms.append(took)
            empty_ms.append(empty_took)
            version_ms.append(version_took)
            inside_ms.append(float(response["duration_ms"]))
    return (
        Samples("python -m hub invoke create_session", tuple(process_ms)),
        Samples("  baseline: python -c pass", tuple(empty_ms)),
        Samples("  python -m hub --version (CLI imports, no DB)", tuple(version_ms)),
        statistics.median(inside_ms),
    )


def _created(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    try:
        response: dict[str, Any] = json.loads(done.stdout)
    except json.JSONDecodeError:
        response = {}
    if done.returncode != 0 or response.get("statusCode") != 200:
        raise RuntimeError(f"invoke failed ({done.returncode}): {done.stdout}{done.stderr}")
    return response


def _open_close(path: Path) -> Samples:
    """What opening the big file costs in-process: connect, pragmas, migration check, close."""
    runs: list[float] = []
    for _ in range(OPEN_RUNS):
        took, db = timed(partial(open_database, path))
        closed, _ = timed(partial(close_database, db))
        runs.append(took + closed)
    return Samples("  in-process open_database + close_database", tuple(runs))


def _print_imports(invoke: list[str], env: Mapping[str, str]) -> None:
    """The heaviest imports of one `invoke` run (-X importtime), by cumulative time."""
    event = json.dumps(
        {"action": "create_session", "sensorId": "bench-importtime", "userId": "user-bench"}
    )
    done = run_process([invoke[0], "-X", "importtime", *invoke[1:]], event, env)
    _created(done)
    imports: list[tuple[int, int, int, str]] = []
    for line in done.stderr.splitlines():
        match = _IMPORT_LINE.match(line)
        if match:
            self_us, cumulative_us, indent, name = match.groups()
            imports.append((int(cumulative_us), int(self_us), (len(indent) - 1) // 2, name))
    total_ms = sum(self_us for _, self_us, _, _ in imports) / 1000
    print(
        f"  imports of one invoke run (-X importtime): {len(imports)} modules, "
        f"{show_ms(total_ms)} in all; the top {TOP_IMPORTS} by cumulative time:"
    )
    rows = [
        (name, f"{cumulative / 1000:.1f} ms", f"{own / 1000:.1f} ms", str(depth))
        for cumulative, own, depth, name in sorted(imports, reverse=True)[:TOP_IMPORTS]
    ]
    print(
        "\n".join(
            "    " + line
            for line in table(["module", "cumulative", "self", "depth"], rows).splitlines()
        )
    )
