"""What the Spotify tests share: a fake clock, and a rig of the fake Spotify with a player
built to record its waits instead of sleeping them."""

from __future__ import annotations

from dataclasses import dataclass, field

from hub.config import SensorConfig, SpotifySection
from hub.model import Session, open_session
from hub.playback.spotify import SpotifyPlayer
from tests.fake_spotify import Device, FakeSpotify

# API requests as `FakeSpotify.api_calls()` lists them.
PLAY = "PUT /me/player/play"
PLAYER = "GET /me/player"
DEVICES = "GET /me/player/devices"
TRANSFER = "PUT /me/player"
PAUSE = "PUT /me/player/pause"
SHUFFLE = "PUT /me/player/shuffle"
VOLUME = "PUT /me/player/volume"
QUEUE = "GET /me/player/queue"

# Two rooms music follows you between (issue 15 item 4), each a sensor of its own: the
# bedroom's playlist, and the bathroom's own album and volume.
FOLLOW_PLAYLIST = "spotify:playlist:37i9dQZF1DXcBWIGoYBM5M"
FOLLOW_BEDROOM = SensorConfig(
    id="bedroom",
    user_id="u",
    spotify_device="Bedroom speaker",
    context_uri=FOLLOW_PLAYLIST,
    follow=True,
)
FOLLOW_BATHROOM = SensorConfig(
    id="bathroom",
    user_id="u",
    spotify_device="Bathroom speaker",
    context_uri="spotify:album:theBathroomsOwnAlbum00",
    volume=30,
    follow=True,
)


class Clock:
    def __init__(self) -> None:
        self.now = 10_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass(kw_only=True)
class SpotifyRig:
    fake: FakeSpotify
    settings: SpotifySection
    speaker: Device
    clock: Clock = field(default_factory=Clock)
    sleeps: list[float] = field(default_factory=list)
    sessions: int = 0

    def player(self, **options: float) -> SpotifyPlayer:
        """A player on the fake whose waits (retries, fades) are recorded, never slept."""

        async def sleep(seconds: float) -> None:
            self.sleeps.append(seconds)

        values: dict[str, float] = {"request_timeout": 2.0, "retry_delay": 0.0} | options
        return SpotifyPlayer(
            self.settings,
            client_secret=self.fake.client_secret,
            clock=self.clock,
            sleep=sleep,
            jitter=lambda _low, high: high,  # the longest wait, recorded, never slept
            request_timeout=values["request_timeout"],
            retry_delay=values["retry_delay"],
            device_ttl=values.get("device_ttl", 300.0),
            breaker_cooldown=values.get("breaker_cooldown", 60.0),
        )

    def session(self, sensor: SensorConfig) -> Session:
        self.sessions += 1
        return open_session(
            session_id=f"session-{sensor.id}-{self.sessions}",
            sensor_id=sensor.id,
            user_id=sensor.user_id,
            start=1_800_000_000.0,
            now=1_800_000_000.0,
            ttl_days=30,
            spotify_context_uri=sensor.context_uri or None,
        )
