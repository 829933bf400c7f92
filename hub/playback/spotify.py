"""The Spotify player: spotipy off the event loop, with its own backoff, breaker and cache.

spotipy (and requests) are imported lazily, in a worker thread, on the first call, so
the daemon starts fast. Every HTTP call runs on a detached thread (`run_detached`) with a requests
timeout and a backstop `asyncio.wait_for`; spotipy never retries or sleeps (plain
`requests.Session`, `retries=0`), so a 429 reaches us with its `Retry-After` and we
remember "not before T" instead of sleeping. The policy (what to call, what a failure
means) runs on the event loop; threads only do HTTP.

The daemon never prompts: spotipy's `SpotifyOAuth` is only used to *refresh* tokens. The
`Spotify` client's auth manager is `TokenAuth`, which reads the cache file and raises
`AuthError` when there is no usable token, so spotipy's interactive paths are unreachable.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import random
import re
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from hub.config import HubConfig, SensorConfig, SpotifySection
from hub.errors import AuthError, HubError
from hub.model import Session
from hub.playback.detached import run_detached
from hub.playback.port import PlaybackResult, Player, PlayerMemory, ResumePoint

_LOGGER = logging.getLogger(__name__)

SCOPES = "user-read-playback-state user-modify-playback-state"
SECRET_NAME = "spotify_client_secret"  # noqa: S105 - a name, not a secret
SECRET_ENV = "SPOTIFY_CLIENT_SECRET"  # noqa: S105
LOGIN_HINT = "run `spottypotty spotify login`"
STATUS_PREMIUM_REQUIRED = "Spotify Premium required"  # status(), as people see it

# Notes a start answers with (they end up in the session's playback_note).
NOTE_STARTED = "started"
NOTE_ALREADY_PLAYING = "already_playing"
NOTE_LOGIN_NEEDED = "login_needed"
NOTE_RATE_LIMITED = "rate_limited"
NOTE_UNAVAILABLE = "spotify_unavailable"  # the breaker is open
NOTE_NO_SECRET = "no_client_secret"  # noqa: S105
NOTE_NO_DEVICE = "no_device"
NOTE_DEVICE_NOT_FOUND = "device_not_found"
NOTE_DEVICE_NOT_READY = "device_not_ready"
NOTE_ACCOUNT_BUSY = "account_busy"  # the account plays on another device
NOTE_PRIVATE_SESSION = "private_session"
NOTE_RESTRICTED = "restricted"  # the device accepts no Web API commands
NOTE_PREMIUM_REQUIRED = "premium_required"
NOTE_QUOTA_EXCEEDED = "quota_exceeded"  # a development-mode app over its quota
NOTE_MOVED = "moved"  # music that follows you: moved here from another room's speaker
NOTE_NOT_THERE = "not_playing_there"  # nothing to move: it no longer plays where we started it

_DEVICE_ID = re.compile(r"[0-9a-f]{40}")
_OPEN_LINK = re.compile(
    r"https://open\.spotify\.com/(?:intl-[a-z-]+/)?"
    r"(?P<type>playlist|album|artist|show|episode|audiobook|track)/(?P<id>[A-Za-z0-9]+)"
)
_TRACK_TYPES = ("spotify:track:", "spotify:episode:")
_SPOKEN = ("spotify:show:", "spotify:episode:", "spotify:audiobook:")
_FADE_STEPS = 5
# Items of shows and audiobooks (chapters are listed as episodes); their place is kept.
_SPOKEN_ITEMS = ("spotify:episode:", "spotify:chapter:")


# --- pure helpers ---------------------------------------------------------------------------


def to_uri(context: str | None) -> str | None:
    """A Spotify URI from a config value: a URI as is, an open.spotify.com link converted."""
    if not context:
        return None
    link = _OPEN_LINK.match(context)
    if link:
        return f"spotify:{link['type']}:{link['id']}"
    return context


def play_body(uri: str | None, point: ResumePoint | None = None) -> dict[str, Any]:
    """`start_playback` keywords: tracks and episodes go in `uris`, the rest is a context;
    a resume point adds where to start (`offset` in a context, and `position_ms`)."""
    if uri is None:
        return {}
    if uri.startswith(_TRACK_TYPES):
        body: dict[str, Any] = {"uris": [uri]}
        if point is not None and point.item_uri == uri:
            body["position_ms"] = point.position_ms
        return body
    body = {"context_uri": uri}
    if point is not None:
        body["offset"] = {"uri": point.item_uri}
        body["position_ms"] = point.position_ms
    return body


def resumes_by_default(uri: str | None) -> bool:
    """Spoken word resumes where it was left; music starts afresh unless `resume = true`."""
    return bool(uri and uri.startswith(_SPOKEN))


def fade_levels(volume: int, fade_in_seconds: float) -> list[int]:
    """The volumes to go through: the target at once, or up to it in at most 5 steps."""
    steps = min(_FADE_STEPS, volume) if fade_in_seconds > 0 else 1
    if steps <= 1:
        return [volume]
    return [round(volume * step / steps) for step in range(1, steps + 1)]


def looks_like_device_id(value: str) -> bool:
    return bool(_DEVICE_ID.fullmatch(value))


def match_device(devices: list[dict[str, Any]], wanted: str) -> dict[str, Any] | None:
    """The device named `wanted` by id (exactly) or by name (case-insensitively)."""
    for device in devices:
        if device.get("id") == wanted:
            return device
    folded = fold(wanted)
    for device in devices:
        if fold(str(device.get("name", ""))) == folded:
            return device
    return None


def fold(name: str) -> str:
    """A device name as names are compared and remembered."""
    return name.strip().casefold()


def plays_ours(current: Any, device_id: str, uri: str | None) -> bool:
    """Whether the device still plays what the hub started there (`uri`, if known)."""
    if not isinstance(current, dict) or not current.get("is_playing"):
        return False
    if (current.get("device") or {}).get("id") != device_id:
        return False
    if uri is None:
        return True
    context = current.get("context") or {}
    item = current.get("item") or {}
    return uri in (context.get("uri"), item.get("uri"))


def why_not_start(current: Any, device_id: str) -> tuple[str, str] | None:
    """(note, device id) when `GET /me/player`'s 200 answer forbids starting on `device_id`:
    the account plays somewhere (one stream per account: starting here would stop it), or
    the target is in a private session or refuses Web API commands. None: free to start."""
    if not isinstance(current, dict):
        return None
    device = current.get("device") or {}
    active = str(device.get("id") or "")
    if current.get("is_playing"):
        return (NOTE_ALREADY_PLAYING if active == device_id else NOTE_ACCOUNT_BUSY), active
    if active == device_id and device.get("is_private_session"):
        return NOTE_PRIVATE_SESSION, active
    if active == device_id and device.get("is_restricted"):
        return NOTE_RESTRICTED, active
    return None


def why_not_start_listed(devices: list[dict[str, Any]], device_id: str) -> tuple[str, str] | None:
    """The same judgement from the device list, after `GET /me/player` answered 204: an
    active device in a private session is someone listening privately (that is what the 204
    hides), and a restricted target refuses commands."""
    for device in devices:
        if device.get("is_active") and device.get("is_private_session"):
            return NOTE_PRIVATE_SESSION, str(device.get("id"))
    for device in devices:
        if device.get("id") == device_id and device.get("is_restricted"):
            return NOTE_RESTRICTED, device_id
    return None


def parse_retry_after(value: str | None, default: float) -> float:
    """Seconds from a Retry-After header (seconds, or an HTTP date); `default` if unusable."""
    if not value:
        return default
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime  # noqa: PLC0415 - rare path

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    return max(0.0, when.timestamp() - time.time())


def endpoint(base: str, path: str) -> str:
    """`base` joined with `path`, `base` treated as a directory whether or not it ends in /."""
    return urllib.parse.urljoin(base if base.endswith("/") else base + "/", path)


class Breaker:
    """A circuit breaker: after `threshold` consecutive failures, refuse for `cooldown` s.

    After the cool-down one trial is let through (half-open); its failure opens it again.
    """

    def __init__(self, threshold: int, cooldown: float) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self.failures = 0
        self.open_until = 0.0

    def allow(self, now: float) -> bool:
        return self.failures < self.threshold or now >= self.open_until

    def success(self) -> None:
        self.failures = 0
        self.open_until = 0.0

    def failure(self, now: float) -> bool:
        """Count a failure; True when this one opened (or re-opened) the breaker."""
        self.failures += 1
        if self.failures >= self.threshold:
            self.open_until = now + self.cooldown
            return True
        return False

    def is_open(self, now: float) -> bool:
        return not self.allow(now)


# --- the token cache file -------------------------------------------------------------------


class TokenStore:
    """spotipy's cache-file format (one JSON token_info), written atomically, mode 0600."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, Any] | None:
        """The cached token_info, or None when missing or unreadable (logged, never the value)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            _LOGGER.warning("cannot read the Spotify token cache %s: %s", self.path, exc.strerror)
            return None
        try:
            token = json.loads(text)
        except ValueError:
            _LOGGER.warning("the Spotify token cache %s is not JSON", self.path)
            return None
        return token if isinstance(token, dict) else None

    def usable(self) -> bool:
        token = self.load()
        return bool(token and token.get("refresh_token"))

    def save(self, token: dict[str, Any]) -> None:
        """Replace the file atomically; the new file is 0600 from its first byte."""
        directory = self.path.parent
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=".spotify-token-", dir=directory)  # mode 0600
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(token, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o600)  # noqa: PTH101 - the temporary file is a str path
            os.replace(tmp, self.path)  # noqa: PTH105
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)  # noqa: PTH108
            raise

    def signature(self) -> tuple[int, int, int] | None:
        """(inode, mtime_ns, size), to notice a new login without reading the file."""
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return (stat.st_ino, stat.st_mtime_ns, stat.st_size)


class TokenAuth:
    """spotipy's `auth_manager` for the daemon: cached token, refreshed, never a prompt.

    `get_access_token` is what `Spotify` calls before every request. It refreshes through
    spotipy's `SpotifyOAuth.refresh_access_token` (with its timeout) and persists the new
    token itself; with no usable token it raises AuthError instead of falling back to
    spotipy's interactive login.
    """

    def __init__(self, oauth: Any, store: TokenStore) -> None:
        self._oauth = oauth
        self._store = store
        self._token: dict[str, Any] | None = None
        self._lock = threading.Lock()

    def get_access_token(self, as_dict: bool = False, check_cache: bool = True) -> str:  # noqa: ARG002 - spotipy's signature
        with self._lock:
            token = self._current()
            if "access_token" not in token or self._oauth.is_token_expired(token):
                token = self._refresh(token)
            return str(token["access_token"])

    def refresh_if_due(self, margin: float) -> float:
        """Refresh when the token expires within `margin` seconds; seconds it has left."""
        with self._lock:
            token = self._current()
            if "access_token" not in token or float(token["expires_at"]) - time.time() < margin:
                token = self._refresh(token)
            return float(token["expires_at"]) - time.time()

    def force_refresh(self) -> None:
        """After a 401: the access token was refused before its time; get a new one."""
        with self._lock:
            self._refresh(self._current())

    def forget(self) -> None:
        with self._lock:
            self._token = None

    def _current(self) -> dict[str, Any]:
        token = self._token if self._token is not None else self._store.load()
        if not token or not token.get("refresh_token"):
            raise AuthError(f"Spotify login needed: no usable token; {LOGIN_HINT}")
        token.setdefault("expires_at", 0)
        self._token = token
        return token

    def _refresh(self, token: dict[str, Any]) -> dict[str, Any]:
        fresh: dict[str, Any] = self._oauth.refresh_access_token(token["refresh_token"])
        fresh.setdefault("refresh_token", token["refresh_token"])
        self._store.save(fresh)
        self._token = fresh
        _LOGGER.debug("Spotify access token refreshed")
        return fresh


def _refuse_prompt(*_args: object, **_kwargs: object) -> str:
    raise AuthError(f"Spotify login needed; the daemon never prompts: {LOGIN_HINT}")


def build_oauth(settings: SpotifySection, client_secret: str, *, timeout: float) -> Any:
    """spotipy's SpotifyOAuth pointed at `accounts_url`, with a timeout and no retries.

    Its cache handler is in memory: the caller persists tokens through `TokenStore`.
    """
    import requests  # noqa: PLC0415 - lazy: spotipy and requests cost start-up time
    from spotipy.cache_handler import MemoryCacheHandler  # noqa: PLC0415
    from spotipy.oauth2 import SpotifyOAuth  # noqa: PLC0415

    _quiet_spotipy_logging()
    oauth = SpotifyOAuth(
        client_id=settings.client_id,
        client_secret=client_secret,
        redirect_uri=settings.redirect_uri,
        scope=SCOPES,
        requests_session=requests.Session(),  # plain: no urllib3 retries
        requests_timeout=timeout,
        open_browser=False,
        cache_handler=MemoryCacheHandler(),
    )
    # Class attributes in spotipy; an instance attribute overrides them for this object.
    oauth.OAUTH_TOKEN_URL = endpoint(settings.accounts_url, "api/token")
    oauth.OAUTH_AUTHORIZE_URL = endpoint(settings.accounts_url, "authorize")
    return oauth


def build_client(auth_manager: Any, settings: SpotifySection, *, timeout: float) -> Any:
    """spotipy's Spotify client on `api_url`: retries=0 and a plain requests.Session, so a
    429 arrives with its Retry-After instead of being slept on or hidden."""
    import requests  # noqa: PLC0415
    from spotipy import Spotify  # noqa: PLC0415

    client = Spotify(
        auth_manager=auth_manager,
        requests_session=requests.Session(),
        retries=0,
        status_retries=0,
        requests_timeout=timeout,
    )
    client.prefix = settings.api_url if settings.api_url.endswith("/") else settings.api_url + "/"
    return client


class _SpotipyLogFilter(logging.Filter):
    """spotipy logs request headers (the bearer token) at DEBUG, and every HTTP error at
    ERROR, expected ones included; we log what matters ourselves."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return False
        message = str(record.msg)
        return not message.startswith(("HTTP Error for", "Max Retries"))


_LOG_FILTER = _SpotipyLogFilter()


def _quiet_spotipy_logging() -> None:
    for name in ("spotipy.client", "spotipy.oauth2", "spotipy.cache_handler", "spotipy.util"):
        logger = logging.getLogger(name)
        if _LOG_FILTER not in logger.filters:
            logger.addFilter(_LOG_FILTER)


# --- the player -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Problem:
    """What went wrong with one HTTP call, as data the event loop acts on."""

    note: str
    transient: bool = False  # counts toward the breaker
    login: bool = False
    retry_after: float | None = None
    status: int | None = None
    reason: str | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class _Reply:
    value: Any = None
    status: int | None = None  # the HTTP status of the (last) response
    problem: _Problem | None = None


@dataclass(frozen=True, slots=True)
class _Owned:
    """What the hub started for a session: where, what, and whether to keep its place."""

    device_id: str
    uri: str | None
    sensor_id: str
    resume: bool


@dataclass(slots=True)
class _Target:
    device_id: str
    # True: on the device list (or playing) just now; False: missing from a fresh list
    # (asleep: transfer before playing); None: not looked at (play, transfer on a 404).
    awake: bool | None


class _Refused(Exception):  # noqa: N818 - private control flow
    """No music this time: `note` says why (it becomes the result's note)."""

    def __init__(
        self, note: str, device_id: str | None = None, problem: _Problem | None = None
    ) -> None:
        super().__init__(note)
        self.note = note
        self.device_id = device_id
        self.problem = problem


# `additional_types` for `GET /me/player`: without `episode` an episode (or an audiobook
# chapter) playing shows as `item: null`, and the hub would not recognise its own playback.
_ADDITIONAL_TYPES = "track,episode"
_RETRY_STATUSES = frozenset({502, 503})  # Spotify's docs: retry these after a short wait
_IDLE_AFTER = 15 * 60.0  # seconds without a look after which the account is likely idle


class SpotifyPlayer:
    """The `Player` for Spotify Connect. Never raises for a playback failure."""

    def __init__(
        self,
        settings: SpotifySection,
        *,
        client_secret: str | None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[float, float], float] = random.uniform,
        request_timeout: float = 5.0,
        device_ttl: float = 300.0,
        breaker_threshold: int = 3,
        breaker_cooldown: float = 60.0,
        play_attempts: int = 3,
        retry_delay: float = 0.5,
        accepted_delay: float = 5.0,
        accepted_retries: int = 5,
        default_retry_after: float = 30.0,
        refresh_margin: float = 300.0,
    ) -> None:
        self._settings = settings
        self._secret = client_secret
        self._clock = clock
        self._sleep = sleep
        self._jitter = jitter
        self._timeout = request_timeout
        # A call may refresh the token, be refused with 401, refresh and retry: 4 requests.
        self._backstop = 4 * request_timeout + 1.0
        self._device_ttl = device_ttl
        self._breaker = Breaker(breaker_threshold, breaker_cooldown)
        self._play_attempts = play_attempts
        self._retry_delay = retry_delay
        self._accepted_delay = accepted_delay
        self._accepted_retries = accepted_retries
        self._default_retry_after = default_retry_after
        self._refresh_margin = refresh_margin
        self._store = TokenStore(settings.token_cache)
        self._not_before = 0.0
        self._quota_exceeded = False  # the last 429 said QUOTA_EXCEEDED
        self._premium_required = False  # the last play was refused with PREMIUM_REQUIRED
        self._devices: dict[str, dict[str, Any]] = {}  # id -> the device as last seen
        self._devices_at: float | None = None  # when the device list was last read
        self._known_ids: dict[str, str] = {}  # folded name -> last id seen (kept in memory)
        self._unsaved_ids: dict[str, str] = {}  # learned, not yet handed to memory
        self._resume: dict[tuple[str, str], ResumePoint] = {}
        self._memory: PlayerMemory | None = None
        self._owned: dict[str, _Owned] = {}  # session id -> what we started
        self._fades: dict[str, asyncio.Task[None]] = {}  # session id -> its fade-in
        self._looked_at: float | None = None  # the last GET /me/player
        self._idle = False  # it answered 204
        self._client_lock = threading.Lock()
        self._client: Any = None
        self._auth: TokenAuth | None = None
        self._local = threading.local()
        self._login_needed = False
        self._login_signature: tuple[int, int, int] | None = None
        if client_secret is None:
            _LOGGER.warning(
                "Spotify client secret missing (env %s or credential %s): playback disabled",
                SECRET_ENV,
                SECRET_NAME,
            )
        elif not self._store.usable():
            self._set_login_needed(f"no token in {settings.token_cache}")

    # --- what the daemon reads ---

    @property
    def login_needed(self) -> bool:
        return self._login_needed

    def status(self) -> str:
        """One short phrase for systemd's STATUS= line, the retained
        `spottypotty/hub/spotify`, the dashboard and `doctor`."""
        now = self._clock()
        if self._secret is None:
            return "Spotify client secret missing"
        if self._login_needed:
            return "Spotify login needed"
        if self._premium_required:
            return STATUS_PREMIUM_REQUIRED
        if now < self._not_before:
            left = _duration(self._not_before - now)
            if self._quota_exceeded:
                return f"Spotify app quota exceeded (development mode) for {left}"
            return f"Spotify rate-limited for {left}"
        if self._breaker.is_open(now):
            return f"Spotify unreachable (retry in {_duration(self._breaker.open_until - now)})"
        return "Spotify ready"

    # --- the Player port ---

    async def start(self, session: Session, sensor: SensorConfig) -> PlaybackResult:
        try:
            return await self._start(session, sensor)
        except _Refused as refused:
            return PlaybackResult(started=False, device_id=refused.device_id, note=refused.note)
        finally:
            await self._save_learned_ids()

    async def stop(self, session: Session, sensor: SensorConfig | None) -> bool:
        fade = self._fades.pop(session.session_id, None)
        if fade is not None:
            fade.cancel()
        owned = self._owned.pop(session.session_id, None) or _owned_by_record(session, sensor)
        if owned is None:
            return False  # nothing of ours plays (never started, not hijacked, already stopped)
        try:
            self._check_usable()
            current = await self._call(self._current_playback)
            if not plays_ours(current.value, owned.device_id, owned.uri):
                _LOGGER.info(
                    "session %s: not pausing; the device no longer plays what the hub started "
                    "(paused, or switched device or music)",
                    session.session_id,
                )
                return False
            await self._call(lambda sp: sp.pause_playback(device_id=owned.device_id))
        except _Refused as refused:
            _LOGGER.warning("session %s: could not pause: %s", session.session_id, refused.note)
            return False
        _LOGGER.info("session %s: paused", session.session_id)
        if owned.resume and owned.uri is not None:
            await self._keep_place(owned, current.value)
        return True

    async def transfer(
        self, session: Session, source: Session, sensor: SensorConfig
    ) -> PlaybackResult:
        """Music that follows you: move what the hub started for `source` to this session's
        speaker with `PUT /me/player {"device_ids": [id], "play": true}` — only if it still
        plays where the hub started it (`GET /me/player`), so a person's own music is never
        moved. Afterwards it is this session's: its end pauses it, `source`'s does not."""
        try:
            return await self._move(session, source, sensor)
        except _Refused as refused:
            return PlaybackResult(started=False, device_id=refused.device_id, note=refused.note)
        finally:
            await self._save_learned_ids()

    async def _move(
        self, session: Session, source: Session, sensor: SensorConfig
    ) -> PlaybackResult:
        self._check_usable()
        if not sensor.spotify_device:
            raise _Refused(NOTE_NO_DEVICE)
        owned = self._owned.get(source.session_id) or _owned_by_record(source, None)
        if owned is None:
            raise _Refused(NOTE_NOT_THERE)
        current = await self._call(self._current_playback)
        if not plays_ours(current.value, owned.device_id, owned.uri):
            raise _Refused(NOTE_NOT_THERE, owned.device_id)
        target = await self._resolve(sensor.spotify_device)
        if target.device_id == owned.device_id:
            raise _Refused(NOTE_ALREADY_PLAYING, target.device_id)  # one speaker, two rooms
        levels = self._volume_levels(target, sensor)
        if levels and target.awake is not False:  # this room's volume, before it arrives
            await self._set_volume(target.device_id, levels[-1])  # no fade: it is playing
        await self._transfer(target.device_id, play=True)
        fade = self._fades.pop(source.session_id, None)
        if fade is not None:
            fade.cancel()  # it would raise the volume of the speaker the music left
        self._owned.pop(source.session_id, None)
        self._owned[session.session_id] = replace(
            owned, device_id=target.device_id, sensor_id=session.sensor_id
        )
        _LOGGER.info(
            "session %s: moved %s from session %s to %r",
            session.session_id,
            owned.uri or "the music",
            source.session_id,
            sensor.spotify_device,
            extra={"DEVICE_ID": target.device_id},
        )
        return PlaybackResult(started=True, device_id=target.device_id, note=NOTE_MOVED)

    async def load_memory(self, memory: PlayerMemory) -> None:
        """At daemon start: device ids and resume points kept by earlier runs."""
        remembered = await memory.load()
        self._memory = memory
        self._known_ids.update(remembered.device_ids)
        self._resume.update(remembered.resume_points)

    async def warm_up(self) -> None:
        """Optional, at daemon start: build the client, refresh the token if it is due and
        fill the device cache (learning the ids of the speakers awake now)."""
        with contextlib.suppress(_Refused):
            self._check_usable()
            await self._list_devices()
        await self._save_learned_ids()

    async def keep_token_fresh(self) -> None:
        """Forever: refresh the access token ahead of its expiry, off any session's path, so
        motion after hours of quiet costs no refresh round trip."""
        while True:
            wait = await self.refresh_ahead()
            # Real time, not the injected sleep: that one is for retries, and a test's
            # instant sleep would turn this into a busy loop.
            await asyncio.sleep(wait)

    async def refresh_ahead(self) -> float:
        """Refresh the token if it expires within the margin; seconds until worth looking again."""
        if self._secret is None or self._login_needed:
            return self._refresh_margin
        reply = await self._call_quietly(
            lambda _sp: self._token_auth().refresh_if_due(self._refresh_margin)
        )
        left = reply.value if isinstance(reply.value, float) else 0.0
        return max(60.0, left - self._refresh_margin)

    async def close(self) -> None:
        """Cancel fade-ins still running (the daemon is stopping)."""
        fades = list(self._fades.values())
        self._fades.clear()
        for fade in fades:
            fade.cancel()
        await asyncio.gather(*fades, return_exceptions=True)

    # --- start, step by step ---

    async def _start(self, session: Session, sensor: SensorConfig) -> PlaybackResult:
        self._check_usable()
        if not sensor.spotify_device:
            raise _Refused(NOTE_NO_DEVICE)
        target = await self._check_free(sensor.spotify_device, session.session_id)
        uri = to_uri(sensor.context_uri)
        resume = resumes_by_default(uri) if sensor.resume is None else sensor.resume
        point = self._resume.get((session.sensor_id, uri)) if resume and uri else None
        levels = self._volume_levels(target, sensor)
        if target.awake is False:
            await self._transfer(target.device_id)  # wake it first: it then takes the volume
            target.awake = True
        if levels:
            # Before the play: music must not start at whatever volume was used last. (Not
            # taken, e.g. by a device that turns out to be asleep: set after the play.)
            levels = levels[1:] if await self._set_volume(target.device_id, levels[0]) else levels
        try:
            await self._play(target, play_body(uri, point))
        except _Refused as refused:
            if point is None or refused.problem is None or refused.problem.status not in {400, 404}:
                raise
            # The kept item may be gone (an episode removed, a playlist edited): start
            # afresh rather than never again.
            _LOGGER.info("session %s: resume point refused; starting afresh", session.session_id)
            await self._keep_resume(session.sensor_id, point.context_uri, None)
            point = None
            await self._play(target, play_body(uri))
        self._premium_required = False
        self._owned[session.session_id] = _Owned(target.device_id, uri, session.sensor_id, resume)
        _LOGGER.info(
            "session %s: playing %s%s on %r",
            session.session_id,
            uri or "(resumed)",
            f" from {point.item_uri} at {point.position_ms / 1000:.0f} s" if point else "",
            sensor.spotify_device,
            extra={"DEVICE_ID": target.device_id},
        )
        if sensor.shuffle is not None:  # only when configured: the user's own shuffle stays
            shuffle = sensor.shuffle
            with contextlib.suppress(_Refused):
                await self._call(lambda sp: sp.shuffle(shuffle, device_id=target.device_id))
        if levels:
            self._fade_in(session.session_id, target.device_id, levels, sensor.fade_in_seconds)
        return PlaybackResult(started=True, device_id=target.device_id, note=NOTE_STARTED)

    async def _resolve(self, wanted: str) -> _Target:
        """The device id for a name or id, without a request when it is known: the cached
        list if fresh, else the id remembered for it (asleep or not, found on a 404), else
        one listing."""
        now = self._clock()
        fresh = self._devices_at is not None and now - self._devices_at < self._device_ttl
        hit = match_device(list(self._devices.values()), wanted) if fresh else None
        if hit is not None:
            return _Target(str(hit["id"]), awake=True)
        known = self._known_ids.get(fold(wanted))
        if known is None and looks_like_device_id(wanted):
            known = wanted
        if known is not None:
            # Missing from a fresh list means asleep; without one, it may well be awake.
            return _Target(known, awake=False if fresh else None)
        hit = None if fresh else match_device(await self._list_devices(), wanted)
        if hit is not None:
            return _Target(str(hit["id"]), awake=True)
        _LOGGER.warning("Spotify device %r is not on the device list", wanted)
        raise _Refused(NOTE_DEVICE_NOT_FOUND)

    async def _check_free(self, wanted: str, session_id: str) -> _Target:
        """The target, if the account plays nowhere and the target is not in a private
        session or restricted; else _Refused with why.

        `GET /me/player` answers 204 both when nothing plays and when a private session
        hides what does: only then is the device list read, afresh, to tell them apart (it
        resolves the target too). When a 204 is likely (the last answer was one, or the
        last look is long past: Spotify drops idle devices), the list is asked for beside
        `GET /me/player`, so a 204 still costs one round trip before the play, not two."""
        now = self._clock()
        likely_idle = self._looked_at is not None and (
            self._idle or now - self._looked_at > _IDLE_AFTER
        )
        listing = asyncio.ensure_future(self._list_devices()) if likely_idle else None
        try:
            current = await self._call(self._current_playback)
        except _Refused:
            if listing is not None:
                listing.cancel()
                await asyncio.wait([listing])  # gone before we answer: nothing left running
                if not listing.cancelled():
                    listing.exception()  # retrieved: `_call` logged it already
            raise
        self._looked_at, self._idle = now, current.value is None
        if current.value is None:
            listed = await (listing if listing is not None else self._list_devices())
            target = await self._resolve(wanted)
            verdict = why_not_start_listed(listed, target.device_id)
        else:
            if listing is not None:  # not needed after all; it came back about as soon
                with contextlib.suppress(_Refused):
                    await listing
            target = await self._resolve(wanted)
            device = current.value.get("device") or {}
            if device.get("id"):
                self._devices[str(device["id"])] = device
                if device["id"] == target.device_id:
                    target.awake = True
            verdict = why_not_start(current.value, target.device_id)
        if verdict is None:
            return target
        note, where = verdict
        name = str(self._devices.get(where, {}).get("name") or where)
        _LOGGER.info(
            "session %s: not starting on %r: %s (%s)",
            session_id,
            wanted,
            note,
            name,
            extra={"DEVICE_ID": where},
        )
        raise _Refused(note, where or target.device_id)

    def _volume_levels(self, target: _Target, sensor: SensorConfig) -> list[int]:
        """The volumes to set, first one before the play; none when not configured, when the
        device cannot take a volume, or when it is there already."""
        if sensor.volume is None:
            return []
        device = self._devices.get(target.device_id, {})
        if device.get("supports_volume") is False:
            return []
        levels = fade_levels(sensor.volume, sensor.fade_in_seconds)
        if len(levels) == 1 and device.get("volume_percent") == levels[0]:
            return []
        return levels

    async def _set_volume(self, device_id: str, volume: int) -> bool:
        try:
            await self._call(lambda sp: sp.volume(volume, device_id=device_id), device_id)
        except _Refused as refused:
            _LOGGER.info("Spotify volume not set: %s", refused.note)
            return False
        self._devices.setdefault(device_id, {})["volume_percent"] = volume
        return True

    def _fade_in(self, session_id: str, device_id: str, levels: list[int], seconds: float) -> None:
        """The rest of the volume, now (no fade) or raised step by step in a task of its own."""
        interval = seconds / len(levels) if seconds > 0 else 0.0

        async def fade() -> None:
            try:
                for level in levels:
                    if interval:
                        await self._sleep(interval)
                    if not await self._set_volume(device_id, level):
                        return
            finally:
                self._fades.pop(session_id, None)

        self._fades[session_id] = asyncio.ensure_future(fade())

    async def _list_devices(self) -> list[dict[str, Any]]:
        reply = await self._call(lambda sp: sp.devices())
        devices = [d for d in (reply.value or {}).get("devices", []) if d.get("id")]
        self._devices = {str(d["id"]): d for d in devices}
        self._devices_at = self._clock()
        for device in devices:
            name, device_id = fold(str(device.get("name", ""))), str(device["id"])
            if self._known_ids.get(name) != device_id:
                self._known_ids[name] = device_id
                self._unsaved_ids[name] = device_id
        return devices

    async def _save_learned_ids(self) -> None:
        """Hand newly learned device ids to memory (after the play: never on its path)."""
        if self._memory is None or not self._unsaved_ids:
            return
        learned, self._unsaved_ids = self._unsaved_ids, {}
        try:
            for name, device_id in learned.items():
                await self._memory.keep_device(name, device_id)
        except HubError as exc:
            _LOGGER.warning("could not keep the Spotify device ids: %s", exc)

    async def _play(self, target: _Target, body: dict[str, Any]) -> None:
        """PUT play with the device id; transfer on a 404 and retry shortly (a device waking
        up); a 202 (accepted, not done) is retried after 5 s, at most 5 times."""
        device_id = target.device_id
        transferred = target.awake is False
        failures = accepted = 0
        last: _Problem | None = None
        while True:
            try:
                reply = await self._call(
                    lambda sp: sp.start_playback(device_id=device_id, **body), device_id
                )
            except _Refused as refused:
                if refused.problem is None or refused.problem.status != 404:  # noqa: PLR2004
                    raise
                last = refused.problem
                failures += 1
                if failures >= self._play_attempts:
                    break
                if transferred:
                    await self._sleep(self._retry_delay)  # the device is waking up
                    continue
                self._devices_at = None  # the list was wrong: list again next time
                await self._transfer(device_id)
                transferred = True
                continue
            if reply.status != 202:  # noqa: PLR2004
                return
            accepted += 1
            if accepted > self._accepted_retries:
                break
            await self._sleep(self._accepted_delay)
        _LOGGER.warning("Spotify device %s did not start", device_id)
        raise _Refused(NOTE_DEVICE_NOT_READY, device_id, last)

    async def _transfer(self, device_id: str, *, play: bool = False) -> None:
        """`PUT /me/player` to `device_id`; `play`: make sure it plays there (else the
        playback state stays as it was)."""
        try:
            await self._call(
                lambda sp: sp.transfer_playback(device_id=device_id, force_play=play), device_id
            )
        except _Refused as refused:
            if refused.problem is not None and refused.problem.status == 404:  # noqa: PLR2004
                self._devices_at = None
                raise _Refused(NOTE_DEVICE_NOT_FOUND, device_id) from None
            raise

    async def _keep_place(self, owned: _Owned, current: dict[str, Any]) -> None:
        """Where to resume next time: an episode or chapter where it was paused; music at
        the track after the one playing (the queue says which), at its start."""
        assert owned.uri is not None  # noqa: S101 - the caller checked
        item = str((current.get("item") or {}).get("uri") or "")
        point: ResumePoint | None = None
        if item.startswith(_SPOKEN_ITEMS):
            point = ResumePoint(owned.uri, item, int(current.get("progress_ms") or 0))
        elif item:
            try:
                queue = (await self._call(lambda sp: sp.queue())).value or {}
            except _Refused as refused:
                _LOGGER.info("no resume point kept: %s", refused.note)
                return
            following = [str(i.get("uri")) for i in queue.get("queue") or [] if i and i.get("uri")]
            point = ResumePoint(owned.uri, following[0], 0) if following else None
        await self._keep_resume(owned.sensor_id, owned.uri, point)

    async def _keep_resume(
        self, sensor_id: str, context_uri: str, point: ResumePoint | None
    ) -> None:
        """In memory now, and in SQLite for the next run (a failure there only logged);
        None forgets it."""
        if point is None:
            self._resume.pop((sensor_id, context_uri), None)
        else:
            self._resume[(sensor_id, context_uri)] = point
        if self._memory is not None:
            try:
                await self._memory.keep_resume(sensor_id, context_uri, point)
            except HubError as exc:
                _LOGGER.warning("could not keep the resume point: %s", exc)

    @staticmethod
    def _current_playback(sp: Any) -> Any:
        return sp.current_playback(additional_types=_ADDITIONAL_TYPES)

    # --- state checks and the one way to make an HTTP call ---

    def _check_usable(self) -> None:
        if self._secret is None:
            raise _Refused(NOTE_NO_SECRET)
        if self._login_needed and not self._login_renewed():
            raise _Refused(NOTE_LOGIN_NEEDED)
        now = self._clock()
        if now < self._not_before:
            raise _Refused(NOTE_QUOTA_EXCEEDED if self._quota_exceeded else NOTE_RATE_LIMITED)
        if not self._breaker.allow(now):
            raise _Refused(NOTE_UNAVAILABLE)

    def _login_renewed(self) -> bool:
        """A new token file since login was found needed (`spotify login` ran): use it."""
        signature = self._store.signature()
        if signature is None or signature == self._login_signature or not self._store.usable():
            return False
        self._login_needed = False
        if self._auth is not None:
            self._auth.forget()
        _LOGGER.warning("Spotify login found in %s; playback enabled again", self._store.path)
        return True

    def _set_login_needed(self, why: str) -> None:
        if not self._login_needed:
            _LOGGER.warning("Spotify login needed (%s): %s", why, LOGIN_HINT)
        self._login_needed = True
        self._login_signature = self._store.signature()
        self._owned.clear()

    async def _call_quietly(self, operation: Callable[[Any], Any]) -> _Reply:
        """One call in a thread with the backstop; its reply, nothing applied."""
        try:
            reply: _Reply = await asyncio.wait_for(
                run_detached(functools.partial(self._run, operation)), timeout=self._backstop
            )
        except TimeoutError:
            reply = _Reply(problem=_Problem("timeout", transient=True, detail="backstop"))
        if reply.problem is not None and reply.problem.login:
            self._set_login_needed(reply.problem.detail)
        return reply

    async def _call(self, operation: Callable[[Any], Any], device_id: str | None = None) -> _Reply:
        """Run one spotipy call in a thread; apply what its answer means; raise _Refused
        with the note for the caller's result when it failed. A 502/503 is retried once
        after a short jittered wait, as Spotify's docs allow."""
        reply = await self._call_quietly(operation)
        problem = reply.problem
        if problem is not None and problem.status in _RETRY_STATUSES:
            await self._sleep(self._jitter(0.1, 0.5))
            reply = await self._call_quietly(operation)
            problem = reply.problem
        now = self._clock()
        if problem is None:
            self._breaker.success()
            return reply
        if problem.login:
            pass  # _call_quietly noted it
        elif problem.retry_after is not None:
            self._breaker.success()  # it answered: it is up
            self._not_before = now + problem.retry_after
            self._quota_exceeded = problem.reason == "QUOTA_EXCEEDED"
            _LOGGER.warning(
                "Spotify %s: no calls for %s (Retry-After)",
                "app quota exceeded (development mode)" if self._quota_exceeded else "rate limit",
                _duration(problem.retry_after),
            )
        elif problem.transient:
            if self._breaker.failure(now):
                _LOGGER.warning(
                    "Spotify unavailable (%s, %d failures in a row): not trying for %s",
                    problem.detail or problem.note,
                    self._breaker.failures,
                    _duration(self._breaker.cooldown),
                )
            else:
                _LOGGER.info("Spotify call failed: %s", problem.detail or problem.note)
        else:
            self._breaker.success()
            if problem.note == NOTE_PREMIUM_REQUIRED and not self._premium_required:
                _LOGGER.warning("Spotify refuses playback: the account needs Spotify Premium")
                self._premium_required = True
            _LOGGER.debug("Spotify refused: %s %s", problem.status, problem.reason)
        raise _Refused(problem.note, device_id, problem)

    # --- in the worker thread ---

    def _token_auth(self) -> TokenAuth:
        self._spotify()
        assert self._auth is not None  # noqa: S101 - made with the client
        return self._auth

    def _spotify(self) -> Any:
        with self._client_lock:
            if self._client is None:
                assert self._secret is not None  # noqa: S101 - checked before any call
                oauth = build_oauth(self._settings, self._secret, timeout=self._timeout)
                oauth.get_auth_response = _refuse_prompt  # belt and braces: never prompt
                oauth._get_user_input = _refuse_prompt  # noqa: SLF001
                self._auth = TokenAuth(oauth, self._store)
                client = build_client(self._auth, self._settings, timeout=self._timeout)
                client._session.hooks["response"].append(self._note_status)  # noqa: SLF001
                self._client = client
            return self._client

    def _note_status(self, response: Any, *_args: object, **_kwargs: object) -> None:
        self._local.status = response.status_code

    def _run(self, operation: Callable[[Any], Any]) -> _Reply:
        import requests  # noqa: PLC0415 - lazy, and already loaded by the first call
        from spotipy.exceptions import SpotifyException, SpotifyOauthError  # noqa: PLC0415

        try:
            client = self._spotify()
            self._local.status = None
            try:
                value = operation(client)
            except SpotifyException as exc:
                if exc.http_status != 401:  # noqa: PLR2004
                    raise
                # Refused before its expiry (revoked, clock skew): refresh once and retry.
                assert self._auth is not None  # noqa: S101
                self._auth.force_refresh()
                value = operation(client)
            return _Reply(value=value, status=self._local.status)
        except AuthError as exc:
            return _Reply(problem=_Problem(NOTE_LOGIN_NEEDED, login=True, detail=str(exc)))
        except SpotifyOauthError as exc:
            if exc.error == "invalid_grant":
                detail = "the refresh token was refused (invalid_grant)"
                return _Reply(problem=_Problem(NOTE_LOGIN_NEEDED, login=True, detail=detail))
            detail = f"token refresh failed: {exc.error}"
            return _Reply(problem=_Problem("auth_failed", transient=True, detail=detail))
        except SpotifyException as exc:
            return _Reply(problem=self._http_problem(exc))
        except requests.Timeout:
            return _Reply(problem=_Problem("timeout", transient=True, detail="request timed out"))
        except requests.RequestException as exc:
            detail = f"unreachable ({type(exc).__name__})"
            return _Reply(problem=_Problem("unreachable", transient=True, detail=detail))
        except Exception:
            _LOGGER.exception("unexpected error from spotipy")
            return _Reply(problem=_Problem("error", transient=True, detail="unexpected error"))

    def _http_problem(self, exc: Any) -> _Problem:
        status: int = exc.http_status
        reason: str | None = exc.reason
        transient = False
        retry_after: float | None = None
        if status == 429:  # noqa: PLR2004
            note = NOTE_QUOTA_EXCEEDED if reason == "QUOTA_EXCEEDED" else NOTE_RATE_LIMITED
            headers = exc.headers or {}
            retry_after = parse_retry_after(headers.get("Retry-After"), self._default_retry_after)
        elif status == 401:  # noqa: PLR2004 - still refused after a fresh token
            note, transient = "auth_failed", True
        elif status == 403:  # noqa: PLR2004
            note = NOTE_PREMIUM_REQUIRED if reason == "PREMIUM_REQUIRED" else "forbidden"
        elif status == 404:  # noqa: PLR2004
            note = "no_active_device" if reason == "NO_ACTIVE_DEVICE" else NOTE_DEVICE_NOT_FOUND
        elif status >= 500:  # noqa: PLR2004
            note, transient = "spotify_error", True
        else:
            note = f"http_{status}"
        return _Problem(
            note,
            transient=transient,
            retry_after=retry_after,
            status=status,
            reason=reason,
            detail=f"HTTP {status} {reason or ''}".strip(),
        )


def _owned_by_record(session: Session, sensor: SensorConfig | None) -> _Owned | None:
    """What the hub started for a session it did not start in this run (before a
    restart): its record says where and what."""
    if not session.playback_started or not session.spotify_device_id:
        return None
    uri = to_uri(session.spotify_context_uri)
    resume = sensor.resume if sensor is not None else None
    return _Owned(
        session.spotify_device_id,
        uri,
        session.sensor_id,
        resumes_by_default(uri) if resume is None else resume,
    )


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:  # noqa: PLR2004
        return f"{seconds:.0f} s"
    if seconds < 7200:  # noqa: PLR2004
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def make_player(config: HubConfig) -> Player:
    """The player the daemon should use: dry run when asked to or with no client id."""
    settings = config.spotify
    if settings.dry_run or not settings.client_id:
        from hub.playback.dry_run import DryRunPlayer  # noqa: PLC0415

        return DryRunPlayer()
    from hub.secrets import read_secret  # noqa: PLC0415

    secret = read_secret(SECRET_NAME, env=SECRET_ENV)
    return SpotifyPlayer(settings, client_secret=secret)
