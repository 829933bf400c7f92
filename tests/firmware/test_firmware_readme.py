"""The README's battery-life table is the arithmetic it shows, row by row."""

from __future__ import annotations

import re

import pytest

from tests.firmware.conftest import FIRMWARE

USABLE_MAH = 2700
WAKE_S, WAKE_MA = 0.8, 45.0
ADVERT_MA = 50.0
ROW = re.compile(
    r"^\| (?P<burst>[\d.]+) s \| (?P<sleep>\d+) µA \| (?P<events>\d+) \| (?P<per_day>[\d.]+) "
    r"\| (?P<days>\d+) \| (?P<years>[\d.]+) \|$",
    re.MULTILINE,
)


def test_every_battery_row_follows_from_the_stated_assumptions() -> None:
    readme = (FIRMWARE / "README.md").read_text("utf-8")
    rows = list(ROW.finditer(readme))
    assert len(rows) >= 6
    for row in rows:
        burst, sleep_ua, events = float(row["burst"]), int(row["sleep"]), int(row["events"])
        per_event_mas = WAKE_S * WAKE_MA + burst * ADVERT_MA
        per_day = sleep_ua / 1000 * 24 + events * per_event_mas / 3600
        days = USABLE_MAH / per_day
        assert float(row["per_day"]) == pytest.approx(per_day, abs=0.006), row[0]
        assert int(row["days"]) == round(days), row[0]
        assert float(row["years"]) == pytest.approx(days / 365, abs=0.051), row[0]
    assert "**2700 mAh usable**" in readme
    assert "0.8 s \u00d7 45 mA" in readme
    assert "burst \u00d7 50 mA" in readme


def test_the_readme_names_every_device_file() -> None:
    readme = (FIRMWARE / "README.md").read_text("utf-8")
    for source in sorted((FIRMWARE / "lib").glob("*.py")):
        assert f"`lib/{source.name}`" in readme
