"""A Pi's clock, on the real daemon process and a real mosquitto: the wall clock stepped
forward and backward under the running hub, and motion that sat while the hub was stopped.

The wall clock is moved by a small LD_PRELOAD shim (tests/clock_shim.c, built here with
gcc) that offsets CLOCK_REALTIME alone — libfaketime also shifts clock_nanosleep deadlines
and breaks threads — and answers adjtimex() as synchronised or not; the test steps it by
rewriting the file the shim reads. Every motion is published at QoS 1 (acknowledged by the
broker) and then looked for in the database.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from hub.clock import TIMESYNC_FLAG
from hub.ingest.mqtt_decode import encode_seed_motion
from tests.broker import Broker

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SHIM_SOURCE = REPO / "tests" / "clock_shim.c"
TIMEOUT = 6.0  # seconds: timeout_minutes = 0.1
MONTH = 30 * 86_400


@pytest.fixture(scope="module")
def shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is needed to build the clock shim")
    built = tmp_path_factory.mktemp("shim") / "clock_shim.so"
    subprocess.run(
        [gcc, "-shared", "-fPIC", "-O2", "-o", str(built), str(SHIM_SOURCE), "-ldl"],
        check=True,
    )
    return built


class WallClock:
    """The file the shim reads: the wall clock's offset and whether it is synchronised."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def set(self, offset: float, *, synchronised: bool) -> None:
        temporary = self.path.with_suffix(".new")
        temporary.write_text(f"{offset} {int(synchronised)}\n", encoding="ascii")
        temporary.replace(self.path)  # the shim never reads half a line


@pytest.fixture
def wall(tmp_path: Path) -> WallClock:
    clock = WallClock(tmp_path / "clock")
    clock.set(0, synchronised=True)
    return clock


def _config(tmp_path: Path, broker: Broker, prefix: str, *, trust_clock: bool = False) -> Path:
    path = tmp_path / "hub.toml"
    path.write_text(
        f'[hub]\ndatabase = "hub.db"\ntrust_clock = {str(trust_clock).lower()}\n'
        f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\ntopic_prefix = "{prefix}"\n'
        f"[sessions]\ntimeout_minutes = {TIMEOUT / 60}\ndebounce_seconds = 0\n"
        '[spotify]\ndry_run = true\n[[sensors]]\nid = "bath"\nuser_id = "u1"\n',
        encoding="utf-8",
    )
    return path


@asynccontextmanager
async def hub_process(
    config: Path, broker: Broker, shim: Path | None, wall: WallClock
) -> AsyncIterator[subprocess.Popen[str]]:
    """`spottypotty run` with the shim preloaded, once it says it is online."""
    env = {**os.environ, "CLOCK_SHIM_FILE": str(wall.path)}
    if shim is not None:
        env["LD_PRELOAD"] = str(shim)
    for name in ("NOTIFY_SOCKET", "JOURNAL_STREAM", "WATCHDOG_USEC"):
        env.pop(name, None)
    process = subprocess.Popen(  # noqa: ASYNC220 - returns at once; output read after exit
        [sys.executable, "-m", "hub", "run", "--config", str(config)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        async with aiomqtt.Client(broker.host, broker.port) as client:
            await client.subscribe("spottypotty/hub/status", qos=1)
            async with asyncio.timeout(15):
                async for message in client.messages:
                    if message.payload == b"online":
                        break
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)
            process.terminate()
        try:
            output, _ = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        print(output)  # shown when the test fails


class Sensor:
    """Our firmware's motion messages at QoS 1: `published` counts the broker's PUBACKs."""

    def __init__(self, client: aiomqtt.Client, prefix: str) -> None:
        self.client = client
        self.topic = f"{prefix}/bath/motion"
        self.published = 0

    async def motion(self, *, timestamp: float | None = None) -> float:
        """Publish one motion (acknowledged by the broker); the real time it was sent."""
        self.published += 1
        payload = encode_seed_motion("bath", seq=self.published, timestamp=timestamp)
        await self.client.publish(self.topic, payload, qos=1)
        return time.time()


def _rows(database: Path, sql: str) -> list[dict[str, Any]]:
    with sqlite3.connect(database) as db:
        db.row_factory = sqlite3.Row
        return [dict(row) for row in db.execute(sql)]


async def _until(database: Path, sql: str, count: int, limit: float = 20.0) -> float:
    """Wait until `sql` returns `count` rows; the real time it did (epoch seconds)."""
    async with asyncio.timeout(limit):
        while len(_rows(database, sql)) != count:  # noqa: ASYNC110 - another process's rows
            await asyncio.sleep(0.05)
    return time.time()


def _accounting(database: Path, published: int) -> dict[str, int]:
    """Acknowledged by the broker / stored as motion events / kept aside (no session)."""
    events = _rows(database, "SELECT sessionId FROM motion_events")
    return {
        "acknowledged": published,
        "stored": len(events),
        "set_aside": sum(1 for event in events if event["sessionId"] is None),
    }


@pytest.mark.skipif(TIMESYNC_FLAG.exists(), reason="this machine's timesyncd flag says synced")
async def test_a_pi_booted_a_month_behind_then_stepped_by_ntp(
    tmp_path: Path, broker: Broker, unique_prefix: str, shim: Path, wall: WallClock
) -> None:
    database = tmp_path / "hub.db"
    wall.set(-MONTH, synchronised=False)
    config = _config(tmp_path, broker, unique_prefix)
    async with (
        hub_process(config, broker, shim, wall),
        aiomqtt.Client(broker.host, broker.port) as client,
    ):
        sensor = Sensor(client, unique_prefix)
        started = await sensor.motion()
        await _until(database, "SELECT * FROM sessions", 1)
        (before,) = _rows(database, "SELECT startTime, clockBoot FROM sessions")
        assert abs(before["startTime"] - (started - MONTH)) < 3
        assert before["clockBoot"] is not None  # unconfirmed: the sync leaves it alone
        await asyncio.sleep(1.5)
        wall.set(0, synchronised=True)  # NTP steps the clock a month forward
        await asyncio.sleep(2.0)
        last = await sensor.motion()  # 3.5 s in: the step used to end the session here
        ended = await _until(database, "SELECT * FROM sessions WHERE status = 'completed'", 1)
        (after,) = _rows(database, "SELECT * FROM sessions")
        events = _rows(database, "SELECT timestamp, clockBoot FROM motion_events")
        accounting = _accounting(database, sensor.published)
    print("month-forward step:", accounting, f"ended {ended - last:.2f} s after the last motion")
    assert accounting == {"acknowledged": 2, "stored": 2, "set_aside": 0}
    assert ended - last >= TIMEOUT - 0.5  # not ended early by the step
    assert after["motionEventsCount"] == 2
    assert abs(after["startTime"] - started) < 3  # corrected by the measured step
    assert after["ttl"] == after["startTime"] + MONTH
    assert abs(after["durationMinutes"] - (last - started + TIMEOUT) / 60) <= 0.02
    assert after["clockBoot"] is None  # confirmed: due for the sync
    assert after["version"] > after["syncedVersion"]
    assert all(abs(e["timestamp"] - started) < 10 and e["clockBoot"] is None for e in events)


async def test_steps_backward_neither_prolong_a_session_nor_set_motion_aside(
    tmp_path: Path, broker: Broker, unique_prefix: str, shim: Path, wall: WallClock
) -> None:
    database = tmp_path / "hub.db"
    config = _config(tmp_path, broker, unique_prefix)
    completed = "SELECT * FROM sessions WHERE status = 'completed'"
    async with (
        hub_process(config, broker, shim, wall),
        aiomqtt.Client(broker.host, broker.port) as client,
    ):
        sensor = Sensor(client, unique_prefix)
        # Back 60 s: the session used to stay active 60 s too long.
        await sensor.motion()
        await _until(database, "SELECT * FROM sessions", 1)
        wall.set(-60, synchronised=True)
        await asyncio.sleep(1.0)
        last = await sensor.motion()
        first_end = await _until(database, completed, 1)
        # Back 2 h: motion used to be set aside as out of order and, with the clock put
        # right again, nothing ended the session until another motion came.
        await sensor.motion()
        await _until(database, "SELECT * FROM sessions", 2)
        wall.set(-60 - 7_200, synchronised=True)
        await asyncio.sleep(1.0)
        last_two = await sensor.motion()
        await asyncio.sleep(1.0)
        wall.set(-60, synchronised=True)  # corrected; no motion follows
        second_end = await _until(database, completed, 2)
        sessions = _rows(database, "SELECT * FROM sessions ORDER BY startTimeISO")
        accounting = _accounting(database, sensor.published)
    print(
        "backward steps:",
        accounting,
        f"ended {first_end - last:.2f} s and {second_end - last_two:.2f} s after the last motion",
    )
    assert accounting == {"acknowledged": 4, "stored": 4, "set_aside": 0}
    assert TIMEOUT - 0.5 <= first_end - last <= TIMEOUT + 2.5
    assert TIMEOUT - 0.5 <= second_end - last_two <= TIMEOUT + 2.5
    assert [s["motionEventsCount"] for s in sessions] == [2, 2]
    for session in sessions:  # 1 s between its motions, then the timeout: real lengths
        assert abs(session["durationMinutes"] - (1 + TIMEOUT) / 60) <= 0.02


async def _teach_offset(sensor: Sensor, database: Path) -> float:
    """Three live motions stamped by the sensor's clock; the real time of the last."""
    for _ in range(3):
        last = await sensor.motion(timestamp=time.time())
        await _until(database, "SELECT * FROM motion_events", sensor.published)
        await asyncio.sleep(0.3)
    return last


async def _judged_late(database: Path, sensor: Sensor, sent: float, fault: str) -> None:
    """Once it is in: the late motion joined the session it happened in (no new session,
    no music for someone who left), dated when it was sent."""
    await _until(database, "SELECT * FROM motion_events", sensor.published)
    await _until(database, "SELECT * FROM sessions WHERE status = 'completed'", 1)
    sessions = _rows(database, "SELECT * FROM sessions")
    (late,) = _rows(database, f"SELECT * FROM motion_events WHERE seq = {sensor.published}")
    accounting = _accounting(database, sensor.published)
    print(f"{fault}:", accounting)
    assert accounting == {"acknowledged": 4, "stored": 4, "set_aside": 0}
    assert [s["motionEventsCount"] for s in sessions] == [4]
    assert late["late"] == 1
    assert abs(late["timestamp"] - sent) <= 2
    assert late["receivedAt"] - late["timestamp"] >= 5


async def test_motion_that_sat_while_the_hub_was_stopped_is_judged_by_when_it_happened(
    tmp_path: Path, broker: Broker, unique_prefix: str, wall: WallClock
) -> None:
    database = tmp_path / "hub.db"
    config = _config(tmp_path, broker, unique_prefix, trust_clock=True)
    async with (
        hub_process(config, broker, None, wall) as hub,
        aiomqtt.Client(broker.host, broker.port) as client,
    ):
        sensor = Sensor(client, unique_prefix)
        last = await _teach_offset(sensor, database)
        hub.send_signal(signal.SIGSTOP)
        await asyncio.sleep(last + TIMEOUT - 1.5 - time.time())
        sent = await sensor.motion(timestamp=time.time())  # before the deadline …
        await asyncio.sleep(last + TIMEOUT + 10 - time.time())
        hub.send_signal(signal.SIGCONT)  # … received 10 s after it
        await _judged_late(database, sensor, sent, "motion queued while stopped")


def test_the_shim_moves_the_wall_clock_alone(shim: Path, wall: WallClock) -> None:
    wall.set(-MONTH, synchronised=False)
    probe = (
        "import json, time; from hub.clock import kernel_synchronised;"
        "print(json.dumps([time.time(), time.monotonic(), kernel_synchronised()]))"
    )
    env = {**os.environ, "CLOCK_SHIM_FILE": str(wall.path), "LD_PRELOAD": str(shim)}
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, cwd=REPO, capture_output=True, text=True, check=True
    )
    shifted, monotonic, synced = json.loads(done.stdout)
    assert abs(shifted - (time.time() - MONTH)) < 5
    assert abs(monotonic - time.monotonic()) < 5  # the monotonic clock is the system's
    assert synced is False


async def test_motion_the_broker_kept_while_the_hub_restarted_is_judged_by_when_it_happened(
    tmp_path: Path, broker: Broker, unique_prefix: str, wall: WallClock
) -> None:
    """The sensors' offsets outlive a restart, so the backlog it finds is dated too."""
    database = tmp_path / "hub.db"
    config = _config(tmp_path, broker, unique_prefix, trust_clock=True)
    async with aiomqtt.Client(broker.host, broker.port) as client:
        sensor = Sensor(client, unique_prefix)
        async with hub_process(config, broker, None, wall):
            last = await _teach_offset(sensor, database)
        # Kept by the broker. (Sent a whole second after the last counted motion: motion
        # dated before it, as the whole-second stamp could make it, is coalesced.)
        await asyncio.sleep(last + 1.2 - time.time())
        sent = await sensor.motion(timestamp=time.time())
        await asyncio.sleep(last + TIMEOUT + 3 - time.time())  # the deadline passes
        async with hub_process(config, broker, None, wall):
            await _judged_late(database, sensor, sent, "motion kept across a restart")
