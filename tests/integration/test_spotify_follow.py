"""Music that follows you (issue 15 item 4) end to end: the session runner and engine on an
injected clock, real spotipy over HTTP to the fake Spotify, which checks every request
(the transfer's body too) against the published description and moves the account's
playback as documented."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from hub.config import HubConfig, HubSection, SessionsSection
from hub.model import EndReason, MotionEvent, Session
from hub.sessions.engine import SessionEngine
from hub.sessions.runner import SessionRunner
from hub.store.writer import StoreWriter
from tests.fake_spotify import Device, FakeSpotify
from tests.spotify_rig import (
    FOLLOW_BATHROOM,
    FOLLOW_BEDROOM,
    FOLLOW_PLAYLIST,
    PAUSE,
    PLAY,
    PLAYER,
    TRANSFER,
    VOLUME,
    SpotifyRig,
)

TRACKS = [f"spotify:track:{n}AbCdEfGhIjKlMnOpQrStU" for n in range(3)]
BEDROOM, BATHROOM, PLAYLIST = FOLLOW_BEDROOM, FOLLOW_BATHROOM, FOLLOW_PLAYLIST
CONFIG = HubConfig(
    hub=HubSection(timezone="UTC"),
    sessions=SessionsSection(timeout_minutes=5),
    sensors=(BEDROOM, BATHROOM),
)


class Home:
    """The runner on a clock the test moves, the fake's two speakers, and the sessions as
    last published."""

    def __init__(self, rig: SpotifyRig, bathroom: Device, writer: StoreWriter) -> None:
        self.rig = rig
        self.fake = rig.fake
        self.bedroom = rig.speaker
        self.bathroom = bathroom
        self.now = self.start = float(int(time.time()))  # on the records' grid
        self.sessions: dict[str, Session] = {}
        self.runner = SessionRunner(
            SessionEngine(CONFIG),
            writer,
            rig.player(),
            clock=lambda: self.now,
            on_session=self._published,
        )

    def playing(self, room: str) -> bool:
        return room in self.sessions and self.sessions[room].playback_started is True

    def _published(self, session: Session) -> None:
        self.sessions[session.sensor_id] = session

    async def motion(self, sensor_id: str, after: float) -> None:
        """Motion `after` seconds from the start (the clock moves there first)."""
        self.at(after)
        await self.runner.inbox.put(
            MotionEvent(sensor_id, occurred_at=self.now, received_at=self.now)
        )

    def at(self, after: float) -> None:
        self.now = self.start + after
        self.runner.poke()

    async def until(self, check: Callable[[], bool]) -> None:
        async with asyncio.timeout(5):
            while not check():  # noqa: ASYNC110 - the fake's log and the published sessions
                await asyncio.sleep(0.005)

    async def settle(self) -> None:
        """Let every turn and player call now due finish (nothing is due later)."""
        await asyncio.sleep(0.3)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[SpotifyRig]:
    with FakeSpotify() as fake:
        fake.add_context(PLAYLIST, TRACKS)
        speaker = fake.add_device("Bedroom speaker")
        settings = fake.settings(tmp_path / "token.json")
        fake.write_token_cache(settings.token_cache)
        yield SpotifyRig(fake=fake, settings=settings, speaker=speaker)


@pytest.fixture
async def home(rig: SpotifyRig, tmp_path: Path) -> AsyncIterator[Home]:
    bathroom = rig.fake.add_device("Bathroom speaker")
    async with StoreWriter(tmp_path / "hub.db", ttl_days=30) as writer:
        home = Home(rig, bathroom, writer)
        task = asyncio.create_task(home.runner.run())
        try:
            yield home
        finally:
            home.runner.finish(pause_active=False)
            await asyncio.wait_for(task, 10)


async def playing_in_the_bedroom(home: Home) -> None:
    await home.motion("bedroom", 0)
    await home.until(lambda: home.playing("bedroom"))
    assert home.fake.playback.device_id == home.bedroom.id
    home.fake.playback.item_uri = TRACKS[1]  # listened on into the second track …
    home.fake.playback.progress_ms = 61_000  # … a minute in
    home.fake.reset_log()


async def test_the_music_moves_to_the_bathroom_and_the_bedrooms_end_leaves_it_playing(
    home: Home,
) -> None:
    await playing_in_the_bedroom(home)

    await home.motion("bathroom", 30)  # the bedroom has been quiet for 30 s
    await home.until(lambda: home.playing("bathroom"))

    assert home.fake.api_calls() == [PLAYER, VOLUME, TRANSFER]  # no play of its own album
    [transfer] = home.fake.calls("PUT", "/v1/me/player")
    assert transfer.body == {"device_ids": [home.bathroom.id], "play": True}
    playback = home.fake.playback
    assert (playback.device_id, playback.context_uri, playback.item_uri) == (
        home.bathroom.id,
        PLAYLIST,
        TRACKS[1],
    )
    assert (playback.is_playing, playback.progress_ms) == (True, 61_000)  # the same place
    assert home.bathroom.volume_percent == 30
    await home.until(lambda: home.sessions["bedroom"].playback_note == "moved_away")
    bath, bed = home.sessions["bathroom"], home.sessions["bedroom"]
    assert (bath.playback_note, bath.spotify_device_id, bath.spotify_context_uri) == (
        "moved",
        home.bathroom.id,
        PLAYLIST,
    )
    assert "player: moved here from bedroom" in bath.decisions[-1].detail
    assert "its music moved to bathroom" in bed.decisions[-1].detail

    home.fake.reset_log()
    home.at(300)  # the bedroom's timeout: it ends as usual, and pauses nothing
    await home.until(lambda: not home.sessions["bedroom"].is_active)
    await home.settle()
    assert home.sessions["bedroom"].end_reason is EndReason.TIMEOUT
    assert PAUSE not in home.fake.api_calls()
    assert home.fake.playback.is_playing

    home.at(330)  # the bathroom's: the music it took is paused there
    await home.until(lambda: home.sessions["bathroom"].playback_stopped is True)
    assert home.fake.calls("PUT", "/v1/me/player/pause")[-1].query == {
        "device_id": home.bathroom.id
    }
    assert not home.fake.playback.is_playing


async def test_walking_back_and_forth_does_not_flap_the_music(home: Home) -> None:
    await playing_in_the_bedroom(home)

    await home.motion("bathroom", 5)  # passing by: the bedroom saw motion 5 s ago
    await home.settle()
    assert home.fake.api_calls() == []  # waits; its own album would only be account_busy
    await home.motion("bedroom", 12)  # back in the bedroom
    await home.settle()  # (decided at 12 s, before the clock moves on)
    home.at(60)  # long past 20 s since the bathroom's motion, but the bedroom saw one since
    await home.settle()
    assert home.fake.api_calls() == []
    assert home.fake.playback.device_id == home.bedroom.id

    await home.motion("bathroom", 65)  # in the bathroom after all; the bedroom quiet 53 s
    await home.until(lambda: TRANSFER in home.fake.api_calls())
    await home.until(lambda: home.playing("bathroom"))
    assert home.fake.playback.device_id == home.bathroom.id
    assert PLAY not in home.fake.api_calls()


async def test_music_paused_by_a_person_is_not_moved_and_the_room_plays_its_own(
    home: Home,
) -> None:
    await playing_in_the_bedroom(home)
    home.fake.playback.is_playing = False  # someone paused it on the bedroom speaker

    await home.motion("bathroom", 30)
    await home.until(lambda: home.sessions.get("bathroom") is not None)
    await home.until(lambda: home.sessions["bathroom"].playback_note == "started")

    assert TRANSFER not in home.fake.api_calls()
    assert home.fake.playback.device_id == home.bathroom.id
    assert home.fake.playback.context_uri == BATHROOM.context_uri
    assert any(
        d.detail == "player: did not move (not_playing_there)"
        for d in home.sessions["bathroom"].decisions
    )
