"""The HTTP server: aiohttp on the daemon's event loop, guarded so it can never hold up ingest.

- Reads run on the daemon's `DatabasePool` (WAL: readers never block the writer); every
  change to sessions (`POST /invoke`, `PUT /sensors/{id}`) goes to the session runner, the
  one owner of session state, in order with motion.
- At most `MAX_IN_FLIGHT` requests are worked on at once; more are answered 503 at once.
- The database threads share the interpreter (the GIL) with the event loop, so each
  rests as long as its last job took (at most `MAX_REST`): the API gets at most about half a
  core and motion handling always gets its turn. Answers to identical GETs are reused for
  `CACHE_SECONDS` (until the next write), so a flood of the same request costs little.
- Bodies over `MAX_BODY` bytes are refused (413) before they are read.
- A bearer token (`http.token_file`, env `SPOTTYPOTTY_HTTP_TOKEN` or the systemd credential
  `http_token`) is required whenever one is configured, and always off loopback; it is
  compared in constant time (`hmac.compare_digest` of SHA-256 digests: no length leak).
- Live sessions are pushed as Server-Sent Events from `SessionFeed`, which looks at the
  engine's in-memory active sessions (no SQLite) twice a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

from hub.config import HubConfig
from hub.errors import ConfigError, HubError
from hub.secrets import read_secret
from hub.store.pool import DatabasePool

if TYPE_CHECKING:
    from sqlite_utils import Database

    from hub.daemon import Daemon

_LOGGER = logging.getLogger(__name__)

MAX_BODY: Final = 64 * 1024
MAX_IN_FLIGHT: Final = 8
CACHE_SECONDS: Final = 1.0
CACHE_ENTRIES: Final = 128
CACHED_PREFIXES: Final = ("/health", "/sensors", "/sessions", "/analytics")
MAX_STREAMS: Final = 16
FEED_INTERVAL: Final = 0.5  # seconds between looks at the active sessions
HEARTBEAT: Final = 15.0  # seconds between SSE comments that keep proxies from closing streams
SHUTDOWN_TIMEOUT: Final = 2.0
TOKEN_ENV: Final = "SPOTTYPOTTY_HTTP_TOKEN"  # noqa: S105 - a variable name
TOKEN_NAME: Final = "http_token"  # noqa: S105 - a credential name
STATIC_DIR: Final = Path(__file__).with_name("static")
OPENAPI_FILE: Final = Path(__file__).with_name("openapi.yaml")
STREAM_PATH: Final = "/events"
PUBLIC_PATHS: Final = frozenset({"/", "/openapi.yaml", "/favicon.ico"})
SECURITY_HEADERS: Final = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
}


class ApiError(Exception):
    """An answer other than 2xx: `{"statusCode", "error", "message", "field"?}`."""

    def __init__(self, status: int, kind: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message
        self.field = field

    def response(self) -> web.Response:
        body: dict[str, Any] = {
            "statusCode": self.status,
            "error": self.kind,
            "message": self.message,
        }
        if self.field is not None:
            body["field"] = self.field
        headers = {"WWW-Authenticate": 'Bearer realm="spottypotty"'} if self.status == 401 else None  # noqa: PLR2004
        return json_response(body, status=self.status, headers=headers)


def json_response(
    body: object, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    response = web.Response(
        text=text, status=status, content_type="application/json", headers=headers
    )
    response.headers["Cache-Control"] = "no-store"
    return response


# --- live sessions ------------------------------------------------------------------------


ActiveSource = Callable[[], Awaitable[list[dict[str, Any]]]]


@dataclass(slots=True)
class SessionFeed:
    """The active sessions, with a generation number clients wait on to see the next."""

    source: ActiveSource
    interval: float = FEED_INTERVAL
    records: list[dict[str, Any]] = field(default_factory=list)
    generation: int = 0
    closed: bool = False
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        while not self.closed:
            try:
                records = await self.source()
            except (HubError, OSError) as exc:
                _LOGGER.debug("session feed: %s", exc)
            else:
                if records != self.records or self.generation == 0:
                    self.records = records
                    self.generation += 1
                    self._wake()
            await asyncio.sleep(self.interval)

    def close(self) -> None:
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait_after(self, generation: int, patience: float) -> bool:
        """True when a generation newer than `generation` exists (or the feed closed)."""
        if self.generation != generation or self.closed:
            return True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(patience):
                await self._changed.wait()
        return self.generation != generation or self.closed


# --- auth ---------------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_token(config: HubConfig) -> str | None:
    """The API token, or None when none is configured on a loopback bind.

    Raises ConfigError when a token is required (a token file is configured, or the bind is
    not loopback) but none can be read: the API never runs open by mistake.
    """
    settings = config.http
    token = read_secret(TOKEN_NAME, env=TOKEN_ENV, path=settings.token_file)
    if token:
        return token.strip()
    if settings.token_file:
        raise ConfigError(
            [
                (
                    f"http.token_file: {settings.token_file} is missing or empty; write a "
                    "token there (e.g. `openssl rand -hex 32`, mode 600)"
                )
            ]
        )
    if not is_loopback(settings.host):
        raise ConfigError(
            [
                (
                    f"http.host: {settings.host} is not loopback, so the API needs a token "
                    f"(http.token_file, ${TOKEN_ENV} or the credential {TOKEN_NAME})"
                )
            ]
        )
    return None


class TokenCheck:
    def __init__(self, token: str | None) -> None:
        self._digest = hashlib.sha256(token.encode("utf-8")).digest() if token else None

    @property
    def required(self) -> bool:
        return self._digest is not None

    def allows(self, authorization: str | None) -> bool:
        if self._digest is None:
            return True
        scheme, _, presented = (authorization or "").partition(" ")
        digest = hashlib.sha256(presented.strip().encode("utf-8", "replace")).digest()
        # Always compare (also for a wrong scheme), so timing says nothing about why.
        matches = hmac.compare_digest(digest, self._digest)
        return matches and scheme.lower() == "bearer"


# --- the application -------------------------------------------------------------------------


@dataclass(slots=True)
class ApiState:
    config: HubConfig
    pool: DatabasePool
    feed: SessionFeed
    tokens: TokenCheck
    daemon: Daemon | None = None
    in_flight: int = 0
    cache: dict[str, tuple[float, web.Response]] = field(default_factory=dict)
    streams: int = 0
    spotify_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


STATE_KEY: Final = web.AppKey("state", ApiState)

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith("/static/")


@web.middleware
async def _guard(request: web.Request, handler: _Handler) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    try:
        if request.content_length is not None and request.content_length > MAX_BODY:
            raise ApiError(413, "PayloadTooLarge", f"request body over {MAX_BODY} bytes")
        if not _is_public(request.path) and not state.tokens.allows(
            request.headers.get("Authorization")
        ):
            raise ApiError(
                401, "Unauthorized", "a valid 'Authorization: Bearer <token>' is required"
            )
        if request.path == STREAM_PATH:  # long-lived: counted by the stream itself
            response = await handler(request)
        elif state.in_flight >= MAX_IN_FLIGHT:
            raise ApiError(503, "Busy", "too many requests at once; retry shortly")
        else:
            state.in_flight += 1
            try:
                response = await _cached(state, request, handler)
            finally:
                state.in_flight -= 1
    except ApiError as exc:
        response = exc.response()
    except web.HTTPRequestEntityTooLarge:
        response = ApiError(
            413, "PayloadTooLarge", f"request body over {MAX_BODY} bytes"
        ).response()
    except web.HTTPException as exc:
        if exc.status < 400:  # noqa: PLR2004 - redirects pass through
            raise
        kinds = {404: "NotFound", 405: "MethodNotAllowed"}
        message = exc.text if exc.status != 404 else f"no route {request.method} {request.path}"  # noqa: PLR2004
        response = ApiError(
            exc.status, kinds.get(exc.status, "HttpError"), message or exc.reason
        ).response()
    except Exception as exc:  # every failure is answered as JSON, and logged
        _LOGGER.exception("%s %s failed", request.method, request.path)
        response = ApiError(500, "InternalError", f"{type(exc).__name__}: {exc}").response()
    if not response.prepared:
        response.headers.update(SECURITY_HEADERS)
    return response


async def _cached(state: ApiState, request: web.Request, handler: _Handler) -> web.StreamResponse:
    """Identical GETs within CACHE_SECONDS get the same answer; any write clears it."""
    if request.method != "GET" or not request.path.startswith(CACHED_PREFIXES):
        response = await handler(request)
        if request.method not in {"GET", "HEAD"}:
            state.cache.clear()
        return response
    key = request.path_qs
    now = time.monotonic()
    hit = state.cache.get(key)
    if hit is not None and hit[0] > now:
        stored = hit[1]
        return web.Response(body=stored.body, status=stored.status, headers=stored.headers.copy())
    response = await handler(request)
    if isinstance(response, web.Response) and response.status == 200:  # noqa: PLR2004
        if len(state.cache) >= CACHE_ENTRIES:
            state.cache.clear()
        state.cache[key] = (now + CACHE_SECONDS, response)
    return response


def build_app(state: ApiState) -> web.Application:
    from hub.http.routes import add_routes  # noqa: PLC0415 - routes import this module

    app = web.Application(middlewares=[_guard], client_max_size=MAX_BODY)
    app[STATE_KEY] = state
    add_routes(app)
    return app


def engine_source(daemon: Daemon) -> ActiveSource:
    """The daemon's active sessions, from memory."""

    async def active() -> list[dict[str, Any]]:
        runner = daemon.runner
        if runner is None:
            return []
        sessions = sorted(runner.engine.active.values(), key=lambda s: s.sensor_id)
        return [session.to_record() for session in sessions]

    return active


def database_source(pool: DatabasePool) -> ActiveSource:
    """Active sessions from SQLite (when no daemon runs in this process)."""

    def read(db: Database) -> list[dict[str, Any]]:
        from hub.store.sessions import SessionRepository  # noqa: PLC0415

        sessions = SessionRepository(db).all_active()
        return [s.to_record() for s in sorted(sessions, key=lambda s: s.sensor_id)]

    async def active() -> list[dict[str, Any]]:
        return await pool.run(read)

    return active


async def run_server(
    config: HubConfig,
    daemon: Daemon | None = None,
    *,
    on_started: Callable[[int], None] | None = None,
    port: int | None = None,
) -> None:
    """Serve until cancelled. `port=0` picks a free port; `on_started(port)` says which."""
    token = load_token(config)
    own_pool = daemon is None  # else the daemon's, shared with its control socket
    pool = DatabasePool(config.hub.database) if daemon is None else daemon.reads
    try:
        source = engine_source(daemon) if daemon is not None else database_source(pool)
        feed = SessionFeed(source)
        state = ApiState(
            config=config, pool=pool, feed=feed, tokens=TokenCheck(token), daemon=daemon
        )
        runner = web.AppRunner(
            build_app(state),
            handle_signals=False,
            access_log=None,
            shutdown_timeout=SHUTDOWN_TIMEOUT,
        )
        await runner.setup()
        try:
            where = config.http.port if port is None else port
            site = web.TCPSite(runner, config.http.host, where, reuse_address=True)
            await site.start()
            bound = _bound_port(runner)
            _LOGGER.info(
                "HTTP API and dashboard on http://%s:%d/ (%s)",
                config.http.host,
                bound,
                "token required" if state.tokens.required else "no token: loopback only",
            )
            if on_started is not None:
                on_started(bound)
            await feed.run()
        finally:
            feed.close()
            await runner.cleanup()
    finally:
        if own_pool:
            await pool.close()


def _bound_port(runner: web.AppRunner) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:  # noqa: PLR2004 - (host, port, …)
            return int(address[1])
    return 0
