"""Motion published → `PUT /me/player/play` received by the fake Spotify, end to end.

The issue-4 figure: a real mosquitto on loopback, the daemon in-process with the real
Spotify player (spotipy over HTTP) against the fake Spotify Web API, the device cache warm.
Every sample is a motion from a sensor with no session, so each one starts music. The
baseline, in the same run: the same publish reaching a bare aiomqtt subscriber, plus a bare
`requests` PUT to the same fake server — the floor of MQTT plus one HTTP call.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import aiomqtt

from hub.config import HubConfig, HubSection, MqttSection, SensorConfig
from hub.daemon import Daemon
from hub.ingest.mqtt_decode import encode_seed_motion
from hub.playback.spotify import SpotifyPlayer
from hub.systemd import Notifier
from tests.bench._dataset import Dataset
from tests.bench._report import Figure, Samples
from tests.bench.bench_spotify import bare_put
from tests.broker import Broker
from tests.fake_spotify import FakeSpotify

ORDER = 5
TITLE = "Motion published → PUT /me/player/play received (mosquitto, daemon, fake Spotify)"

P50_TARGET_MS = 15.0
P99_TARGET_MS = 50.0
WARMUP, RUNS = 20, 200
PAUSE = 0.005  # between samples: each motion meets an idle hub
CONTEXT = "spotify:playlist:37i9dQZF1DXcBWIGoYBM5M"
DEVICE = "Bathroom speaker"
HOST = "127.0.0.1"


def run(dataset: Dataset) -> list[Figure]:
    del dataset
    with (
        tempfile.TemporaryDirectory(prefix="bench-play-") as tmp,
        Broker(Path(tmp) / "mosquitto", "max_queued_messages 0\n", logging=False) as broker,
        FakeSpotify() as fake,
    ):
        fake.add_device(DEVICE)
        settings = fake.settings(Path(tmp) / "token.json")
        token = fake.write_token_cache(settings.token_cache)
        sensors = [f"play{n:04d}" for n in range(WARMUP + RUNS)]
        config = HubConfig(
            hub=HubSection(database=Path(tmp) / "hub.db"),
            mqtt=MqttSection(host=HOST, port=broker.port, topic_prefix="bench-play"),
            spotify=settings,
            sensors=tuple(
                SensorConfig(id=s, user_id="u", spotify_device=DEVICE, context_uri=CONTEXT)
                for s in sensors
            ),
        )
        player = SpotifyPlayer(settings, client_secret=fake.client_secret)
        hub_ms, mqtt_ms = asyncio.run(_measure(config, player, fake, broker, sensors))
        http_ms = bare_put(fake, str(token["access_token"]))
    hub = Samples("motion published → PUT play received by the fake", tuple(hub_ms))
    mqtt = Samples("  baseline: published → a bare aiomqtt subscriber", tuple(mqtt_ms))
    http = Samples("  baseline: a bare requests PUT → received", tuple(http_ms))
    floor_p50 = mqtt.p50 + http.p50
    floor_p99 = mqtt.p99 + http.p99
    for samples in (hub, mqtt, http):
        print(samples.line())
    print("  each start: GET /me/player (no hijacking) + PUT play; the device id is cached")
    return [
        Figure("motion → Spotify play received p50", hub.p50, P50_TARGET_MS, floor_p50),
        Figure("motion → Spotify play received p99", hub.p99, P99_TARGET_MS, floor_p99),
    ]


async def _measure(
    config: HubConfig,
    player: SpotifyPlayer,
    fake: FakeSpotify,
    broker: Broker,
    sensors: list[str],
) -> tuple[list[float], list[float]]:
    daemon = Daemon(config, notifier=Notifier(None), player=player, client_id="bench-play")
    running = asyncio.create_task(daemon.run())
    hub_ms: list[float] = []
    mqtt_ms: list[float] = []
    try:
        async with asyncio.timeout(10):
            await daemon.ready.wait()
        await player.warm_up()
        async with (
            aiomqtt.Client(HOST, broker.port, identifier="bench-play-pub") as publisher,
            aiomqtt.Client(HOST, broker.port, identifier="bench-play-sub") as subscriber,
        ):
            await subscriber.subscribe("bench-base/#", qos=1)
            messages = aiter(subscriber.messages)
            for index, sensor in enumerate(sensors):
                fake.playback.is_playing = False  # so the start is not "already playing"
                fake.reset_log()
                payload = encode_seed_motion(sensor, seq=1)
                sent = time.perf_counter()
                await publisher.publish(f"bench-play/{sensor}/motion", payload, qos=1)
                received = await play_received(fake)
                await asyncio.sleep(PAUSE)
                sent_base = time.perf_counter()
                await publisher.publish(f"bench-base/{sensor}", payload, qos=1)
                await anext(messages)
                arrived = time.perf_counter()
                if index >= WARMUP:
                    hub_ms.append((received - sent) * 1000)
                    mqtt_ms.append((arrived - sent_base) * 1000)
                await asyncio.sleep(PAUSE)
    finally:
        daemon.stop()
        await running
    return hub_ms, mqtt_ms


async def play_received(fake: FakeSpotify) -> float:
    """When the fake received the play (its own clock stamp; polling only finds it)."""
    async with asyncio.timeout(10):
        while not (plays := fake.calls("PUT", "/v1/me/player/play")):  # noqa: ASYNC110 - the fake's log
            await asyncio.sleep(0.0002)
    return plays[0].at
