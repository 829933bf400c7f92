"""The seed's analytics and its "future analytics", folded from SQL aggregates.

Pure: takes `Aggregates` (counted by SQLite) and a time zone, returns the JSON the
seed's `get_session_analytics` answered, plus usage by day/week/month, most active
sensors, average time between sessions and the playback success trend.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hub.store.aggregates import BUCKET_SECONDS, Aggregates, Bucket, SensorTotals, totals_of


@dataclass(slots=True)
class _Usage:
    sessions: int = 0
    motion_events: int = 0
    minutes: float = 0.0
    with_playback: int = 0

    def add(self, bucket: Bucket) -> None:
        self.sessions += bucket.sessions
        self.motion_events += bucket.motion_events
        self.minutes += bucket.completed_minutes
        self.with_playback += bucket.with_playback

    def as_json(self, key: str, label: str) -> dict[str, Any]:
        return {
            key: label,
            "sessions": self.sessions,
            "motionEvents": self.motion_events,
            "durationMinutes": round(self.minutes, 2),
            "sessionsWithPlayback": self.with_playback,
            "playbackSuccessRate": _rate(self.with_playback, self.sessions),
        }


def _rate(part: int, whole: int) -> float:
    return round(100 * part / whole, 2) if whole else 0.0


def _iso_week(day: dt.date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def summarize(aggregates: Aggregates, tz: dt.tzinfo, *, top_sensors: int = 10) -> dict[str, Any]:
    totals = aggregates.totals
    hours = [0] * 24
    by_day: dict[str, _Usage] = {}
    by_week: dict[str, _Usage] = {}
    by_month: dict[str, _Usage] = {}
    groupings: list[tuple[dict[str, _Usage], Callable[[dt.date], str]]] = [
        (by_day, dt.date.isoformat),
        (by_week, _iso_week),
        (by_month, lambda day: f"{day.year}-{day.month:02d}"),
    ]
    for bucket in aggregates.buckets:
        local = dt.datetime.fromtimestamp(bucket.start, tz)
        hours[local.hour] += bucket.sessions
        day = local.date()
        for table, label in groupings:
            table.setdefault(label(day), _Usage()).add(bucket)

    # Start-to-start: a sensor with n sessions over a span has n-1 gaps.
    gaps = sum(s.sessions - 1 for s in aggregates.sensors)
    span = sum(s.last_start - s.first_start for s in aggregates.sensors)

    return {
        "totalSessions": totals.sessions,
        "activeSessions": totals.active,
        "completedSessions": totals.completed,
        "totalMotionEvents": totals.motion_events,
        "totalDurationMinutes": round(totals.completed_minutes, 2),
        "averageDurationMinutes": (
            round(totals.completed_minutes / totals.completed, 2) if totals.completed else 0.0
        ),
        "averageMotionEventsPerSession": (
            round(totals.motion_events / totals.sessions, 2) if totals.sessions else 0.0
        ),
        "peakHour": hours.index(max(hours)) if totals.sessions else None,
        "sessionsWithPlayback": totals.with_playback,
        "playbackSuccessRate": _rate(totals.with_playback, totals.sessions),
        "hourlyDistribution": hours,
        "usageByDay": [usage.as_json("date", key) for key, usage in by_day.items()],
        "usageByWeek": [usage.as_json("week", key) for key, usage in by_week.items()],
        "usageByMonth": [usage.as_json("month", key) for key, usage in by_month.items()],
        "mostActiveSensors": [
            {
                "sensorId": s.sensor_id,
                "sessions": s.sessions,
                "motionEvents": s.motion_events,
                "durationMinutes": round(s.completed_minutes, 2),
            }
            for s in aggregates.sensors[:top_sensors]
        ],
        "averageTimeBetweenSessionsMinutes": round(span / gaps / 60, 2) if gaps else None,
        "playbackSuccessTrend": [
            {"week": key, "playbackSuccessRate": _rate(u.with_playback, u.sessions)}
            for key, u in by_week.items()
        ],
    }


def aggregate_records(records: Iterable[Mapping[str, Any]]) -> Aggregates:
    """What `aggregate_sessions` counts in SQL, counted over session records held in memory
    (the cloud table's read-back), so both are summarized by the same `summarize`."""
    buckets: dict[int, Bucket] = {}
    sensors: dict[str, SensorTotals] = {}
    for record in records:
        start = int(record["startTime"])
        completed = record.get("status") == "completed"
        minutes = float(record.get("durationMinutes", 0.0)) if completed else 0.0
        motion = int(record.get("motionEventsCount", 0))
        played = int(bool(record.get("playbackStarted")))
        key = start // BUCKET_SECONDS * BUCKET_SECONDS
        b = buckets.get(key, Bucket(key, 0, 0, 0.0, 0))
        buckets[key] = Bucket(
            key,
            b.sessions + 1,
            b.motion_events + motion,
            b.completed_minutes + minutes,
            b.with_playback + played,
            b.active + (not completed),
            b.completed + completed,
        )
        sensor_id = str(record["sensorId"])
        s = sensors.get(sensor_id, SensorTotals(sensor_id, 0, 0, 0.0, start, start))
        sensors[sensor_id] = SensorTotals(
            sensor_id,
            s.sessions + 1,
            s.motion_events + motion,
            s.completed_minutes + minutes,
            min(s.first_start, start),
            max(s.last_start, start),
        )
    ordered = [buckets[k] for k in sorted(buckets)]
    by_sensor = sorted(sensors.values(), key=lambda s: (-s.sessions, s.sensor_id))
    return Aggregates(totals=totals_of(ordered, by_sensor), buckets=ordered, sensors=by_sensor)
