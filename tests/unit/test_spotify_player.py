"""The Spotify player's pure parts: URIs, device matching, ownership, Retry-After, the
breaker, the token file, the player choice. HTTP paths: tests/integration/test_spotify.py."""

from __future__ import annotations

import json
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from hub.config import HubConfig, SensorConfig, SpotifySection
from hub.model import open_session
from hub.playback.dry_run import DryRunPlayer
from hub.playback.port import ResumePoint
from hub.playback.spotify import (
    Breaker,
    SpotifyPlayer,
    TokenStore,
    endpoint,
    fade_levels,
    looks_like_device_id,
    make_player,
    match_device,
    parse_retry_after,
    play_body,
    plays_ours,
    resumes_by_default,
    to_uri,
    why_not_start,
    why_not_start_listed,
)

DEVICE = "a" * 40
FAKE_SECRET = "fake-" + secrets.token_hex(8)
DEVICES = [
    {"id": DEVICE, "name": "Bathroom speaker", "type": "Speaker", "is_active": False},
    {"id": "b" * 40, "name": "Kitchen", "type": "Speaker", "is_active": True},
]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("", None),
        (None, None),
        ("spotify:playlist:37i9dQZF1DXcBWIGoYBM5M", "spotify:playlist:37i9dQZF1DXcBWIGoYBM5M"),
        (
            "https://open.spotify.com/album/1DFixLWuPkv3KT3TnV35m3?si=abc",
            "spotify:album:1DFixLWuPkv3KT3TnV35m3",
        ),
        (
            "https://open.spotify.com/intl-de/track/4uLU6hMCjMI75M1A2tKUQC",
            "spotify:track:4uLU6hMCjMI75M1A2tKUQC",
        ),
    ],
)
def test_to_uri(given: str | None, expected: str | None) -> None:
    assert to_uri(given) == expected


def test_play_body() -> None:
    assert play_body(None) == {}
    assert play_body("spotify:playlist:x") == {"context_uri": "spotify:playlist:x"}
    assert play_body("spotify:track:x") == {"uris": ["spotify:track:x"]}
    assert play_body("spotify:episode:x") == {"uris": ["spotify:episode:x"]}


def test_play_body_resumes_at_the_kept_item_and_position() -> None:
    point = ResumePoint("spotify:show:s", "spotify:episode:e2", 61_000)
    assert play_body("spotify:show:s", point) == {
        "context_uri": "spotify:show:s",
        "offset": {"uri": "spotify:episode:e2"},
        "position_ms": 61_000,
    }
    single = ResumePoint("spotify:episode:e2", "spotify:episode:e2", 5_000)
    assert play_body("spotify:episode:e2", single) == {
        "uris": ["spotify:episode:e2"],
        "position_ms": 5_000,
    }


def test_spoken_word_resumes_by_default_music_does_not() -> None:
    assert resumes_by_default("spotify:show:s")
    assert resumes_by_default("spotify:episode:e")
    assert resumes_by_default("spotify:audiobook:a")
    assert not resumes_by_default("spotify:playlist:p")
    assert not resumes_by_default(None)


def test_fade_levels_reach_the_volume_in_at_most_five_steps() -> None:
    assert fade_levels(40, 0) == [40]
    assert fade_levels(40, 10) == [8, 16, 24, 32, 40]
    assert fade_levels(3, 10) == [1, 2, 3]
    assert fade_levels(0, 10) == [0]


def test_match_device_by_id_then_by_name_case_insensitively() -> None:
    assert match_device(DEVICES, DEVICE) == DEVICES[0]
    assert match_device(DEVICES, "  bathroom SPEAKER ") == DEVICES[0]
    assert match_device(DEVICES, "Attic") is None
    assert looks_like_device_id(DEVICE)
    assert not looks_like_device_id("Bathroom speaker")


def test_ownership_needs_the_device_playing_our_context_or_track() -> None:
    current = {
        "device": {"id": DEVICE},
        "is_playing": True,
        "context": {"uri": "spotify:playlist:x"},
        "item": {"uri": "spotify:track:t"},
    }
    assert plays_ours(current, DEVICE, "spotify:playlist:x")
    assert plays_ours(current, DEVICE, "spotify:track:t")
    assert plays_ours(current, DEVICE, None)
    assert not plays_ours(current, DEVICE, "spotify:album:other")
    assert not plays_ours(current, "c" * 40, "spotify:playlist:x")
    assert not plays_ours(current | {"is_playing": False}, DEVICE, "spotify:playlist:x")
    assert not plays_ours(None, DEVICE, None)  # 204: nothing plays anywhere


def test_why_not_start_from_the_playback_state() -> None:
    phone = "p" * 40
    idle = {"device": {"id": DEVICE}, "is_playing": False}
    assert why_not_start(None, DEVICE) is None
    assert why_not_start(idle, DEVICE) is None
    assert why_not_start({"device": {"id": phone}, "is_playing": True}, DEVICE) == (
        "account_busy",
        phone,
    )
    assert why_not_start(idle | {"is_playing": True}, DEVICE) == ("already_playing", DEVICE)
    private = {"device": {"id": DEVICE, "is_private_session": True}, "is_playing": False}
    assert why_not_start(private, DEVICE) == ("private_session", DEVICE)
    restricted = {"device": {"id": DEVICE, "is_restricted": True}, "is_playing": False}
    assert why_not_start(restricted, DEVICE) == ("restricted", DEVICE)
    # Another device, paused, in a private session: not ours to worry about.
    other = {"device": {"id": phone, "is_private_session": True}, "is_playing": False}
    assert why_not_start(other, DEVICE) is None


def test_why_not_start_from_the_device_list_after_a_204() -> None:
    assert why_not_start_listed(DEVICES, DEVICE) is None
    private = [DEVICES[0], DEVICES[1] | {"is_private_session": True}]
    assert why_not_start_listed(private, DEVICE) == ("private_session", "b" * 40)
    restricted = [DEVICES[0] | {"is_restricted": True}, DEVICES[1]]
    assert why_not_start_listed(restricted, DEVICE) == ("restricted", DEVICE)


def test_parse_retry_after() -> None:
    assert parse_retry_after("3600", 30.0) == 3600.0
    assert parse_retry_after(None, 30.0) == 30.0
    assert parse_retry_after("soon", 30.0) == 30.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 30.0) == 0.0  # in the past


def test_endpoint_joins_with_or_without_a_trailing_slash() -> None:
    assert endpoint("https://accounts.spotify.com/", "api/token") == (
        "https://accounts.spotify.com/api/token"
    )
    assert endpoint("http://127.0.0.1:9/base", "authorize") == "http://127.0.0.1:9/base/authorize"


def test_breaker_opens_after_the_threshold_and_half_opens_after_the_cooldown() -> None:
    breaker = Breaker(threshold=3, cooldown=60.0)
    assert not breaker.failure(0.0)
    assert not breaker.failure(1.0)
    assert breaker.failure(2.0)
    assert not breaker.allow(61.9)
    assert breaker.allow(62.0)  # one trial
    assert breaker.failure(62.0)  # fails: open again
    assert not breaker.allow(100.0)
    breaker.success()
    assert breaker.allow(100.0)
    assert breaker.failures == 0


def test_token_store_writes_0600_atomically_in_spotipys_format(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "state" / "token.json")
    assert store.load() is None
    assert not store.usable()
    token = {"access_token": "fake-a", "refresh_token": "fake-r", "expires_at": 1, "scope": "s"}
    store.save(token)
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert json.loads(store.path.read_text(encoding="utf-8")) == token
    assert store.usable()
    assert [p.name for p in store.path.parent.iterdir()] == ["token.json"]  # no temp left
    store.path.write_text("{not json", encoding="utf-8")
    assert store.load() is None


def test_a_player_without_secret_or_token_says_so_without_network(tmp_path: Path) -> None:
    settings = SpotifySection(client_id="fake-id", token_cache=tmp_path / "none.json")
    no_secret = SpotifyPlayer(settings, client_secret=None)
    assert no_secret.status() == "Spotify client secret missing"
    no_token = SpotifyPlayer(settings, client_secret=FAKE_SECRET)
    assert no_token.login_needed
    assert no_token.status() == "Spotify login needed"


async def test_refusals_without_network(tmp_path: Path) -> None:
    settings = SpotifySection(client_id="fake-id", token_cache=tmp_path / "none.json")
    sensor = SensorConfig(id="s", user_id="u", spotify_device="Speaker")
    session = open_session(
        session_id="session-s-1", sensor_id="s", user_id="u", start=0.0, now=0.0, ttl_days=1
    )
    result = await SpotifyPlayer(settings, client_secret=None).start(session, sensor)
    assert (result.started, result.note) == (False, "no_client_secret")
    result = await SpotifyPlayer(settings, client_secret=FAKE_SECRET).start(session, sensor)
    assert (result.started, result.note) == (False, "login_needed")
    assert await SpotifyPlayer(settings, client_secret=FAKE_SECRET).stop(session, sensor) is False


def test_make_player_picks_dry_run_or_spotify(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPOTIFY_CLIENT_SECRET", "fake-secret")
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    cache = tmp_path / "token.json"
    assert isinstance(make_player(HubConfig()), DryRunPlayer)  # no client id
    dry = HubConfig(spotify=SpotifySection(client_id="fake-id", dry_run=True, token_cache=cache))
    assert isinstance(make_player(dry), DryRunPlayer)
    real = HubConfig(spotify=SpotifySection(client_id="fake-id", token_cache=cache))
    player = make_player(real)
    assert isinstance(player, SpotifyPlayer)
    assert player.login_needed  # no token yet, and no prompt


def test_spotipy_is_not_imported_to_build_a_player(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from hub.config import SpotifySection;"
        "from hub.playback.spotify import SpotifyPlayer;"
        f"SpotifyPlayer(SpotifySection(client_id='x', token_cache=Path({str(tmp_path)!r})/'t'),"
        " client_secret='y');"
        "print('spotipy' in sys.modules, 'requests' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
