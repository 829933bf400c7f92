"""The environment the hub's processes run in during a benchmark: as installed.

An installed hub has its bytecode compiled, so the cache goes to var/bench/pycache
(PYTHONPYCACHEPREFIX), never beside the sources, and a PYTHONDONTWRITEBYTECODE inherited
from a developer's shell is dropped: it would recompile every module in every process.
"""

from __future__ import annotations

import os

from tests.bench._dataset import CACHE_DIR

PYCACHE = CACHE_DIR / "pycache"


def installed_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    return env
