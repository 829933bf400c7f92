"""One owner of session state, on the real daemon: `spottypotty run` as a process, a real
mosquitto, real spotipy against the fake Spotify Web API, and `spottypotty invoke` reaching
the daemon over its control socket."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from hub.control import socket_path
from tests.broker import Broker
from tests.cli import spottypotty
from tests.fake_spotify import FakeSpotify, Fault

pytestmark = pytest.mark.integration

PLAY = "/v1/me/player/play"
PAUSE = "/v1/me/player/pause"


@pytest.fixture
def spotify() -> Iterator[FakeSpotify]:
    with FakeSpotify() as fake:
        fake.add_device("Bathroom speaker")
        fake.add_device("Hall speaker")
        yield fake


def _config(tmp_path: Path, broker: Broker, prefix: str, spotify: FakeSpotify) -> Path:
    spotify.write_token_cache(tmp_path / "token.json")
    path = tmp_path / "hub.toml"
    path.write_text(
        f"""
[hub]
database = "hub.db"
[sessions]
debounce_seconds = 0
[mqtt]
host = "127.0.0.1"
port = {broker.port}
topic_prefix = "{prefix}"
[spotify]
client_id = "{spotify.client_id}"
token_cache = "token.json"
api_url = "{spotify.api_url}"
accounts_url = "{spotify.accounts_url}"
[[sensors]]
id = "bath"
user_id = "u1"
context_uri = "spotify:playlist:bath"
spotify_device = "Bathroom speaker"
[[sensors]]
id = "hall"
user_id = "u1"
context_uri = "spotify:playlist:hall"
spotify_device = "Hall speaker"
""",
        encoding="utf-8",
    )
    return path


class Hub:
    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.output = ""


@asynccontextmanager
async def hub_process(config: Path, spotify: FakeSpotify) -> AsyncIterator[Hub]:
    """`spottypotty run` as a process, once its control socket is open."""
    env = {**os.environ, "SPOTIFY_CLIENT_SECRET": spotify.client_secret}
    env.pop("NOTIFY_SOCKET", None)
    env.pop("JOURNAL_STREAM", None)
    process = subprocess.Popen(  # noqa: ASYNC220 - returns at once; output read after exit
        [sys.executable, "-m", "hub", "run", "--config", str(config)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    hub = Hub(process)
    try:
        await _until(lambda: socket_path(config.parent / "hub.db").exists())
        yield hub
    finally:
        if process.poll() is None:
            process.kill()
        hub.output, _ = process.communicate()
        print(hub.output)  # shown when the test fails


class States:
    """The hub's retained session states, as a person's MQTT client sees them."""

    def __init__(self) -> None:
        self.latest: dict[str, dict[str, Any]] = {}
        self.changed = asyncio.Event()

    async def until(self, check: Any, limit: float = 15.0) -> dict[str, Any]:
        async with asyncio.timeout(limit):
            while True:
                for state in self.latest.values():
                    if check(state):
                        return state
                self.changed.clear()
                await self.changed.wait()


@asynccontextmanager
async def watching(broker: Broker) -> AsyncIterator[tuple[aiomqtt.Client, States]]:
    """Once the hub says it is online (subscribed): its session states as they change."""
    states = States()
    async with aiomqtt.Client("127.0.0.1", broker.port) as client:
        await client.subscribe("spottypotty/hub/status", qos=1)
        async with asyncio.timeout(15):
            async for message in client.messages:
                if message.payload == b"online":
                    break
        await client.unsubscribe("spottypotty/hub/status")
        await client.subscribe("spottypotty/sessions/#", qos=1)

        async def read() -> None:
            async for message in client.messages:
                record = json.loads(bytes(message.payload))
                states.latest[record["sessionId"]] = record
                states.changed.set()

        reader = asyncio.create_task(read())
        try:
            yield client, states
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader


async def _motion(client: aiomqtt.Client, prefix: str, sensor: str, seq: int) -> None:
    payload = {"event": "motion_detected", "sensorId": sensor, "seq": seq}
    await client.publish(f"{prefix}/{sensor}/motion", json.dumps(payload), qos=1)


async def _invoke(config: Path, event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    done = await asyncio.to_thread(
        spottypotty, "invoke", "--config", str(config), stdin=json.dumps(event)
    )
    assert "Traceback" not in done.stderr
    return done.returncode, json.loads(done.stdout)


async def _until(condition: Any, limit: float = 15.0) -> None:
    async with asyncio.timeout(limit):
        while not condition():  # noqa: ASYNC110 - polls another process's effects
            await asyncio.sleep(0.02)


def _sessions(database: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(database) as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute("SELECT * FROM sessions ORDER BY startTimeISO")]


async def test_invoke_goes_through_the_running_daemon(
    tmp_path: Path, broker: Broker, unique_prefix: str, spotify: FakeSpotify
) -> None:
    config = _config(tmp_path, broker, unique_prefix, spotify)
    async with hub_process(config, spotify) as hub:
        assert (socket_path(tmp_path / "hub.db").stat().st_mode & 0o777) == 0o660
        async with watching(broker) as (client, states):
            await _motion(client, unique_prefix, "bath", 1)
            first = await states.until(lambda s: s["sensorId"] == "bath" and s["playbackStarted"])
            assert len(spotify.calls("PUT", PLAY)) == 1

            code, ended = await _invoke(
                config, {"action": "end_session", "sessionId": first["sessionId"]}
            )
            assert (code, ended["statusCode"], ended["session"]["status"]) == (0, 200, "completed")
            # The daemon's engine ended it: it pauses what it started and says so on MQTT.
            await _until(lambda: len(spotify.calls("PUT", PAUSE)) == 1)
            done = await states.until(
                lambda s: s["sessionId"] == first["sessionId"] and "playbackStopped" in s
            )
            assert (done["status"], done["playbackStopped"]) == ("completed", True)
            assert done["endTime"] == ended["session"]["endTime"]

            code, none = await _invoke(config, {"action": "get_active_session", "sensorId": "bath"})
            assert (code, none["statusCode"], none["session"]) == (0, 200, None)

            await _motion(client, unique_prefix, "bath", 2)  # the next motion: a new session
            second = await states.until(
                lambda s: s["sensorId"] == "bath" and s["sessionId"] != first["sessionId"]
            )
            assert second["status"] == "active"

            code, refused = await _invoke(config, {"action": "create_session", "sensorId": "bath"})
            assert (code, refused["statusCode"], refused["activeSessionId"]) == (
                1,
                409,
                second["sessionId"],
            )
            rows = _sessions(tmp_path / "hub.db")
            assert [r["sessionId"] for r in rows] == [first["sessionId"], second["sessionId"]]
            assert rows[0]["endTime"] == ended["session"]["endTime"]
        hub.process.send_signal(signal.SIGTERM)
        assert hub.process.wait(timeout=10) == 0
    assert "Traceback" not in hub.output


async def test_invoke_without_a_daemon_works_in_process_and_the_daemon_takes_over(
    tmp_path: Path, broker: Broker, unique_prefix: str, spotify: FakeSpotify
) -> None:
    config = _config(tmp_path, broker, unique_prefix, spotify)
    code, made = await _invoke(config, {"action": "create_session", "sensorId": "hall"})
    assert (code, made["statusCode"]) == (0, 200)
    assert not socket_path(tmp_path / "hub.db").exists()
    async with hub_process(config, spotify) as hub:
        async with watching(broker) as (client, states):
            await _motion(client, unique_prefix, "hall", 1)
            extended = await states.until(lambda s: s["motionEventsCount"] == 2)
            assert extended["sessionId"] == made["session"]["sessionId"]  # taken over, one row
        assert spotify.calls("PUT", PLAY) == []  # a session made by request plays nothing
        hub.process.send_signal(signal.SIGTERM)
        assert hub.process.wait(timeout=10) == 0


async def test_sigterm_ends_within_5_s_with_a_hung_broker_and_a_hung_spotify(
    tmp_path: Path, broker: Broker, unique_prefix: str, spotify: FakeSpotify
) -> None:
    config = _config(tmp_path, broker, unique_prefix, spotify)
    async with hub_process(config, spotify) as hub:
        async with watching(broker) as (client, states):
            await _motion(client, unique_prefix, "bath", 1)
            await states.until(lambda s: s["sensorId"] == "bath" and s["playbackStarted"])
            spotify.fail_always("*", "*", Fault.slow(60))  # Spotify hangs from now on
            await _motion(client, unique_prefix, "hall", 1)
            # Published once committed, just before the player is asked: a start in flight.
            await states.until(lambda s: s["sensorId"] == "hall")
        os.kill(broker.pid, signal.SIGSTOP)  # … and the broker hangs too
        try:
            began = time.monotonic()
            hub.process.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(hub.process.wait, 10)
            took = time.monotonic() - began
        finally:
            os.kill(broker.pid, signal.SIGCONT)
            spotify.release()
    print(f"SIGTERM with a hung broker and a hung Spotify: exit after {took:.2f} s")
    assert "Traceback" not in hub.output
    assert code == 0
    assert took < 5.0, f"SIGTERM took {took:.2f} s"
    rows = {r["sensorId"]: r for r in _sessions(tmp_path / "hub.db")}
    assert rows["bath"]["status"] == "active"  # kept for the next start to take over
    assert rows["bath"]["playbackStopped"] == 0  # the pause Spotify never answered: recorded
