"""A fake Spotify Web API and accounts service: a real HTTP server on loopback for tests.

Every API request is checked against Spotify's published OpenAPI description
(`tests/fixtures/spotify-web-api.yml`, see `tests/fixtures/README.md`): a request the
description does not allow (an unknown endpoint, a missing or mistyped parameter, a body
of the wrong shape) is answered 400 as Spotify would, and `close()` raises
AssertionError naming it, so the test that made it fails.

It follows the documented endpoints the hub uses, and their error shapes
(`{"error": {"status": 404, "message": "...", "reason": "NO_ACTIVE_DEVICE"}}` for the API,
`{"error": "invalid_grant", "error_description": "..."}` for the token endpoint), keeps a
small playback state (devices, what plays where and how far in, the queue), records every
request, and behaves as documented where the hub depends on it: `GET /me/player` answers
204 with nothing playing or while the active device is in a private session, and
`item: null` for an episode unless `additional_types` lists `episode`; a restricted device
refuses commands; a free account is refused with 403 `PREMIUM_REQUIRED`. It plays scripted
faults: a status with a reason and headers (401, 403, 404, 429 + Retry-After with or
without `QUOTA_EXCEEDED`, 502/503), `202 Accepted`, slow responses held until released,
and connection resets. `latency` delays every answer, as a real round trip does.

    with FakeSpotify() as fake:
        fake.add_device("Bathroom speaker")
        fake.fail("PUT", "/v1/me/player/play", Fault.rate_limited(3600))
        settings = fake.settings(tmp_path / "token.json")   # a SpotifySection pointed here
        fake.write_token_cache(settings.token_cache)
"""

from __future__ import annotations

import base64
import functools
import json
import secrets
import socket
import struct
import threading
import time
import urllib.parse
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

import yaml

from hub.config import SpotifySection

API = "/v1"
TOKEN_PATH = "/api/token"  # noqa: S105 - a path
SCOPE = "user-read-playback-state user-modify-playback-state"
DESCRIPTION = Path(__file__).parent / "fixtures" / "spotify-web-api.yml"
REAL_HOST = (
    "https://api.spotify.com"  # the description's server; requests are judged as if sent there
)


@dataclass(frozen=True, slots=True)
class Recorded:
    """One request as the fake received it. `at` is `time.perf_counter()` on arrival."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    at: float
    authorization: str = ""

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"


@dataclass(frozen=True, slots=True)
class Fault:
    """What to answer instead of the normal response, once per scripted use."""

    kind: str = "status"  # status | accepted | reset | slow
    status: int = 500
    reason: str | None = None
    message: str = "fault injected by the test"
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0  # slow: hold the response this long, or until release()

    @classmethod
    def error(cls, status: int, reason: str | None = None, message: str = "") -> Fault:
        return cls(status=status, reason=reason, message=message or f"error {status}")

    @classmethod
    def rate_limited(cls, retry_after: int) -> Fault:
        return cls(
            status=429,
            message="API rate limit exceeded",
            headers=(("Retry-After", str(retry_after)),),
        )

    @classmethod
    def quota_exceeded(cls, retry_after: int) -> Fault:
        """A development-mode app over its quota: 429 with reason QUOTA_EXCEEDED."""
        return cls(
            status=429,
            reason="QUOTA_EXCEEDED",
            message="API quota exceeded",
            headers=(("Retry-After", str(retry_after)),),
        )

    @classmethod
    def expired_token(cls) -> Fault:
        return cls(status=401, message="The access token expired")

    @classmethod
    def no_active_device(cls) -> Fault:
        return cls(status=404, reason="NO_ACTIVE_DEVICE", message="Player command failed")

    @classmethod
    def premium_required(cls) -> Fault:
        return cls(status=403, reason="PREMIUM_REQUIRED", message="Premium required")

    @classmethod
    def accepted(cls) -> Fault:
        return cls(kind="accepted", status=202)

    @classmethod
    def reset(cls) -> Fault:
        return cls(kind="reset")

    @classmethod
    def slow(cls, delay: float) -> Fault:
        """Answer normally, but only after `delay` seconds or `release()`."""
        return cls(kind="slow", delay=delay)


@dataclass
class Device:
    id: str
    name: str
    type: str = "Speaker"
    is_active: bool = False
    volume_percent: int = 50
    is_private_session: bool = False
    is_restricted: bool = False
    supports_volume: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "type": self.type,
            "is_active": self.is_active,
            "is_private_session": self.is_private_session,
            "is_restricted": self.is_restricted,
            "volume_percent": self.volume_percent if self.supports_volume else None,
            "supports_volume": self.supports_volume,
        }


@dataclass
class Playback:
    """The account's one playback: where, what, how far in, and whether it plays."""

    device_id: str | None = None
    context_uri: str | None = None
    item_uri: str | None = None
    is_playing: bool = False
    shuffle: bool = False
    progress_ms: int = 0


@dataclass
class _Answer:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def new_device_id() -> str:
    return secrets.token_hex(20)  # Spotify device ids are 40 hex characters


class FakeSpotify:
    """The server, its state and its script. Thread-safe: the handler threads share a lock."""

    def __init__(self) -> None:
        self.client_id = "fake-client-" + secrets.token_hex(8)
        self.client_secret = "fake-secret-" + secrets.token_hex(16)
        self.lock = threading.RLock()
        self.requests: list[Recorded] = []
        self.devices: dict[str, Device] = {}
        self.sleeping: dict[str, Device] = {}  # off the list; a transfer wakes them
        self.playback = Playback()
        self.access_tokens: set[str] = set()
        self.refresh_tokens: set[str] = set()
        self.codes: set[str] = set()
        self.invalid_grant = False  # every refresh answers invalid_grant
        self.expires_in = 3600
        self.premium = True  # False: a free account, every player command is refused
        self.latency = 0.0  # seconds every answer waits, as a real round trip
        self.contexts: dict[str, list[str]] = {}  # context uri -> its items, in order
        self.invalid: list[str] = []  # requests the published description does not allow
        self._faults: dict[str, deque[Fault]] = {}
        self._release = threading.Event()
        self._received = threading.Condition(self.lock)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.fake = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    # --- lifecycle ---

    @property
    def port(self) -> int:
        port: int = self._server.server_address[1]
        return port

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{API}/"

    @property
    def accounts_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> Self:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-spotify",
            daemon=True,
        )
        self._thread.start()
        return self

    def close(self) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        if self.invalid:
            raise AssertionError(
                "requests the Spotify Web API description does not allow:\n"
                + "\n".join(self.invalid)
            )

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # --- setup helpers ---

    def settings(self, token_cache: Path, **changes: Any) -> SpotifySection:
        """A `[spotify]` section pointed at this server."""
        values: dict[str, Any] = {
            "client_id": self.client_id,
            "redirect_uri": "http://127.0.0.1:8888/callback",
            "token_cache": token_cache,
            "api_url": self.api_url,
            "accounts_url": self.accounts_url,
        }
        return SpotifySection(**(values | changes))

    def add_device(
        self, name: str, *, device_id: str | None = None, type_: str = "Speaker"
    ) -> Device:
        with self.lock:
            device = Device(id=device_id or new_device_id(), name=name, type=type_)
            self.devices[device.id] = device
            return device

    def sleep_device(self, device_id: str) -> None:
        """The device drops off the device list (as sleeping speakers do)."""
        with self.lock:
            device = self.devices.pop(device_id)
            device.is_active = False
            self.sleeping[device_id] = device
            if self.playback.device_id == device_id:
                self.playback = Playback()

    def set_playing(
        self,
        device_id: str,
        context_uri: str | None,
        *,
        is_playing: bool = True,
        item_uri: str | None = None,
        progress_ms: int = 0,
    ) -> None:
        """Someone (not the hub) plays `context_uri` (or `item_uri`) on the device."""
        with self.lock:
            self._activate(device_id)
            self.playback.context_uri = context_uri
            self.playback.item_uri = item_uri or self._first_item(context_uri)
            self.playback.is_playing = is_playing
            self.playback.progress_ms = progress_ms

    def add_context(self, uri: str, items: list[str]) -> None:
        """A playlist, album, show or audiobook and its items (tracks or episodes), in order."""
        with self.lock:
            self.contexts[uri] = list(items)

    def issue_token(self, *, expired: bool = False) -> dict[str, Any]:
        """A token_info as spotipy caches it, known to this server."""
        with self.lock:
            access = "fake-access-" + secrets.token_hex(16)
            refresh = "fake-refresh-" + secrets.token_hex(16)
            if not expired:
                self.access_tokens.add(access)
            self.refresh_tokens.add(refresh)
        expires_at = int(time.time()) + (-10 if expired else self.expires_in)
        return {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "refresh_token": refresh,
            "scope": SCOPE,
            "expires_at": expires_at,
        }

    def write_token_cache(self, path: Path, *, expired: bool = False) -> dict[str, Any]:
        token = self.issue_token(expired=expired)
        path.write_text(json.dumps(token), encoding="utf-8")
        path.chmod(0o600)
        return token

    def revoke_access_tokens(self) -> None:
        """Every current access token now answers 401 (as an expired one does)."""
        with self.lock:
            self.access_tokens.clear()

    def new_code(self) -> str:
        with self.lock:
            code = "fake-code-" + secrets.token_hex(8)
            self.codes.add(code)
            return code

    # --- faults ---

    def fail(self, method: str, path: str, *faults: Fault) -> None:
        """Answer the next requests to `method path` with `faults`, in order, once each.

        `path` is the full path (`/v1/me/player/play`, `/api/token`); `*` for any path.
        """
        with self.lock:
            self._faults.setdefault(f"{method} {path}", deque()).extend(faults)

    def fail_always(self, method: str, path: str, fault: Fault, times: int = 1000) -> None:
        self.fail(method, path, *([fault] * times))

    def clear_faults(self) -> None:
        with self.lock:
            self._faults.clear()

    def release(self) -> None:
        """Let every held slow response go."""
        self._release.set()

    def _next_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for key in (f"{method} {path}", f"{method} *", "* *"):
                queue = self._faults.get(key)
                if queue:
                    return queue.popleft()
        return None

    # --- assertions ---

    def calls(self, method: str | None = None, path: str | None = None) -> list[Recorded]:
        with self.lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method) and (path is None or r.path == path)
            ]

    def api_calls(self) -> list[str]:
        """`METHOD /path` of every API request (not the token endpoint), in order."""
        with self.lock:
            return [r.key.replace(API, "", 1) for r in self.requests if r.path.startswith(API)]

    def reset_log(self) -> None:
        with self.lock:
            self.requests.clear()

    def wait_for_request(self, method: str, path: str, timeout: float = 5.0) -> Recorded:
        """Block until a matching request arrived (for benches run in another thread)."""
        deadline = time.monotonic() + timeout
        with self._received:
            while True:
                found = self.calls(method, path)
                if found:
                    return found[-1]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no {method} {path} within {timeout} s")
                self._received.wait(left)

    # --- the endpoints ---

    def record(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> None:
        parts = urllib.parse.urlsplit(raw_path)
        query = dict(urllib.parse.parse_qsl(parts.query))
        path = parts.path
        with self._received:
            self.requests.append(
                Recorded(
                    method=method,
                    path=path,
                    query=query,
                    body=_decode_body(body, headers.get("content-type", "")),
                    at=time.perf_counter(),
                    authorization=headers.get("authorization", ""),
                )
            )
            self._received.notify_all()

    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> _Answer:
        parts = urllib.parse.urlsplit(raw_path)
        query = dict(urllib.parse.parse_qsl(parts.query))
        path = parts.path
        if path == TOKEN_PATH and method == "POST":
            return self._token(headers, body)
        if not path.startswith(API + "/"):
            return _api_error(404, "Service not found")
        if not self._authorized(headers):
            return _api_error(401, "The access token expired")
        return self._api(method, path[len(API) :], query, body)

    def _authorized(self, headers: dict[str, str]) -> bool:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        with self.lock:
            return scheme == "Bearer" and token in self.access_tokens

    def _token(self, headers: dict[str, str], body: bytes) -> _Answer:
        form = dict(urllib.parse.parse_qsl(body.decode("utf-8")))
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if headers.get("authorization", "") != f"Basic {expected}":
            return _Answer(400, {"error": "invalid_client", "error_description": "Invalid client"})
        grant = form.get("grant_type")
        with self.lock:
            if grant == "authorization_code":
                code = form.get("code", "")
                if code not in self.codes:
                    return _oauth_error("invalid_grant", "Invalid authorization code")
                self.codes.discard(code)
                token = self.issue_token()
                return _Answer(200, {k: token[k] for k in token if k != "expires_at"})
            if grant == "refresh_token":
                if self.invalid_grant or form.get("refresh_token") not in self.refresh_tokens:
                    return _oauth_error("invalid_grant", "Refresh token revoked")
                access = "fake-access-" + secrets.token_hex(16)
                self.access_tokens.add(access)
                return _Answer(
                    200,
                    {
                        "access_token": access,
                        "token_type": "Bearer",
                        "expires_in": self.expires_in,
                        "scope": SCOPE,
                    },
                )
        return _Answer(
            400, {"error": "unsupported_grant_type", "error_description": f"grant_type {grant}"}
        )

    def _api(self, method: str, path: str, query: dict[str, str], body: bytes) -> _Answer:
        with self.lock:
            if method == "GET" and path == "/me/player/devices":
                return _Answer(200, {"devices": [d.to_json() for d in self.devices.values()]})
            if method == "GET" and path == "/me/player":
                return self._current(query.get("additional_types", ""))
            if method == "GET" and path == "/me/player/queue":
                return self._queue()
            if method == "PUT" and path == "/me/player":
                transfer = json.loads(body or b"{}")
                # The command goes to the device it names, not the one playing now.
                refused = self._refused(next(iter(transfer.get("device_ids") or []), None))
                return refused or self._transfer(transfer)
            refused = self._refused(query.get("device_id"))
            if refused is not None:
                return refused
            if method == "PUT" and path == "/me/player/play":
                return self._play(query.get("device_id"), json.loads(body or b"{}"))
            if method == "PUT" and path == "/me/player/pause":
                return self._pause(query.get("device_id"))
            if method == "PUT" and path == "/me/player/shuffle":
                if self.playback.device_id is None:
                    return _no_active_device()
                self.playback.shuffle = query.get("state") == "true"
                return _Answer(204)
            if method == "PUT" and path == "/me/player/volume":
                device = self.devices.get(query.get("device_id") or self.playback.device_id or "")
                if device is None:
                    return _no_active_device()
                device.volume_percent = int(query.get("volume_percent", "0"))
                return _Answer(204)
        return _api_error(404, "Service not found")

    def _refused(self, device_id: str | None) -> _Answer | None:
        """A free account, or a restricted device: the player command is refused."""
        if not self.premium:
            return _api_error(403, "Player command failed: Premium required", "PREMIUM_REQUIRED")
        device = self.devices.get(device_id or self.playback.device_id or "")
        if device is not None and device.is_restricted:
            return _api_error(403, "Player command failed: Restriction violated", "UNKNOWN")
        return None

    def _current(self, additional_types: str) -> _Answer:
        playback = self.playback
        device = self.devices.get(playback.device_id or "")
        if device is None or device.is_private_session:
            return _Answer(204)  # nothing plays, or a private session hides it
        context = {"uri": playback.context_uri} if playback.context_uri else None
        item = _item(playback.item_uri)
        kind = item["type"] if item else "unknown"
        if kind == "episode" and "episode" not in additional_types.split(","):
            item = None  # as Spotify: episodes only when asked for
        return _Answer(
            200,
            {
                "device": device.to_json(),
                "shuffle_state": playback.shuffle,
                "repeat_state": "off",
                "timestamp": int(time.time() * 1000),
                "context": context,
                "progress_ms": playback.progress_ms,
                "item": item,
                "currently_playing_type": kind,
                "is_playing": playback.is_playing,
            },
        )

    def _queue(self) -> _Answer:
        """What plays and what follows it in its context."""
        playback = self.playback
        items = self.contexts.get(playback.context_uri or "", [])
        after = items[items.index(playback.item_uri) + 1 :] if playback.item_uri in items else []
        return _Answer(
            200, {"currently_playing": _item(playback.item_uri), "queue": [_item(i) for i in after]}
        )

    def _first_item(self, context_uri: str | None) -> str:
        items = self.contexts.get(context_uri or "")
        return items[0] if items else "spotify:track:" + secrets.token_hex(11)

    def _activate(self, device_id: str) -> None:
        for device in self.devices.values():
            device.is_active = device.id == device_id
        if self.playback.device_id != device_id:
            self.playback.device_id = device_id

    def _transfer(self, body: dict[str, Any]) -> _Answer:
        """As documented: the account's playback (what, where in it, playing or not) moves
        to the one device named; `play: true` makes sure it plays there, `false` or absent
        keeps the playing state as it was."""
        ids = body.get("device_ids") or []
        if len(ids) != 1:
            return _api_error(400, "Exactly one device id is required")
        device_id = ids[0]
        if device_id in self.sleeping:
            self.devices[device_id] = self.sleeping.pop(device_id)
        if device_id not in self.devices:
            return _api_error(404, "Device not found")
        self._activate(device_id)
        if body.get("play"):
            self.playback.is_playing = True
        return _Answer(204)

    def _play(self, device_id: str | None, body: dict[str, Any]) -> _Answer:
        if device_id is None:
            if self.playback.device_id is None:
                return _no_active_device()
            device_id = self.playback.device_id
        if device_id not in self.devices:
            return _api_error(404, "Device not found")
        self._activate(device_id)
        offset = body.get("offset") or {}
        if "context_uri" in body:
            context = body["context_uri"]
            items = self.contexts.get(context, [])
            item = offset.get("uri")
            if item is None and "position" in offset and offset["position"] < len(items):
                item = items[offset["position"]]
            if item is not None and items and item not in items:
                # Spotify does not document this answer; a refusal of some kind is certain.
                return _api_error(404, "Player command failed: Item not found in context")
            self.playback.context_uri = context
            self.playback.item_uri = item or self._first_item(context)
        elif body.get("uris"):
            self.playback.context_uri = None
            self.playback.item_uri = body["uris"][0]
        if "context_uri" in body or "uris" in body:
            self.playback.progress_ms = int(body.get("position_ms", 0))
        self.playback.is_playing = True
        return _Answer(204)

    def _pause(self, device_id: str | None) -> _Answer:
        target = device_id or self.playback.device_id
        if target is None or target != self.playback.device_id:
            return _no_active_device()
        if not self.playback.is_playing:
            # What Spotify answers when pausing something already paused.
            return _api_error(403, "Player command failed: Restriction violated", "UNKNOWN")
        self.playback.is_playing = False
        return _Answer(204)


def _api_error(status: int, message: str, reason: str | None = None) -> _Answer:
    error: dict[str, Any] = {"status": status, "message": message}
    if reason is not None:
        error["reason"] = reason
    return _Answer(status, {"error": error})


def _oauth_error(error: str, description: str) -> _Answer:
    return _Answer(400, {"error": error, "error_description": description})


def _item(uri: str | None) -> dict[str, Any] | None:
    """A track or episode as the API shows it (the fields the hub reads)."""
    if uri is None:
        return None
    kind = "episode" if uri.startswith(("spotify:episode:", "spotify:chapter:")) else "track"
    return {"type": kind, "uri": uri, "id": uri.rpartition(":")[2], "name": uri}


@functools.cache
def _description() -> Any:
    """The published description as openapi-core's checker, read once per test run."""
    from openapi_core import Config, OpenAPI  # noqa: PLC0415 - only the fake needs it

    with DESCRIPTION.open("rb") as handle:
        # The C loader when built (a third of a second instead of seconds); safe either way.
        document = yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506
    # openapi-core cannot check OAuth 2 (it warns on every request, and a warning filter
    # set around each check is not thread-safe): the fake checks tokens itself, so the
    # description's security requirements are left out of what openapi-core sees.
    document.pop("security", None)
    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            if isinstance(operation, dict):
                operation.pop("security", None)
    # The document itself is not re-validated (seconds per run); only requests are.
    return OpenAPI.from_dict(document, config=Config(spec_validator_cls=None))


def _judge(method: str, raw_path: str, content_type: str | None, body: bytes) -> str | None:
    """Why the published description does not allow this request, or None."""
    from openapi_core.testing import MockRequest  # noqa: PLC0415

    parts = urllib.parse.urlsplit(raw_path)
    request = MockRequest(
        REAL_HOST,
        method.lower(),
        parts.path,
        args=dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True)),
        data=body or None,
        content_type=(content_type or "application/json").split(";")[0],
    )
    try:
        _description().validate_request(request)
    except Exception as exc:  # noqa: BLE001 - every refusal is reported the same way
        cause = f" ({exc.__cause__})" if exc.__cause__ is not None else ""
        return f"{type(exc).__name__}: {exc}{cause}"
    return None


def _no_active_device() -> _Answer:
    return _api_error(404, "Player command failed: No active device found", "NO_ACTIVE_DEVICE")


def _decode_body(body: bytes, content_type: str) -> Any:
    if not body:
        return None
    text = body.decode("utf-8", errors="replace")
    if "json" in content_type:
        try:
            return json.loads(text)
        except ValueError:
            return text
    if "x-www-form-urlencoded" in content_type:
        return dict(urllib.parse.parse_qsl(text))
    return text


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the real API
    server_version = "FakeSpotify/1"

    def setup(self) -> None:
        super().setup()
        # Headers and body leave in one segment, as from a real front end; otherwise Nagle
        # and the client's delayed ACK add 40 ms to every response with a body.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        pass

    def _serve(self) -> None:
        fake: FakeSpotify = self.server.fake  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {key.lower(): value for key, value in self.headers.items()}
        path = urllib.parse.urlsplit(self.path).path
        if path.startswith(API + "/"):
            problem = _judge(self.command, self.path, headers.get("content-type"), body)
            if problem is not None:
                fake.record(self.command, self.path, headers, body)
                with fake.lock:
                    fake.invalid.append(f"{self.command} {self.path}: {problem}")
                self._send(_api_error(400, f"Bad request: {problem}"))
                return
        fault = fake._next_fault(self.command, path)
        answer: _Answer | None = None
        if fault is not None and fault.kind == "slow":
            fake._release.wait(fault.delay)
            fault = None
        if fault is not None and fault.kind == "reset":
            # Record it as a request all the same, then send a TCP RST.
            fake.record(self.command, self.path, headers, body)
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return
        if fault is not None:
            fake.record(self.command, self.path, headers, body)  # state untouched
            if fault.kind == "accepted":
                answer = _Answer(202)
            elif path == TOKEN_PATH:
                answer = _Answer(fault.status, {"error": fault.reason or "server_error"})
            else:
                answer = _api_error(fault.status, fault.message, fault.reason)
            answer.headers.update(dict(fault.headers))
        else:
            fake.record(self.command, self.path, headers, body)
            answer = fake.handle(self.command, self.path, headers, body)
        if fake.latency:
            time.sleep(fake.latency)  # a real round trip: the answer comes this much later
        self._send(answer)

    def _send(self, answer: _Answer) -> None:
        payload = b"" if answer.body is None else json.dumps(answer.body).encode()
        try:
            self.send_response(answer.status)
            for key, value in answer.headers.items():
                self.send_header(key, value)
            if payload:
                self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            self._headers_buffer.append(b"\r\n" + payload)  # type: ignore[attr-defined]
            self.flush_headers()
        except OSError:
            self.close_connection = True  # the client gave up (timeout) first

    do_GET = _serve  # noqa: N815 - http.server's names
    do_PUT = _serve  # noqa: N815
    do_POST = _serve  # noqa: N815


__all__ = ["Device", "FakeSpotify", "Fault", "Playback", "Recorded", "new_device_id"]
