"""The Spotify player, login and CLI with real spotipy HTTP against the fake Spotify server.

Every fault of issue 4 is a test here. The clock is injected: nothing sleeps to wait for a
Retry-After or a breaker cool-down; the only real waits are a slow response cut by a
small requests timeout.
"""

from __future__ import annotations

import argparse
import builtins
import json
import logging
import socket
import stat
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hub.cli.spotify import add_parser
from hub.config import SensorConfig, load_config
from hub.errors import AuthError, HubError
from hub.model import Session
from hub.playback.login import begin_login, finish_login, list_devices, play_test
from tests.fake_spotify import Device, FakeSpotify, Fault
from tests.spotify_rig import (
    DEVICES,
    PAUSE,
    PLAY,
    PLAYER,
    SHUFFLE,
    TRANSFER,
    VOLUME,
    SpotifyRig,
)

CONTEXT = "spotify:playlist:37i9dQZF1DXcBWIGoYBM5M"
SENSOR = SensorConfig(
    id="bath",
    user_id="u",
    spotify_device="Bathroom speaker",
    context_uri=CONTEXT,
    shuffle=True,
    volume=40,
)
QUICK = 1.0  # seconds: "returns quickly" (nothing waits for a Retry-After or timeout)


@dataclass(kw_only=True)
class Rig(SpotifyRig):
    kitchen: Device

    def session(self, sensor: SensorConfig = SENSOR) -> Session:
        return super().session(sensor)


@pytest.fixture
def fake() -> Iterator[FakeSpotify]:
    with FakeSpotify() as server:
        yield server


@pytest.fixture
def rig(fake: FakeSpotify, tmp_path: Path) -> Rig:
    speaker = fake.add_device("Bathroom speaker")
    kitchen = fake.add_device("Kitchen")
    state = tmp_path / "state"
    state.mkdir()
    settings = fake.settings(state / "spotify-token.json")
    fake.write_token_cache(settings.token_cache)
    return Rig(fake=fake, settings=settings, speaker=speaker, kitchen=kitchen)


@pytest.fixture(autouse=True)
def never_prompt(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object) -> str:
        raise AssertionError("something prompted for input")

    monkeypatch.setattr(builtins, "input", refuse)


# --- the common path ------------------------------------------------------------------------


async def test_start_sets_the_volume_before_it_plays_then_the_configured_shuffle(
    rig: Rig,
) -> None:
    player = rig.player()
    result = await player.start(rig.session(), SENSOR)

    assert result.started
    assert result.device_id == rig.speaker.id
    assert result.note == "started"
    # Nothing plays (204): the device list tells "idle" from a private session, and resolves
    # the name; the volume goes before the play, so the music never starts loud.
    assert rig.fake.api_calls() == [PLAYER, DEVICES, VOLUME, PLAY, SHUFFLE]
    assert rig.fake.calls("GET", "/v1/me/player")[0].query == {"additional_types": "track,episode"}
    play = rig.fake.calls("PUT", "/v1/me/player/play")[0]
    assert play.query == {"device_id": rig.speaker.id}
    assert play.body == {"context_uri": CONTEXT}
    assert rig.fake.calls("PUT", "/v1/me/player/shuffle")[0].query["state"] == "true"
    assert rig.fake.calls("PUT", "/v1/me/player/volume")[0].query["volume_percent"] == "40"
    assert rig.fake.playback.is_playing
    assert rig.fake.playback.device_id == rig.speaker.id
    assert player.status() == "Spotify ready"


async def test_warm_a_start_is_two_requests_and_a_learned_id_outlives_the_list(rig: Rig) -> None:
    rig.fake.set_playing(rig.speaker.id, CONTEXT, is_playing=False)  # active, paused
    player = rig.player(device_ttl=300.0)
    await player.start(rig.session(), SENSOR)
    rig.fake.playback.is_playing = False
    rig.fake.reset_log()

    await player.start(rig.session(), SENSOR)
    # The speaker is already at 40 % (GET /me/player shows it): no volume call either.
    assert rig.fake.api_calls() == [PLAYER, PLAY, SHUFFLE]

    rig.fake.playback.is_playing = False
    rig.fake.reset_log()
    rig.clock.advance(301)  # the list is old; the id learned from it is not
    await player.start(rig.session(), SENSOR)
    assert rig.fake.api_calls() == [PLAYER, PLAY, SHUFFLE]


async def test_a_device_named_by_id_and_a_track_uri(rig: Rig) -> None:
    sensor = SensorConfig(
        id="hall",
        user_id="u",
        spotify_device=rig.kitchen.id,
        context_uri="https://open.spotify.com/track/4uLU6hMCjMI75M1A2tKUQC?si=x",
    )
    result = await rig.player().start(rig.session(sensor), sensor)

    assert result.started
    assert result.device_id == rig.kitchen.id
    play = rig.fake.calls("PUT", "/v1/me/player/play")[0]
    assert play.body == {"uris": ["spotify:track:4uLU6hMCjMI75M1A2tKUQC"]}
    assert SHUFFLE not in rig.fake.api_calls()  # not configured: the user's own shuffle stays
    assert VOLUME not in rig.fake.api_calls()  # no volume configured: leave it alone


async def test_no_device_configured_calls_nothing(rig: Rig) -> None:
    sensor = SensorConfig(id="hall", user_id="u", context_uri=CONTEXT)
    result = await rig.player().start(rig.session(sensor), sensor)
    assert (result.started, result.note) == (False, "no_device")
    assert rig.fake.requests == []


# --- no hijacking, and not fighting the user ------------------------------------------------


async def test_a_device_already_playing_is_not_taken_over_nor_paused_later(rig: Rig) -> None:
    rig.fake.set_playing(rig.speaker.id, "spotify:album:someoneelse")
    player = rig.player()
    session = rig.session()

    result = await player.start(session, SENSOR)
    assert (result.started, result.note) == (False, "already_playing")
    assert PLAY not in rig.fake.api_calls()

    ended = session.with_changes(playback_started=False)
    assert await player.stop(ended, SENSOR) is False
    assert PAUSE not in rig.fake.api_calls()
    assert rig.fake.playback.is_playing
    assert rig.fake.playback.context_uri == "spotify:album:someoneelse"


async def test_stop_pauses_what_the_hub_started_once(rig: Rig) -> None:
    player = rig.player()
    session = rig.session()
    await player.start(session, SENSOR)

    assert await player.stop(session, SENSOR) is True
    pause = rig.fake.calls("PUT", "/v1/me/player/pause")
    assert [p.query for p in pause] == [{"device_id": rig.speaker.id}]
    assert not rig.fake.playback.is_playing

    # Idempotent: a second stop (shutdown's pause_all, a late StopPlayback) changes nothing.
    assert await player.stop(session.with_changes(playback_started=True), None) is False
    assert len(rig.fake.calls("PUT", "/v1/me/player/pause")) == 1


async def test_a_late_start_after_the_end_is_paused_by_the_stop_that_follows(rig: Rig) -> None:
    """The engine follows a start that succeeded after the session ended with a stop."""
    rig.fake.fail("GET", "/v1/me/player", Fault.slow(0.2))
    player = rig.player()
    session = rig.session()
    result = await player.start(session, SENSOR)  # the slow answer: the session ended meanwhile
    assert result.started
    ended = session.with_changes(playback_started=True, spotify_device_id=result.device_id)
    assert await player.stop(ended, None) is True  # sensor=None: removed from the config
    assert not rig.fake.playback.is_playing


async def test_the_user_paused_themselves_so_stop_does_not_fight(rig: Rig) -> None:
    player = rig.player()
    session = rig.session()
    await player.start(session, SENSOR)
    rig.fake.playback.is_playing = False  # pressed pause on the phone

    assert await player.stop(session, SENSOR) is False
    assert PAUSE not in rig.fake.api_calls()


async def test_the_user_switched_device_so_stop_does_not_fight(rig: Rig) -> None:
    player = rig.player()
    session = rig.session()
    await player.start(session, SENSOR)
    rig.fake.set_playing(rig.kitchen.id, CONTEXT)  # moved our music to the kitchen

    assert await player.stop(session, SENSOR) is False
    assert PAUSE not in rig.fake.api_calls()
    assert rig.fake.playback.is_playing


async def test_the_user_switched_music_so_stop_does_not_fight(rig: Rig) -> None:
    player = rig.player()
    session = rig.session()
    await player.start(session, SENSOR)
    rig.fake.set_playing(rig.speaker.id, "spotify:album:theirown")

    assert await player.stop(session, SENSOR) is False
    assert PAUSE not in rig.fake.api_calls()


async def test_stop_after_a_restart_uses_the_session_record(rig: Rig) -> None:
    session = rig.session()
    result = await rig.player().start(session, SENSOR)
    restored = session.with_changes(playback_started=True, spotify_device_id=result.device_id)

    assert await rig.player().stop(restored, SENSOR) is True  # a new player: no memory
    assert not rig.fake.playback.is_playing


# --- devices asleep, renamed, not active ----------------------------------------------------


async def test_no_active_device_transfers_then_plays(rig: Rig) -> None:
    rig.fake.fail("PUT", "/v1/me/player/play", Fault.no_active_device())
    result = await rig.player().start(rig.session(), SENSOR)

    assert result.started
    assert rig.fake.api_calls()[:6] == [PLAYER, DEVICES, VOLUME, PLAY, TRANSFER, PLAY]
    transfer = rig.fake.calls("PUT", "/v1/me/player")[0]
    assert transfer.body == {"device_ids": [rig.speaker.id], "play": False}


async def test_a_sleeping_device_off_the_list_is_woken_by_a_transfer(rig: Rig) -> None:
    player = rig.player(device_ttl=60.0)
    first = rig.session()
    await player.start(first, SENSOR)  # learns the speaker's id
    await player.stop(first, SENSOR)
    rig.fake.sleep_device(rig.speaker.id)
    rig.clock.advance(61)
    rig.fake.reset_log()

    result = await player.start(rig.session(), SENSOR)

    assert result.started
    assert result.device_id == rig.speaker.id
    # Off the list: woken by a transfer, which makes it take the volume before the play.
    # (The last answer was a 204, so the device list goes beside GET /me/player: either
    # may arrive first.)
    calls = rig.fake.api_calls()
    assert sorted(calls[:2]) == [PLAYER, DEVICES]
    assert calls[2:5] == [TRANSFER, VOLUME, PLAY]


async def test_a_renamed_device_is_found_by_the_id_it_had(rig: Rig) -> None:
    player = rig.player(device_ttl=60.0)
    first = rig.session()
    await player.start(first, SENSOR)
    await player.stop(first, SENSOR)
    rig.speaker.name = "Salle de bain"
    rig.clock.advance(61)

    result = await player.start(rig.session(), SENSOR)
    assert result.started
    assert result.device_id == rig.speaker.id


async def test_a_device_never_seen_is_not_found_and_nothing_plays(rig: Rig) -> None:
    sensor = SensorConfig(id="attic", user_id="u", spotify_device="Attic", context_uri=CONTEXT)
    result = await rig.player().start(rig.session(sensor), sensor)
    assert (result.started, result.note) == (False, "device_not_found")
    assert rig.fake.api_calls() == [PLAYER, DEVICES]


async def test_202_is_retried_after_5_s_at_most_5_times(rig: Rig) -> None:
    rig.fake.fail("PUT", "/v1/me/player/play", Fault.accepted())
    player = rig.player(retry_delay=0.25)
    assert (await player.start(rig.session(), SENSOR)).started
    assert rig.fake.api_calls().count(PLAY) == 2
    assert rig.sleeps == [5.0]

    rig.fake.playback.is_playing = False
    rig.fake.fail_always("PUT", "/v1/me/player/play", Fault.accepted())
    rig.fake.reset_log()
    rig.sleeps.clear()
    result = await player.start(rig.session(), SENSOR)
    assert (result.started, result.note) == (False, "device_not_ready")
    assert rig.fake.api_calls().count(PLAY) == 6  # the first and 5 retries
    assert rig.sleeps == [5.0] * 5


async def test_premium_required_is_said_in_the_status_and_does_not_open_the_breaker(
    rig: Rig,
) -> None:
    rig.fake.premium = False
    player = rig.player()
    for _ in range(5):
        result = await player.start(rig.session(), SENSOR)
        assert (result.started, result.note) == (False, "premium_required")
    assert player.status() == "Spotify Premium required"

    rig.fake.premium = True  # upgraded
    assert (await player.start(rig.session(), SENSOR)).started
    assert player.status() == "Spotify ready"


# --- rate limits, outages, slowness ---------------------------------------------------------


async def test_429_retry_after_an_hour_never_sleeps_and_resumes_after_it(rig: Rig) -> None:
    rig.fake.fail("PUT", "/v1/me/player/play", Fault.rate_limited(3600))
    player = rig.player()

    began = time.monotonic()
    result = await player.start(rig.session(), SENSOR)
    assert time.monotonic() - began < QUICK
    assert (result.started, result.note) == (False, "rate_limited")
    assert rig.sleeps == []
    assert player.status() == "Spotify rate-limited for 60 min"

    rig.fake.reset_log()
    rig.clock.advance(3599)
    assert (await player.start(rig.session(), SENSOR)).note == "rate_limited"
    assert await player.stop(rig.session(), SENSOR) is False
    assert rig.fake.requests == []  # not a single call while limited

    rig.clock.advance(2)
    assert (await player.start(rig.session(), SENSOR)).started


async def test_spotify_unreachable_fails_fast_and_the_breaker_stops_the_pile_up(
    rig: Rig,
) -> None:
    with socket.socket() as probe:  # a port nothing listens on: connection refused
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    rig.settings = rig.fake.settings(
        rig.settings.token_cache, api_url=f"http://127.0.0.1:{dead}/v1/"
    )
    player = rig.player(breaker_cooldown=60.0)

    began = time.monotonic()
    notes = [(await player.start(rig.session(), SENSOR)).note for _ in range(5)]
    assert time.monotonic() - began < QUICK
    assert notes == ["unreachable"] * 3 + ["spotify_unavailable"] * 2
    assert player.status().startswith("Spotify unreachable (retry in")

    rig.clock.advance(61)  # half-open: one trial, which fails and re-opens
    assert (await player.start(rig.session(), SENSOR)).note == "unreachable"
    assert (await player.start(rig.session(), SENSOR)).note == "spotify_unavailable"


async def test_5xx_and_connection_resets_count_toward_the_breaker_and_success_resets_it(
    rig: Rig,
) -> None:
    rig.fake.fail("GET", "/v1/me/player", Fault.error(500), Fault.reset())
    player = rig.player()
    assert (await player.start(rig.session(), SENSOR)).note == "spotify_error"
    assert (await player.start(rig.session(), SENSOR)).note == "unreachable"
    assert (await player.start(rig.session(), SENSOR)).started  # and the count starts over
    rig.fake.playback.is_playing = False
    rig.fake.fail("GET", "/v1/me/player", Fault.error(500), Fault.error(500))
    assert (await player.start(rig.session(), SENSOR)).note == "spotify_error"
    assert (await player.start(rig.session(), SENSOR)).note == "spotify_error"
    assert (await player.start(rig.session(), SENSOR)).started


@pytest.mark.parametrize("status", [502, 503])
async def test_one_502_or_503_is_retried_once_after_a_short_jittered_wait(
    rig: Rig, status: int
) -> None:
    rig.fake.fail("PUT", "/v1/me/player/play", Fault.error(status))
    player = rig.player()
    assert (await player.start(rig.session(), SENSOR)).started
    assert rig.fake.api_calls().count(PLAY) == 2
    assert rig.sleeps == [0.5]  # the jitter's upper end, as the rig's jitter picks

    rig.fake.playback.is_playing = False
    rig.fake.fail("PUT", "/v1/me/player/play", Fault.error(status), Fault.error(status))
    rig.fake.reset_log()
    result = await player.start(rig.session(), SENSOR)
    assert (result.started, result.note) == (False, "spotify_error")  # once, not twice
    assert rig.fake.api_calls().count(PLAY) == 2


async def test_a_slow_response_is_cut_by_the_request_timeout(rig: Rig) -> None:
    rig.fake.fail("GET", "/v1/me/player", Fault.slow(10.0))
    player = rig.player(request_timeout=0.2)

    began = time.monotonic()
    result = await player.start(rig.session(), SENSOR)
    assert time.monotonic() - began < QUICK
    assert (result.started, result.note) == (False, "timeout")
    rig.fake.release()


# --- tokens ---------------------------------------------------------------------------------


def _token_file(rig: Rig) -> dict[str, object]:
    data: dict[str, object] = json.loads(rig.settings.token_cache.read_text(encoding="utf-8"))
    return data


async def test_a_token_expired_mid_session_is_refreshed_and_the_call_retried(rig: Rig) -> None:
    player = rig.player()
    session = rig.session()
    await player.start(session, SENSOR)
    before = _token_file(rig)["access_token"]
    rig.fake.revoke_access_tokens()  # the next API call answers 401

    assert await player.stop(session, SENSOR) is True
    refreshes = rig.fake.calls("POST", "/api/token")
    assert [r.body["grant_type"] for r in refreshes] == ["refresh_token"]
    assert _token_file(rig)["access_token"] != before
    assert stat.S_IMODE(rig.settings.token_cache.stat().st_mode) == 0o600


async def test_a_token_past_its_expiry_is_refreshed_before_the_call(rig: Rig) -> None:
    rig.fake.write_token_cache(rig.settings.token_cache, expired=True)
    result = await rig.player().start(rig.session(), SENSOR)
    assert result.started
    assert rig.fake.requests[0].key == "POST /api/token"
    assert _token_file(rig)["refresh_token"]  # kept though the answer had none
    assert stat.S_IMODE(rig.settings.token_cache.stat().st_mode) == 0o600


async def test_invalid_grant_means_login_needed_logged_once_no_calls_no_prompt(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    rig.fake.write_token_cache(rig.settings.token_cache, expired=True)
    rig.fake.invalid_grant = True
    player = rig.player()

    result = await player.start(rig.session(), SENSOR)
    assert (result.started, result.note) == (False, "login_needed")
    assert player.login_needed
    assert player.status() == "Spotify login needed"

    rig.fake.reset_log()
    for _ in range(3):
        assert (await player.start(rig.session(), SENSOR)).note == "login_needed"
    assert rig.fake.requests == []
    needed = [r for r in caplog.records if "login needed" in r.getMessage()]
    assert len(needed) == 1

    # `spottypotty spotify login` writes a new token: the next session just works.
    rig.fake.invalid_grant = False
    rig.fake.write_token_cache(rig.settings.token_cache)
    assert (await player.start(rig.session(), SENSOR)).started
    assert not player.login_needed


async def test_no_token_cache_at_all_is_login_needed_without_any_call(rig: Rig) -> None:
    rig.settings.token_cache.unlink()
    player = rig.player()
    assert player.login_needed
    assert (await player.start(rig.session(), SENSOR)).note == "login_needed"
    assert rig.fake.requests == []


async def test_no_token_or_secret_ever_reaches_the_log(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = rig.fake.write_token_cache(rig.settings.token_cache, expired=True)
    player = rig.player()
    session = rig.session()
    await player.start(session, SENSOR)
    rig.fake.revoke_access_tokens()
    rig.fake.fail("PUT", "/v1/me/player/pause", Fault.error(404, "NO_ACTIVE_DEVICE"))
    await player.stop(session, SENSOR)
    text = caplog.text
    secrets_seen = [token["refresh_token"], rig.fake.client_secret, *rig.fake.access_tokens]
    assert not [s for s in secrets_seen if str(s) in text]
    assert "Bearer" not in text
    assert "Basic" not in text


# --- login, devices, test: the CLI's library ------------------------------------------------


def _config_file(rig: Rig, tmp_path: Path) -> Path:
    path = tmp_path / "hub.toml"
    spotify = rig.settings
    path.write_text(
        f"""
[hub]
database = "{tmp_path / "hub.db"}"

[spotify]
client_id = "{spotify.client_id}"
token_cache = "{spotify.token_cache}"
api_url = "{spotify.api_url}"
accounts_url = "{spotify.accounts_url}"

[[sensors]]
id = "bath"
user_id = "u"
spotify_device = "Bathroom speaker"
context_uri = "{CONTEXT}"
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def with_secret(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPOTIFY_CLIENT_SECRET", rig.fake.client_secret)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)


def _redirect(url: str, code: str) -> str:
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    state = query["state"][0]
    return f"{query['redirect_uri'][0]}?code={code}&state={state}"


@pytest.mark.usefixtures("with_secret")
def test_login_writes_a_0600_token_cache_that_the_player_uses(rig: Rig, tmp_path: Path) -> None:
    rig.settings.token_cache.unlink()
    config = load_config(_config_file(rig, tmp_path))
    request = begin_login(config)
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(request.url).query)
    assert request.url.startswith(rig.fake.accounts_url + "authorize?")
    assert query["scope"] == ["user-read-playback-state user-modify-playback-state"]
    assert query["client_id"] == [rig.fake.client_id]
    assert query["redirect_uri"] == ["http://127.0.0.1:8888/callback"]

    finish_login(config, request, _redirect(request.url, rig.fake.new_code()) + "\n")

    assert stat.S_IMODE(rig.settings.token_cache.stat().st_mode) == 0o600
    assert _token_file(rig)["refresh_token"]
    assert [d.name for d in list_devices(config)] == ["Bathroom speaker", "Kitchen"]


@pytest.mark.usefixtures("with_secret")
def test_login_refuses_a_wrong_state_a_denial_and_a_bad_code(rig: Rig, tmp_path: Path) -> None:
    config = load_config(_config_file(rig, tmp_path))
    request = begin_login(config)
    other = begin_login(config)
    with pytest.raises(AuthError, match="another login attempt"):
        finish_login(config, request, _redirect(other.url, rig.fake.new_code()))
    with pytest.raises(AuthError, match="access_denied"):
        finish_login(config, request, "http://127.0.0.1:8888/callback?error=access_denied")
    with pytest.raises(AuthError, match="invalid_grant"):
        finish_login(config, request, _redirect(request.url, "not-a-code"))
    with pytest.raises(HubError, match="not the redirect address"):
        finish_login(config, request, "https://example.com/?code=x")


@pytest.mark.usefixtures("with_secret")
def test_list_devices_with_an_expired_login_says_so(rig: Rig, tmp_path: Path) -> None:
    rig.fake.write_token_cache(rig.settings.token_cache, expired=True)
    rig.fake.invalid_grant = True
    with pytest.raises(AuthError, match="spotify login"):
        list_devices(load_config(_config_file(rig, tmp_path)))


@pytest.mark.usefixtures("with_secret")
def test_play_test_plays_then_pauses(rig: Rig, tmp_path: Path) -> None:
    waited: list[float] = []
    line = play_test(load_config(_config_file(rig, tmp_path)), "bath", sleep=waited.append)
    assert waited == [5.0]
    assert "then paused" in line
    assert PLAY in rig.fake.api_calls()
    assert PAUSE in rig.fake.api_calls()
    with pytest.raises(HubError, match="no sensor 'nope'"):
        play_test(load_config(_config_file(rig, tmp_path)), "nope")


# --- the CLI commands -----------------------------------------------------------------------


def _cli(argv: list[str]) -> argparse.Namespace:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config")
    parser = argparse.ArgumentParser(prog="spottypotty", parents=[common])
    sub = parser.add_subparsers(required=True)
    add_parser(sub, common)
    return parser.parse_args(argv)


@pytest.mark.usefixtures("with_secret")
def test_cli_devices_and_test(
    rig: Rig, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = str(_config_file(rig, tmp_path))
    args = _cli(["spotify", "devices", "--config", config])
    assert args.command(args) == 0
    out = capsys.readouterr().out
    assert "Bathroom speaker" in out
    assert rig.speaker.id in out

    args = _cli(["spotify", "devices", "--json", "--config", config])
    assert args.command(args) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0] == {"name": "Bathroom speaker", "id": rig.speaker.id, "type": "Speaker"} | {
        "active": False
    }

    monkeypatch.setattr(time, "sleep", lambda _seconds: None)
    args = _cli(["spotify", "test", "bath", "--seconds", "0", "--config", config])
    assert args.command(args) == 0
    assert "then paused" in capsys.readouterr().out


@pytest.mark.usefixtures("with_secret")
def test_cli_login_prompts_on_stderr_and_reads_stdin(
    rig: Rig, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    rig.settings.token_cache.unlink()
    code = rig.fake.new_code()

    class Paste:
        """stdin: the user pastes the redirect for the URL the command just printed."""

        def readline(self) -> str:
            err = capsys.readouterr().err
            url = next(word for word in err.split() if "/authorize?" in word)
            return _redirect(url, code) + "\n"

    monkeypatch.setattr("sys.stdin", Paste())
    args = _cli(["spotify", "login", "--config", str(_config_file(rig, tmp_path))])
    assert args.command(args) == 0
    assert "Logged in" in capsys.readouterr().out
    assert stat.S_IMODE(rig.settings.token_cache.stat().st_mode) == 0o600
