"""The seed's six Session Manager operations over the local store (contracts §5).

`handle(event, ctx)` takes the seed's event dict unchanged and answers the seed's
response shape: `statusCode`, `action`, the payload, and `duration_ms`. Bad input is
a 4xx answer naming the field, never an exception.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlite_utils import Database

from hub.config import HubConfig
from hub.errors import ConflictError, HubError, NotFoundError, ParseError, ValidationError
from hub.model import SESSION_ID_PREFIX, Session, SessionStatus, new_session_id, open_session
from hub.sessions.analytics import summarize
from hub.store.aggregates import aggregate_sessions
from hub.store.sessions import MAX_PAGE, SessionQuery, SessionRepository
from hub.timeutil import local_zone, parse_instant

_LOGGER = logging.getLogger(__name__)

ID_PATTERN = re.compile(r"^[A-Za-z0-9_.:@-]{1,128}$")
DEFAULT_LIMIT = 100


@dataclass(frozen=True, slots=True)
class OperationContext:
    config: HubConfig
    db: Database
    clock: Callable[[], float] = time.time
    new_id: Callable[[str, float], str] = new_session_id
    sessions: SessionRepository = field(init=False)

    def __post_init__(self) -> None:
        repository = SessionRepository(self.db, ttl_days=self.config.sessions.ttl_days)
        object.__setattr__(self, "sessions", repository)


_Handler = Callable[[Mapping[str, Any], OperationContext], dict[str, Any]]


def handle(event: object, ctx: OperationContext) -> dict[str, Any]:
    """Run one Session Manager event; always returns a response dict."""
    started = time.perf_counter()
    action = event.get("action") if isinstance(event, Mapping) else None
    shown_action = action if isinstance(action, str) else None
    try:
        if not isinstance(event, Mapping):
            raise ValidationError("event", "the event must be a JSON object")
        if not isinstance(action, str) or action not in _HANDLERS:
            raise ValidationError(
                "action", f"unknown action {action!r}; expected one of {', '.join(_HANDLERS)}"
            )
        handler, allowed = _HANDLERS[action]
        unknown = sorted(set(event) - allowed - {"action"})
        if unknown:
            raise ValidationError(
                unknown[0], f"unknown field(s) for {action}: {', '.join(unknown)}"
            )
        response: dict[str, Any] = {"statusCode": 200, "action": action, **handler(event, ctx)}
    except ValidationError as exc:
        response = _error(400, shown_action, "ValidationError", str(exc), field=exc.field)
    except NotFoundError as exc:
        response = _error(404, shown_action, "ResourceNotFoundError", str(exc))
    except ConflictError as exc:
        response = _error(409, shown_action, "ConflictError", str(exc))
        if exc.session_id is not None:
            response["activeSessionId"] = exc.session_id
    except (HubError, sqlite3.Error) as exc:  # a locked or failing database: still JSON
        _LOGGER.exception("operation %s failed", shown_action)
        response = _error(500, shown_action, "InternalError", str(exc))
    response["duration_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return response


def _error(
    status: int, action: str | None, kind: str, message: str, **extra: Any
) -> dict[str, Any]:
    return {"statusCode": status, "action": action, "error": kind, "message": message, **extra}


# -- the six operations ---------------------------------------------------------------


def _create_session(event: Mapping[str, Any], ctx: OperationContext) -> dict[str, Any]:
    sensor_id = _id(event, "sensorId")
    sensor = ctx.config.sensor(sensor_id)
    user_id = _optional_id(event, "userId") or (sensor.user_id if sensor else None)
    if user_id is None:
        raise ValidationError("userId", "userId is required for a sensor not in the config")
    now = ctx.clock()
    session = open_session(
        session_id=ctx.new_id(sensor_id, now),
        sensor_id=sensor_id,
        user_id=user_id,
        start=now,
        now=now,
        ttl_days=ctx.config.sessions.ttl_days,
        spotify_device_id=_optional_str(event, "spotifyDeviceId"),
        spotify_context_uri=_optional_str(event, "spotifyContextUri")
        or (sensor.context_uri if sensor and sensor.context_uri else None),
    )
    ctx.sessions.save(session, created=True)
    return {"session": session.to_record()}


def _update_session(event: Mapping[str, Any], ctx: OperationContext) -> dict[str, Any]:
    session_id = _id(event, "sessionId")
    increment = _optional_bool(event, "incrementMotionCount")
    changes: dict[str, Any] = {}
    for key, attribute in (
        ("playbackStarted", "playback_started"),
        ("playbackStopped", "playback_stopped"),
    ):
        flag = _optional_bool(event, key)
        if flag is not None:
            changes[attribute] = flag
    for key, attribute in (
        ("spotifyDeviceId", "spotify_device_id"),
        ("spotifyContextUri", "spotify_context_uri"),
    ):
        text = _optional_str(event, key)
        if text is not None:
            changes[attribute] = text
    session = _existing(session_id, ctx)
    now = ctx.clock()
    if increment:
        if not session.is_active:
            raise ConflictError(f"session {session_id} is completed; it takes no more motion")
        changes["motion_events_count"] = session.motion_events_count + 1
        changes["last_motion"] = max(session.last_motion, now)
    if changes:
        session = session.with_changes(updated_at=now, **changes)
        ctx.sessions.save(session, created=False)
    return {"session": session.to_record()}


def _end_session(event: Mapping[str, Any], ctx: OperationContext) -> dict[str, Any]:
    session_id = _id(event, "sessionId")
    stopped = _optional_bool(event, "playbackStopped")
    session = _existing(session_id, ctx)
    if session.end is not None:
        ended_at = session.to_record()["endTime"]
        raise ConflictError(f"session {session_id} already ended at {ended_at}")
    now = ctx.clock()
    ended = session.with_changes(
        status=SessionStatus.COMPLETED,
        end=max(now, session.last_motion),
        updated_at=now,
        playback_stopped=stopped if stopped is not None else session.playback_stopped,
    )
    ctx.sessions.save(ended, created=False)
    return {"session": ended.to_record()}


def _get_active_session(event: Mapping[str, Any], ctx: OperationContext) -> dict[str, Any]:
    sensor_id = _id(event, "sensorId")
    session = ctx.sessions.active_for(sensor_id)
    if session is None:
        raise NotFoundError(f"sensor {sensor_id} has no active session")
    return {"session": session.to_record()}


def _query_sessions(event: Mapping[str, Any], ctx: OperationContext) -> dict[str, Any]:
    start, end = _date_range(event, ctx)
    status = _optional_str(event, "status")
    if status is not None and status not in {s.value for s in SessionStatus}:
        raise ValidationError("status", f"status must be 'active' or 'completed', got {status!r}")
    query = SessionQuery(
        sensor_id=_optional_id(event, "sensorId"),
        user_id=_optional_id(event, "userId"),
        start=start,
        end=end,
        status=SessionStatus(status) if status else None,
        limit=_limit(event),
        after=_start_key(event),
    )
    page, has_more = ctx.sessions.query_records(query)
    response: dict[str, Any] = {"sessions": page, "count": len(page), "hasMore": has_more}
    if has_more:
        last = page[-1]
        response["lastEvaluatedKey"] = {
            key: last[key] for key in ("sessionId", "sensorId", "startTime")
        }
    return response


def _get_session_analytics(event: Mapping[str, Any], ctx: OperationContext) -> dict[str, Any]:
    start, end = _date_range(event, ctx)
    aggregates = aggregate_sessions(
        ctx.db,
        sensor_id=_optional_id(event, "sensorId"),
        user_id=_optional_id(event, "userId"),
        start=start,
        end=end,
    )
    return {"analytics": summarize(aggregates, local_zone(ctx.config.hub.timezone))}


_HANDLERS: dict[str, tuple[_Handler, frozenset[str]]] = {
    "create_session": (
        _create_session,
        frozenset({"sensorId", "userId", "spotifyDeviceId", "spotifyContextUri"}),
    ),
    "update_session": (
        _update_session,
        frozenset(
            {
                "sessionId",
                "incrementMotionCount",
                "playbackStarted",
                "playbackStopped",
                "spotifyDeviceId",
                "spotifyContextUri",
            }
        ),
    ),
    "end_session": (_end_session, frozenset({"sessionId", "playbackStopped"})),
    "get_active_session": (_get_active_session, frozenset({"sensorId"})),
    "query_sessions": (
        _query_sessions,
        frozenset(
            {"sensorId", "userId", "startDate", "endDate", "status", "limit", "exclusiveStartKey"}
        ),
    ),
    "get_session_analytics": (
        _get_session_analytics,
        frozenset({"sensorId", "userId", "startDate", "endDate"}),
    ),
}
ACTIONS = tuple(_HANDLERS)


# -- field validation -----------------------------------------------------------------


def _existing(session_id: str, ctx: OperationContext) -> Session:
    session = ctx.sessions.get(session_id)
    if session is None:
        hint = "" if session_id.startswith(SESSION_ID_PREFIX) else " (ids look like session-…)"
        raise NotFoundError(f"session {session_id} does not exist{hint}")
    return session


def _id(event: Mapping[str, Any], key: str) -> str:
    value = _optional_id(event, key)
    if value is None:
        raise ValidationError(key, f"{key} is required")
    return value


def _optional_id(event: Mapping[str, Any], key: str) -> str | None:
    value = _optional_str(event, key)
    if value is not None and not ID_PATTERN.match(value):
        raise ValidationError(
            key, f"{key} must be 1-128 letters, digits or _ . : @ -, got {value!r}"
        )
    return value


def _optional_str(event: Mapping[str, Any], key: str) -> str | None:
    value = event.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(key, f"{key} must be a non-empty string, got {value!r}")
    return value.strip()


def _optional_bool(event: Mapping[str, Any], key: str) -> bool | None:
    value = event.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise ValidationError(key, f"{key} must be true or false, got {value!r}")


def _limit(event: Mapping[str, Any]) -> int:
    value = event.get("limit", DEFAULT_LIMIT)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError("limit", f"limit must be a whole number >= 1, got {value!r}")
    return min(value, MAX_PAGE)  # huge pages are capped, not refused


def _date_range(
    event: Mapping[str, Any], ctx: OperationContext
) -> tuple[float | None, float | None]:
    tz = local_zone(ctx.config.hub.timezone)
    bounds: dict[str, float | None] = {}
    for key, end_of_day in (("startDate", False), ("endDate", True)):
        value = event.get(key)
        try:
            bounds[key] = None if value is None else parse_instant(value, tz, end_of_day=end_of_day)
        except ParseError as exc:
            raise ValidationError(key, f"{key}: {exc}") from exc
    start, end = bounds["startDate"], bounds["endDate"]
    if start is not None and end is not None and start > end:
        raise ValidationError("endDate", "endDate is before startDate")
    return start, end


def _start_key(event: Mapping[str, Any]) -> tuple[int, str] | None:
    key = event.get("exclusiveStartKey")
    if key is None:
        return None
    if not isinstance(key, Mapping):
        raise ValidationError(
            "exclusiveStartKey", "exclusiveStartKey must be the lastEvaluatedKey object"
        )
    session_id, start_time = key.get("sessionId"), key.get("startTime")
    if (
        not isinstance(session_id, str)
        or isinstance(start_time, bool)
        or not isinstance(start_time, int)
    ):
        raise ValidationError(
            "exclusiveStartKey",
            "exclusiveStartKey needs sessionId (string) and startTime (number) "
            "as returned in lastEvaluatedKey",
        )
    return start_time, session_id
