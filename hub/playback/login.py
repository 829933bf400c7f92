"""The headless Spotify login and the CLI's device tools (`spottypotty spotify …`).

The login is the authorization-code flow without a browser on the Pi: print the
authorize URL, the user opens it anywhere, logs in, and pastes back the address the
browser was redirected to (`http://127.0.0.1:8888/callback?code=…`; the page itself does
not load, which is fine). The code is exchanged for tokens, written to
`spotify.token_cache` in spotipy's cache-file format with mode 0600.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hub.config import HubConfig, SensorConfig
from hub.errors import AuthError, ConfigError, HubError
from hub.playback.port import trial_session
from hub.playback.spotify import (
    LOGIN_HINT,
    NOTE_STARTED,
    SECRET_ENV,
    SECRET_NAME,
    SpotifyPlayer,
    TokenAuth,
    TokenStore,
    build_client,
    build_oauth,
)

REQUEST_TIMEOUT = 10.0  # seconds; a person is waiting, not a session


@dataclass(frozen=True, slots=True)
class LoginRequest:
    """The URL to open, and the state the redirect must carry back."""

    url: str
    state: str


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    name: str
    id: str
    type: str
    active: bool


def client_secret(config: HubConfig) -> str:
    """The client secret (env or credential), or ConfigError saying where to put it."""
    from hub.secrets import read_secret  # noqa: PLC0415

    if not config.spotify.client_id:
        raise ConfigError(["spotify.client_id: required for Spotify (your app's client id)"])
    secret = read_secret(SECRET_NAME, env=SECRET_ENV)
    if not secret:
        problem = (
            f"Spotify client secret missing: set the environment variable {SECRET_ENV} "
            f"or the systemd credential {SECRET_NAME}"
        )
        raise ConfigError([problem])
    return secret


def begin_login(config: HubConfig) -> LoginRequest:
    """The authorize URL (scopes for reading and controlling playback), with a fresh state."""
    secret = client_secret(config)  # fail before the user opens a browser
    state = secrets.token_urlsafe(16)
    oauth = build_oauth(config.spotify, secret, timeout=REQUEST_TIMEOUT)
    url: str = oauth.get_authorize_url(state=state)
    return LoginRequest(url=url, state=state)


def finish_login(config: HubConfig, request: LoginRequest, pasted: str) -> None:
    """Exchange the code in the pasted redirect URL and write the token cache (0600)."""
    from spotipy.exceptions import SpotifyOauthError  # noqa: PLC0415
    from spotipy.oauth2 import SpotifyOAuth  # noqa: PLC0415

    pasted = pasted.strip()
    expected = config.spotify.redirect_uri
    if not pasted.startswith(expected.split("?", 1)[0]):
        raise HubError(f"that is not the redirect address: it should start with {expected}")
    try:
        state, code = SpotifyOAuth.parse_auth_response_url(pasted)
    except SpotifyOauthError as exc:
        raise AuthError(f"Spotify refused the login: {exc.error}") from None
    if state != request.state:
        raise AuthError("the pasted address is from another login attempt: start again")
    if not code:
        raise HubError("the pasted address has no ?code=: paste the whole address")
    oauth = build_oauth(config.spotify, client_secret(config), timeout=REQUEST_TIMEOUT)
    try:
        oauth.get_access_token(code=code, as_dict=False, check_cache=False)
    except SpotifyOauthError as exc:
        why = f"{exc.error} ({exc.error_description})"
        raise AuthError(f"Spotify refused the code: {why}") from None
    except OSError as exc:  # requests' errors are OSErrors
        raise HubError(f"cannot reach Spotify's accounts service: {type(exc).__name__}") from None
    token: dict[str, Any] | None = oauth.cache_handler.get_cached_token()
    if not token or not token.get("refresh_token"):
        raise AuthError("Spotify answered without a refresh token; try the login again")
    TokenStore(config.spotify.token_cache).save(token)


def _client(config: HubConfig) -> Any:
    secret = client_secret(config)
    store = TokenStore(config.spotify.token_cache)
    if not store.usable():
        raise AuthError(f"Spotify login needed: no token in {store.path}; {LOGIN_HINT}")
    oauth = build_oauth(config.spotify, secret, timeout=REQUEST_TIMEOUT)
    return build_client(TokenAuth(oauth, store), config.spotify, timeout=REQUEST_TIMEOUT)


def _spotify_call(call: Callable[[], Any]) -> Any:
    """Run one spotipy call; its failures as one-line HubErrors."""
    from spotipy.exceptions import SpotifyException, SpotifyOauthError  # noqa: PLC0415

    try:
        return call()
    except SpotifyOauthError as exc:
        if exc.error == "invalid_grant":
            raise AuthError(f"Spotify login expired (invalid_grant); {LOGIN_HINT}") from None
        raise AuthError(f"Spotify refused the app's credentials: {exc.error}") from None
    except SpotifyException as exc:
        why = exc.reason or "no reason given"
        raise HubError(f"Spotify answered HTTP {exc.http_status} ({why})") from None
    except OSError as exc:
        raise HubError(f"cannot reach Spotify: {type(exc).__name__}") from None


def list_devices(config: HubConfig) -> list[DeviceInfo]:
    """The account's Spotify Connect devices, as `GET /me/player/devices` lists them."""
    client = _client(config)
    answer = _spotify_call(client.devices) or {}
    return [
        DeviceInfo(
            name=str(device.get("name", "")),
            id=str(device.get("id") or ""),
            type=str(device.get("type", "")),
            active=bool(device.get("is_active")),
        )
        for device in answer.get("devices", [])
    ]


def play_test(
    config: HubConfig,
    sensor_id: str,
    *,
    seconds: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Play on the sensor's device as a session would, wait `seconds`, pause. Returns what
    happened, one line; raises HubError when nothing could be played."""
    sensor = config.sensor(sensor_id)
    if sensor is None:
        known = ", ".join(s.id for s in config.sensors) or "none configured"
        raise HubError(f"no sensor {sensor_id!r} in {config.source or 'the config'} ({known})")
    if not sensor.spotify_device:
        raise HubError(f"sensor {sensor_id!r} has no spotify_device")
    secret = client_secret(config)
    player = SpotifyPlayer(config.spotify, client_secret=secret, request_timeout=REQUEST_TIMEOUT)
    if player.login_needed:
        raise AuthError(f"Spotify login needed; {LOGIN_HINT}")
    return asyncio.run(_play_then_pause(player, sensor, seconds, sleep))


async def _play_then_pause(
    player: SpotifyPlayer, sensor: SensorConfig, seconds: float, sleep: Callable[[float], None]
) -> str:
    session = trial_session(sensor, time.time())
    result = await player.start(session, sensor)
    if not result.started or result.note != NOTE_STARTED:
        if player.login_needed:
            raise AuthError(f"Spotify login needed; {LOGIN_HINT}")
        raise HubError(f"did not play on {sensor.spotify_device!r}: {result.note}")
    await asyncio.to_thread(sleep, seconds)
    started = session.with_changes(playback_started=True, spotify_device_id=result.device_id)
    paused = await player.stop(started, sensor)
    where = f"{sensor.spotify_device!r} ({result.device_id})"
    if paused:
        return f"played on {where} for {seconds:g} s, then paused"
    return f"played on {where}; not paused (it no longer plays what the test started)"
