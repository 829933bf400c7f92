"""Motion → `PUT /me/player/play` with the fake Spotify 50 ms away, warm and cold (issue 15).

A real round trip to Spotify is tens of milliseconds, so what counts is how many of them
stand between motion and music. The fake answers every request 50 ms late; the target is
two round trips (`GET /me/player`, `PUT play`) plus 10 ms: ≤ 110 ms at p50.

- warm: one daemon; each sample is a new session on a speaker that is idle (paused).
- idle account: the same, but no device is active, so `GET /me/player` answers 204, which
  a private session also answers: the device list is read to tell them apart (one more
  round trip, by design: reported against the same target).
- cold: each sample is a new daemon and a new Spotify player on the same database (a
  restart): new spotipy client, no open connections, no device list, the speaker's id
  from SQLite; the motion is published as soon as the daemon is ready, while its warm-up
  (device list) still runs. spotipy itself is already imported in this process.

Both count the requests each start made. The baseline, in the same run: a publish to a
bare aiomqtt subscriber plus a bare `requests` GET and PUT to the same 50 ms fake — the
floor of MQTT plus two round trips.

    python -m tests.bench.bench_round_trips     # this bench alone
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt
import requests

from hub.config import HubConfig, HubSection, MqttSection, SensorConfig, SpotifySection
from hub.daemon import Daemon
from hub.ingest.mqtt_decode import encode_seed_motion
from hub.playback.spotify import SpotifyPlayer
from hub.systemd import Notifier
from tests.bench._dataset import Dataset
from tests.bench._report import Figure, Samples, header, summary
from tests.bench.bench_motion_to_play import play_received
from tests.broker import Broker
from tests.fake_spotify import FakeSpotify, Playback

ORDER = 6
TITLE = "Motion → PUT play received, Spotify 50 ms away: warm and after a restart"

LATENCY = 0.050
TARGET_MS = 2 * LATENCY * 1000 + 10
WARM_RUNS, IDLE_RUNS, COLD_RUNS, WARMUP = 40, 20, 15, 3
PAUSE = 0.02  # between samples
CONTEXT = "spotify:playlist:37i9dQZF1DXcBWIGoYBM5M"
DEVICE = "Bathroom speaker"
HOST = "127.0.0.1"
PREFIX = "bench-rt"


def run(dataset: Dataset | None) -> list[Figure]:
    del dataset
    with (
        tempfile.TemporaryDirectory(prefix="bench-rt-") as tmp,
        Broker(Path(tmp) / "mosquitto", "max_queued_messages 0\n", logging=False) as broker,
        FakeSpotify() as fake,
    ):
        device = fake.add_device(DEVICE)
        fake.set_playing(device.id, CONTEXT, is_playing=False)  # the speaker, idle
        settings = fake.settings(Path(tmp) / "token.json")
        token = fake.write_token_cache(settings.token_cache)
        fake.latency = LATENCY
        sensors = [f"rt{n:04d}" for n in range(WARMUP + WARM_RUNS + IDLE_RUNS + COLD_RUNS)]
        config = HubConfig(
            hub=HubSection(database=Path(tmp) / "hub.db"),
            mqtt=MqttSection(host=HOST, port=broker.port, topic_prefix=PREFIX),
            spotify=settings,
            sensors=tuple(
                SensorConfig(id=s, user_id="u", spotify_device=DEVICE, context_uri=CONTEXT)
                for s in sensors
            ),
        )
        warm, idle = asyncio.run(_warm(config, settings, fake, broker, sensors))
        cold = asyncio.run(_cold(config, settings, fake, broker, sensors))
        mqtt = asyncio.run(_bare_mqtt(broker))
        http = _bare_round_trips(fake, str(token["access_token"]), device.id)
    warm_s = Samples("warm: motion published → PUT play received", tuple(warm.ms))
    idle_s = Samples("idle account (204): motion → PUT play", tuple(idle.ms))
    cold_s = Samples("cold (restart): motion published → PUT play", tuple(cold.ms))
    mqtt_s = Samples("  baseline: published → a bare aiomqtt subscriber", tuple(mqtt))
    http_s = Samples("  baseline: bare requests GET + PUT (50 ms each)", tuple(http))
    for samples in (warm_s, idle_s, cold_s, mqtt_s, http_s):
        print(samples.line())
    for name, runs in (("warm", warm), ("idle", idle), ("cold", cold)):
        print(f"  requests from motion to play, {name}: {_counts(runs.calls)}")
    floor = mqtt_s.p50 + http_s.p50
    return [
        Figure("motion → play, Spotify 50 ms away, warm p50", warm_s.p50, TARGET_MS, floor),
        Figure("motion → play, Spotify 50 ms away, cold p50", cold_s.p50, TARGET_MS, floor),
        Figure("motion → play, 50 ms away, idle account p50", idle_s.p50, TARGET_MS, floor),
    ]


@dataclass
class _Runs:
    ms: list[float] = field(default_factory=list)
    calls: list[tuple[str, ...]] = field(default_factory=list)


def _counts(calls: list[tuple[str, ...]]) -> str:
    """How many starts made which requests before their play, e.g. `40 x GET, PUT`."""
    seen: dict[tuple[str, ...], int] = {}
    for call in calls:
        seen[call] = seen.get(call, 0) + 1
    return "; ".join(f"{n} x {', '.join(c)}" for c, n in seen.items())


def _player(settings: SpotifySection, fake: FakeSpotify) -> SpotifyPlayer:
    return SpotifyPlayer(settings, client_secret=fake.client_secret)


async def _warm(
    config: HubConfig,
    settings: SpotifySection,
    fake: FakeSpotify,
    broker: Broker,
    sensors: list[str],
) -> tuple[_Runs, _Runs]:
    player = _player(settings, fake)
    daemon = Daemon(config, notifier=Notifier(None), player=player, client_id="bench-rt")
    running = asyncio.create_task(daemon.run())
    warm, idle = _Runs(), _Runs()
    try:
        async with asyncio.timeout(10):
            await daemon.ready.wait()
        await player.warm_up()
        async with aiomqtt.Client(HOST, broker.port, identifier="bench-rt-pub") as publisher:
            for index, sensor in enumerate(sensors[: WARMUP + WARM_RUNS + IDLE_RUNS]):
                idle_account = index >= WARMUP + WARM_RUNS
                elapsed, made = await _one(publisher, fake, sensor, idle=idle_account)
                if index >= WARMUP:
                    runs = idle if idle_account else warm
                    runs.ms.append(elapsed)
                    runs.calls.append(made)
    finally:
        daemon.stop()
        await running
    return warm, idle


async def _cold(
    config: HubConfig,
    settings: SpotifySection,
    fake: FakeSpotify,
    broker: Broker,
    sensors: list[str],
) -> _Runs:
    cold = _Runs()
    async with aiomqtt.Client(HOST, broker.port, identifier="bench-rt-pub") as publisher:
        for sensor in sensors[WARMUP + WARM_RUNS + IDLE_RUNS :]:
            player = _player(settings, fake)  # a restart: nothing in memory but SQLite
            daemon = Daemon(config, notifier=Notifier(None), player=player, client_id="bench-rt")
            running = asyncio.create_task(daemon.run())
            try:
                async with asyncio.timeout(10):
                    await daemon.ready.wait()
                elapsed, made = await _one(publisher, fake, sensor)
                cold.ms.append(elapsed)
                cold.calls.append(made)
            finally:
                daemon.stop()
                await running
    return cold


async def _one(
    publisher: aiomqtt.Client, fake: FakeSpotify, sensor: str, *, idle: bool = False
) -> tuple[float, tuple[str, ...]]:
    """One motion → play: milliseconds, and the API requests that arrived from the publish
    up to the play (so a warm-up's device list sent before the motion is not counted)."""
    with fake.lock:
        fake.playback.is_playing = False  # so the start is not "already playing"
        if idle:
            fake.playback = Playback()  # no device active: GET /me/player answers 204
    fake.reset_log()
    sent = time.perf_counter()
    await publisher.publish(f"{PREFIX}/{sensor}/motion", encode_seed_motion(sensor, seq=1), qos=1)
    received = await play_received(fake)
    made = tuple(
        f"{r.method} {r.path.removeprefix('/v1')}"
        for r in fake.calls()
        if r.path.startswith("/v1/") and sent <= r.at <= received
    )
    # The play's own answer comes a round trip later: the next sample waits for it, or it
    # would queue behind it in the speaker's lane.
    await asyncio.sleep(LATENCY + PAUSE)
    return (received - sent) * 1000, made


async def _bare_mqtt(broker: Broker) -> list[float]:
    samples: list[float] = []
    async with (
        aiomqtt.Client(HOST, broker.port, identifier="bench-rt-bare-pub") as publisher,
        aiomqtt.Client(HOST, broker.port, identifier="bench-rt-bare-sub") as subscriber,
    ):
        await subscriber.subscribe("bench-rt-base/#", qos=1)
        messages = aiter(subscriber.messages)
        for index in range(WARMUP + WARM_RUNS):
            sent = time.perf_counter()
            await publisher.publish(f"bench-rt-base/{index}", b"x", qos=1)
            await anext(messages)
            if index >= WARMUP:
                samples.append((time.perf_counter() - sent) * 1000)
    return samples


def _bare_round_trips(fake: FakeSpotify, token: str, device_id: str) -> list[float]:
    """The floor: a bare GET /me/player answered, then a PUT play received, in ms."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    body = b'{"context_uri": "%s"}' % CONTEXT.encode()
    samples: list[float] = []
    with requests.Session() as session:
        for index in range(WARMUP + WARM_RUNS):
            fake.reset_log()
            began = time.perf_counter()
            session.get(f"{fake.api_url}me/player", headers=headers)
            session.put(
                f"{fake.api_url}me/player/play?device_id={device_id}", data=body, headers=headers
            )
            if index >= WARMUP:
                samples.append((fake.calls("PUT", "/v1/me/player/play")[0].at - began) * 1000)
    return samples


if __name__ == "__main__":
    header(TITLE)
    figures = run(None)
    header("summary")
    print(summary(figures))
    sys.exit(0)
