"""The API's routes (documented in `openapi.yaml`, served at `/openapi.yaml`).

Every route validates its query and body (types, ranges, unknown names) and answers 400
with `{"statusCode", "error": "ValidationError", "message", "field"}`; the session routes
reuse the Session Manager operations (`hub.sessions.operations`) unchanged; what changes
sessions or sensors goes through the daemon's session runner, the one owner of that state.

`PUT /sensors/{id}`: a sensor's settings live in the config file, which the daemon reads
once; only `name` (a display name kept in the database, used by the API and dashboard) can
be changed at runtime. The config-managed fields (`enabled`, `spotifyDevice`, `contextUri`,
`shuffle`, `volume`, `timeoutMinutes`, `quietHours`) are accepted when they equal the
current value (so GET → edit name → PUT works) and answered 409 `ConfigManagedError`,
naming the file to edit, when they differ.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import functools
import json
import math
import re
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

from hub import __version__
from hub.config import HubConfig, SensorConfig
from hub.controls import CONTROL_ACTION, Controls, controls_view
from hub.errors import AuthError, ConfigError, HubError, NotFoundError, ParseError
from hub.http.server import (
    HEARTBEAT,
    MAX_BODY,
    MAX_STREAMS,
    OPENAPI_FILE,
    SECURITY_HEADERS,
    STATE_KEY,
    STATIC_DIR,
    ApiError,
    ApiState,
    json_response,
)
from hub.model import Session
from hub.playback.detached import run_detached
from hub.sessions.changes import Change
from hub.sessions.operations import (
    CHANGES,
    ID_PATTERN,
    OperationContext,
    explain,
    handle,
    invoke,
)
from hub.store.meta import CONTROLS_KEY, get_meta
from hub.store.timeouts import learn_timeouts
from hub.timeutil import iso, local_zone, parse_instant

if TYPE_CHECKING:
    from sqlite_utils import Database

    from hub.store.sensors import SensorState

SPOTIFY_TIMEOUT: Final = 20.0  # seconds a person waits for Spotify
MAX_TEST_SECONDS: Final = 30.0
MAX_NAME: Final = 64
MAX_TIMEOUT_MINUTES: Final = 24 * 60
SEED_SUMMARY: Final = (
    "totalSessions",
    "activeSessions",
    "completedSessions",
    "totalMotionEvents",
    "totalDurationMinutes",
    "averageDurationMinutes",
    "averageMotionEventsPerSession",
    "peakHour",
    "sessionsWithPlayback",
    "playbackSuccessRate",
)
CONFIG_MANAGED: Final = (
    "enabled",
    "spotifyDevice",
    "contextUri",
    "shuffle",
    "volume",
    "timeoutMinutes",
    "quietHours",
)
_TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DIGITS = re.compile(r"^[0-9]{1,7}$")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", _index)
    app.router.add_get("/openapi.yaml", _openapi)
    app.router.add_static("/static/", STATIC_DIR, show_index=False, follow_symlinks=False)
    app.router.add_get("/health", _health)
    app.router.add_get("/sensors", _list_sensors)
    app.router.add_get("/sensors/{sensorId}", _get_sensor)
    app.router.add_put("/sensors/{sensorId}", _put_sensor)
    app.router.add_get("/sessions", _sessions)
    app.router.add_get("/sessions/{sessionId}", _get_session)
    app.router.add_get("/analytics", _analytics)
    app.router.add_post("/invoke", _invoke)
    app.router.add_get("/controls", _get_controls)
    app.router.add_post("/controls", _post_controls)
    app.router.add_get("/spotify/devices", _spotify_devices)
    app.router.add_post("/spotify/test", _spotify_test)
    app.router.add_get("/events", _events)


# --- input ---------------------------------------------------------------------------------


def _bad(field: str, message: str) -> ApiError:
    return ApiError(400, "ValidationError", message, field=field)


def _query(request: web.Request, allowed: frozenset[str]) -> dict[str, str]:
    """The query parameters, each at most once, none unknown."""
    values: dict[str, str] = {}
    for key, value in request.query.items():
        if key not in allowed:
            expected = ", ".join(sorted(allowed)) or "none"
            raise _bad(key, f"unknown query parameter {key!r} (expected: {expected})")
        if key in values:
            raise _bad(key, f"query parameter {key!r} given more than once")
        values[key] = value
    return values


async def _body(request: web.Request, allowed: frozenset[str]) -> dict[str, Any]:
    """The JSON object in the body; unknown keys are refused."""
    raw = await request.read()
    if len(raw) > MAX_BODY:
        raise ApiError(413, "PayloadTooLarge", f"request body over {MAX_BODY} bytes")
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _bad("body", f"the body must be a JSON object: {exc}") from None
    if not isinstance(value, dict):
        raise _bad("body", "the body must be a JSON object")
    unknown = sorted(set(value) - allowed)
    if unknown:
        expected = ", ".join(sorted(allowed))
        raise _bad(unknown[0], f"unknown field(s): {', '.join(unknown)} (expected: {expected})")
    return value


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number")


def _sensor_id(request: web.Request) -> str:
    sensor_id = request.match_info["sensorId"]
    if not ID_PATTERN.match(sensor_id):
        raise _bad(
            "sensorId", f"sensorId must be 1-128 letters, digits or _ . : @ -, got {sensor_id!r}"
        )
    return sensor_id


def _configured(config: HubConfig, sensor_id: str) -> SensorConfig:
    sensor = config.sensor(sensor_id)
    if sensor is None:
        raise ApiError(404, "ResourceNotFoundError", f"no sensor {sensor_id!r} in the config")
    return sensor


def _operation_error(response: Mapping[str, Any]) -> ApiError:
    return ApiError(
        int(response["statusCode"]),
        str(response.get("error", "InternalError")),
        str(response.get("message", "")),
        field=response.get("field"),
    )


async def _operate(state: ApiState, event: object) -> dict[str, Any]:
    """Any Session Manager event: changes go to the one owner of session state — the
    daemon's runner, or with no daemon in this process (the API run on its own) whoever
    holds the lock file, as `spottypotty invoke` does; reads to the read pool."""
    if state.daemon is not None:
        return await state.daemon.invoke(event)
    if isinstance(event, dict) and event.get("action") in CHANGES:
        from hub.sessions.local import invoke_owned  # noqa: PLC0415

        return await asyncio.to_thread(invoke_owned, state.config, event)

    async def no_change(_request: Change) -> Session:
        raise AssertionError("a change reached the read path")  # CHANGES were routed above

    return await invoke(event, state.config, change=no_change, read=state.pool.run)


# --- pages ------------------------------------------------------------------------------------


async def _index(request: web.Request) -> web.StreamResponse:
    _query(request, frozenset())
    return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


async def _openapi(request: web.Request) -> web.StreamResponse:
    _query(request, frozenset())
    return web.FileResponse(OPENAPI_FILE, headers={"Content-Type": "application/yaml"})


# --- sensors ----------------------------------------------------------------------------------


def sensor_view(
    config: HubConfig, sensor: SensorConfig, state: SensorState, display_name: str | None
) -> dict[str, Any]:
    """`sensors list --json`'s row, plus the settings and whether it is online."""
    from hub.cli.sensors import sensor_json  # noqa: PLC0415

    row = sensor_json(sensor, state)
    quiet = sensor.quiet_hours
    room = config.room(sensor.id)
    row.update(
        {
            "name": display_name or sensor.name,
            "configName": sensor.name,
            "online": None if state.availability is None else state.availability == "online",
            "spotifyDevice": sensor.spotify_device,
            "contextUri": sensor.context_uri,
            "shuffle": sensor.shuffle,
            "volume": sensor.volume,
            "timeoutMinutes": config.timeout_seconds(sensor.id) / 60,
            "room": room.id if room is not None else sensor.id,
            "timeout": f"timeout {config.timeout_seconds(sensor.id) / 60:g} min",
            "quietHours": (
                {"start": quiet.start.strftime("%H:%M"), "end": quiet.end.strftime("%H:%M")}
                if quiet is not None
                else None
            ),
        }
    )
    return row


async def _sensor_rows(state: ApiState, sensors: tuple[SensorConfig, ...]) -> list[dict[str, Any]]:
    config = state.config

    def read(db: Database) -> list[dict[str, Any]]:
        from hub.store.sensors import SensorRepository  # noqa: PLC0415

        repository = SensorRepository(db)
        names = dict(
            db.execute("SELECT sensorId, name FROM sensors WHERE name IS NOT NULL").fetchall()
        )
        rows = [
            sensor_view(config, sensor, repository.state(sensor.id), names.get(sensor.id))
            for sensor in sensors
        ]
        # Learned timeouts, as the hub learns them daily (a few ms a room).
        bounds = config.learned_bounds()
        wanted = {row["room"]: bounds[row["room"]] for row in rows if row["room"] in bounds}
        for room, learned in learn_timeouts(db, wanted).items():
            for row in rows:
                if row["room"] == room:
                    row["timeout"] = learned.describe()
        return rows

    return await state.pool.run(read)


async def _list_sensors(request: web.Request) -> web.StreamResponse:
    _query(request, frozenset())
    state = request.app[STATE_KEY]
    rows = await _sensor_rows(state, state.config.sensors)
    return json_response({"sensors": rows, "count": len(rows)})


async def _get_sensor(request: web.Request) -> web.StreamResponse:
    _query(request, frozenset())
    state = request.app[STATE_KEY]
    sensor = _configured(state.config, _sensor_id(request))
    (row,) = await _sensor_rows(state, (sensor,))
    return json_response({"sensor": row})


def _check_put(body: Mapping[str, Any]) -> dict[str, Any]:
    """Types and ranges of a PUT body; returns the values by field."""
    checked: dict[str, Any] = {}
    for key, value in body.items():
        if key == "name":
            if value is not None and (
                not isinstance(value, str)
                or not value.strip()
                or len(value) > MAX_NAME
                or _CONTROL.search(value)
            ):
                raise _bad(key, f"name must be 1-{MAX_NAME} printable characters or null")
            checked[key] = value.strip() if isinstance(value, str) else None
        elif key in {"enabled", "shuffle"}:
            if not isinstance(value, bool):
                raise _bad(key, f"{key} must be true or false")
            checked[key] = value
        elif key in {"spotifyDevice", "contextUri"}:
            if not isinstance(value, str) or _CONTROL.search(value) or len(value) > 256:  # noqa: PLR2004
                raise _bad(key, f"{key} must be a string of at most 256 printable characters")
            checked[key] = value
        elif key == "volume":
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100  # noqa: PLR2004
            ):
                raise _bad(key, "volume must be an integer from 0 to 100, or null")
            checked[key] = value
        elif key == "timeoutMinutes":
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or not 0 < value <= MAX_TIMEOUT_MINUTES
            ):
                raise _bad(
                    key, f"timeoutMinutes must be a number above 0, at most {MAX_TIMEOUT_MINUTES}"
                )
            checked[key] = float(value)
        elif key == "quietHours":
            checked[key] = _quiet_hours(value)
    return checked


def _quiet_hours(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"start", "end"}:
        raise _bad("quietHours", 'quietHours must be null or {"start": "HH:MM", "end": "HH:MM"}')
    for key in ("start", "end"):
        if not isinstance(value[key], str) or not _TIME.match(value[key]):
            raise _bad("quietHours", f"quietHours.{key} must be a time HH:MM, got {value[key]!r}")
    return {"start": value["start"], "end": value["end"]}


async def _put_sensor(request: web.Request) -> web.StreamResponse:
    _query(request, frozenset())
    state = request.app[STATE_KEY]
    sensor_id = _sensor_id(request)
    body = await _body(request, frozenset({"name", *CONFIG_MANAGED}))
    checked = _check_put(body)
    if not checked:
        raise _bad("body", "nothing to change: the body names no field (editable: name)")
    sensor = _configured(state.config, sensor_id)
    (current,) = await _sensor_rows(state, (sensor,))
    for key in CONFIG_MANAGED:
        if key in checked and checked[key] != current[key]:
            where = state.config.source or "the config file"
            raise ApiError(
                409,
                "ConfigManagedError",
                f"{key} is set in {where} ([[sensors]] id = {sensor_id!r}); edit it there, "
                "check it with `spottypotty check-config` and restart the hub",
                field=key,
            )
    if "name" in checked:
        name = checked["name"]

        def write(db: Database) -> None:
            stamp = iso(time.time())
            with db.atomic():
                db.execute(
                    """INSERT INTO sensors (sensorId, userId, name, createdAt, updatedAt)
                       VALUES (?, ?, ?, ?, ?)
                       ON CONFLICT (sensorId) DO UPDATE SET
                           name = excluded.name, updatedAt = excluded.updatedAt
                       WHERE sensors.name IS NOT excluded.name""",
                    [sensor_id, sensor.user_id, name, stamp, stamp],
                )

        if state.daemon is not None and state.daemon.runner is not None:
            # In order with session changes, through the one writer.
            await state.daemon.runner.store(lambda repository: write(repository.db))
        else:
            await state.pool.run(write)
    (row,) = await _sensor_rows(state, (sensor,))
    return json_response({"sensor": row})


# --- sessions and analytics -------------------------------------------------------------------


def _encode_key(key: Mapping[str, Any]) -> str:
    raw = json.dumps(
        {"sessionId": key["sessionId"], "startTime": key["startTime"]}, separators=(",", ":")
    )
    return base64.urlsafe_b64encode(raw.encode("utf-8")).decode("ascii").rstrip("=")


def _decode_key(text: str) -> dict[str, Any]:
    problem = "lastKey must be the lastKey of the previous page"
    if len(text) > 1024:  # noqa: PLR2004
        raise _bad("lastKey", problem)
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        value = json.loads(raw.decode("utf-8"))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise _bad("lastKey", problem) from None
    if not isinstance(value, dict) or set(value) != {"sessionId", "startTime"}:
        raise _bad("lastKey", problem)
    return value


def _limit(text: str) -> int:
    if not _DIGITS.match(text) or not 1 <= int(text) <= 1000:  # noqa: PLR2004
        raise _bad("limit", f"limit must be a whole number from 1 to 1000, got {text!r}")
    return int(text)


async def _get_session(request: web.Request) -> web.StreamResponse:
    """One session and its decision trace (which sensor, which rule, what the player was
    asked and answered)."""
    _query(request, frozenset())
    session_id = request.match_info["sessionId"]
    if not ID_PATTERN.fullmatch(session_id):
        raise _bad("sessionId", f"not a session id: {session_id[:80]!r}")
    state = request.app[STATE_KEY]
    try:
        explained = await state.pool.run(functools.partial(explain, session_id=session_id))
    except NotFoundError as exc:
        raise ApiError(404, "ResourceNotFoundError", str(exc)) from None
    return json_response(explained)


async def _sessions(request: web.Request) -> web.StreamResponse:
    params = _query(
        request,
        frozenset({"sensorId", "userId", "startDate", "endDate", "status", "limit", "lastKey"}),
    )
    event: dict[str, Any] = {"action": "query_sessions"}
    for key in ("sensorId", "userId", "startDate", "endDate", "status"):
        if key in params:
            event[key] = params[key]
    if "status" in params and params["status"] not in {"active", "completed"}:
        raise _bad("status", f"status must be 'active' or 'completed', got {params['status']!r}")
    event["limit"] = _limit(params["limit"]) if "limit" in params else 100
    if "lastKey" in params:
        event["exclusiveStartKey"] = _decode_key(params["lastKey"])
    response = await _operate(request.app[STATE_KEY], event)
    if response["statusCode"] != 200:  # noqa: PLR2004
        raise _operation_error(response)
    body: dict[str, Any] = {
        "sessions": response["sessions"],
        "count": response["count"],
        "hasMore": response["hasMore"],
    }
    if "lastEvaluatedKey" in response:
        body["lastEvaluatedKey"] = response["lastEvaluatedKey"]
        body["lastKey"] = _encode_key(response["lastEvaluatedKey"])
    return json_response(body)


async def _analytics(request: web.Request) -> web.StreamResponse:
    params = _query(request, frozenset({"sensorId", "userId", "startDate", "endDate"}))
    state = request.app[STATE_KEY]
    config = state.config
    event: dict[str, Any] = {"action": "get_session_analytics", **params}
    tz = local_zone(config.hub.timezone)
    if "sensorId" in params:
        sensor_ids = [params["sensorId"]]
    else:
        sensor_ids = [s.id for s in config.sensors if params.get("userId") in (None, s.user_id)]

    def run(db: Database) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        context = OperationContext(config=config, db=db)
        whole = handle(event, context)
        per_sensor: list[dict[str, Any]] = []
        if whole["statusCode"] == 200:  # noqa: PLR2004
            for sensor_id in sensor_ids:
                one = handle({**event, "sensorId": sensor_id}, context)
                if one["statusCode"] == 200:  # noqa: PLR2004
                    per_sensor.append(_by_sensor(config, sensor_id, one["analytics"]))
        return whole, per_sensor

    whole, per_sensor = await state.pool.run(run)
    if whole["statusCode"] != 200:  # noqa: PLR2004
        raise _operation_error(whole)
    analytics: dict[str, Any] = whole["analytics"]
    start = parse_instant(params["startDate"], tz) if "startDate" in params else None
    end = parse_instant(params["endDate"], tz, end_of_day=True) if "endDate" in params else None
    body = {
        "summary": {key: analytics[key] for key in SEED_SUMMARY},
        "bySensor": per_sensor,
        "dateRange": {
            "startDate": iso(start) if start is not None else None,
            "endDate": iso(end) if end is not None else None,
            "timezone": str(tz),
        },
        "glance": _glance(analytics, tz),
        **{key: value for key, value in analytics.items() if key not in SEED_SUMMARY},
    }
    return json_response(body)


def _by_sensor(config: HubConfig, sensor_id: str, analytics: Mapping[str, Any]) -> dict[str, Any]:
    sensor = config.sensor(sensor_id)
    name = (sensor.name if sensor else "") or sensor_id
    return {"sensorId": sensor_id, "name": name, **{key: analytics[key] for key in SEED_SUMMARY}}


def _glance(analytics: Mapping[str, Any], tz: dt.tzinfo) -> dict[str, Any]:
    """Today's and this ISO week's numbers, in the hub's time zone."""
    today = dt.datetime.now(tz).date()
    year, week, _ = today.isocalendar()
    week_label = f"{year}-W{week:02d}"
    day = next((u for u in analytics["usageByDay"] if u["date"] == today.isoformat()), None)
    this_week = next((u for u in analytics["usageByWeek"] if u["week"] == week_label), None)

    def numbers(usage: Mapping[str, Any] | None) -> dict[str, Any]:
        return {
            "sessions": usage["sessions"] if usage else 0,
            "durationMinutes": usage["durationMinutes"] if usage else 0.0,
            "motionEvents": usage["motionEvents"] if usage else 0,
        }

    return {
        "today": {"date": today.isoformat(), **numbers(day)},
        "week": {"week": week_label, **numbers(this_week)},
    }


async def _invoke(request: web.Request) -> web.StreamResponse:
    _query(request, frozenset())
    raw = await request.read()
    try:
        event = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ApiError(
            400, "ValidationError", f"the event is not JSON: {exc}", field="event"
        ) from None
    response = await _operate(request.app[STATE_KEY], event)
    return json_response(response, status=int(response["statusCode"]))


# --- controls: do-not-disturb, enabled, timeout, end session (hub.controls) -----------


async def _get_controls(request: web.Request) -> web.StreamResponse:
    _query(request, frozenset())
    state = request.app[STATE_KEY]
    runner = state.daemon.runner if state.daemon is not None else None
    if runner is not None:
        controls = runner.controls
    else:  # the API on its own: what the daemon will start with
        saved = await state.pool.run(lambda db: get_meta(db, CONTROLS_KEY))
        controls = Controls.from_json(saved)
    return json_response(controls_view(state.config, controls, time.time()))


async def _post_controls(request: web.Request) -> web.StreamResponse:
    """A control event, carried out by the one owner of session state."""
    _query(request, frozenset())
    state = request.app[STATE_KEY]
    event = await _body(request, frozenset({"action", "control", "room", "value", "minutes"}))
    event.setdefault("action", CONTROL_ACTION)
    if state.daemon is not None:
        response = await state.daemon.control_event(event, source="api")
    else:
        from hub.sessions.local import control_owned  # noqa: PLC0415

        response = await asyncio.to_thread(control_owned, state.config, event)
    if response["statusCode"] >= 400:  # noqa: PLR2004 - HTTP's first error status
        raise _operation_error(response)
    return json_response(response)


# --- health -------------------------------------------------------------------------------


def _spotify_state(config: HubConfig) -> dict[str, Any]:
    settings = config.spotify
    if settings.dry_run:
        return {"state": "dry-run", "message": "spotify.dry_run is on: playback is only logged"}
    if not settings.client_id:
        return {"state": "not-configured", "message": "spotify.client_id is not set"}
    try:
        from hub.playback.spotify import TokenStore  # noqa: PLC0415
    except ImportError:
        return {"state": "unknown", "message": "this build has no Spotify player"}
    if TokenStore(settings.token_cache).usable():
        return {"state": "logged-in", "message": f"token in {settings.token_cache}"}
    return {"state": "login-needed", "message": "run: spottypotty spotify login"}


def spotify_health(state: dict[str, Any], player_status: str | None) -> dict[str, Any]:
    """The token file's state, told more by the running player: a free account (its plays
    refused), or why a logged-in player is not ready (rate-limited, unreachable, …)."""
    from hub.playback.spotify import STATUS_PREMIUM_REQUIRED  # noqa: PLC0415 - as _spotify_state

    if player_status == STATUS_PREMIUM_REQUIRED:
        return {"state": "premium-required", "message": player_status}
    if player_status is not None and state["state"] == "logged-in":
        return {"state": "logged-in", "message": player_status}
    return state


def _database_health(config: HubConfig, db: Database) -> dict[str, Any]:
    from hub.store.meta import LAST_SYNC_AT_KEY, LAST_SYNC_RESULT_KEY, get_meta  # noqa: PLC0415
    from hub.sync.outbox import Outbox  # noqa: PLC0415

    db.execute("SELECT 1 FROM sessions LIMIT 1").fetchall()
    pending = Outbox(db).count_due_sessions() if config.cloud.enabled else None
    return {
        "database": {"ok": True, "path": str(config.hub.database)},
        "cloud": {
            "enabled": config.cloud.enabled,
            "table": config.cloud.table,
            "pendingSessions": pending,
            "lastSyncAt": get_meta(db, LAST_SYNC_AT_KEY),
            "lastSyncResult": get_meta(db, LAST_SYNC_RESULT_KEY),
        },
        "spotify": _spotify_state(config),
    }


async def _health(request: web.Request) -> web.StreamResponse:
    _query(request, frozenset())
    state = request.app[STATE_KEY]
    config = state.config
    try:
        facts = await state.pool.run(lambda db: _database_health(config, db))
    except HubError as exc:
        facts = {
            "database": {"ok": False, "path": str(config.hub.database), "message": str(exc)},
            "cloud": {
                "enabled": config.cloud.enabled,
                "table": config.cloud.table,
                "pendingSessions": None,
                "lastSyncAt": None,
                "lastSyncResult": None,
            },
            "spotify": await asyncio.to_thread(_spotify_state, config),
        }
    daemon = state.daemon
    storage = daemon.storage_problem() if daemon is not None else None
    if storage is not None:
        facts["database"] = {"ok": False, "path": str(config.hub.database), "message": storage}
    if daemon is not None:
        facts["spotify"] = spotify_health(facts["spotify"], daemon.spotify_status())
    connected = daemon.link.connected if daemon is not None and daemon.link is not None else None
    active = len(daemon.runner.engine.active) if daemon is not None and daemon.runner else None
    tz = local_zone(config.hub.timezone)
    now = dt.datetime.now(tz)
    healthy = facts["database"]["ok"] and connected is not False
    body = {
        "status": "ok" if healthy else "degraded",
        "version": __version__,
        "time": {
            "now": now.isoformat(timespec="seconds"),
            "timezone": str(tz),
            "today": now.date().isoformat(),
        },
        "daemon": daemon is not None,
        "broker": {"connected": connected, "address": f"{config.mqtt.host}:{config.mqtt.port}"},
        "sessions": {"active": active},
        "sensors": {
            "configured": len(config.sensors),
            "enabled": sum(1 for s in config.sensors if s.enabled),
        },
        "counters": daemon.stats() if daemon is not None else {},
        **facts,
    }
    return json_response(body)


# --- Spotify ----------------------------------------------------------------------------------


def _spotify_unavailable(config: HubConfig) -> ApiError | None:
    settings = config.spotify
    if settings.dry_run:
        return ApiError(503, "SpotifyUnavailable", "spotify.dry_run is on: Spotify is not used")
    if not settings.client_id:
        return ApiError(503, "SpotifyUnavailable", "Spotify is not configured (spotify.client_id)")
    return None


async def _spotify_call(call: Any, *args: Any) -> Any:
    try:
        async with asyncio.timeout(SPOTIFY_TIMEOUT):
            return await run_detached(functools.partial(call, *args))
    except TimeoutError:
        raise ApiError(
            504, "SpotifyTimeout", f"Spotify did not answer within {SPOTIFY_TIMEOUT:g} s"
        ) from None
    except (AuthError, ConfigError) as exc:
        raise ApiError(503, "SpotifyUnavailable", str(exc)) from None
    except HubError as exc:
        raise ApiError(502, "SpotifyError", str(exc)) from None


def _login_module() -> Any:
    try:
        from hub.playback import login  # noqa: PLC0415
    except ImportError:
        raise ApiError(503, "SpotifyUnavailable", "this build has no Spotify player yet") from None
    return login


async def _spotify_devices(request: web.Request) -> web.StreamResponse:
    _query(request, frozenset())
    config = request.app[STATE_KEY].config
    problem = _spotify_unavailable(config)
    if problem is not None:
        raise problem
    login = _login_module()
    devices = await _spotify_call(login.list_devices, config)
    rows = [{"name": d.name, "id": d.id, "type": d.type, "active": d.active} for d in devices]
    return json_response({"devices": rows, "count": len(rows)})


async def _spotify_test(request: web.Request) -> web.StreamResponse:
    _query(request, frozenset())
    state = request.app[STATE_KEY]
    body = await _body(request, frozenset({"sensorId", "seconds"}))
    sensor_id = body.get("sensorId")
    if not isinstance(sensor_id, str) or not ID_PATTERN.match(sensor_id):
        raise _bad("sensorId", "sensorId is required: 1-128 letters, digits or _ . : @ -")
    seconds = body.get("seconds", 5)
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not 1 <= seconds <= MAX_TEST_SECONDS
    ):
        raise _bad("seconds", f"seconds must be a number from 1 to {MAX_TEST_SECONDS:g}")
    sensor = _configured(state.config, sensor_id)
    if not sensor.spotify_device:
        raise _bad("sensorId", f"sensor {sensor_id!r} has no spotify_device to test")
    problem = _spotify_unavailable(state.config)
    if problem is not None:
        raise problem
    login = _login_module()
    if state.spotify_lock.locked():
        raise ApiError(409, "ConflictError", "a Spotify test is already running")
    async with state.spotify_lock:
        message = await _spotify_call(
            lambda: login.play_test(state.config, sensor_id, seconds=float(seconds))
        )
    return json_response({"sensorId": sensor_id, "message": str(message)})


# --- live sessions (Server-Sent Events) ------------------------------------------------------


async def _events(request: web.Request) -> web.StreamResponse:
    _query(request, frozenset())
    state = request.app[STATE_KEY]
    if state.streams >= MAX_STREAMS:
        raise ApiError(503, "Busy", f"at most {MAX_STREAMS} live streams at once")
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
            **SECURITY_HEADERS,
        }
    )
    state.streams += 1
    try:
        await response.prepare(request)
        feed = state.feed
        sent = -1
        while not feed.closed:
            if feed.generation != sent:
                sent = feed.generation
                data = json.dumps(
                    {"active": feed.records, "generation": sent, "at": iso(time.time())},
                    separators=(",", ":"),
                )
                await response.write(f"event: sessions\ndata: {data}\n\n".encode())
            elif not await feed.wait_after(sent, HEARTBEAT):
                await response.write(b": keep-alive\n\n")
    except (ConnectionResetError, ParseError):
        pass
    finally:
        state.streams -= 1
    return response
