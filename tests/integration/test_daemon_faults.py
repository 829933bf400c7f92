"""The daemon under bad input and faults (issue 3, "Bad input and faults"), each one a test,
always through a real mosquitto: malformed and oversized payloads, unknown sensors, a flood,
the broker killed mid-session, `kill -9` of the hub, a hung player, SIGTERM.

The daemon runs in-process (`Daemon(...)` in a task, with a fake player the test controls)
except where a real process is needed (`kill -9`). Waits are bounded and wait for events:
the retained session state the hub publishes on `spottypotty/sessions/{sensor}` after each
commit, `link.connected_event`, `READY=1` on a notify socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import json
import math
import os
import random
import signal
import sqlite3
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import aiomqtt
import pytest
from paho.mqtt.client import MQTT_ERR_NO_CONN

import hub.ingest.mqtt
from hub.config import HubConfig, HubSection, MqttSection, SensorConfig, SessionsSection
from hub.daemon import Daemon
from hub.ingest.mqtt_decode import MAX_PAYLOAD, encode_seed_motion
from hub.model import Session
from hub.playback.port import PlaybackResult
from hub.systemd import Notifier
from tests.hub_process import HubProcess, NotifySocket

if TYPE_CHECKING:
    from tests.broker import Broker
    from tests.integration.conftest import BrokerFactory

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
WAIT = 10.0  # seconds: an upper bound for something that normally takes milliseconds
STOP_LIMIT = 5.0  # seconds from SIGTERM (or stop()) to run() returning: the bound
# Seconds from the broker's return to the hub connected and subscribed again: the backoff's
# cap (0.4 s) plus the connect and subscribe.
RECONNECT_LIMIT = 0.5
RESPONSIVE_LIMIT = 2.0  # seconds for another sensor's session right after a flood
FLOOD = 1_000
LATENCY_SAMPLES = 50
LATENCY_TRIALS = 3  # the hung-player comparison is measured again (at most) this often
SESSION_TOPIC = "spottypotty/sessions/{sensor}"
# ISO strings keep microseconds; a fractional timeout can make endTime - lastMotionTime one
# microsecond off (see test_fractional_timeout_ends_exactly_at_the_deadline_in_the_record).
# Set to zero once that xfail is fixed.
ISO_SLACK = dt.timedelta(0)

Record = dict[str, Any]


# --- helpers: configuration, player, notifier --------------------------------------------------


def _sensor(sensor_id: str) -> SensorConfig:
    return SensorConfig(id=sensor_id, user_id="u1", context_uri="spotify:playlist:x")


def _config(
    tmp_path: Path,
    broker: Broker,
    prefix: str,
    sensors: tuple[str, ...],
    *,
    timeout_minutes: float = 5.0,
    debounce_seconds: float = 10.0,
) -> HubConfig:
    return HubConfig(
        hub=HubSection(database=tmp_path / "hub.db"),
        mqtt=MqttSection(host=broker.host, port=broker.port, topic_prefix=prefix),
        sessions=SessionsSection(
            timeout_minutes=timeout_minutes, debounce_seconds=debounce_seconds
        ),
        sensors=tuple(_sensor(sensor_id) for sensor_id in sensors),
    )


@dataclass
class FakePlayer:
    """Starts (or hangs, when told to) and records every call, in order."""

    hang_start: bool = False
    hang_stop: bool = False
    starts: list[str] = field(default_factory=list)  # session ids, as start() is entered
    stops: list[str] = field(default_factory=list)
    pending: int = 0  # start() calls entered and not yet answered
    _released: asyncio.Event = field(default_factory=asyncio.Event)

    def hang(self) -> None:
        """From now on start() does not answer until release()."""
        self.hang_start = True
        self._released = asyncio.Event()

    def release(self) -> None:
        self.hang_start = False
        self._released.set()

    async def start(self, session: Session, sensor: SensorConfig) -> PlaybackResult:
        self.starts.append(session.session_id)
        self.pending += 1
        try:
            if self.hang_start:
                await self._released.wait()
        finally:
            self.pending -= 1
        return PlaybackResult(started=True, device_id="dev-1", note="started")

    async def stop(self, session: Session, sensor: SensorConfig | None) -> bool:
        self.stops.append(session.session_id)
        if self.hang_stop:
            await asyncio.Event().wait()  # never
        return True


class RecordingNotifier(Notifier):
    """What systemd would be told."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        super().__init__(self._record)

    def _record(self, message: str) -> bool:
        self.sent.append(message)
        return True


class ReaderClock:
    """time.time(), remembering each reading the MQTT link takes (one per message: its
    receive time)."""

    def __init__(self) -> None:
        self.reads: list[float] = []

    def __call__(self) -> float:
        now = time.time()
        if sys._getframe(1).f_globals["__name__"] == hub.ingest.mqtt.__name__:
            self.reads.append(now)
        return now


class FixedClock:
    """A clock the test sets (the runner is poked after each move)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# --- helpers: the daemon in-process -------------------------------------------------------------


@dataclass
class RunningDaemon:
    daemon: Daemon
    task: asyncio.Task[int]
    gave_up: bool = False  # finished() already waited its limit in vain

    @property
    def link(self) -> hub.ingest.mqtt.MqttLink:
        assert self.daemon.link is not None
        return self.daemon.link

    async def finished(self, limit: float) -> int | None:
        """run()'s exit status, or None when it has not returned within `limit` seconds."""
        done, _ = await asyncio.wait({self.task}, timeout=limit)
        if not done:
            self.gave_up = True
            return None
        return self.task.result()


@contextlib.asynccontextmanager
async def running_daemon(
    config: HubConfig,
    player: FakePlayer,
    *,
    notifier: Notifier | None = None,
    clock: Callable[[], float] = time.time,
) -> AsyncIterator[RunningDaemon]:
    """`Daemon.run()` in a task, READY; stopped (or, if it will not stop, cancelled) after."""
    daemon = Daemon(
        config,
        notifier=notifier if notifier is not None else Notifier.from_environment({}),
        player=player,
        clock=clock,
        client_id=f"hub-{uuid.uuid4().hex[:8]}",
    )
    task = asyncio.create_task(daemon.run(), name="daemon")
    running = RunningDaemon(daemon, task)
    try:
        ready = asyncio.create_task(daemon.ready.wait(), name="daemon-ready")
        await asyncio.wait({task, ready}, timeout=WAIT, return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            ready.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ready
            if task.done():
                task.result()  # raises what made the daemon fail at start
            pytest.fail(f"the daemon was not READY within {WAIT} s")
        yield running
    finally:
        daemon.stop()
        if await running.finished(0 if running.gave_up else STOP_LIMIT) is None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


# --- helpers: MQTT ---------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def mqtt_client(broker: Broker, role: str) -> AsyncIterator[aiomqtt.Client]:
    async with aiomqtt.Client(
        broker.host, broker.port, identifier=f"{role}-{uuid.uuid4().hex[:8]}"
    ) as client:
        yield client


class SessionStates:
    """Every session state the hub publishes, per sensor, with its arrival time."""

    def __init__(self) -> None:
        self.history: list[Record] = []
        self._queues: defaultdict[str, asyncio.Queue[tuple[float, Record]]] = defaultdict(
            asyncio.Queue
        )
        self.arrived = asyncio.Event()

    def deliver(self, topic: str, payload: bytes) -> None:
        sensor = topic.rsplit("/", 1)[-1]
        record: Record = json.loads(payload)
        self.history.append(record)
        self._queues[sensor].put_nowait((time.perf_counter(), record))
        self.arrived.set()

    async def next(
        self,
        sensor: str,
        matches: Callable[[Record], bool] = lambda _: True,
        *,
        limit: float = WAIT,
    ) -> tuple[float, Record]:
        """The next state of `sensor` that `matches` (and when it arrived, perf_counter)."""
        queue = self._queues[sensor]
        async with asyncio.timeout(limit):
            while True:
                arrived, record = await queue.get()
                if matches(record):
                    return arrived, record


@contextlib.asynccontextmanager
async def session_states(broker: Broker) -> AsyncIterator[SessionStates]:
    states = SessionStates()
    async with mqtt_client(broker, "watch") as client:
        await client.subscribe(SESSION_TOPIC.format(sensor="+"), qos=1)

        async def pump() -> None:
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                if message.payload:
                    states.deliver(message.topic.value, message.payload)

        task = asyncio.create_task(pump(), name="session-states")
        try:
            yield states
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _is_active(record: Record) -> bool:
    return bool(record["status"] == "active")


def _motion_topic(prefix: str, sensor: str) -> str:
    return f"{prefix}/{sensor}/motion"


def _kill_broker(broker: Broker) -> None:
    """SIGKILL mosquitto: nothing saved, retained state and persistent sessions lost."""
    process = broker._process
    assert process is not None
    process.kill()
    process.wait()
    broker.stop()  # already gone: only closes its pipe


async def wait_until(condition: Callable[[], bool], limit: float = WAIT) -> None:
    """Poll a state that has no event of its own (bounded)."""
    async with asyncio.timeout(limit):
        while not condition():  # noqa: ASYNC110 - nothing to await: poll, bounded
            await asyncio.sleep(0.01)


# --- helpers: the database -------------------------------------------------------------------


def _query(path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.row_factory = sqlite3.Row
        return connection.execute(sql, params).fetchall()


def _sessions(path: Path, sensor: str | None = None) -> list[sqlite3.Row]:
    if sensor is None:
        return _query(path, "SELECT * FROM sessions ORDER BY sensorId, startTime")
    return _query(path, "SELECT * FROM sessions WHERE sensorId = ? ORDER BY startTime", (sensor,))


def _checkpoint(path: Path) -> None:
    """Empty the WAL now. SQLite checkpoints by itself every 1,000 pages, inside whichever
    commit crosses the mark (~5 ms): the same commit every run, as the workload is fixed.
    Starting each measured phase from an empty WAL keeps that out of the comparison."""
    assert _query(path, "PRAGMA wal_checkpoint(TRUNCATE)")[0][0] == 0  # not busy


def _instant(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="microseconds")


def _p99(samples: list[float]) -> float:
    """Nearest-rank 99th percentile."""
    ordered = sorted(samples)
    return ordered[math.ceil(0.99 * len(ordered)) - 1]


def _p50(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[math.ceil(0.5 * len(ordered)) - 1]


# --- 1. malformed input ---------------------------------------------------------------------

_BAD_PAYLOADS: tuple[tuple[str, bytes], ...] = (
    ("malformed JSON", b'{"event": "motion_detected", "seq": '),
    ("not UTF-8", b"\xff\xfe{}"),
    ("not an object", b'["motion_detected"]'),
    ("empty", b""),
    ("seq of the wrong type", b'{"event": "motion_detected", "seq": "seven"}'),
    ("negative seq", b'{"event": "motion_detected", "seq": -1}'),
    ("timestamp of the wrong type", b'{"event": "motion_detected", "timestamp": true}'),
    ("late of the wrong type", b'{"event": "motion_detected", "late": "yes"}'),
    ("metadata of the wrong type", b'{"event": "motion_detected", "metadata": [85]}'),
    (
        "battery of the wrong type",
        b'{"event": "motion_detected", "metadata": {"batteryLevel": "full"}}',
    ),
    ("NaN", b'{"event": "motion_detected", "timestamp": NaN}'),
    ("unknown event name", b'{"event": "motion_cleared", "seq": 1}'),
    ("event name in the wrong case", b'{"event": "MOTION_DETECTED", "seq": 1}'),
    ("no event name", b'{"seq": 1}'),
    ("event of the wrong type", b'{"event": 1}'),
    (
        "over 64 KiB",
        json.dumps({"event": "motion_detected", "seq": 1, "pad": "x" * MAX_PAYLOAD}).encode(),
    ),
)


def _padded_motion(sensor: str, seq: int, size: int) -> bytes:
    """A valid motion payload of exactly `size` bytes (unknown keys are tolerated)."""
    head = json.loads(encode_seed_motion(sensor, seq=seq))
    bare = json.dumps({**head, "pad": ""}, separators=(",", ":")).encode()
    padded = json.dumps({**head, "pad": "x" * (size - len(bare))}, separators=(",", ":"))
    assert len(padded) == size
    return padded.encode()


async def test_malformed_payloads_are_counted_and_the_next_good_motion_gets_its_session(
    tmp_path: Path, broker: Broker, unique_prefix: str
) -> None:
    config = _config(tmp_path, broker, unique_prefix, ("bath", "hall"))
    player = FakePlayer()
    async with (
        running_daemon(config, player) as hub,
        session_states(broker) as states,
        mqtt_client(broker, "sensor") as sensor,
    ):
        for _, payload in _BAD_PAYLOADS:
            await sensor.publish(_motion_topic(unique_prefix, "bath"), payload, qos=1)
        # A malformed topic and an unknown sensor's garbage count as "unknown".
        await sensor.publish(_motion_topic(unique_prefix, "bad.id"), b"{}", qos=1)
        await sensor.publish(_motion_topic(unique_prefix, "ghost"), b"not json", qos=1)
        # Exactly 64 KiB is still accepted; then an ordinary motion.
        hall = _padded_motion("hall", 1, MAX_PAYLOAD)
        await sensor.publish(_motion_topic(unique_prefix, "hall"), hall, qos=1)
        good = encode_seed_motion("bath", seq=2)
        await sensor.publish(_motion_topic(unique_prefix, "bath"), good, qos=1)

        _, bath = await states.next("bath", _is_active)
        _, hall_state = await states.next("hall", _is_active)
        # Published in this order on one connection: everything before was decoded.
        counters = dict(hub.link.counters)
        runner = hub.daemon.runner
        assert runner is not None
        assert counters["parse_error:bath"] == len(_BAD_PAYLOADS), counters
        assert counters["parse_error:unknown"] == 2, counters
        assert "parse_error:hall" not in counters
        assert runner.counters["motion"] == 2
        assert hub.link.connected
        await wait_until(lambda: len(player.starts) == 2)
        assert sorted(player.starts) == sorted([bath["sessionId"], hall_state["sessionId"]])

    rows = _sessions(tmp_path / "hub.db")
    assert [(row["sensorId"], row["motionEventsCount"]) for row in rows] == [
        ("bath", 1),
        ("hall", 1),
    ]
    events = _query(tmp_path / "hub.db", "SELECT sensorId, seq FROM motion_events ORDER BY seq")
    assert [(row["sensorId"], row["seq"]) for row in events] == [("hall", 1), ("bath", 2)]


# --- 2. unknown sensors ------------------------------------------------------------------------


async def test_unknown_sensors_are_counted_never_a_session_never_played(
    tmp_path: Path, broker: Broker, unique_prefix: str
) -> None:
    config = _config(tmp_path, broker, unique_prefix, ("bath",))
    player = FakePlayer()
    unknown = {"garden_shed": 3, "attic": 2, "Bath": 1}  # ids are case-sensitive
    async with (
        running_daemon(config, player) as hub,
        session_states(broker) as states,
        mqtt_client(broker, "sensor") as sensor,
    ):
        for sensor_id, count in unknown.items():
            for seq in range(1, count + 1):
                motion = encode_seed_motion(sensor_id, seq=seq)
                await sensor.publish(_motion_topic(unique_prefix, sensor_id), motion, qos=1)
        # A known sensor last: once its session is published, all of the above was decided.
        bath_motion = encode_seed_motion("bath", seq=1)
        await sensor.publish(_motion_topic(unique_prefix, "bath"), bath_motion, qos=1)
        _, bath = await states.next("bath", _is_active)

        runner = hub.daemon.runner
        assert runner is not None
        for sensor_id, count in unknown.items():
            assert runner.counters[f"unknown_sensor:{sensor_id}"] == count
        assert runner.counters["motion"] == sum(unknown.values()) + 1
        assert hub.daemon.stats()["sessions.unknown_sensor:garden_shed"] == 3
        assert not any(key.startswith("parse_error") for key in hub.link.counters)
        await wait_until(lambda: len(player.starts) == 1)
        assert player.starts == [bath["sessionId"]]
        assert {record["sensorId"] for record in states.history} == {"bath"}

    rows = _sessions(tmp_path / "hub.db")
    assert [row["sensorId"] for row in rows] == ["bath"]
    events = _query(tmp_path / "hub.db", "SELECT DISTINCT sensorId FROM motion_events")
    assert [row["sensorId"] for row in events] == ["bath"]
    assert player.stops == [bath["sessionId"]]  # paused at shutdown: the hub started it


# --- 3. a flood --------------------------------------------------------------------------------


async def test_a_flooding_sensor_gets_one_session_and_the_hub_stays_responsive(
    tmp_path: Path,
    broker: Broker,
    unique_prefix: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = _config(tmp_path, broker, unique_prefix, ("flood", "calm"), debounce_seconds=10)
    player = FakePlayer()
    clock = ReaderClock()
    flood_topic = _motion_topic(unique_prefix, "flood")
    payloads = [encode_seed_motion("flood", seq=seq) for seq in range(1, FLOOD + 1)]
    async with (
        running_daemon(config, player, clock=clock) as hub,
        session_states(broker) as states,
        mqtt_client(broker, "flooder") as sensor,
    ):
        # QoS 1, as fast as the client can: every publish in flight at once (paho keeps
        # them in order), each awaiting its PUBACK.
        flood_started = time.perf_counter()
        async with asyncio.timeout(WAIT):
            await asyncio.gather(*(sensor.publish(flood_topic, p, qos=1) for p in payloads))
        flood_seconds = time.perf_counter() - flood_started
        published = time.perf_counter()
        await sensor.publish(
            _motion_topic(unique_prefix, "calm"), encode_seed_motion("calm", seq=1), qos=1
        )
        arrived, calm = await states.next("calm", _is_active, limit=WAIT)
        responsive_seconds = arrived - published

        runner = hub.daemon.runner
        assert runner is not None
        # One connection, one subscriber: the calm motion came after the whole flood.
        assert runner.counters["motion"] == FLOOD + 1
        assert not any(key.startswith("parse_error") for key in hub.link.counters)
        assert len(clock.reads) == FLOOD + 1
        last_flood_receive = clock.reads[FLOOD - 1]
        # Coalesced extensions are not published (only changes people see): the row has it.
        _, flood = await states.next("flood", _is_active)
        with capsys.disabled():
            print(
                f"\nflood: {FLOOD} QoS-1 messages published in {flood_seconds:.3f} s "
                f"({FLOOD / flood_seconds:,.0f}/s); another sensor's session "
                f"{responsive_seconds * 1000:.1f} ms after its motion was published"
            )
        assert responsive_seconds < RESPONSIVE_LIMIT
        await wait_until(lambda: len(player.starts) == 2)

    rows = {row["sensorId"]: row for row in _sessions(tmp_path / "hub.db")}
    assert len(_sessions(tmp_path / "hub.db", "flood")) == 1
    assert rows["flood"]["sessionId"] == flood["sessionId"]
    assert rows["flood"]["status"] == "active"
    assert rows["flood"]["motionEventsCount"] == 1  # all within the 10 s debounce
    assert rows["flood"]["lastMotionTime"] == _iso(last_flood_receive)
    assert rows["calm"]["sessionId"] == calm["sessionId"]
    assert sorted(player.starts) == sorted([flood["sessionId"], calm["sessionId"]])
    events = _query(tmp_path / "hub.db", "SELECT seq FROM motion_events WHERE sensorId = 'flood'")
    assert [row["seq"] for row in events] == [1]


# --- 4. the broker killed mid-session ---------------------------------------------------------


async def test_broker_killed_mid_session_the_hub_reconnects_and_the_session_carries_on(
    tmp_path: Path,
    broker: Broker,
    unique_prefix: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Every motion counted (no debounce), so each one changes the published state.
    config = _config(tmp_path, broker, unique_prefix, ("bath",), debounce_seconds=0)
    player = FakePlayer()
    async with running_daemon(config, player) as hub:
        async with session_states(broker) as states, mqtt_client(broker, "sensor") as sensor:
            motion = encode_seed_motion("bath", seq=1)
            await sensor.publish(_motion_topic(unique_prefix, "bath"), motion, qos=1)
            # Once the player's answer is published too, nothing is in flight: the outage
            # is seen by the reader (see the publish-failure xfail below for the other case).
            _, before = await states.next("bath", lambda r: r.get("playbackStarted") is True)

        await asyncio.to_thread(_kill_broker, broker)
        await wait_until(lambda: not hub.link.connected)
        launched = time.monotonic()
        await asyncio.to_thread(broker.start)
        accepting = time.monotonic() - launched
        async with asyncio.timeout(WAIT):
            await hub.link.connected_event.wait()
        reconnect_seconds = time.monotonic() - launched
        with capsys.disabled():
            print(
                f"\nbroker killed and restarted: accepting after {accepting:.3f} s, "
                f"hub reconnected {reconnect_seconds:.3f} s after the broker was launched"
            )
        assert reconnect_seconds < RECONNECT_LIMIT
        assert hub.link.counters["reconnects"] == 1

        # Still the same active session, in memory and on disk.
        runner = hub.daemon.runner
        assert runner is not None
        assert runner.engine.active["bath"].session_id == before["sessionId"]
        rows = _sessions(tmp_path / "hub.db", "bath")
        assert [(row["sessionId"], row["status"]) for row in rows] == [
            (before["sessionId"], "active")
        ]

        # Further motion extends it: no second session.
        async with session_states(broker) as states, mqtt_client(broker, "sensor") as sensor:
            motion = encode_seed_motion("bath", seq=2)
            await sensor.publish(_motion_topic(unique_prefix, "bath"), motion, qos=1)
            _, after = await states.next("bath", lambda r: r["motionEventsCount"] == 2)
        assert after["sessionId"] == before["sessionId"]
        assert after["status"] == "active"
        assert after["lastMotionTime"] > before["lastMotionTime"]

    rows = _sessions(tmp_path / "hub.db", "bath")
    assert len(rows) == 1
    assert rows[0]["sessionId"] == before["sessionId"]
    assert rows[0]["status"] == "active"
    assert rows[0]["lastMotionTime"] == after["lastMotionTime"]
    assert rows[0]["motionEventsCount"] == 2
    assert player.starts == [before["sessionId"]]


class _CeilingRandom:
    """The backoff's worst case: full jitter that always draws its ceiling."""

    def uniform(self, low: float, high: float) -> float:
        return high


async def test_after_a_longer_outage_the_hub_still_resubscribes_within_half_a_second(
    tmp_path: Path,
    broker: Broker,
    unique_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(hub.ingest.mqtt, "random", SimpleNamespace(Random=_CeilingRandom))
    config = _config(tmp_path, broker, unique_prefix, ("bath",))
    async with running_daemon(config, FakePlayer()) as running:
        link = running.link
        await asyncio.to_thread(_kill_broker, broker)
        # The broker stays down for three failed attempts, each waiting the whole cap.
        await wait_until(lambda: link.counters.get("connect_failures", 0) >= 3)
        launched = time.monotonic()
        await asyncio.to_thread(broker.start)
        async with asyncio.timeout(WAIT):
            await link.connected_event.wait()
        reconnect_seconds = time.monotonic() - launched
        with capsys.disabled():
            print(f"\nafter 3 failed attempts: resubscribed {reconnect_seconds:.3f} s after")
        assert reconnect_seconds < RECONNECT_LIMIT


async def test_session_state_is_retained_again_after_the_broker_lost_it(
    tmp_path: Path, broker: Broker, unique_prefix: str
) -> None:
    config = _config(tmp_path, broker, unique_prefix, ("bath",))
    async with running_daemon(config, FakePlayer()) as running:
        async with session_states(broker) as states, mqtt_client(broker, "sensor") as sensor:
            motion = encode_seed_motion("bath", seq=1)
            await sensor.publish(_motion_topic(unique_prefix, "bath"), motion, qos=1)
            _, before = await states.next("bath", lambda r: r.get("playbackStarted") is True)
        await asyncio.to_thread(_kill_broker, broker)
        await wait_until(lambda: not running.link.connected)
        await asyncio.to_thread(broker.start)
        async with asyncio.timeout(WAIT):
            await running.link.connected_event.wait()
        async with session_states(broker) as states:  # what Home Assistant would see now
            try:
                _, retained = await states.next("bath", limit=RECONNECT_LIMIT)
            except TimeoutError:
                retained = None
        assert retained == before


async def test_a_publish_failing_as_the_connection_drops_is_not_taken_for_refused_credentials(
    tmp_path: Path,
    broker: Broker,
    unique_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What aiomqtt raises when paho is asked to publish just after it saw the connection
    # go (`if info.rc != MQTT_ERR_SUCCESS`), injected so the race is not left to chance:
    # with the broker killed, the reader usually notices first (rc 7) and all is well.
    real_publish = aiomqtt.Client.publish
    failed: list[str] = []

    async def publish(self: aiomqtt.Client, topic: str, *args: Any, **kwargs: Any) -> None:
        if topic.startswith("spottypotty/sessions/") and not failed:
            failed.append(topic)
            raise aiomqtt.MqttCodeError(MQTT_ERR_NO_CONN, "Could not publish message")
        await real_publish(self, topic, *args, **kwargs)

    monkeypatch.setattr(aiomqtt.Client, "publish", publish)
    config = _config(tmp_path, broker, unique_prefix, ("bath",))
    async with (
        running_daemon(config, FakePlayer()) as running,
        mqtt_client(broker, "sensor") as sensor,
    ):
        motion = encode_seed_motion("bath", seq=1)
        await sensor.publish(_motion_topic(unique_prefix, "bath"), motion, qos=1)
        await wait_until(lambda: bool(failed))
        lost = time.monotonic()
        # The reconnect itself is awaited, not the moment between: with no backoff to sit
        # out, the link may be connected again before a poll ever sees it disconnected.
        try:
            await wait_until(lambda: running.link.counters.get("reconnects") == 1, RECONNECT_LIMIT)
        except TimeoutError:
            pytest.fail(f"not reconnected {time.monotonic() - lost:.1f} s after the drop")
        assert running.link.connected
        assert running.link.counters["reconnects"] == 1


# --- 5. kill -9 of the hub ---------------------------------------------------------------------

KILL_SEED = 42
KILL_SENSORS = ("k0", "k1", "k2")
KILL_TIMEOUT_MINUTES = 0.02  # 1.2 s: the daemon subprocess runs in real time
KILL_TIMEOUT = dt.timedelta(seconds=KILL_TIMEOUT_MINUTES * 60)
# How long the hub stays dead after each kill: once past the timeout, so sessions whose
# deadline passed while it was down are recovered and completed; else they resume.
KILL_DOWNTIMES = (0.0, 0.0, 1.6)
STREAM_PAUSE = 1.5  # now and then the motion stops for longer than the timeout


def _kill_config(tmp_path: Path, broker: Broker, prefix: str) -> Path:
    sensors = "".join(f'[[sensors]]\nid = "{sensor}"\nuser_id = "u1"\n' for sensor in KILL_SENSORS)
    path = tmp_path / "hub.toml"
    path.write_text(
        f'[hub]\ndatabase = "{tmp_path / "hub.db"}"\n'
        f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\ntopic_prefix = "{prefix}"\n'
        f"[sessions]\ntimeout_minutes = {KILL_TIMEOUT_MINUTES}\ndebounce_seconds = 0.3\n"
        "[spotify]\ndry_run = true\n" + sensors,
        encoding="utf-8",
    )
    return path


def _check_consistent(path: Path) -> None:
    """What must hold at any instant, including right after a kill -9."""
    assert [tuple(row) for row in _query(path, "PRAGMA integrity_check")] == [("ok",)]
    assert _query(path, "PRAGMA foreign_key_check") == []
    doubles = _query(
        path,
        "SELECT sensorId, count(*) FROM sessions WHERE status = 'active' "
        "GROUP BY sensorId HAVING count(*) > 1",
    )
    assert doubles == []
    # A session and its counted motion events are written in one transaction.
    mismatched = _query(
        path,
        "SELECT s.sessionId, s.motionEventsCount, count(e.eventId) AS events FROM sessions s "
        "LEFT JOIN motion_events e ON e.sessionId = s.sessionId GROUP BY s.sessionId "
        "HAVING s.motionEventsCount != events",
    )
    assert [tuple(row) for row in mismatched] == []


async def _stream_motion(
    broker: Broker, prefix: str, stop: asyncio.Event, rng: random.Random
) -> int:
    """Motion from every sensor at random short intervals (some longer than the timeout,
    so sessions also end live) until `stop`; returns how many were published."""
    seqs = dict.fromkeys(KILL_SENSORS, 0)
    published = 0
    async with mqtt_client(broker, "stream") as client:
        while not stop.is_set():
            sensor = rng.choice(KILL_SENSORS)
            seqs[sensor] += 1
            motion = encode_seed_motion(sensor, seq=seqs[sensor])
            await client.publish(_motion_topic(prefix, sensor), motion, qos=1)
            published += 1
            pause = rng.uniform(0.01, 0.06) if rng.random() < 0.97 else STREAM_PAUSE
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(pause):  # pacing, not waiting for a deadline
                    await stop.wait()
    return published


async def test_kill_9_at_random_points_leaves_a_consistent_db_and_sessions_end_once_on_time(
    tmp_path: Path,
    broker: Broker,
    unique_prefix: str,
    notify: NotifySocket,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rng = random.Random(KILL_SEED)
    database = tmp_path / "hub.db"
    hub_process = HubProcess(
        _kill_config(tmp_path, broker, unique_prefix), notify, tmp_path / "hub.log"
    )
    downtimes = list(KILL_DOWNTIMES)
    rng.shuffle(downtimes)
    kill_points: list[float] = []
    ready_seconds: list[float] = []
    try:
        async with session_states(broker) as states:
            ready_seconds.append(await hub_process.start())
            stop = asyncio.Event()
            stream = asyncio.create_task(
                _stream_motion(broker, unique_prefix, stop, random.Random(KILL_SEED + 1)),
                name="motion-stream",
            )
            try:
                for downtime in downtimes:
                    point = rng.uniform(0.1, 1.5)
                    kill_points.append(point)
                    await asyncio.sleep(point)  # a random instant in the stream, not a deadline
                    hub_process.kill()
                    await asyncio.to_thread(_check_consistent, database)
                    await asyncio.sleep(downtime)  # the outage itself (motion queues meanwhile)
                    ready_seconds.append(await hub_process.start())
                await asyncio.sleep(rng.uniform(0.2, 0.5))
            finally:
                stop.set()
                published = await stream

            # Every session ends: wait for the hub's published states, checking the DB.
            async with asyncio.timeout(WAIT):
                while True:
                    states.arrived.clear()
                    if not _query(database, "SELECT 1 FROM sessions WHERE status = 'active'"):
                        break
                    await states.arrived.wait()
            history = list(states.history)
        assert await hub_process.terminate() == 0
    finally:
        hub_process.cleanup()

    log = hub_process.log.read_text(errors="replace")
    assert "Traceback" not in log
    _check_consistent(database)
    rows = _sessions(database)
    assert rows
    assert all(row["status"] == "completed" for row in rows)
    # Ended at last motion + timeout, exactly (to the microsecond the ISO strings keep).
    overshoots = {
        row["sessionId"]: _instant(row["endTime"]) - _instant(row["lastMotionTime"]) - KILL_TIMEOUT
        for row in rows
    }
    with capsys.disabled():
        print(
            f"\nkill -9 after {', '.join(f'{p:.2f}' for p in kill_points)} s of motion, "
            f"down {', '.join(f'{d:.1f}' for d in downtimes)} s; "
            f"READY after {', '.join(f'{r:.2f}' for r in ready_seconds)} s; "
            f"{published} motions, {len(rows)} sessions "
            f"({sum(1 for o in overshoots.values() if o)} ended 1 µs off), "
            f"{len(log.split('recovered')) - 1} recoveries logged"
        )
    for session_id, overshoot in overshoots.items():
        assert abs(overshoot) <= ISO_SLACK, (session_id, overshoot)
    by_sensor: defaultdict[str, list[sqlite3.Row]] = defaultdict(list)
    for row in rows:
        by_sensor[row["sensorId"]].append(row)
    for sensor_rows in by_sensor.values():
        # Never two at once: each ends before the next starts.
        for earlier, later in itertools.pairwise(sensor_rows):
            assert _instant(earlier["endTime"]) <= _instant(later["startTimeISO"])
    # Ended exactly once: every "completed" the hub published for a session agrees with
    # the row, and nothing made it active again afterwards.
    final = {row["sessionId"]: row for row in rows}
    completed: set[str] = set()
    for record in history:
        session_id = record["sessionId"]
        if record["status"] == "completed":
            assert record["endTime"] == final[session_id]["endTime"]
            completed.add(session_id)
        else:
            assert session_id not in completed, record


# --- the microsecond of a fractional timeout ---------------------------------------------------

# A receive time whose deadline (+1.2 s) rounds to the next microsecond in float arithmetic.
_ROUNDING_INSTANT = 1_700_134_364.2441125


async def test_fractional_timeout_ends_exactly_at_the_deadline_in_the_record(
    tmp_path: Path, broker: Broker, unique_prefix: str
) -> None:
    config = _config(
        tmp_path, broker, unique_prefix, ("bath",), timeout_minutes=KILL_TIMEOUT_MINUTES
    )
    clock = FixedClock(_ROUNDING_INSTANT)
    async with (
        running_daemon(config, FakePlayer(), clock=clock) as running,
        session_states(broker) as states,
        mqtt_client(broker, "sensor") as sensor,
    ):
        motion = encode_seed_motion("bath", seq=1)
        await sensor.publish(_motion_topic(unique_prefix, "bath"), motion, qos=1)
        await states.next("bath", _is_active)
        clock.now += 60
        assert running.daemon.runner is not None
        running.daemon.runner.poke()
        _, ended = await states.next("bath", lambda r: r["status"] == "completed")
    span = _instant(ended["endTime"]) - _instant(ended["lastMotionTime"])
    assert span == KILL_TIMEOUT, ended


# --- 6. a hung player ----------------------------------------------------------------------------


class CommitTimes:
    """When the hub hands each sensor's first session state to the MQTT link: the daemon
    does that right after the commit (`on_session`), so this is "session persisted"
    without the hub -> broker -> subscriber hop."""

    def __init__(self, link: hub.ingest.mqtt.MqttLink, monkeypatch: pytest.MonkeyPatch) -> None:
        self._publish = link.publish
        self.at: dict[str, float] = {}
        self._events: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
        monkeypatch.setattr(link, "publish", self._record)

    def _record(self, topic: str, payload: bytes | str, *, retain: bool = True) -> None:
        if topic.startswith(SESSION_TOPIC.format(sensor="")):
            sensor = topic.rsplit("/", 1)[-1]
            self.at.setdefault(sensor, time.perf_counter())
            self._events[sensor].set()
        self._publish(topic, payload, retain=retain)

    async def wait(self, sensor: str) -> float:
        async with asyncio.timeout(WAIT):
            await self._events[sensor].wait()
        return self.at[sensor]


async def _ingest_latencies(
    commits: CommitTimes,
    states: SessionStates,
    sensor_client: aiomqtt.Client,
    prefix: str,
    sensors: list[str],
) -> tuple[list[float], list[float]]:
    """Seconds from publishing each sensor's first motion to its session being persisted,
    and to its state reaching a subscriber; one sensor at a time."""
    persisted: list[float] = []
    delivered: list[float] = []
    for sensor in sensors:
        motion = encode_seed_motion(sensor, seq=1)
        sent = time.perf_counter()
        await sensor_client.publish(_motion_topic(prefix, sensor), motion, qos=1)
        committed = await commits.wait(sensor)
        arrived, _ = await states.next(sensor, _is_active)
        persisted.append(committed - sent)
        delivered.append(arrived - sent)
    return persisted, delivered


def _ms(samples: list[float]) -> str:
    return f"p50 {_p50(samples) * 1000:.2f} ms, p99 {_p99(samples) * 1000:.2f} ms"


async def test_a_hung_player_does_not_delay_ingest(
    tmp_path: Path,
    broker_factory: BrokerFactory,
    unique_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Without TCP_NODELAY mosquitto's small writes (PUBACK, PUBLISH) can wait ~40 ms for a
    # delayed ACK (Nagle): noise that would swamp what is measured here.
    broker = broker_factory("set_tcp_nodelay true\n")
    warmup = [f"w{i:02d}" for i in range(5)]
    trials = [
        (
            [f"n{t}-{i:02d}" for i in range(LATENCY_SAMPLES)],
            [f"h{t}-{i:02d}" for i in range(LATENCY_SAMPLES)],
        )
        for t in range(LATENCY_TRIALS)
    ]
    sensors = [*warmup, *(s for normal, hung in trials for s in (*normal, *hung))]
    config = _config(tmp_path, broker, unique_prefix, tuple(sensors))
    database = tmp_path / "hub.db"
    player = FakePlayer()
    results: list[tuple[list[float], list[float], list[float], list[float]]] = []
    async with (
        running_daemon(config, player) as running,
        session_states(broker) as states,
        mqtt_client(broker, "sensor") as sensor,
    ):
        commits = CommitTimes(running.link, monkeypatch)
        await _ingest_latencies(commits, states, sensor, unique_prefix, warmup)
        for normal, hung in trials:
            _checkpoint(database)
            normal_persisted, normal_delivered = await _ingest_latencies(
                commits, states, sensor, unique_prefix, normal
            )
            await wait_until(lambda: player.pending == 0)
            _checkpoint(database)
            player.hang()
            hung_persisted, hung_delivered = await _ingest_latencies(
                commits, states, sensor, unique_prefix, hung
            )
            # The player is stuck in its first start; every session was committed regardless.
            assert player.pending == 1
            rows = _query(
                database,
                "SELECT status, playbackStarted FROM sessions WHERE sensorId LIKE ?",
                (hung[0][:3] + "%",),
            )
            assert [tuple(row) for row in rows] == [("active", 0)] * len(hung)
            results.append((normal_persisted, hung_persisted, normal_delivered, hung_delivered))
            if _p99(hung_persisted) <= 2 * _p99(normal_persisted) + 0.005:
                break
            player.release()  # the queued starts go through; measure again

    with capsys.disabled():
        for number, (normal_p, hung_p, normal_d, hung_d) in enumerate(results, 1):
            print(
                f"\ningest trial {number}, {LATENCY_SAMPLES} motions each, publish -> session "
                f"persisted: normal player {_ms(normal_p)}; hung player {_ms(hung_p)}"
                f"\n  (publish -> state at a subscriber: normal {_ms(normal_d)}; "
                f"hung {_ms(hung_d)})"
            )
    # A hung player that held ingest up would fail every trial; a noisy neighbour on a
    # shared CI machine rarely spoils three in a row.
    normal_persisted, hung_persisted, _, _ = results[-1]
    assert _p99(hung_persisted) <= 2 * _p99(normal_persisted) + 0.005


# --- 7. SIGTERM --------------------------------------------------------------------------------
# tests/integration/test_daemon.py covers the process: exit 0 within 5 s, STOPPING=1, the
# session left active. Here, in-process with a player that really starts: what the hub
# started is paused (once), and the session stays active with playback started, for recovery.


async def _sigterm(running: RunningDaemon) -> int | None:
    # Only while the daemon's handler is installed: the default would end pytest.
    assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None)
    os.kill(os.getpid(), signal.SIGTERM)
    return await running.finished(STOP_LIMIT)


async def test_sigterm_pauses_what_the_hub_started_and_keeps_the_session_for_recovery(
    tmp_path: Path, broker: Broker, unique_prefix: str
) -> None:
    config = _config(tmp_path, broker, unique_prefix, ("bath", "hall"))
    player = FakePlayer()
    notifier = RecordingNotifier()
    async with (
        running_daemon(config, player, notifier=notifier) as running,
        session_states(broker) as states,
        mqtt_client(broker, "sensor") as sensor,
    ):
        motion = encode_seed_motion("bath", seq=1)
        await sensor.publish(_motion_topic(unique_prefix, "bath"), motion, qos=1)
        _, playing = await states.next("bath", lambda r: r.get("playbackStarted") is True)
        stopped_at = time.monotonic()
        assert await _sigterm(running) == 0
        stop_seconds = time.monotonic() - stopped_at

    assert stop_seconds < STOP_LIMIT
    assert any(message.startswith("STOPPING=1") for message in notifier.sent)
    assert player.stops == [playing["sessionId"]]
    rows = _sessions(tmp_path / "hub.db")
    assert [(r["sessionId"], r["status"], r["playbackStarted"]) for r in rows] == [
        (playing["sessionId"], "active", 1)
    ]


async def test_sigterm_exits_within_5_s_even_when_the_player_does_not_answer_stop(
    tmp_path: Path, broker: Broker, unique_prefix: str
) -> None:
    config = _config(tmp_path, broker, unique_prefix, ("bath",))
    player = FakePlayer(hang_stop=True)
    async with (
        running_daemon(config, player) as running,
        session_states(broker) as states,
        mqtt_client(broker, "sensor") as sensor,
    ):
        motion = encode_seed_motion("bath", seq=1)
        await sensor.publish(_motion_topic(unique_prefix, "bath"), motion, qos=1)
        await states.next("bath", lambda r: r.get("playbackStarted") is True)
        code = await _sigterm(running)  # running_daemon cancels it afterwards if need be
    assert player.stops
    assert code == 0
