"""Player start → `PUT /me/player/play` received by the fake Spotify, device cache warm.

The issue's figure is motion published → play received; this is the player's share of
it (the daemon bench measures the rest). Real spotipy over loopback HTTP, the player's
thread hop and policy included. The baseline is a bare `requests` PUT to the same fake
server on a kept-alive connection: the floor no player code can remove.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import requests

from hub.config import SensorConfig
from hub.model import open_session
from hub.playback.spotify import SpotifyPlayer
from tests.bench._dataset import Dataset
from tests.bench._report import Figure, Samples
from tests.fake_spotify import FakeSpotify

ORDER = 4
TITLE = "Spotify player: start → PUT /me/player/play received (fake Spotify, loopback)"

P50_TARGET_MS = 15.0
P99_TARGET_MS = 50.0
WARMUP, RUNS = 20, 300
CONTEXT = "spotify:playlist:37i9dQZF1DXcBWIGoYBM5M"


async def _measure(fake: FakeSpotify, player: SpotifyPlayer, sensor: SensorConfig) -> list[float]:
    samples: list[float] = []
    for index in range(WARMUP + RUNS):
        fake.playback.is_playing = False  # so the next session is not "already playing"
        session = open_session(
            session_id=f"session-bench-{index}",
            sensor_id=sensor.id,
            user_id=sensor.user_id,
            start=0.0,
            now=0.0,
            ttl_days=1,
        )
        fake.reset_log()
        began = time.perf_counter()
        result = await player.start(session, sensor)
        if not result.started:
            raise RuntimeError(f"the bench's start did not play: {result.note}")
        play = fake.calls("PUT", "/v1/me/player/play")[0]
        if index >= WARMUP:
            samples.append((play.at - began) * 1000)
    return samples


def bare_put(fake: FakeSpotify, token: str) -> list[float]:
    """The floor: a bare `requests` PUT play → received by the fake, in ms."""
    device = next(iter(fake.devices))
    url = f"{fake.api_url}me/player/play?device_id={device}"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    samples: list[float] = []
    with requests.Session() as session:
        for index in range(WARMUP + RUNS):
            fake.reset_log()
            began = time.perf_counter()
            session.put(url, data=b'{"context_uri": "%s"}' % CONTEXT.encode(), headers=headers)
            if index >= WARMUP:
                samples.append((fake.calls("PUT", "/v1/me/player/play")[0].at - began) * 1000)
    return samples


def run(dataset: Dataset) -> list[Figure]:
    with FakeSpotify() as fake, tempfile.TemporaryDirectory(prefix="bench-spotify-") as tmp:
        fake.add_device("Bathroom speaker")
        settings = fake.settings(Path(tmp) / "token.json")
        token = fake.write_token_cache(settings.token_cache)
        sensor = SensorConfig(
            id="bench", user_id="u", spotify_device="Bathroom speaker", context_uri=CONTEXT
        )
        player = SpotifyPlayer(settings, client_secret=fake.client_secret)
        start = Samples(
            "player start → PUT play received (cache warm)",
            tuple(asyncio.run(_measure(fake, player, sensor))),
        )
        floor = Samples(
            "bare requests PUT → received (baseline)",
            tuple(bare_put(fake, str(token["access_token"]))),
        )
    print(start.line())
    print(floor.line())
    print("  common path per start: GET /me/player (no-hijack check) + PUT play;")
    print("  no volume or shuffle configured here (a volume would go before the play)")
    return [
        Figure("spotify start → play received p50", start.p50, P50_TARGET_MS, floor.p50),
        Figure("spotify start → play received p99", start.p99, P99_TARGET_MS, floor.p99),
    ]
