from __future__ import annotations

import contextlib
import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.errors import ParseError
from hub.timeutil import iso, local_zone, parse_instant, parse_iso

LONDON = ZoneInfo("Europe/London")


def test_iso_round_trips_to_the_microsecond() -> None:
    assert iso(1_770_592_272.410166) == "2026-02-08T23:11:12.410166+00:00"
    assert parse_iso("2026-02-08T23:11:12.410166+00:00") == pytest.approx(1_770_592_272.410166)


def test_naive_iso_is_utc_as_the_seed_wrote_it() -> None:
    assert parse_iso("2026-02-08T23:11:12.410166") == pytest.approx(1_770_592_272.410166)


def test_date_bounds_cover_the_whole_local_day_across_dst() -> None:
    # 2026-03-29: London springs forward, the day has 23 hours.
    start = parse_instant("2026-03-29", LONDON)
    end = parse_instant("2026-03-29", LONDON, end_of_day=True)
    assert end - start == pytest.approx(23 * 3600, abs=1e-5)
    assert dt.datetime.fromtimestamp(start, LONDON).isoformat() == "2026-03-29T00:00:00+00:00"


def test_naive_datetime_is_local_and_offsets_are_honoured() -> None:
    local = parse_instant("2026-07-01T12:00:00", LONDON)
    assert local == parse_instant("2026-07-01T11:00:00Z", LONDON)
    assert parse_instant(1_700_000_000, LONDON) == 1_700_000_000.0


@pytest.mark.parametrize("value", [True, -1, 1e12, "31/01/2026", "", "2026-13-01", None, [2026]])
def test_bad_instants_are_parse_errors(value: object) -> None:
    with pytest.raises(ParseError):
        parse_instant(value, LONDON)


@given(st.one_of(st.text(), st.integers(), st.floats(), st.booleans(), st.none()))
def test_parse_instant_only_ever_raises_parse_error(value: object) -> None:
    try:
        result = parse_instant(value, LONDON)
    except ParseError:
        return
    assert isinstance(result, float)


@given(st.text())
def test_parse_iso_only_ever_raises_parse_error(text: str) -> None:
    with contextlib.suppress(ParseError):
        assert isinstance(parse_iso(text), float)


def test_the_system_zone_is_a_real_zone_with_dst(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Europe/London")
    zone = local_zone("")
    winter = dt.datetime(2026, 1, 1, 12, tzinfo=zone).utcoffset()
    summer = dt.datetime(2026, 7, 1, 12, tzinfo=zone).utcoffset()
    assert (winter, summer) == (dt.timedelta(0), dt.timedelta(hours=1))
