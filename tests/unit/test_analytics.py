from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from hub.sessions.analytics import summarize
from hub.store.aggregates import BUCKET_SECONDS, Aggregates, Bucket, SensorTotals, Totals

KOLKATA = ZoneInfo("Asia/Kolkata")  # UTC+05:30: quarter-hour buckets must still fold exactly
LONDON = ZoneInfo("Europe/London")
T0 = 1_767_225_600  # 2026-01-01T00:00Z


def _aggregates(buckets: list[Bucket]) -> Aggregates:
    sessions = sum(b.sessions for b in buckets)
    return Aggregates(
        totals=Totals(
            sessions=sessions,
            active=0,
            completed=sessions,
            motion_events=sum(b.motion_events for b in buckets),
            completed_minutes=sum(b.completed_minutes for b in buckets),
            with_playback=sum(b.with_playback for b in buckets),
            first_start=buckets[0].start if buckets else None,
            last_start=buckets[-1].start if buckets else None,
        ),
        buckets=buckets,
        sensors=[SensorTotals("s", sessions, 0, 0.0, buckets[0].start, buckets[-1].start)]
        if buckets
        else [],
    )


def test_half_hour_zone_puts_sessions_in_the_right_local_hour_and_day() -> None:
    # 18:30Z is 00:00 the next day in Kolkata; 18:15Z is still 23:45.
    buckets = [
        Bucket(T0 + 18 * 3600 + 15 * 60, 1, 1, 2.0, 0),
        Bucket(T0 + 18 * 3600 + 30 * 60, 2, 2, 4.0, 1),
    ]
    a = summarize(_aggregates(buckets), KOLKATA)
    assert a["hourlyDistribution"][23] == 1
    assert a["hourlyDistribution"][0] == 2
    assert a["peakHour"] == 0
    assert [(d["date"], d["sessions"]) for d in a["usageByDay"]] == [
        ("2026-01-01", 1),
        ("2026-01-02", 2),
    ]


def test_empty_history() -> None:
    a = summarize(_aggregates([]), LONDON)
    assert a["totalSessions"] == 0
    assert a["peakHour"] is None
    assert a["averageDurationMinutes"] == 0.0
    assert a["averageTimeBetweenSessionsMinutes"] is None
    assert a["usageByDay"] == []


bucket_lists = st.lists(
    st.builds(
        Bucket,
        start=st.integers(0, 3 * 365 * 96).map(lambda n: T0 + n * BUCKET_SECONDS),
        sessions=st.integers(1, 50),
        motion_events=st.integers(0, 500),
        completed_minutes=st.floats(0, 1000, allow_nan=False),
        with_playback=st.integers(0, 50),
    ),
    max_size=60,
    unique_by=lambda b: b.start,
).map(lambda bs: sorted(bs, key=lambda b: b.start))


@given(bucket_lists, st.sampled_from([LONDON, KOLKATA, dt.UTC]))
def test_every_grouping_accounts_for_every_session(buckets: list[Bucket], tz: dt.tzinfo) -> None:
    a = summarize(_aggregates(buckets), tz)
    total = a["totalSessions"]
    assert sum(a["hourlyDistribution"]) == total
    for grouping in ("usageByDay", "usageByWeek", "usageByMonth"):
        assert sum(row["sessions"] for row in a[grouping]) == total
        labels = [row[next(iter(row))] for row in a[grouping]]
        assert labels == sorted(labels)
    if total:
        assert a["hourlyDistribution"][a["peakHour"]] == max(a["hourlyDistribution"])
