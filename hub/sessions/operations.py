"""The seed's six Session Manager operations (contracts §5).

Three change sessions — `create_session`, `update_session`, `end_session` — and go to the
one owner of session state, the session runner (`change`), in order with motion; three
read — `get_active_session`, `query_sessions`, `get_session_analytics` — and run on any
connection (`read`), read-only ones included.

`invoke(event, ...)` takes the seed's event dict unchanged and answers the seed's response
shape: `statusCode`, `action`, the payload, `timestamp` (ISO-8601, UTC) and `duration_ms`.
Bad input is a 4xx answer naming the field, never an exception.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from sqlite_utils import Database

from hub.config import HubConfig
from hub.errors import ConflictError, HubError, NotFoundError, ParseError, ValidationError
from hub.model import Session, SessionStatus
from hub.sessions.analytics import summarize
from hub.sessions.changes import Change, CreateSession, EndSession, UpdateSession
from hub.store.aggregates import aggregate_sessions
from hub.store.sessions import MAX_PAGE, SessionQuery, SessionRepository
from hub.store.timeouts import MIN_SESSIONS, learn_timeouts
from hub.timeutil import iso, local_zone, parse_instant

_LOGGER = logging.getLogger(__name__)

ID_PATTERN = re.compile(r"^[A-Za-z0-9_.:@-]{1,128}$")
DEFAULT_LIMIT = 100


@dataclass(frozen=True, slots=True)
class OperationContext:
    """What a read runs against."""

    config: HubConfig
    db: Database
    sessions: SessionRepository = field(init=False)

    def __post_init__(self) -> None:
        repository = SessionRepository(self.db, ttl_days=self.config.sessions.ttl_days)
        object.__setattr__(self, "sessions", repository)


_Read = Callable[[Mapping[str, Any], OperationContext], dict[str, Any]]
# Carries out a change in order with motion: the session it leaves, or a HubError.
ChangeSessions = Callable[[Change], Awaitable[Session]]
# Runs `function(db)` on a database connection (a read-only one will do).
ReadSessions = Callable[[Callable[[Database], dict[str, Any]]], Awaitable[dict[str, Any]]]


async def invoke(
    event: object, config: HubConfig, *, change: ChangeSessions, read: ReadSessions
) -> dict[str, Any]:
    """Run one Session Manager event; always returns a response dict."""
    started = time.perf_counter()
    action = _action_of(event)
    try:
        checked = _checked(event)
        if action in CHANGES:
            session = await change(parse_change(checked))
            body: dict[str, Any] = {"session": session.to_record()}
        else:
            reader = _READS[str(action)]
            body = await read(lambda db: reader(checked, OperationContext(config=config, db=db)))
    except (HubError, sqlite3.Error) as exc:
        return _response(action, started, exc)
    return _response(action, started, body)


def handle(event: object, ctx: OperationContext) -> dict[str, Any]:
    """Run one reading event (get_active_session, query_sessions, get_session_analytics)
    on `ctx`'s connection; changes are refused: they belong to the session runner."""
    started = time.perf_counter()
    action = _action_of(event)
    try:
        checked = _checked(event)
        if action in CHANGES:
            raise ValidationError("action", f"{action} changes sessions: use invoke()")
        body = _READS[str(action)](checked, ctx)
    except (HubError, sqlite3.Error) as exc:
        return _response(action, started, exc)
    return _response(action, started, body)


def failure(event: object, exc: HubError | sqlite3.Error) -> dict[str, Any]:
    """The response for an event that could not be run at all (e.g. the database is
    locked or damaged)."""
    return _response(_action_of(event), time.perf_counter(), exc)


def _action_of(event: object) -> str | None:
    action = event.get("action") if isinstance(event, Mapping) else None
    return action if isinstance(action, str) else None


def _checked(event: object) -> Mapping[str, Any]:
    """The event, once it is an object naming a known action and only that action's fields."""
    if not isinstance(event, Mapping):
        raise ValidationError("event", "the event must be a JSON object")
    action = event.get("action")
    if not isinstance(action, str) or action not in FIELDS:
        raise ValidationError(
            "action", f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}"
        )
    unknown = sorted(set(event) - FIELDS[action] - {"action"})
    if unknown:
        raise ValidationError(unknown[0], f"unknown field(s) for {action}: {', '.join(unknown)}")
    return event


def _response(
    action: str | None, started: float, outcome: dict[str, Any] | BaseException
) -> dict[str, Any]:
    """The seed's response shape for a payload or an error."""
    if isinstance(outcome, BaseException):
        response = _error(action, outcome)
    else:
        response = {"statusCode": 200, "action": action, **outcome}
    response["timestamp"] = iso(time.time())
    response["duration_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return response


def _error(action: str | None, exc: BaseException) -> dict[str, Any]:
    match exc:
        case ValidationError():
            return _error_body(400, action, "ValidationError", str(exc), field=exc.field)
        case NotFoundError():
            return _error_body(404, action, "ResourceNotFoundError", str(exc))
        case ConflictError():
            body = _error_body(409, action, "ConflictError", str(exc))
            if exc.session_id is not None:
                body["activeSessionId"] = exc.session_id
            return body
    # A locked or failing database, a runner that has stopped: still JSON.
    _LOGGER.error("operation %s failed: %s", action, exc)
    return _error_body(500, action, "InternalError", str(exc))


def _error_body(
    status: int, action: str | None, kind: str, message: str, **extra: Any
) -> dict[str, Any]:
    return {"statusCode": status, "action": action, "error": kind, "message": message, **extra}


# -- the three changes: parsed here, carried out by the session runner -------------------


def parse_change(event: Mapping[str, Any]) -> Change:
    """A create, update or end event as a typed request (fields already checked by name)."""
    match event.get("action"):
        case "create_session":
            return CreateSession(
                sensor_id=_id(event, "sensorId"),
                user_id=_optional_id(event, "userId"),
                spotify_device_id=_optional_str(event, "spotifyDeviceId"),
                spotify_context_uri=_optional_str(event, "spotifyContextUri"),
            )
        case "update_session":
            session_id = _id(event, "sessionId")
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
            return UpdateSession(
                session_id=session_id,
                increment_motion_count=bool(_optional_bool(event, "incrementMotionCount")),
                changes=changes,
            )
        case "end_session":
            return EndSession(
                session_id=_id(event, "sessionId"),
                playback_stopped=_optional_bool(event, "playbackStopped"),
            )
    raise ValidationError("action", f"{event.get('action')!r} does not change sessions")


# -- the three reads -----------------------------------------------------------------------


def _get_active_session(event: Mapping[str, Any], ctx: OperationContext) -> dict[str, Any]:
    sensor_id = _id(event, "sensorId")
    session = ctx.sessions.active_for(sensor_id)
    # The seed answers 200 with a null session: "none active" is an answer, not an error.
    return {"session": session.to_record() if session is not None else None}


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


def explain(db: Database, session_id: str) -> dict[str, Any]:
    """One session's record and its decision trace (which sensor, which rule, what the
    player was asked and answered): `spottypotty sessions --explain ID`,
    `GET /sessions/{id}`. Raises NotFoundError."""
    session = SessionRepository(db).get(session_id)
    if session is None:
        raise NotFoundError(f"session {session_id} does not exist")
    return {
        "session": session.to_record(),
        "decisions": [decision.to_json() for decision in session.decisions],
    }


def _get_session_analytics(event: Mapping[str, Any], ctx: OperationContext) -> dict[str, Any]:
    start, end = _date_range(event, ctx)
    aggregates = aggregate_sessions(
        ctx.db,
        sensor_id=_optional_id(event, "sensorId"),
        user_id=_optional_id(event, "userId"),
        start=start,
        end=end,
    )
    analytics = summarize(aggregates, local_zone(ctx.config.hub.timezone))
    room_id = _optional_id(event, "sensorId")
    bounds = ctx.config.learned_bounds()
    if room_id is not None and room_id in bounds:
        # A room whose timeout is learned: what it is now (recomputed, as the hub does daily).
        learned = learn_timeouts(ctx.db, {room_id: bounds[room_id]}).get(room_id)
        analytics["timeout"] = (
            {
                "minutes": learned.seconds / 60,
                "learnedFrom": learned.sessions,
                "text": learned.describe(),
            }
            if learned is not None
            else {
                "minutes": ctx.config.sessions.timeout_minutes,
                "learnedFrom": None,
                "text": f"timeout {ctx.config.sessions.timeout_minutes:g} min (the default until "
                f"{MIN_SESSIONS} sessions)",
            }
        )
    return {"analytics": analytics}


_READS: Final[dict[str, _Read]] = {
    "get_active_session": _get_active_session,
    "query_sessions": _query_sessions,
    "get_session_analytics": _get_session_analytics,
}
CHANGES: Final = frozenset({"create_session", "update_session", "end_session"})
# Each action's fields, in the seed's order of operations.
FIELDS: Final[dict[str, frozenset[str]]] = {
    "create_session": frozenset({"sensorId", "userId", "spotifyDeviceId", "spotifyContextUri"}),
    "update_session": frozenset(
        {
            "sessionId",
            "incrementMotionCount",
            "playbackStarted",
            "playbackStopped",
            "spotifyDeviceId",
            "spotifyContextUri",
        }
    ),
    "end_session": frozenset({"sessionId", "playbackStopped"}),
    "get_active_session": frozenset({"sensorId"}),
    "query_sessions": frozenset(
        {"sensorId", "userId", "startDate", "endDate", "status", "limit", "exclusiveStartKey"}
    ),
    "get_session_analytics": frozenset({"sensorId", "userId", "startDate", "endDate"}),
}
ACTIONS = tuple(FIELDS)


# -- field validation -----------------------------------------------------------------


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
