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
    where, params = range_filter(sensor_id, user_id, start, end)
    clause = ("WHERE " + " AND ".join(where)) if where else ""
    completed_minutes = "CASE WHEN status = 'completed' THEN durationMinutes END"
    row = db.execute(
        f"""SELECT count(*), total(status = 'active'), total(status = 'completed'),
                   total(motionEventsCount), total({completed_minutes}),
                   total(playbackStarted), min(startTime), max(startTime)
            FROM sessions {clause}""",
        params,
    ).fetchone()
    totals = Totals(
        sessions=int(row[0]),
        active=int(row[1]),
        completed=int(row[2]),
        motion_events=int(row[3]),
        completed_minutes=float(row[4]),
        with_playback=int(row[5]),
        first_start=row[6],
        last_start=row[7],
    )
    buckets = [
        Bucket(int(b[0]), int(b[1]), int(b[2]), float(b[3]), int(b[4]))
        for b in db.execute(
            f"""SELECT startTime / {BUCKET_SECONDS} * {BUCKET_SECONDS} AS bucket, count(*),
                       total(motionEventsCount), total({completed_minutes}),
                       total(playbackStarted)
                FROM sessions {clause} GROUP BY bucket ORDER BY bucket""",
            params,
        )
    ]
    sensors = [
        SensorTotals(str(s[0]), int(s[1]), int(s[2]), float(s[3]), int(s[4]), int(s[5]))
        for s in db.execute(
            f"""SELECT sensorId, count(*) AS n, total(motionEventsCount),
                       total({completed_minutes}), min(startTime), max(startTime)
                FROM sessions {clause} GROUP BY sensorId ORDER BY n DESC, sensorId""",
            params,
        )
    ]
    return Aggregates(totals=totals, buckets=buckets, sensors=sensors)
