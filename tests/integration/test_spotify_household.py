"""Issue 15 with real spotipy over HTTP to the fake Spotify (which checks every request
against the published description): never interrupt the household, resume where you left
off, volume before play, fewer round trips, errors people can act on, one lane per speaker.

The clock and every wait are injected: nothing sleeps for a 202's 5 s or a fade's steps.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import requests

from hub.config import HubConfig, SensorConfig, SessionsSection
from hub.model import MotionEvent, Session
from hub.playback.port import ResumePoint
from hub.sessions.engine import SessionEngine
from hub.sessions.runner import SessionRunner
from hub.store.playback import StoreMemory
from hub.store.writer import StoreWriter
from tests.fake_spotify import Device, FakeSpotify, Fault, Playback
from tests.spotify_rig import (
    DEVICES,
    PAUSE,
    PLAY,
    PLAYER,
    QUEUE,
    SHUFFLE,
    TRANSFER,
    VOLUME,
    SpotifyRig,
)

PLAYLIST = "spotify:playlist:37i9dQZF1DXcBWIGoYBM5M"
TRACKS = [f"spotify:track:{n}AbCdEfGhIjKlMnOpQrStU" for n in range(3)]
SHOW = "spotify:show:2mTUnDkuKUkhiueKcVWoP0"
EPISODES = [f"spotify:episode:{n}ZyXwVuTsRqPoNmLkJiHgF" for n in range(3)]


@dataclass(kw_only=True)
class Rig(SpotifyRig):
    phone: Device

    @property
    def token_cache(self) -> Path:
        return self.settings.token_cache


BATH = SensorConfig(id="bath", user_id="u", spotify_device="Bathroom speaker", context_uri=PLAYLIST)


def sensor(**changes: Any) -> SensorConfig:
    return replace(BATH, **changes)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    with FakeSpotify() as fake:
        fake.add_context(PLAYLIST, TRACKS)
        fake.add_context(SHOW, EPISODES)
        speaker = fake.add_device("Bathroom speaker")
        phone = fake.add_device("Alex's phone", type_="Smartphone")
        settings = fake.settings(tmp_path / "token.json")
        fake.write_token_cache(settings.token_cache)
        yield Rig(fake=fake, settings=settings, speaker=speaker, phone=phone)


@pytest.fixture
async def writer(tmp_path: Path) -> AsyncIterator[StoreWriter]:
    async with StoreWriter(tmp_path / "hub.db", ttl_days=30) as store:
        yield store


# --- 1. never interrupt the household -------------------------------------------------------


async def test_the_account_playing_on_a_phone_means_no_start(rig: Rig) -> None:
    rig.fake.set_playing(rig.phone.id, "spotify:album:theirs")
    player = rig.player()
    bath = sensor()
    session = rig.session(bath)

    result = await player.start(session, bath)

    assert (result.started, result.note, result.device_id) == (False, "account_busy", rig.phone.id)
    assert rig.fake.api_calls() == [PLAYER, DEVICES]  # the list only to resolve the name
    assert rig.fake.playback.device_id == rig.phone.id
    assert rig.fake.playback.is_playing  # the phone plays on
    assert await player.stop(session, bath) is False
    assert PAUSE not in rig.fake.api_calls()


async def test_a_private_session_hidden_behind_a_204_means_no_start(rig: Rig) -> None:
    rig.fake.set_playing(rig.speaker.id, "spotify:album:private")
    rig.speaker.is_private_session = True
    bath = sensor()

    result = await rig.player().start(rig.session(bath), bath)

    assert (result.started, result.note, result.device_id) == (
        False,
        "private_session",
        rig.speaker.id,
    )
    assert rig.fake.api_calls() == [PLAYER, DEVICES]  # 204, so the list tells
    assert rig.fake.playback.context_uri == "spotify:album:private"


async def test_a_restricted_speaker_means_no_start(rig: Rig) -> None:
    rig.fake.set_playing(rig.speaker.id, PLAYLIST, is_playing=False)
    rig.speaker.is_restricted = True
    bath = sensor()

    result = await rig.player().start(rig.session(bath), bath)

    assert (result.started, result.note) == (False, "restricted")
    assert PLAY not in rig.fake.api_calls()


async def test_an_episode_the_hub_started_is_recognised_and_paused_at_the_end(rig: Rig) -> None:
    player = rig.player()
    bath = sensor(context_uri=EPISODES[1], resume=False)
    session = rig.session(bath)
    assert (await player.start(session, bath)).started

    assert await player.stop(session, bath) is True

    assert not rig.fake.playback.is_playing
    gets = rig.fake.calls("GET", "/v1/me/player")
    assert {g.query["additional_types"] for g in gets} == {"track,episode"}


async def test_a_show_the_hub_started_is_paused_at_the_end(rig: Rig) -> None:
    player = rig.player()
    bath = sensor(context_uri=SHOW)
    session = rig.session(bath)
    assert (await player.start(session, bath)).started

    assert await player.stop(session, bath) is True
    assert not rig.fake.playback.is_playing


# --- 2. resume where you left off -----------------------------------------------------------


async def test_a_show_resumes_at_the_kept_episode_and_position_after_a_restart(
    rig: Rig, writer: StoreWriter
) -> None:
    bath = sensor(context_uri=SHOW)  # resume: on by default for shows
    player = rig.player()
    await player.load_memory(StoreMemory(writer))
    first = rig.session(bath)
    assert (await player.start(first, bath)).started
    assert rig.fake.calls("PUT", "/v1/me/player/play")[0].body == {"context_uri": SHOW}
    rig.fake.playback.item_uri = EPISODES[1]  # listened on into the next episode …
    rig.fake.playback.progress_ms = 754_000  # … 12:34 in
    assert await player.stop(first, bath) is True
    assert QUEUE not in rig.fake.api_calls()  # an episode keeps its own place

    restarted = rig.player()  # the hub restarted: only SQLite remembers
    await restarted.load_memory(StoreMemory(writer))
    rig.fake.reset_log()
    assert (await restarted.start(rig.session(bath), bath)).started

    play = rig.fake.calls("PUT", "/v1/me/player/play")[0]
    assert play.body == {
        "context_uri": SHOW,
        "offset": {"uri": EPISODES[1]},
        "position_ms": 754_000,
    }
    assert (rig.fake.playback.item_uri, rig.fake.playback.progress_ms) == (EPISODES[1], 754_000)


async def test_a_playlist_with_resume_continues_with_the_next_track(rig: Rig) -> None:
    bath = sensor(resume=True)
    player = rig.player()
    first = rig.session(bath)
    assert (await player.start(first, bath)).started
    assert rig.fake.playback.item_uri == TRACKS[0]
    rig.fake.playback.progress_ms = 100_000

    assert await player.stop(first, bath) is True
    assert rig.fake.api_calls()[-1] == QUEUE  # after the pause: what comes next

    rig.fake.reset_log()
    assert (await player.start(rig.session(bath), bath)).started
    play = rig.fake.calls("PUT", "/v1/me/player/play")[0]
    assert play.body == {"context_uri": PLAYLIST, "offset": {"uri": TRACKS[1]}, "position_ms": 0}


async def test_a_resume_point_the_context_no_longer_has_is_dropped_and_play_starts_afresh(
    rig: Rig, writer: StoreWriter
) -> None:
    memory = StoreMemory(writer)
    gone = ResumePoint(SHOW, "spotify:episode:removedFromTheShow0000", 1_000)
    await memory.keep_resume("bath", SHOW, gone)
    player = rig.player()
    await player.load_memory(memory)
    bath = sensor(context_uri=SHOW)

    assert (await player.start(rig.session(bath), bath)).started

    assert rig.fake.calls("PUT", "/v1/me/player/play")[-1].body == {"context_uri": SHOW}
    assert rig.fake.playback.item_uri == EPISODES[0]
    assert (await memory.load()).resume_points == {}


async def test_a_playlist_without_resume_starts_afresh_and_keeps_nothing(rig: Rig) -> None:
    bath = sensor()
    player = rig.player()
    first = rig.session(bath)
    await player.start(first, bath)
    await player.stop(first, bath)
    assert QUEUE not in rig.fake.api_calls()

    rig.fake.reset_log()
    await player.start(rig.session(bath), bath)
    assert rig.fake.calls("PUT", "/v1/me/player/play")[0].body == {"context_uri": PLAYLIST}


async def test_resume_points_are_kept_per_room_and_context(writer: StoreWriter) -> None:
    memory = StoreMemory(writer)
    point = ResumePoint(SHOW, EPISODES[2], 5_000)
    await memory.keep_resume("bath", SHOW, point)
    await memory.keep_resume("hall", SHOW, ResumePoint(SHOW, EPISODES[0], 1))
    await memory.keep_resume("hall", SHOW, None)  # forgotten
    await memory.keep_device("bathroom speaker", "a" * 40)

    remembered = await memory.load()
    assert remembered.resume_points == {("bath", SHOW): point}
    assert remembered.device_ids == {"bathroom speaker": "a" * 40}


# --- 3. volume before play, shuffle only when configured -----------------------------------


async def test_the_volume_is_set_before_the_play_and_shuffle_is_not_sent_unconfigured(
    rig: Rig,
) -> None:
    bath = sensor(volume=10)
    player = rig.player()

    assert (await player.start(rig.session(bath), bath)).started

    calls = rig.fake.api_calls()
    assert calls.index(VOLUME) < calls.index(PLAY)
    assert SHUFFLE not in calls
    assert rig.speaker.volume_percent == 10


async def test_shuffle_is_sent_when_configured_either_way(rig: Rig) -> None:
    bath = sensor(shuffle=False)
    assert (await rig.player().start(rig.session(bath), bath)).started
    assert rig.fake.calls("PUT", "/v1/me/player/shuffle")[0].query["state"] == "false"


async def test_a_device_without_volume_support_gets_no_volume_call(rig: Rig) -> None:
    rig.speaker.supports_volume = False
    bath = sensor(volume=30)
    assert (await rig.player().start(rig.session(bath), bath)).started
    assert VOLUME not in rig.fake.api_calls()


async def test_a_fade_in_starts_low_before_the_play_and_rises_in_five_steps(rig: Rig) -> None:
    bath = sensor(volume=40, fade_in_seconds=10)
    player = rig.player()
    session = rig.session(bath)

    assert (await player.start(session, bath)).started
    await asyncio.gather(*player._fades.values())

    volumes = [
        int(c.query["volume_percent"]) for c in rig.fake.calls("PUT", "/v1/me/player/volume")
    ]
    assert volumes == [8, 16, 24, 32, 40]
    calls = rig.fake.api_calls()
    assert calls.index(VOLUME) < calls.index(PLAY)
    assert rig.sleeps == [2.5] * 4


async def test_stopping_cancels_a_fade_in_still_rising(rig: Rig) -> None:
    bath = sensor(volume=40, fade_in_seconds=10)
    player = rig.player()
    hold = asyncio.Event()

    async def slow_sleep(_seconds: float) -> None:
        await hold.wait()

    player._sleep = slow_sleep
    session = rig.session(bath)
    assert (await player.start(session, bath)).started
    fade = player._fades[session.session_id]

    assert await player.stop(session, bath) is True
    await asyncio.sleep(0)
    assert fade.cancelled()
    assert rig.fake.calls("PUT", "/v1/me/player/volume")[-1].query["volume_percent"] == "8"


# --- 5. fewer round trips -------------------------------------------------------------------


async def test_a_speaker_asleep_at_hub_start_is_found_by_its_persisted_id(
    rig: Rig, writer: StoreWriter
) -> None:
    bath = sensor()
    before = rig.player()
    await before.load_memory(StoreMemory(writer))
    await before.warm_up()  # lists the devices: learns and keeps the speaker's id
    rig.fake.sleep_device(rig.speaker.id)

    after = rig.player()  # the hub restarts while the speaker sleeps
    await after.load_memory(StoreMemory(writer))
    await after.warm_up()
    rig.fake.reset_log()
    result = await after.start(rig.session(bath), bath)

    assert (result.started, result.device_id) == (True, rig.speaker.id)
    assert rig.fake.api_calls() == [PLAYER, DEVICES, TRANSFER, PLAY]


async def test_after_a_restart_motion_to_play_is_two_requests(
    rig: Rig, writer: StoreWriter
) -> None:
    rig.fake.set_playing(rig.speaker.id, PLAYLIST, is_playing=False)  # paused last night
    bath = sensor()
    first = rig.player()
    await first.load_memory(StoreMemory(writer))
    await first.warm_up()

    restarted = rig.player()  # no warm-up at all: the id comes from SQLite
    await restarted.load_memory(StoreMemory(writer))
    rig.fake.reset_log()
    assert (await restarted.start(rig.session(bath), bath)).started
    assert rig.fake.api_calls() == [PLAYER, PLAY]


async def test_the_token_is_refreshed_ahead_of_expiry_so_motion_after_hours_costs_two(
    rig: Rig,
) -> None:
    rig.fake.set_playing(rig.speaker.id, PLAYLIST, is_playing=False)
    token = rig.fake.issue_token()
    token["expires_at"] = int(time.time()) + 120  # inside the 5-minute refresh margin
    rig.token_cache.write_text(json.dumps(token), encoding="utf-8")
    bath = sensor()
    player = rig.player()
    await player.warm_up()  # the device list (the token was still good for it)
    rig.fake.reset_log()

    wait = await player.refresh_ahead()  # one step of the background task

    assert [r.path for r in rig.fake.requests] == ["/api/token"]
    assert 3000 < wait < 3600  # next look: an hour's token, less the margin
    rig.fake.reset_log()
    assert (await player.start(rig.session(bath), bath)).started
    assert rig.fake.api_calls() == [PLAYER, PLAY]
    assert not rig.fake.calls("POST", "/api/token")


async def test_when_the_account_was_idle_the_device_list_goes_beside_get_me_player(
    rig: Rig,
) -> None:
    rig.fake.latency = 0.05  # a real round trip, so overlapping is visible
    bath = sensor()
    player = rig.player()
    first = rig.session(bath)
    await player.start(first, bath)  # nothing active: 204, then the list
    await player.stop(first, bath)
    rig.fake.playback = Playback()  # the account went idle again
    rig.fake.reset_log()

    assert (await player.start(rig.session(bath), bath)).started

    assert sorted(rig.fake.api_calls()[:2]) == [PLAYER, DEVICES]
    get, _, play = rig.fake.calls()[:3]
    assert play.at - get.at < 0.09  # one round trip before the play, not two


# --- 6. errors people can act on ------------------------------------------------------------


async def test_quota_exceeded_is_told_apart_from_a_plain_rate_limit(rig: Rig) -> None:
    rig.fake.fail("GET", "/v1/me/player", Fault.quota_exceeded(7200))
    bath = sensor()
    player = rig.player()

    result = await player.start(rig.session(bath), bath)

    assert (result.started, result.note) == (False, "quota_exceeded")
    assert player.status() == "Spotify app quota exceeded (development mode) for 2.0 h"
    assert rig.sleeps == []

    rig.clock.advance(7201)
    rig.fake.fail("GET", "/v1/me/player", Fault.rate_limited(60))
    assert (await player.start(rig.session(bath), bath)).note == "rate_limited"
    assert player.status() == "Spotify rate-limited for 60 s"


def test_the_fake_refuses_a_request_the_description_does_not_allow(tmp_path: Path) -> None:
    fake = FakeSpotify().start()
    token = fake.write_token_cache(tmp_path / "token.json")
    answer = requests.put(
        f"{fake.api_url}me/player/volume",  # volume_percent is required
        headers={"Authorization": f"Bearer {token['access_token']}"},
        timeout=5,
    )
    assert answer.status_code == 400
    with pytest.raises(AssertionError, match="volume_percent"):
        fake.close()


# --- one lane per speaker -------------------------------------------------------------------


async def test_a_hung_speaker_never_delays_another_rooms_play(
    rig: Rig, writer: StoreWriter
) -> None:
    hall = rig.fake.add_device("Hall speaker")
    config = HubConfig(
        sessions=SessionsSection(timeout_minutes=5),
        sensors=(
            sensor(),
            sensor(id="hall", spotify_device="Hall speaker"),
        ),
    )
    player = rig.player()
    await player.warm_up()
    rig.fake.fail("PUT", "/v1/me/player/play", Fault.slow(30.0))  # the bathroom's play hangs
    now = time.time()
    runner = SessionRunner(SessionEngine(config), writer, player, clock=lambda: now)
    task = asyncio.create_task(runner.run())
    try:
        await runner.inbox.put(MotionEvent("bath", occurred_at=now, received_at=now))
        async with asyncio.timeout(5):
            while not rig.fake.calls("GET", "/v1/me/player"):  # noqa: ASYNC110 - the fake's log
                await asyncio.sleep(0.001)
            await asyncio.sleep(0.05)  # the bathroom's PUT play is now held by the fake

        began = time.monotonic()
        await runner.inbox.put(MotionEvent("hall", occurred_at=now, received_at=now))
        played = await asyncio.to_thread(rig.fake.wait_for_request, "PUT", "/v1/me/player/play")
        assert time.monotonic() - began < 1.0
        assert played.query == {"device_id": hall.id}
    finally:
        rig.fake.release()
        runner.finish(pause_active=False)
        await asyncio.wait_for(task, 10)


async def test_a_session_that_did_not_start_music_records_why_and_where(
    rig: Rig, writer: StoreWriter
) -> None:
    rig.fake.set_playing(rig.phone.id, "spotify:album:theirs")
    config = HubConfig(sessions=SessionsSection(timeout_minutes=5), sensors=(sensor(),))
    saved: asyncio.Queue[Session] = asyncio.Queue()
    now = time.time()
    runner = SessionRunner(
        SessionEngine(config), writer, rig.player(), clock=lambda: now, on_session=saved.put_nowait
    )
    task = asyncio.create_task(runner.run())
    try:
        await runner.inbox.put(MotionEvent("bath", occurred_at=now, received_at=now))
        async with asyncio.timeout(5):
            created = await saved.get()
            answered = await saved.get()
    finally:
        runner.finish(pause_active=False)
        await asyncio.wait_for(task, 10)

    assert created.playback_note is None  # asked to play
    assert (answered.playback_started, answered.playback_note, answered.spotify_device_id) == (
        False,
        "account_busy",
        rig.phone.id,
    )
