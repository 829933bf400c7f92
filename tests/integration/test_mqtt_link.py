"""MqttLink against a real mosquitto: decoding, dedup, hub status, reconnects, sessions."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import aiomqtt
import pytest

from hub.config import HubConfig, MqttSection, SensorConfig
from hub.ingest.mqtt import HUB_STATUS_TOPIC, PAUSE_AT, MqttLink
from hub.ingest.mqtt_decode import Inbound, StatusUpdate, TopicRouter
from hub.model import MotionEvent, Receipt, SensorState, StateKind

if TYPE_CHECKING:
    from tests.broker import Broker
    from tests.integration.conftest import BrokerFactory


pytestmark = pytest.mark.integration

NOW = 1_704_412_900.0
SENSOR = "bathroom_main"
ESP_SENSOR = "hall_pir"
WAIT = 5.0  # seconds: an upper bound for something that normally takes milliseconds
RECONNECT_LIMIT = 2.0  # seconds from the broker's return to the link being connected again
REPO = Path(__file__).resolve().parents[2]

_T = TypeVar("_T")
Received = tuple[str, bytes, bool]  # topic, payload, retain flag


def _clock() -> float:
    return NOW


def _config(broker: Broker, prefix: str) -> HubConfig:
    return HubConfig(
        mqtt=MqttSection(host=broker.host, port=broker.port, topic_prefix=prefix),
        sensors=(
            SensorConfig(id=SENSOR, user_id="user-123"),
            SensorConfig(
                id=ESP_SENSOR,
                user_id="user-123",
                mqtt_topic=f"{prefix}-esp/binary_sensor/motion/state",
                mqtt_format="esphome",
            ),
        ),
    )


def _link(
    broker: Broker,
    prefix: str,
    inbox: asyncio.Queue[Inbound] | None = None,
    **kwargs: Any,
) -> MqttLink:
    kwargs.setdefault("client_id", f"hub-{prefix}")
    return MqttLink(
        _config(broker, prefix),
        inbox if inbox is not None else asyncio.Queue(),
        clock=_clock,
        **kwargs,
    )


def _motion(seq: int | None = 17, **extra: Any) -> bytes:
    payload: dict[str, Any] = {
        "event": "motion_detected",
        "sensorId": "ignored-the-topic-wins",
        "timestamp": 1704412800,
        "metadata": {"batteryLevel": 85, "signalStrength": -45, "firmwareVersion": "1.0.0"},
        **extra,
    }
    if seq is not None:
        payload["seq"] = seq
    return json.dumps(payload).encode()


def _as_bytes(payload: object) -> bytes:
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    return b"" if payload is None else str(payload).encode()


@contextlib.asynccontextmanager
async def running(link: MqttLink) -> AsyncIterator[asyncio.Task[None]]:
    """`link.run()` in a task, connected; stopped gracefully on the way out."""
    task = asyncio.create_task(link.run(), name="mqtt-link")
    try:
        async with asyncio.timeout(WAIT):
            await link.connected_event.wait()
        yield task
    finally:
        if not task.done():
            await link.publish_offline()
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def sensor_client(broker: Broker) -> AsyncIterator[aiomqtt.Client]:
    """A fresh client playing the firmware (QoS-1 publishes wait for the PUBACK)."""
    async with aiomqtt.Client(
        broker.host, broker.port, identifier=f"sensor-{uuid.uuid4().hex[:8]}"
    ) as client:
        yield client


@contextlib.asynccontextmanager
async def monitor(broker: Broker, *topics: str) -> AsyncIterator[asyncio.Queue[Received]]:
    """Everything published on `topics` (subscribed QoS 1), in arrival order."""
    received: asyncio.Queue[Received] = asyncio.Queue()
    async with aiomqtt.Client(
        broker.host, broker.port, identifier=f"monitor-{uuid.uuid4().hex[:8]}"
    ) as client:
        for topic in topics:
            await client.subscribe(topic, qos=1)

        async def pump() -> None:
            async for message in client.messages:
                received.put_nowait(
                    (message.topic.value, _as_bytes(message.payload), bool(message.retain))
                )

        task = asyncio.create_task(pump(), name="mqtt-monitor")
        try:
            yield received
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def next_item(queue: asyncio.Queue[_T]) -> _T:
    """The next item that is not a receipt; receipts on the way are settled, as the runner
    does once what came before them is committed."""
    async with asyncio.timeout(WAIT):
        item = await queue.get()
        while isinstance(item, Receipt):
            item.committed()
            item = await queue.get()
        return item


def nothing_but_receipts(inbox: asyncio.Queue[Inbound]) -> bool:
    """Settle the receipts queued; True when nothing else is."""
    while not inbox.empty():
        item = inbox.get_nowait()
        if not isinstance(item, Receipt):
            return False
        item.committed()
    return True


async def next_seqs(
    inbox: asyncio.Queue[Inbound], count: int, *, commit: bool = True
) -> list[int | None]:
    """The seqs of the next `count` motion events; with `commit` false the receipts on the
    way are left unsettled (the hub died before committing)."""
    seqs: list[int | None] = []
    async with asyncio.timeout(WAIT):
        while len(seqs) < count:
            item = await inbox.get()
            if isinstance(item, Receipt):
                if commit:
                    item.committed()
                continue
            assert isinstance(item, MotionEvent)
            seqs.append(item.seq)
    return seqs


async def wait_until(condition: Callable[[], bool]) -> None:
    """Poll a condition that has no event of its own (bounded)."""
    async with asyncio.timeout(WAIT):
        while not condition():  # noqa: ASYNC110 - nothing to await: poll, bounded
            await asyncio.sleep(0.01)


def _seed_event(seq: int | None = 17) -> MotionEvent:
    return MotionEvent(
        sensor_id=SENSOR,
        occurred_at=NOW,
        received_at=NOW,
        source="mqtt",
        sensor_timestamp=1704412800.0,
        seq=seq,
        battery_level=85,
        signal_strength=-45,
        firmware_version="1.0.0",
    )


# --- inbound ---------------------------------------------------------------------------------


async def test_seed_motion_arrives_as_motion_event(broker: Broker, unique_prefix: str) -> None:
    inbox: asyncio.Queue[Inbound] = asyncio.Queue()
    async with running(_link(broker, unique_prefix, inbox)), sensor_client(broker) as sensor:
        await sensor.publish(f"{unique_prefix}/{SENSOR}/motion", _motion(), qos=1)
        assert await next_item(inbox) == _seed_event()


async def test_esphome_foreign_topic(broker: Broker, unique_prefix: str) -> None:
    inbox: asyncio.Queue[Inbound] = asyncio.Queue()
    topic = f"{unique_prefix}-esp/binary_sensor/motion/state"
    async with running(_link(broker, unique_prefix, inbox)), sensor_client(broker) as sensor:
        await sensor.publish(topic, "ON", qos=1)
        await sensor.publish(topic, "OFF", qos=1)
        assert await next_item(inbox) == SensorState(
            ESP_SENSOR, StateKind.OCCUPANCY, on=True, received_at=NOW
        )
        assert await next_item(inbox) == SensorState(
            ESP_SENSOR, StateKind.OCCUPANCY, on=False, received_at=NOW
        )


async def test_retained_esphome_state_is_the_current_state(
    broker: Broker, unique_prefix: str
) -> None:
    inbox: asyncio.Queue[Inbound] = asyncio.Queue()
    topic = f"{unique_prefix}-esp/binary_sensor/motion/state"
    async with sensor_client(broker) as sensor:
        await sensor.publish(topic, "ON", qos=1, retain=True)
    async with running(_link(broker, unique_prefix, inbox)), sensor_client(broker) as sensor:
        await sensor.publish(f"{unique_prefix}/{SENSOR}/motion", _motion(), qos=1)
        replayed = SensorState(
            ESP_SENSOR, StateKind.OCCUPANCY, on=True, received_at=NOW, retained=True
        )
        assert await next_item(inbox) == replayed  # the state now, marked: it starts nothing
        assert await next_item(inbox) == _seed_event()
        assert nothing_but_receipts(inbox)


async def test_sensor_status_online_and_offline(broker: Broker, unique_prefix: str) -> None:
    inbox: asyncio.Queue[Inbound] = asyncio.Queue()
    topic = f"{unique_prefix}/{SENSOR}/status"
    async with running(_link(broker, unique_prefix, inbox)), sensor_client(broker) as sensor:
        await sensor.publish(topic, json.dumps({"status": "online", "ip": "10.0.0.7"}), qos=1)
        await sensor.publish(topic, "offline", qos=1, retain=True)  # a firmware last will
        assert await next_item(inbox) == StatusUpdate(SENSOR, online=True, received_at=NOW)
        assert await next_item(inbox) == StatusUpdate(SENSOR, online=False, received_at=NOW)


async def test_malformed_payload_is_counted_and_the_link_keeps_going(
    broker: Broker, unique_prefix: str
) -> None:
    inbox: asyncio.Queue[Inbound] = asyncio.Queue()
    link = _link(broker, unique_prefix, inbox)
    async with running(link), sensor_client(broker) as sensor:
        await sensor.publish(f"{unique_prefix}/{SENSOR}/motion", b"\xff{not json", qos=1)
        await sensor.publish(f"{unique_prefix}/{SENSOR}/motion", b'{"event": "nope"}', qos=1)
        await sensor.publish(f"{unique_prefix}/stranger/motion", b"[]", qos=1)
        await sensor.publish(f"{unique_prefix}/{SENSOR}/motion", _motion(), qos=1)
        assert await next_item(inbox) == _seed_event()
        assert link.counters["parse_error:bathroom_main"] == 2
        assert link.counters["parse_error:unknown"] == 1
        assert link.connected


async def test_a_decoder_bug_drops_that_message_and_the_link_keeps_going(
    broker: Broker, unique_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    inbox: asyncio.Queue[Inbound] = asyncio.Queue()
    link = _link(broker, unique_prefix, inbox)
    decode = TopicRouter.decode

    def buggy(
        router: TopicRouter, topic: str, payload: bytes, received_at: float, **flags: bool
    ) -> Any:
        if b"poison" in payload:
            raise KeyError("a bug in our decoder")
        return decode(router, topic, payload, received_at, **flags)

    monkeypatch.setattr(TopicRouter, "decode", buggy)
    async with running(link), sensor_client(broker) as sensor:
        topic = f"{unique_prefix}/{SENSOR}/motion"
        await sensor.publish(topic, _motion(seq=1, poison=True), qos=1)
        await sensor.publish(topic, _motion(seq=2), qos=1)
        event = await next_item(inbox)
        assert isinstance(event, MotionEvent)
        assert event.seq == 2
        assert link.counters["decode_failed:bathroom_main"] == 1
        assert link.counters["connects"] == 1  # no reconnect: the poison was acknowledged


async def test_redelivered_seq_is_dropped(broker: Broker, unique_prefix: str) -> None:
    inbox: asyncio.Queue[Inbound] = asyncio.Queue()
    link = _link(broker, unique_prefix, inbox)
    motion = f"{unique_prefix}/{SENSOR}/motion"
    async with running(link), sensor_client(broker) as sensor:
        await sensor.publish(motion, _motion(seq=17), qos=1)
        await sensor.publish(motion, _motion(seq=17), qos=1)  # a QoS-1 redelivery
        await sensor.publish(motion, _motion(seq=18), qos=1)
        assert await next_item(inbox) == _seed_event(seq=17)
        assert await next_item(inbox) == _seed_event(seq=18)
        assert link.counters["duplicate:bathroom_main"] == 1
        # The sensor reboots and says so: its counter restarts, seq 17 is new motion again.
        await sensor.publish(f"{unique_prefix}/{SENSOR}/status", "online", qos=1, retain=True)
        await sensor.publish(motion, _motion(seq=17), qos=1)
        assert await next_item(inbox) == StatusUpdate(SENSOR, online=True, received_at=NOW)
        assert await next_item(inbox) == _seed_event(seq=17)
        assert link.counters["duplicate:bathroom_main"] == 1


async def test_full_inbox_applies_back_pressure_without_loss(
    broker: Broker, unique_prefix: str
) -> None:
    inbox: asyncio.Queue[Inbound] = asyncio.Queue(maxsize=1)
    async with running(_link(broker, unique_prefix, inbox)), sensor_client(broker) as sensor:
        topic = f"{unique_prefix}/{SENSOR}/motion"
        # All in flight at once: the first fills the inbox, the rest wait in aiomqtt's
        # queue behind the one the reader holds.
        await asyncio.gather(*(sensor.publish(topic, _motion(seq=s), qos=1) for s in range(50)))
        assert await next_seqs(inbox, 50) == list(range(50))


async def test_what_was_delivered_but_not_taken_comes_again_after_a_broken_connection(
    broker: Broker, unique_prefix: str
) -> None:
    # 20 motions in flight while the inbox has room for one; then the connection breaks.
    # The link acknowledges a message only once it is committed, so the broker still
    # holds the others and delivers them after the reconnect: every seq arrives, in order.
    inbox: asyncio.Queue[Inbound] = asyncio.Queue(maxsize=1)
    link = _link(broker, unique_prefix, inbox, backoff_base=0.01, backoff_cap=0.05)
    async with running(link), sensor_client(broker) as sensor:
        topic = f"{unique_prefix}/{SENSOR}/motion"
        await asyncio.gather(*(sensor.publish(topic, _motion(seq=s), qos=1) for s in range(20)))
        # 1 in the inbox, its receipt waiting for room, the rest unacknowledged
        await wait_until(lambda: link.counters["messages"] == 1)
        await asyncio.to_thread(broker.stop)  # it keeps the unacknowledged ones (persistence)
        await asyncio.to_thread(broker.start)
        assert await next_seqs(inbox, 20) == list(range(20))
        await wait_until(lambda: link.counters.get("reconnects") == 1)
        assert nothing_but_receipts(inbox)  # what came again is dropped by seq: each motion once


async def test_only_committed_motion_is_acknowledged(broker: Broker, unique_prefix: str) -> None:
    # A message is acknowledged once the runner settles the receipt queued behind it (after
    # its commit). What the hub took but never committed — it died first — comes again to
    # the next hub; what it committed does not.
    topic = f"{unique_prefix}/{SENSOR}/motion"
    inbox: asyncio.Queue[Inbound] = asyncio.Queue()
    async with running(_link(broker, unique_prefix, inbox)), sensor_client(broker) as sensor:
        for seq in range(5):
            await sensor.publish(topic, _motion(seq=seq), qos=1)
        assert await next_seqs(inbox, 5) == list(range(5))
        assert nothing_but_receipts(inbox)  # committed: acknowledged
        for seq in range(5, 10):
            await sensor.publish(topic, _motion(seq=seq), qos=1)
        assert await next_seqs(inbox, 5, commit=False) == list(range(5, 10))
    again: asyncio.Queue[Inbound] = asyncio.Queue()
    async with running(_link(broker, unique_prefix, again)):
        assert await next_seqs(again, 5) == list(range(5, 10))
        assert nothing_but_receipts(again)


async def test_a_restarted_hub_knows_what_it_committed(broker: Broker, unique_prefix: str) -> None:
    # Committed, then killed before the acknowledgement went out: the broker sends it again,
    # and the seqs the new hub read from SQLite (`remember_seqs`) recognise it.
    topic = f"{unique_prefix}/{SENSOR}/motion"
    inbox: asyncio.Queue[Inbound] = asyncio.Queue()
    async with running(_link(broker, unique_prefix, inbox)), sensor_client(broker) as sensor:
        for seq in (7, 8):
            await sensor.publish(topic, _motion(seq=seq), qos=1)
        assert await next_seqs(inbox, 2, commit=False) == [7, 8]
    again: asyncio.Queue[Inbound] = asyncio.Queue()
    restarted = _link(broker, unique_prefix, again)
    restarted.remember_seqs({SENSOR: [7, 8]})
    async with running(restarted), sensor_client(broker) as sensor:
        await wait_until(lambda: restarted.counters[f"duplicate:{SENSOR}"] == 2)
        await sensor.publish(topic, _motion(seq=9), qos=1)
        assert await next_seqs(again, 1) == [9]


async def test_a_flood_faster_than_the_hub_waits_at_the_broker(
    broker_factory: BrokerFactory, unique_prefix: str
) -> None:
    # The hub takes each message slowly, so acknowledgements flow — and mosquitto 2.0
    # then sends everything it has, whatever its in-flight window. The link stops reading
    # the socket once aiomqtt holds PAUSE_AT messages: the flood waits in the kernel and
    # at the broker, and nothing is lost. The broker's queue is as deployed
    # (deploy/mosquitto: 100,000; mosquitto's default of 1,000 would drop part of it).
    broker = broker_factory("max_queued_messages 100000\n")
    inbox: asyncio.Queue[Inbound] = asyncio.Queue(maxsize=10)
    link = _link(broker, unique_prefix, inbox)
    flood = 10 * PAUSE_AT
    seen: list[int | None] = []
    backlog: list[int] = []

    async def slow_hub() -> None:
        while len(seen) < flood:
            event = await next_item(inbox)
            assert isinstance(event, MotionEvent)
            seen.append(event.seq)
            backlog.append(link.backlog)
            await asyncio.sleep(0.0002)

    async with running(link), sensor_client(broker) as sensor:
        hub = asyncio.create_task(slow_hub())
        topic = f"{unique_prefix}/{SENSOR}/motion"
        await asyncio.gather(*(sensor.publish(topic, _motion(seq=s), qos=1) for s in range(flood)))
        async with asyncio.timeout(60):
            await hub
    assert seen == list(range(flood))  # in order, none lost, none twice
    # aiomqtt's queue stopped near PAUSE_AT (plus what paho had read by then), where
    # without the pause it holds most of the flood.
    assert PAUSE_AT <= max(backlog) < 2 * PAUSE_AT


async def test_a_slow_consumer_sees_every_message_in_order(
    broker: Broker, unique_prefix: str
) -> None:
    inbox: asyncio.Queue[Inbound] = asyncio.Queue(maxsize=3)
    seen: list[int | None] = []

    async def consume() -> None:
        while True:
            event = await next_item(inbox)
            assert isinstance(event, MotionEvent)
            seen.append(event.seq)
            await asyncio.sleep(0.001)

    link = _link(broker, unique_prefix, inbox)
    async with running(link), sensor_client(broker) as sensor, asyncio.TaskGroup() as group:
        consumer = group.create_task(consume())
        topic = f"{unique_prefix}/{SENSOR}/motion"
        await asyncio.gather(*(sensor.publish(topic, _motion(seq=s), qos=1) for s in range(300)))
        await wait_until(lambda: len(seen) == 300)
        consumer.cancel()
    assert seen == list(range(300))
    assert link.counters["messages"] == 300


# --- the hub's own status and publishes ------------------------------------------------------


async def test_hub_status_retained_online_then_offline(broker: Broker, unique_prefix: str) -> None:
    link = _link(broker, unique_prefix)
    async with running(link) as task:
        async with monitor(broker, HUB_STATUS_TOPIC) as status:
            assert await next_item(status) == (HUB_STATUS_TOPIC, b"online", True)
        await link.publish_offline()
        assert task.done()
        assert not link.connected
    async with monitor(broker, HUB_STATUS_TOPIC) as status:
        assert await next_item(status) == (HUB_STATUS_TOPIC, b"offline", True)


async def test_cancelled_run_still_leaves_status_offline(
    broker: Broker, unique_prefix: str
) -> None:
    link = _link(broker, unique_prefix)
    task = asyncio.create_task(link.run(), name="mqtt-link")
    async with asyncio.timeout(WAIT):
        await link.connected_event.wait()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    async with monitor(broker, HUB_STATUS_TOPIC) as status:
        assert await next_item(status) == (HUB_STATUS_TOPIC, b"offline", True)


_HUB_PROCESS = """
import asyncio, sys
from hub.config import HubConfig, MqttSection
from hub.ingest.mqtt import MqttLink

async def main() -> None:
    mqtt = MqttSection(host="127.0.0.1", port=int(sys.argv[1]), topic_prefix=sys.argv[2])
    link = MqttLink(HubConfig(mqtt=mqtt), asyncio.Queue(), client_id=sys.argv[3])
    task = asyncio.create_task(link.run())
    await link.connected_event.wait()
    print("connected", flush=True)
    await task

asyncio.run(main())
"""


async def test_last_will_says_offline_when_the_hub_dies(broker: Broker, unique_prefix: str) -> None:
    async with monitor(broker, HUB_STATUS_TOPIC) as status:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _HUB_PROCESS,
            str(broker.port),
            unique_prefix,
            f"hub-{unique_prefix}",
            cwd=REPO,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            assert process.stdout is not None
            async with asyncio.timeout(WAIT):
                assert await process.stdout.readline() == b"connected\n"
            assert await next_item(status) == (HUB_STATUS_TOPIC, b"online", False)
        finally:
            if process.returncode is None:
                process.kill()  # no DISCONNECT: the broker publishes the last will
            await process.communicate()
        assert await next_item(status) == (HUB_STATUS_TOPIC, b"offline", False)
    async with monitor(broker, HUB_STATUS_TOPIC) as status:
        assert await next_item(status) == (HUB_STATUS_TOPIC, b"offline", True)


async def test_publish_while_disconnected_sends_latest_after_connect(
    broker: Broker, unique_prefix: str
) -> None:
    link = _link(broker, unique_prefix)
    session_topic = f"{unique_prefix}/out/sessions/{SENSOR}"
    end_topic = f"{unique_prefix}/out/end"
    link.publish(session_topic, '{"status": "active"}')
    link.publish(session_topic, b'{"status": "completed"}')  # replaces the unsent one
    async with monitor(broker, f"{unique_prefix}/out/#") as outbox, running(link):
        link.publish(end_topic, "end", retain=False)  # connected: goes out at once
        seen = [await next_item(outbox), await next_item(outbox)]
    assert seen == [
        (session_topic, b'{"status": "completed"}', False),
        (end_topic, b"end", False),
    ]
    async with monitor(broker, session_topic) as retained:
        assert await next_item(retained) == (session_topic, b'{"status": "completed"}', True)


# --- outages and sessions --------------------------------------------------------------------


async def test_reconnects_quickly_after_broker_restart(
    broker: Broker,
    unique_prefix: str,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    inbox: asyncio.Queue[Inbound] = asyncio.Queue()
    rng = _RecordingRandom()
    link = _link(broker, unique_prefix, inbox, backoff_base=0.05, backoff_cap=0.25, rng=rng)
    session_topic = f"{unique_prefix}/out/sessions/{SENSOR}"
    async with running(link):
        await asyncio.to_thread(broker.stop)
        await wait_until(lambda: not link.connected)
        link.publish(session_topic, "stale")
        link.publish(session_topic, "fresh")
        # The link may well reconnect before start() has seen the port open, so time both
        # from the moment the broker is launched (an upper bound on the true figure).
        launched = time.monotonic()
        await asyncio.to_thread(broker.start)
        accepting = time.monotonic() - launched
        async with asyncio.timeout(WAIT):
            await link.connected_event.wait()
        reconnect_seconds = time.monotonic() - launched
        with capsys.disabled():
            print(
                f"\nbroker accepting after {accepting:.3f} s, "
                f"link reconnected {reconnect_seconds:.3f} s after the broker was launched"
            )
        assert reconnect_seconds < RECONNECT_LIMIT
        assert link.counters["reconnects"] == 1
        # Full jitter, capped: uniform(0, min(cap, base * 2**attempt)), attempt from 0.
        assert rng.draws
        first_low, first_high = rng.draws[0]
        assert (first_low, first_high) == (0.0, 0.05)
        assert all(low == 0 and high <= 0.25 for low, high in rng.draws)
        outage_warnings = [
            record
            for record in caplog.records
            if record.name == "hub.ingest.mqtt" and record.levelno >= logging.WARNING
        ]
        assert len(outage_warnings) == 1, outage_warnings  # once per outage, not per attempt
        async with sensor_client(broker) as sensor:
            await sensor.publish(f"{unique_prefix}/{SENSOR}/motion", _motion(), qos=1)
        assert await next_item(inbox) == _seed_event()
        async with monitor(broker, session_topic) as retained:
            assert await next_item(retained) == (session_topic, b"fresh", True)


async def test_persistent_session_delivers_motion_sent_while_the_hub_was_down(
    broker: Broker, unique_prefix: str
) -> None:
    async with running(_link(broker, unique_prefix)):
        pass  # subscribed with a persistent session, then stopped gracefully
    async with sensor_client(broker) as sensor:
        await sensor.publish(f"{unique_prefix}/{SENSOR}/motion", _motion(seq=5), qos=1)
    # The queued message survives a broker restart too (persistence true).
    await asyncio.to_thread(broker.stop)
    await asyncio.to_thread(broker.start)
    inbox: asyncio.Queue[Inbound] = asyncio.Queue()
    async with running(_link(broker, unique_prefix, inbox)):
        assert await next_item(inbox) == _seed_event(seq=5)


async def test_username_and_password_file(
    broker_factory: BrokerFactory,
    tmp_path: Path,
    unique_prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = "s3cret-not-for-logs"  # noqa: S105 - a test value
    passwords = tmp_path / "broker-passwords"
    await asyncio.to_thread(
        subprocess.run,
        ["mosquitto_passwd", "-c", "-b", str(passwords), "hub", secret],
        check=True,
        capture_output=True,
    )
    passwords.chmod(0o600)
    broker = broker_factory(f"allow_anonymous false\npassword_file {passwords}\n")
    password_file = tmp_path / "mqtt-password"
    password_file.write_text(secret + "\n")
    password_file.chmod(0o600)
    config = HubConfig(
        mqtt=MqttSection(
            host=broker.host,
            port=broker.port,
            username="hub",
            password_file=str(password_file),
            topic_prefix=unique_prefix,
        )
    )
    link = MqttLink(config, asyncio.Queue(), client_id=f"hub-{unique_prefix}", clock=_clock)
    async with running(link):
        assert link.connected
    assert all(secret not in record.getMessage() for record in caplog.records)


class _RecordingRandom(random.Random):
    def __init__(self) -> None:
        super().__init__(3)
        self.draws: list[tuple[float, float]] = []

    def uniform(self, a: float, b: float) -> float:
        self.draws.append((a, b))
        return super().uniform(a, b)


async def test_refused_credentials_back_off_to_the_cap(
    broker_factory: BrokerFactory, tmp_path: Path, unique_prefix: str
) -> None:
    passwords = tmp_path / "broker-passwords"
    await asyncio.to_thread(
        subprocess.run,
        ["mosquitto_passwd", "-c", "-b", str(passwords), "hub", "right"],
        check=True,
        capture_output=True,
    )
    passwords.chmod(0o600)
    broker = broker_factory(f"allow_anonymous false\npassword_file {passwords}\n")
    config = HubConfig(
        mqtt=MqttSection(host=broker.host, port=broker.port, username="hub", topic_prefix="x")
    )
    link = MqttLink(config, asyncio.Queue(), client_id=f"hub-{unique_prefix}", backoff_base=0.01)
    task = asyncio.create_task(link.run(), name="mqtt-link")
    try:
        await wait_until(lambda: link.counters.get("connect_failures", 0) >= 1)
        assert not task.done()
        # Refused credentials wait the full cap (30 s here), not base * 2**attempt (10 ms):
        # a second attempt never comes while we look.
        assert link.counters["connect_failures"] == 1
    finally:
        await link.publish_offline()  # wakes the backoff sleep: run() returns
        await task
