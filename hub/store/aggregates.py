"""Aggregate queries behind the analytics: SQLite does the counting, Python only folds
a few thousand time buckets into local hours, days, weeks and months.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlite_utils import Database

from hub.store.sessions import range_filter

# Every time zone's UTC offset is a whole number of quarter hours, so 15-minute UTC
# buckets map exactly onto local hours and days, DST included.
BUCKET_SECONDS = 900


@dataclass(frozen=True, slots=True)
class Totals:
    sessions: int
    active: int
    completed: int
    motion_events: int
    completed_minutes: float
    with_playback: int
    first_start: int | None
    last_start: int | None


@dataclass(frozen=True, slots=True)
class Bucket:
    """Sessions that started in [start, start + BUCKET_SECONDS)."""

    start: int
    sessions: int
    motion_events: int
    completed_minutes: float
    with_playback: int
    active: int = 0
    completed: int = 0


@dataclass(frozen=True, slots=True)
class SensorTotals:
    sensor_id: str
    sessions: int
    motion_events: int
    completed_minutes: float
    first_start: int
    last_start: int


@dataclass(frozen=True, slots=True)
class Aggregates:
    totals: Totals
    buckets: list[Bucket]
    sensors: list[SensorTotals]  # most sessions first


def aggregate_sessions(
    db: Database,
    *,
    sensor_id: str | None = None,
    user_id: str | None = None,
    start: float | None = None,
    end: float | None = None,
) -> Aggregates:
    """Two index-only passes: time buckets (the totals are their sums) and per-sensor."""
    where, params = range_filter(sensor_id, user_id, start, end)
    clause = ("WHERE " + " AND ".join(where)) if where else ""
    completed_minutes = "CASE WHEN status = 'completed' THEN durationMinutes END"
    buckets = [
        Bucket(
            start=int(row[0]),
            sessions=int(row[1]),
            motion_events=int(row[2]),
            completed_minutes=float(row[3]),
            with_playback=int(row[4]),
            active=int(row[5]),
            completed=int(row[6]),
        )
        for row in db.execute(
            f"""SELECT startTime / {BUCKET_SECONDS} * {BUCKET_SECONDS} AS bucket, count(*),
                       total(motionEventsCount), total({completed_minutes}),
                       total(playbackStarted), total(status = 'active'),
                       total(status = 'completed')
                FROM sessions {clause} GROUP BY bucket ORDER BY bucket""",
            params,
        )
    ]
    # Without a sensor or user filter, walking the (sensorId, startTime, …) index in order
    # groups by sensor without sorting a million rows in a temporary B-tree.
    by_sensor = (
        "INDEXED BY sessions_by_sensor_time" if sensor_id is None and user_id is None else ""
    )
    sensors = [
        SensorTotals(str(s[0]), int(s[1]), int(s[2]), float(s[3]), int(s[4]), int(s[5]))
        for s in db.execute(
            f"""SELECT sensorId, count(*) AS n, total(motionEventsCount),
                       total({completed_minutes}), min(startTime), max(startTime)
                FROM sessions {by_sensor} {clause} GROUP BY sensorId""",
            params,
        )
    ]
    sensors.sort(key=lambda s: (-s.sessions, s.sensor_id))
    return Aggregates(totals=totals_of(buckets, sensors), buckets=buckets, sensors=sensors)


def totals_of(buckets: list[Bucket], sensors: list[SensorTotals]) -> Totals:
    """The totals are the buckets' sums; first and last start come from the sensors."""
    return Totals(
        sessions=sum(b.sessions for b in buckets),
        active=sum(b.active for b in buckets),
        completed=sum(b.completed for b in buckets),
        motion_events=sum(b.motion_events for b in buckets),
        completed_minutes=sum(b.completed_minutes for b in buckets),
        with_playback=sum(b.with_playback for b in buckets),
        first_start=min((s.first_start for s in sensors), default=None),
        last_start=max((s.last_start for s in sensors), default=None),
    )
