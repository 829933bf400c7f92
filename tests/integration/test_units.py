"""The shipped systemd units, checked by the real `systemd-analyze`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.systemd_units import ANALYZE, exposure, verify

UNITS = Path(__file__).resolve().parents[2] / "systemd"
HUB = UNITS / "spottypotty-hub.service"
SYNC = UNITS / "spottypotty-sync.service"
TIMER = UNITS / "spottypotty-sync.timer"
MAX_EXPOSURE = 2.0

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed"),
]


@pytest.mark.parametrize("units", [(HUB,), (SYNC, TIMER)], ids=["hub", "sync"])
def test_verify_passes(units: tuple[Path, ...], tmp_path: Path) -> None:
    result = verify(units, tmp_path)
    # verify exits 0 on mere warnings (unknown keys, bad values it ignores): demand silence.
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout == ""


@pytest.mark.parametrize("unit", [HUB, SYNC], ids=["hub", "sync"])
def test_security_exposure_at_most_two(unit: Path) -> None:
    found = exposure(unit)
    if found is None:
        pytest.skip("systemd-analyze security --offline is not supported here")
    assert found <= MAX_EXPOSURE


def test_the_timer_is_nightly_persistent_and_randomized() -> None:
    text = TIMER.read_text(encoding="utf-8")
    assert re.search(r"^OnCalendar=\*-\*-\* \d\d:\d\d:00$", text, re.MULTILINE)
    assert "\nPersistent=true\n" in text
    assert re.search(r"^RandomizedDelaySec=\S+$", text, re.MULTILINE)
    assert "\nType=oneshot\n" in SYNC.read_text(encoding="utf-8")
