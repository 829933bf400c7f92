"""The environment the hub's processes run in during a benchmark: as installed.

An installed hub has its bytecode compiled, so the cache goes to var/bench/pycache
(PYTHONPYCACHEPREFIX), never beside the sources, and a PYTHONDONTWRITEBYTECODE inherited
from a developer's shell is dropped: it would recompile every module in every process.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping

from tests.bench._dataset import CACHE_DIR, REPO

PYCACHE = CACHE_DIR / "pycache"


def installed_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    return env


def run_process(
    argv: list[str], stdin: str, env: Mapping[str, str]
) -> subprocess.CompletedProcess[str]:
    """One whole process of the benchmark, from the repository, its output captured."""
    return subprocess.run(
        argv,
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
        env=env,
        timeout=60,
    )
