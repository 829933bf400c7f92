"""Frozen domain values shared by ingest, sessions, store, playback and sync.

`Session.to_record()` is the seed's session record (contracts §5): the same keys and
types in SQLite rows, `invoke` responses, MQTT state and DynamoDB items.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from hub.timeutil import iso, parse_iso

SECONDS_PER_DAY = 86_400
SESSION_ID_PREFIX = "session-"

# The contract's session record, in its documented order.
RECORD_FIELDS: tuple[str, ...] = (
    "sessionId",
    "sensorId",
    "userId",
    "status",
    "startTime",
    "startTimeISO",
    "lastMotionTime",
    "motionEventsCount",
    "playbackStarted",
    "spotifyDeviceId",
    "spotifyContextUri",
    "endTime",
    "durationMinutes",
    "playbackStopped",
    "createdAt",
    "updatedAt",
    "ttl",
)


class SessionStatus(StrEnum):
    ACTIVE = "active"
    COMPLETED = "completed"


@dataclass(frozen=True, slots=True)
class MotionEvent:
    """One motion report from a sensor, already decoded from its wire format.

    `occurred_at` is the instant lifecycle decisions use: the hub's receive time unless
    the ingest adapter trusts the sensor's clock (or the event was buffered and is late).
    """

    sensor_id: str
    occurred_at: float
    received_at: float
    source: str = "mqtt"
    sensor_timestamp: float | None = None
    seq: int | None = None
    battery_level: int | None = None
    signal_strength: int | None = None
    firmware_version: str | None = None
    late: bool = False


def new_session_id(sensor_id: str, start: float) -> str:
    """`session-{sensorId}-{epoch}-{8 hex}` as the seed spelled it."""
    return f"{SESSION_ID_PREFIX}{sensor_id}-{int(start)}-{secrets.token_hex(4)}"


def new_event_id(sensor_id: str, occurred_at: float) -> str:
    return f"event-{sensor_id}-{int(occurred_at * 1000)}-{secrets.token_hex(4)}"


@dataclass(frozen=True, slots=True)
class Session:
    """A session as the hub reasons about it: instants are epoch seconds."""

    session_id: str
    sensor_id: str
    user_id: str
    status: SessionStatus
    start: float
    last_motion: float
    motion_events_count: int
    created_at: float
    updated_at: float
    ttl: int
    playback_started: bool = False
    spotify_device_id: str | None = None
    spotify_context_uri: str | None = None
    end: float | None = None
    playback_stopped: bool | None = None
    # Why playback did or did not start (quiet_hours, stale, dry_run, already_playing, …).
    playback_note: str | None = None

    @property
    def is_active(self) -> bool:
        return self.status is SessionStatus.ACTIVE

    @property
    def duration_minutes(self) -> float | None:
        if self.end is None:
            return None
        return round((self.end - self.start) / 60, 2)

    def with_changes(self, **changes: Any) -> Session:
        return replace(self, **changes)

    def to_record(self) -> dict[str, Any]:
        """The contract's record; absent values are omitted (DynamoDB style)."""
        record: dict[str, Any] = {
            "sessionId": self.session_id,
            "sensorId": self.sensor_id,
            "userId": self.user_id,
            "status": self.status.value,
            "startTime": int(self.start),
            "startTimeISO": iso(self.start),
            "lastMotionTime": iso(self.last_motion),
            "motionEventsCount": self.motion_events_count,
            "playbackStarted": self.playback_started,
            "spotifyDeviceId": self.spotify_device_id,
            "spotifyContextUri": self.spotify_context_uri,
            "endTime": iso(self.end) if self.end is not None else None,
            "durationMinutes": self.duration_minutes,
            "playbackStopped": self.playback_stopped,
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at),
            "ttl": self.ttl,
        }
        return {key: value for key, value in record.items() if value is not None}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Session:
        """Inverse of `to_record`; also reads SQLite rows (0/1 booleans, NULLs)."""
        end_time = record.get("endTime")
        stopped = record.get("playbackStopped")
        return cls(
            session_id=record["sessionId"],
            sensor_id=record["sensorId"],
            user_id=record["userId"],
            status=SessionStatus(record["status"]),
            start=parse_iso(record["startTimeISO"]),
            last_motion=parse_iso(record["lastMotionTime"]),
            motion_events_count=int(record["motionEventsCount"]),
            created_at=parse_iso(record["createdAt"]),
            updated_at=parse_iso(record["updatedAt"]),
            ttl=int(record["ttl"]),
            playback_started=bool(record.get("playbackStarted")),
            spotify_device_id=record.get("spotifyDeviceId"),
            spotify_context_uri=record.get("spotifyContextUri"),
            end=parse_iso(end_time) if end_time else None,
            playback_stopped=None if stopped is None else bool(stopped),
            playback_note=record.get("playbackNote"),
        )


def open_session(
    *,
    session_id: str,
    sensor_id: str,
    user_id: str,
    start: float,
    now: float,
    ttl_days: float,
    spotify_device_id: str | None = None,
    spotify_context_uri: str | None = None,
    playback_note: str | None = None,
) -> Session:
    """A new active session with its first motion event at `start`."""
    return Session(
        session_id=session_id,
        sensor_id=sensor_id,
        user_id=user_id,
        status=SessionStatus.ACTIVE,
        start=start,
        last_motion=start,
        motion_events_count=1,
        created_at=now,
        updated_at=now,
        ttl=int(start + ttl_days * SECONDS_PER_DAY),
        spotify_device_id=spotify_device_id,
        spotify_context_uri=spotify_context_uri,
        playback_note=playback_note,
    )
