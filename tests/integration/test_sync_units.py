"""The sync service and timer, checked by the real `systemd-analyze`."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ANALYZE = shutil.which("systemd-analyze")
UNITS = Path(__file__).resolve().parents[2] / "systemd"
SERVICE = UNITS / "spottypotty-sync.service"
TIMER = UNITS / "spottypotty-sync.timer"
MAX_EXPOSURE = 2.0

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed"),
]


def _analyze(*args: str) -> subprocess.CompletedProcess[str]:
    assert ANALYZE is not None
    return subprocess.run([ANALYZE, *args], capture_output=True, text=True, check=False, timeout=60)


def test_verify_passes(tmp_path: Path) -> None:
    # As test_units.py: ExecStart= must exist for `verify`, so the copy runs this interpreter.
    text = SERVICE.read_text(encoding="utf-8")
    original = "ExecStart=/opt/spottypotty/venv/bin/spottypotty sync"
    assert text.count(original) == 1
    (tmp_path / SERVICE.name).write_text(
        text.replace(original, f"ExecStart={sys.executable} -m hub sync")
    )
    shutil.copy(TIMER, tmp_path / TIMER.name)

    result = _analyze("verify", str(tmp_path / SERVICE.name), str(tmp_path / TIMER.name))

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout == ""


def test_the_timer_is_nightly_persistent_and_randomized() -> None:
    text = TIMER.read_text(encoding="utf-8")
    assert re.search(r"^OnCalendar=\*-\*-\* \d\d:\d\d:00$", text, re.MULTILINE)
    assert "\nPersistent=true\n" in text
    assert re.search(r"^RandomizedDelaySec=\S+$", text, re.MULTILINE)
    assert "\nType=oneshot\n" in SERVICE.read_text(encoding="utf-8")


def test_security_exposure_at_most_two() -> None:
    result = _analyze("security", "--offline=true", "--no-pager", str(SERVICE))
    if result.returncode != 0 and "offline" in result.stderr.lower():
        pytest.skip(f"systemd-analyze security --offline unsupported: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", result.stdout)
    assert match, result.stdout
    assert float(match.group(1)) <= MAX_EXPOSURE, result.stdout
