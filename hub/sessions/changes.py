"""The three Session Manager operations that change sessions, as typed requests, and the
seed's rules for what each does to a session (pure: no store, no clock of its own).

`hub.sessions.operations` parses the seed's events into these; the engine applies them in
order with motion, so the runner stays the one owner of session state.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hub.config import SensorConfig
from hub.errors import ConflictError, ValidationError
from hub.model import EndReason, Session, SessionStatus, open_session


@dataclass(frozen=True, slots=True)
class CreateSession:
    sensor_id: str
    user_id: str | None = None
    spotify_device_id: str | None = None
    spotify_context_uri: str | None = None
    action: str = field(default="create_session", init=False)


@dataclass(frozen=True, slots=True)
class UpdateSession:
    session_id: str
    increment_motion_count: bool = False
    # Session attributes set as given: playback_started, playback_stopped,
    # spotify_device_id, spotify_context_uri.
    changes: Mapping[str, Any] = field(default_factory=dict)
    action: str = field(default="update_session", init=False)


@dataclass(frozen=True, slots=True)
class EndSession:
    session_id: str
    playback_stopped: bool | None = None
    action: str = field(default="end_session", init=False)


Change = CreateSession | UpdateSession | EndSession


def created(
    request: CreateSession,
    sensor: SensorConfig | None,
    *,
    new_id: Callable[[str, float], str],
    now: float,
    ttl_days: float,
) -> Session:
    """The seed's create: a session starting now; user and playlist default to the sensor's."""
    user_id = request.user_id or (sensor.user_id if sensor is not None else None)
    if user_id is None:
        raise ValidationError("userId", "userId is required for a sensor not in the config")
    return open_session(
        session_id=new_id(request.sensor_id, now),
        sensor_id=request.sensor_id,
        user_id=user_id,
        start=round(now, 6),
        now=now,
        ttl_days=ttl_days,
        spotify_device_id=request.spotify_device_id,
        spotify_context_uri=request.spotify_context_uri
        or (sensor.context_uri if sensor is not None and sensor.context_uri else None),
    )


def updated(session: Session, request: UpdateSession, now: float) -> Session:
    """The seed's update: set what the request names; count one motion if asked."""
    changes = dict(request.changes)
    if request.increment_motion_count:
        if not session.is_active:
            raise ConflictError(
                f"session {session.session_id} is completed; it takes no more motion"
            )
        changes["motion_events_count"] = session.motion_events_count + 1
        changes["last_motion"] = max(session.last_motion, round(now, 6))
    if not changes:
        return session
    return session.with_changes(updated_at=now, **changes)


def ended(session: Session, request: EndSession, now: float) -> Session:
    """The seed's end: completed now (never before its last motion)."""
    if not session.is_active:
        ended_at = session.to_record().get("endTime")
        raise ConflictError(f"session {session.session_id} already ended at {ended_at}")
    stopped = request.playback_stopped
    return session.with_changes(
        status=SessionStatus.COMPLETED,
        end=max(round(now, 6), session.last_motion),
        end_reason=EndReason.ENDED_BY_REQUEST,
        updated_at=now,
        playback_stopped=stopped if stopped is not None else session.playback_stopped,
    )
