"""The real `systemd-analyze` over our units, for the unit and installer tests."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

ANALYZE = shutil.which("systemd-analyze")
# The installed program; `verify` insists that ExecStart='s file exists, and it only does
# on an installed Pi, so checked copies run this interpreter instead.
EXEC_START = "ExecStart=/opt/spottypotty/venv/bin/spottypotty "


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    if ANALYZE is None:
        raise RuntimeError("systemd-analyze is not installed")
    return subprocess.run([ANALYZE, *args], capture_output=True, text=True, check=False, timeout=60)


def verify(units: Iterable[Path], workdir: Path) -> subprocess.CompletedProcess[str]:
    """`systemd-analyze verify` on copies of `units` in `workdir`, ExecStart= rewritten;
    every other line is the unit as shipped or installed. (`verify` does not resolve
    User=/Group=, so a missing `spottypotty` user does not matter here.)"""
    copies = []
    for unit in units:
        text = unit.read_text(encoding="utf-8")
        if unit.suffix == ".service":
            if text.count(EXEC_START) != 1:
                raise AssertionError(f"{unit.name}: expected one {EXEC_START!r}")
            text = text.replace(EXEC_START, f"ExecStart={sys.executable} -m hub ")
        copy = workdir / unit.name
        copy.write_text(text, encoding="utf-8")
        copies.append(str(copy))
    return analyze("verify", *copies)


def exposure(unit: Path) -> float | None:
    """`systemd-analyze security --offline` overall exposure; None when unsupported."""
    result = analyze("security", "--offline=true", "--no-pager", str(unit))
    if result.returncode != 0 and "offline" in result.stderr.lower():
        return None
    if result.returncode != 0:
        raise AssertionError(result.stderr)
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", result.stdout)
    if match is None:
        raise AssertionError(result.stdout)
    return float(match.group(1))
