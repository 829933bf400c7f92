"""Quiet hours and moments: local wall time in a real zone, start inclusive, end exclusive."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.config import Moment, QuietHours, SensorConfig
from hub.sessions.policy import in_quiet_hours, moment_at, playback_for

LONDON = ZoneInfo("Europe/London")
UTC = dt.UTC
NIGHT = QuietHours(start=dt.time(22, 0), end=dt.time(7, 0))
AFTERNOON = QuietHours(start=dt.time(14, 0), end=dt.time(18, 0))


def at(text: str, tz: dt.tzinfo = LONDON) -> float:
    """A local wall time in `tz` (naive ISO) -> epoch seconds."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=tz).timestamp()


def minutes_of_day(day: str, tz: dt.tzinfo = LONDON) -> list[float]:
    """Every minute's instant of a local day (DST days have 23 or 25 hours of them)."""
    start = dt.datetime.combine(dt.date.fromisoformat(day), dt.time(), tz)
    end = dt.datetime.combine(dt.date.fromisoformat(day) + dt.timedelta(days=1), dt.time(), tz)
    first, last = int(start.timestamp()), int(end.timestamp())
    return [float(t) for t in range(first, last, 60)]


def test_no_window_is_never_quiet() -> None:
    assert not in_quiet_hours(None, at("2024-06-12T23:30:00"), LONDON)


@pytest.mark.parametrize(
    ("local", "quiet"),
    [
        ("2024-06-12T22:00:00", True),  # start is inclusive
        ("2024-06-12T23:30:00", True),
        ("2024-06-13T00:00:00", True),
        ("2024-06-13T06:59:00", True),
        ("2024-06-13T06:59:59.999000", True),
        ("2024-06-13T07:00:00", False),  # end is exclusive
        ("2024-06-13T12:00:00", False),
        ("2024-06-12T21:59:00", False),
        ("2024-06-12T21:59:59.999000", False),
    ],
)
def test_window_across_midnight(local: str, quiet: bool) -> None:
    assert in_quiet_hours(NIGHT, at(local), LONDON) is quiet


@pytest.mark.parametrize(
    ("local", "quiet"),
    [
        ("2024-06-12T03:00:00", False),
        ("2024-06-12T13:59:59", False),
        ("2024-06-12T14:00:00", True),
        ("2024-06-12T17:59:00", True),
        ("2024-06-12T18:00:00", False),
        ("2024-06-12T23:00:00", False),
    ],
)
def test_same_day_window(local: str, quiet: bool) -> None:
    assert in_quiet_hours(AFTERNOON, at(local), LONDON) is quiet


def test_afternoon_window_does_not_cover_the_whole_day() -> None:
    """The seed's bug: 14:00-18:00 matched every hour."""
    matched = [t for t in minutes_of_day("2024-06-12") if in_quiet_hours(AFTERNOON, t, LONDON)]
    assert len(matched) == 4 * 60
    assert dt.datetime.fromtimestamp(matched[0], LONDON).time() == dt.time(14, 0)
    assert dt.datetime.fromtimestamp(matched[-1], LONDON).time() == dt.time(17, 59)


def test_night_window_covers_nine_hours_of_an_ordinary_day() -> None:
    matched = [t for t in minutes_of_day("2024-06-12") if in_quiet_hours(NIGHT, t, LONDON)]
    assert len(matched) == 9 * 60


def test_uses_local_time_not_utc_in_summer() -> None:
    # 06:30 UTC is 07:30 BST: the morning is no longer quiet.
    assert not in_quiet_hours(NIGHT, at("2024-06-12T06:30:00", UTC), LONDON)
    # 21:30 UTC is 22:30 BST: the evening already is.
    assert in_quiet_hours(NIGHT, at("2024-06-12T21:30:00", UTC), LONDON)


def test_spring_forward_day_in_london() -> None:
    # 2024-03-31: 01:00 GMT jumps to 02:00 BST.
    assert in_quiet_hours(NIGHT, at("2024-03-31T05:59:00", UTC), LONDON)  # 06:59 BST
    assert not in_quiet_hours(NIGHT, at("2024-03-31T06:00:00", UTC), LONDON)  # 07:00 BST
    assert in_quiet_hours(NIGHT, at("2024-03-30T06:30:00", UTC), LONDON)  # 06:30 GMT, day before
    # The skipped local hour never happens, so a window on it matches no instant.
    skipped = QuietHours(start=dt.time(1, 0), end=dt.time(2, 0))
    assert not any(in_quiet_hours(skipped, t, LONDON) for t in minutes_of_day("2024-03-31"))
    # The day has 23 hours; quiet are 00:00-01:00 GMT, 02:00-07:00 BST, 22:00-24:00 BST.
    matched = [t for t in minutes_of_day("2024-03-31") if in_quiet_hours(NIGHT, t, LONDON)]
    assert len(matched) == 8 * 60


def test_fall_back_day_in_london() -> None:
    # 2024-10-27: 02:00 BST falls back to 01:00 GMT; 01:00-02:00 local happens twice.
    repeated = QuietHours(start=dt.time(1, 0), end=dt.time(2, 0))
    assert in_quiet_hours(repeated, at("2024-10-27T00:30:00", UTC), LONDON)  # 01:30 BST
    assert in_quiet_hours(repeated, at("2024-10-27T01:30:00", UTC), LONDON)  # 01:30 GMT
    matched = [t for t in minutes_of_day("2024-10-27") if in_quiet_hours(repeated, t, LONDON)]
    assert len(matched) == 2 * 60
    assert in_quiet_hours(NIGHT, at("2024-10-27T06:30:00", UTC), LONDON)  # 06:30 GMT
    assert not in_quiet_hours(NIGHT, at("2024-10-27T07:00:00", UTC), LONDON)  # 07:00 GMT


def test_empty_window_is_never_quiet() -> None:
    empty = QuietHours(start=dt.time(9, 0), end=dt.time(9, 0))
    assert not any(in_quiet_hours(empty, t, LONDON) for t in minutes_of_day("2024-06-12"))


times = st.times().map(lambda t: t.replace(microsecond=0))


@given(start=times, end=times, instant=st.floats(0, 4e9))
def test_matches_the_local_clock(start: dt.time, end: dt.time, instant: float) -> None:
    """Whatever the window, the answer is the plain reading of the local clock."""
    local = dt.datetime.fromtimestamp(instant, LONDON).time()
    # A window across midnight is the complement of the day-time gap it leaves.
    expected = start <= local < end if start <= end else not (end <= local < start)
    assert in_quiet_hours(QuietHours(start, end), instant, LONDON) is expected


# --- moments: what plays, by time of day -------------------------------------------------------

NEWS = "spotify:show:2mTUnDkuKUkhiueKcVWoP0"
MORNING = Moment(dt.time(6, 30), dt.time(9, 0), context_uri=NEWS, volume=35)
LATE = Moment(dt.time(22, 0), dt.time(6, 30), volume=10, fade_in_seconds=20)
ROOM = SensorConfig(
    id="bath", user_id="u", context_uri="spotify:playlist:p", volume=50, moments=(MORNING, LATE)
)


@pytest.mark.parametrize(
    ("local", "moment"),
    [
        ("2024-06-12T06:29:59", LATE),
        ("2024-06-12T06:30:00", MORNING),
        ("2024-06-12T08:59:00", MORNING),
        ("2024-06-12T09:00:00", None),
        ("2024-06-12T21:59:00", None),
        ("2024-06-12T23:59:00", LATE),  # crosses midnight
        ("2024-03-31T07:00:00", MORNING),  # the spring-forward day, in local time
    ],
)
def test_moment_at_local_time(local: str, moment: Moment | None) -> None:
    assert moment_at(ROOM.moments, at(local), LONDON) is moment


def test_playback_for_takes_the_moments_values_and_the_sensors_for_the_rest() -> None:
    breakfast = playback_for(ROOM, at("2024-06-12T07:00:00"), LONDON)
    assert (breakfast.context_uri, breakfast.volume, breakfast.fade_in_seconds) == (NEWS, 35, 0.0)
    night = playback_for(ROOM, at("2024-06-12T23:00:00"), LONDON)
    assert (night.context_uri, night.volume, night.fade_in_seconds) == (
        "spotify:playlist:p",
        10,
        20,
    )
    assert playback_for(ROOM, at("2024-06-12T12:00:00"), LONDON) is ROOM
