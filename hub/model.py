"""Frozen domain values shared by ingest, sessions, store, playback and sync.

`Session.to_record()` is the seed's session record (contracts §5): the same keys and
types in SQLite rows, `invoke` responses, MQTT state and DynamoDB items.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from operator import attrgetter
from types import MappingProxyType
from typing import Any, Final

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
    "endReason",  # added beside the seed's fields (contracts §5)
)


class SessionStatus(StrEnum):
    ACTIVE = "active"
    COMPLETED = "completed"


class EndReason(StrEnum):
    """Why a session ended (the record's `endReason`)."""

    TIMEOUT = "timeout"  # the room's timeout after the last motion
    PRESENCE_CLEARED = "presence_cleared"  # the timeout after every presence source cleared
    DOOR_OPENED = "door_opened"  # the door timeout after the door opened on someone inside
    MAX_HOLD = "max_hold"  # held for max_hold_minutes by a source that never cleared
    ENDED_BY_REQUEST = "ended_by_request"  # end_session: a person or another program
    RECOVERED = "recovered"  # taken over after a restart and over before anything happened


class StateKind(StrEnum):
    OCCUPANCY = "occupancy"  # on = occupied (motion held, presence)
    CONTACT = "contact"  # on = open (Home Assistant's convention for doors and windows)


@dataclass(frozen=True, slots=True)
class SensorState:
    """A state a sensor holds until it reports another: occupied / clear, open / closed.

    ESPHome binary sensors, Zigbee2MQTT `occupancy`/`presence`/`contact` and BTHome
    occupancy, motion clears and door/window/opening objects send these. `retained`: the
    broker replayed it at subscribe, so it is the current state, not something new.
    """

    sensor_id: str
    kind: StateKind
    on: bool
    received_at: float
    source: str = "mqtt"
    retained: bool = False
    battery_level: int | None = None

    @property
    def word(self) -> str:
        """The state in one word: occupied, clear, open or closed."""
        return _STATE_WORDS[self.kind, self.on]


_STATE_WORDS: Final = {
    (StateKind.OCCUPANCY, True): "occupied",
    (StateKind.OCCUPANCY, False): "clear",
    (StateKind.CONTACT, True): "open",
    (StateKind.CONTACT, False): "closed",
}


@dataclass(frozen=True, slots=True)
class MotionEvent:
    """One motion report from a sensor, already decoded from its wire format.

    `occurred_at` is the instant lifecycle decisions use: the hub's receive time unless
    the sensor's clock says it happened earlier — buffered by the firmware (`late`), or
    sat in the broker, judged by the engine from the sensor's learnt clock offset.
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


@dataclass(frozen=True, slots=True)
class Receipt:
    """Queued behind messages an ingest adapter handed the session runner: the runner
    calls `committed()` once everything queued before it is committed (or held in memory
    while the database cannot be written), so the adapter acknowledges to its broker only
    what cannot be lost any more."""

    committed: Callable[[], None]


def new_session_id(sensor_id: str, start: float) -> str:
    """`session-{sensorId}-{epoch}-{8 hex}` as the seed spelled it."""
    return f"{SESSION_ID_PREFIX}{sensor_id}-{int(start)}-{secrets.token_hex(4)}"


def new_event_id(sensor_id: str, occurred_at: float) -> str:
    return f"event-{sensor_id}-{int(occurred_at * 1000)}-{secrets.token_hex(4)}"


@dataclass(frozen=True, slots=True)
class Decision:
    """One step of a session's decision trace: which rule, from which sensor, what it did
    (what was asked of the player and what it answered too). Kept in the session's row
    (`spottypotty sessions --explain ID`, `GET /sessions/{id}`), never in the record."""

    at: float
    rule: str
    detail: str
    sensor_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        shown = {"at": iso(self.at), "rule": self.rule, "sensor": self.sensor_id}
        return {**shown, "detail": self.detail}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Decision:
        return cls(parse_iso(value["at"]), value["rule"], value["detail"], value.get("sensor"))


MAX_DECISIONS: Final = 24  # per session: the first few and the latest (a flapping sensor)


def decisions_json(decisions: tuple[Decision, ...]) -> str | None:
    return json.dumps([d.to_json() for d in decisions]) if decisions else None


def decisions_from_json(text: str | None) -> tuple[Decision, ...]:
    return tuple(Decision.from_json(item) for item in json.loads(text)) if text else ()


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
    end_reason: EndReason | None = None
    # The short decision trace: an explanation, not state. Not in the record, and not
    # compared (two sessions in the same state are equal however they were explained).
    decisions: tuple[Decision, ...] = field(default=(), compare=False)

    @property
    def is_active(self) -> bool:
        return self.status is SessionStatus.ACTIVE

    @property
    def duration_minutes(self) -> float | None:
        if self.end is None:
            return None
        return round((self.end - self.start) / 60, 2)

    def with_changes(self, **changes: Any) -> Session:
        """A copy with some fields changed (as dataclasses.replace, at half its cost: the
        engine makes one per motion)."""
        values = [changes.pop(name) if name in changes else getattr(self, name) for name in _FIELDS]
        if changes:
            raise TypeError(f"Session has no field(s) {', '.join(sorted(changes))}")
        return Session(*values)

    def shifted(self, delta: float) -> Session:
        """The same session on a clock `delta` seconds later (a corrected or stepped system
        clock): every instant moves, the duration does not, `ttl` keeps its distance from
        `startTime`. The id keeps the epoch it was made with: it is a name, not a time."""
        # On the microsecond grid of ISO-8601 records, as the engine keeps instants, so an
        # ended session's end stays exactly at its (shifted) deadline.
        delta = round(delta, 6)
        if not delta:
            return self

        def moved(instant: float) -> float:
            return round(instant + delta, 6)

        start = moved(self.start)
        return self.with_changes(
            start=start,
            last_motion=moved(self.last_motion),
            created_at=moved(self.created_at),
            updated_at=moved(self.updated_at),
            end=None if self.end is None else moved(self.end),
            ttl=self.ttl + int(start) - int(self.start),
        )

    def to_record(self) -> dict[str, Any]:
        """The contract's record; absent values are omitted (DynamoDB style)."""
        record = {name: value(self) for name, value in _RECORD_VALUES.items()}
        return {key: value for key, value in record.items() if value is not None}

    def record_values(self, fields: Iterable[str]) -> dict[str, Any]:
        """Some of the record's fields, absent ones as None (a partial row to store)."""
        return {name: _RECORD_VALUES[name](self) for name in fields}

    def changed_fields(self, before: Session) -> set[str]:
        """The record fields whose values differ from `before`'s."""
        changed: set[str] = set()
        for attribute, names in FIELDS_OF_ATTRIBUTE.items():
            if getattr(self, attribute) != getattr(before, attribute):
                changed.update(names)
        return changed

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
            end_reason=EndReason(record["endReason"]) if record.get("endReason") else None,
            decisions=decisions_from_json(record.get("decisions")),
        )

    def deciding(self, decision: Decision) -> Session:
        """With one more step in its trace (bounded: the first steps and the latest)."""
        decisions = (*self.decisions, decision)
        if len(decisions) > MAX_DECISIONS:
            head = MAX_DECISIONS // 4
            decisions = (*decisions[:head], *decisions[head + 1 :])
        return self.with_changes(decisions=decisions)


_FIELDS: Final = tuple(field.name for field in fields(Session))


def _iso_or_none(instant: float | None) -> str | None:
    return None if instant is None else iso(instant)


# How each record field is made from a Session: the one place for the contract's formats.
_RECORD_VALUES: Final[Mapping[str, Callable[[Session], Any]]] = MappingProxyType(
    {
        "sessionId": attrgetter("session_id"),
        "sensorId": attrgetter("sensor_id"),
        "userId": attrgetter("user_id"),
        "status": lambda session: session.status.value,
        "startTime": lambda session: int(session.start),
        "startTimeISO": lambda session: iso(session.start),
        "lastMotionTime": lambda session: iso(session.last_motion),
        "motionEventsCount": attrgetter("motion_events_count"),
        "playbackStarted": attrgetter("playback_started"),
        "spotifyDeviceId": attrgetter("spotify_device_id"),
        "spotifyContextUri": attrgetter("spotify_context_uri"),
        "endTime": lambda session: _iso_or_none(session.end),
        "durationMinutes": attrgetter("duration_minutes"),
        "playbackStopped": attrgetter("playback_stopped"),
        "createdAt": lambda session: iso(session.created_at),
        "updatedAt": lambda session: iso(session.updated_at),
        "ttl": attrgetter("ttl"),
        "endReason": lambda session: (
            None if session.end_reason is None else session.end_reason.value
        ),
    }
)
# The record fields each Session attribute feeds (`playback_note` is not in the record).
FIELDS_OF_ATTRIBUTE: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        "session_id": ("sessionId",),
        "sensor_id": ("sensorId",),
        "user_id": ("userId",),
        "status": ("status",),
        "start": ("startTime", "startTimeISO", "durationMinutes"),
        "last_motion": ("lastMotionTime",),
        "motion_events_count": ("motionEventsCount",),
        "created_at": ("createdAt",),
        "updated_at": ("updatedAt",),
        "ttl": ("ttl",),
        "playback_started": ("playbackStarted",),
        "spotify_device_id": ("spotifyDeviceId",),
        "spotify_context_uri": ("spotifyContextUri",),
        "end": ("endTime", "durationMinutes"),
        "playback_stopped": ("playbackStopped",),
        "playback_note": (),
        "end_reason": ("endReason",),
        "decisions": (),
    }
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
