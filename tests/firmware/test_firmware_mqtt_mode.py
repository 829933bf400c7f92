"""MQTT mode under CPython with a fake umqtt client: exact payloads, the offline queue,
the reconnect backoff, keepalive."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

import pytest

from hub.ingest.mqtt_decode import StatusUpdate, TopicRouter
from hub.model import MotionEvent

config = importlib.import_module("config")
mqtt_mode = importlib.import_module("mqtt_mode")

CFG: dict[str, Any] = {
    "sensorId": "bathroom_main",
    "wifi": {"ssid": "net"},
    "mqtt": {"host": "hub.local", "username": "bathroom_main", "password": "pw", "queueSize": 3},
}


@dataclass
class Broker:
    """What the fake clients saw: connects, the will, publishes; and what fails next."""

    up: bool = True
    refuse: bool = False
    fail_publish_after: int | None = None
    published: list[tuple[str, bytes, bool, int]] = field(default_factory=list)
    wills: list[tuple[str, bytes, bool, int]] = field(default_factory=list)
    logins: list[tuple[str, str | None, str | None, int]] = field(default_factory=list)
    pings: int = 0
    closed: int = 0


class FakeClient:
    """umqtt.simple's shape, as hw.mqtt_client presents it (errors as OSError)."""

    def __init__(
        self, broker: Broker, client_id: str, user: str | None, password: str | None, ka: int
    ) -> None:
        self.broker = broker
        self.login = (client_id, user, password, ka)

    def set_last_will(self, topic: str, msg: bytes, retain: bool = False, qos: int = 0) -> None:
        self.broker.wills.append((topic, msg, retain, qos))

    def connect(self) -> None:
        if self.broker.refuse:
            raise mqtt_mode.RefusedError("not authorised")
        if not self.broker.up:
            raise OSError("ECONNREFUSED")
        self.broker.logins.append(self.login)

    def publish(self, topic: str, msg: bytes, retain: bool = False, qos: int = 0) -> None:
        limit = self.broker.fail_publish_after
        if not self.broker.up or (limit is not None and len(self.broker.published) >= limit):
            raise OSError("ECONNRESET")
        self.broker.published.append((topic, msg, retain, qos))

    def ping(self) -> None:
        if not self.broker.up:
            raise OSError("ETIMEDOUT")
        self.broker.pings += 1

    def check_msg(self) -> None:
        if not self.broker.up:
            raise OSError(-1)

    def close(self) -> None:
        self.broker.closed += 1


class Rig:
    def __init__(self, **overrides: Any) -> None:
        self.broker = Broker()
        self.ticks = 0
        self.wall: int | None = None  # epoch ms, as hw.WallClock gives them
        self.metadata: tuple[int | None, int | None] = (None, -50)
        self.sleeps: list[float] = []
        self.log: list[str] = []
        raw = {**CFG, "mqtt": {**CFG["mqtt"], **overrides}}
        self.sensor = mqtt_mode.MqttSensor(
            config.validate(raw),
            self.client,
            wall_clock=lambda: self.wall,
            ticks=lambda: self.ticks,
            metadata=lambda: self.metadata,
            backoff=mqtt_mode.Backoff(),
            log=self.log.append,
        )

    def client(
        self, client_id: str, host: str, port: int, user: str | None, pw: str | None, ka: int
    ) -> FakeClient:
        assert (host, port) == ("hub.local", 1883)
        return FakeClient(self.broker, client_id, user, pw, ka)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.ticks += int(seconds * 1000)
        if self.wall is not None:
            self.wall += int(seconds * 1000)

    def motions(self) -> list[bytes]:
        return [msg for topic, msg, _, _ in self.broker.published if topic.endswith("/motion")]


def test_connect_announces_online_with_an_offline_will_and_the_sensors_credentials() -> None:
    rig = Rig()
    rig.sensor.connect()
    assert rig.broker.logins == [("spottypotty-bathroom_main", "bathroom_main", "pw", 30)]
    assert rig.broker.wills == [("sensors/bathroom_main/status", b'{"status":"offline"}', True, 1)]
    assert rig.broker.published == [
        (
            "sensors/bathroom_main/status",
            b'{"status":"online","firmwareVersion":"1.0.0"}',
            True,
            1,
        )
    ]


def test_motion_publishes_exactly_the_contract_payload_and_the_hub_reads_it() -> None:
    rig = Rig()
    rig.sensor.connect()
    rig.metadata = (85, -45)
    rig.ticks = 10_000
    rig.wall = 1_704_412_800_400
    assert rig.sensor.motion() is True
    rig.wall = None  # NTP not synced (e.g. after a reboot): no timestamp at all
    rig.metadata = (None, -61)
    assert rig.sensor.motion(at_ticks=9_000) is True
    first, second = rig.motions()
    assert first == (
        b'{"event":"motion_detected","sensorId":"bathroom_main","seq":1,"timestamp":1704412800,'
        b'"metadata":{"batteryLevel":85,"signalStrength":-45,"firmwareVersion":"1.0.0"}}'
    )
    assert second == (
        b'{"event":"motion_detected","sensorId":"bathroom_main","seq":2,'
        b'"metadata":{"signalStrength":-61,"firmwareVersion":"1.0.0"}}'
    )
    assert {qos for _, _, _, qos in rig.broker.published} == {1}
    router = TopicRouter()
    event = router.decode("sensors/bathroom_main/motion", first, 1704412801.0)
    assert isinstance(event, MotionEvent)
    assert (event.seq, event.battery_level, event.signal_strength) == (1, 85, -45)
    assert event.sensor_timestamp == 1704412800
    status = router.decode("sensors/bathroom_main/status", rig.broker.published[0][1], 1.0)
    assert isinstance(status, StatusUpdate)
    assert status.online


def test_the_edge_time_dates_the_event_not_the_publish_time() -> None:
    rig = Rig()
    rig.sensor.connect()
    rig.ticks, rig.wall = 20_000, 1_704_412_900_000
    rig.sensor.motion(at_ticks=5_000)  # the interrupt latched it 15 s ago
    assert b'"timestamp":1704412885,' in rig.motions()[0]


def test_motion_while_offline_is_queued_bounded_and_sent_late_after_reconnect() -> None:
    rig = Rig()  # queue_size 3
    rig.wall = 1_704_412_800_000
    for i in range(5):  # broker never reached yet
        rig.ticks = i * 1000
        rig.wall = 1_704_412_800_000 + i * 1000
        assert rig.sensor.motion() is False
    assert len(rig.sensor.queue) == 3
    assert rig.sensor.queue.dropped == 2  # the two oldest
    rig.ticks, rig.wall = 60_000, 1_704_412_860_000
    rig.sensor.connect()
    status = rig.broker.published[0][1]
    assert status == b'{"status":"online","firmwareVersion":"1.0.0","droppedEvents":2}'
    late = rig.motions()
    assert late == [
        b'{"event":"motion_detected","sensorId":"bathroom_main","seq":%d,"timestamp":%d,'
        b'"late":true,"metadata":{"signalStrength":-50,"firmwareVersion":"1.0.0"}}'
        % (seq, 1704412800 + seq - 1)
        for seq in (3, 4, 5)
    ]
    router = TopicRouter()
    decoded = [router.decode("sensors/bathroom_main/motion", m, 1704412861.0) for m in late]
    assert [e.occurred_at for e in decoded if isinstance(e, MotionEvent)] == [
        1704412802.0,
        1704412803.0,
        1704412804.0,
    ]
    assert len(rig.sensor.queue) == 0
    rig.sensor.motion()
    assert b'"seq":6,' in rig.motions()[-1]
    assert b'"late"' not in rig.motions()[-1]


def test_queued_motion_gets_its_time_when_ntp_syncs_only_after_the_event() -> None:
    rig = Rig()
    rig.ticks = 1_000
    rig.sensor.motion()  # no wall clock yet
    rig.ticks, rig.wall = 31_000, 1_704_412_830_000  # NTP synced 30 s later, during connect
    rig.sensor.connect()
    assert b'"timestamp":1704412800,"late":true' in rig.motions()[0]


def test_a_publish_that_fails_keeps_the_event_for_later() -> None:
    rig = Rig()
    rig.sensor.connect()
    rig.broker.up = False
    assert rig.sensor.motion() is False
    assert not rig.sensor.connected
    assert rig.broker.closed == 1
    assert len(rig.sensor.queue) == 1
    rig.broker.up = True
    rig.broker.fail_publish_after = 2  # the reconnect's status goes, the flush breaks
    with pytest.raises(OSError, match="ECONNRESET"):
        rig.sensor.connect()
    assert len(rig.sensor.queue) == 1  # still there, not lost and not duplicated
    rig.broker.fail_publish_after = None
    rig.sensor.connect()
    assert len(rig.sensor.queue) == 0
    assert rig.motions() == [rig.motions()[0]]
    assert b'"seq":1,"late":true' in rig.motions()[0]


def test_reconnect_backs_off_5_to_60_seconds_forever_and_resets_after_success() -> None:
    rig = Rig()
    rig.broker.up = False
    attempts = [0]

    def sleep(seconds: float) -> None:
        rig.sleep(seconds)
        attempts[0] += 1
        if attempts[0] == 8:
            rig.broker.up = True

    assert rig.sensor.connect_forever(sleep) == 8
    assert rig.sleeps == [5, 10, 20, 40, 60, 60, 60, 60]
    assert rig.sensor.connected
    assert "mqtt: attempt 1 failed (ECONNREFUSED); next in 5 s" in rig.log
    rig.broker.up = False
    rig.sensor.service()  # the keepalive notices
    assert not rig.sensor.connected
    rig.sleeps.clear()
    attempts[0] = 6
    rig.broker.up = False
    assert rig.sensor.connect_forever(sleep) == 2
    assert rig.sleeps == [5, 10]  # a new outage starts from 5 s again


def test_refused_credentials_wait_the_full_minute_and_prepare_runs_each_time() -> None:
    rig = Rig()
    rig.broker.refuse = True
    prepared: list[int] = []

    def sleep(seconds: float) -> None:
        rig.sleep(seconds)
        if len(rig.sleeps) == 2:
            rig.broker.refuse = False

    rig.sensor.connect_forever(sleep, prepare=lambda: prepared.append(rig.ticks))
    assert rig.sleeps == [60, 60]
    assert prepared == [0, 60_000, 120_000]


def test_backoff_jitter_only_shortens_the_delay() -> None:
    backoff = mqtt_mode.Backoff(rand=lambda: 1.0, jitter=0.2)
    assert [backoff.next() for _ in range(6)] == [4.0, 8.0, 16.0, 32.0, 48.0, 48.0]


def test_keepalive_pings_at_half_the_interval() -> None:
    rig = Rig(keepalive=30)
    rig.sensor.connect()
    for rig.ticks in range(0, 61_000, 1000):
        rig.sensor.service()
    assert rig.broker.pings == 4  # at 15, 30, 45 and 60 s
    assert rig.sensor.connected


def test_timestamps_are_integer_milliseconds_all_the_way() -> None:
    """No float anywhere between the clock and the payload: 40 events 150 ms apart at an
    epoch where a 32-bit float (the ESP32's) cannot tell seconds apart get 40 ms-exact
    times; a float in the path would raise here (the clock hands out ints only) or round
    them all to one value."""
    rig = Rig(queueSize=50)
    rig.wall = 1_704_412_800_000
    for i in range(40):
        rig.ticks = i * 150
        rig.wall = 1_704_412_800_000 + i * 150
        rig.sensor.motion()
    rig.ticks, rig.wall = 60_000, 1_704_412_860_000
    rig.sensor.connect()
    stamps = [int(m.split(b'"timestamp":')[1].split(b",")[0]) for m in rig.motions()]
    assert stamps == [1_704_412_800 + (i * 150) // 1000 for i in range(40)]
    assert all(isinstance(e.epoch_ms, int) for e in rig.sensor.queue.items())


def test_wall_clock_counts_from_1970_on_a_2000_based_port() -> None:
    hw = importlib.import_module("hw")
    port_2000 = hw.WallClock("", now_ms=lambda: 757_728_000_123, offset_ms=946_684_800_000)
    assert port_2000.epoch_ms() == 1_704_412_800_123  # 2024-01-05, from a 2000-based RTC
    assert hw.epoch_offset_ms(lambda _: (2000, 1, 1, 0, 0, 0, 5, 1)) == 946_684_800_000
    assert hw.epoch_offset_ms(lambda _: (1970, 1, 1, 0, 0, 0, 3, 1)) == 0
    unset = hw.WallClock("", now_ms=lambda: 1_000, offset_ms=0)
    assert unset.epoch_ms() is None  # an RTC never set by NTP: no timestamps


def test_umqtt_sockets_get_the_timeout_before_connect() -> None:
    hw = importlib.import_module("hw")
    made: list[FakeSocket] = []

    class FakeSocket:
        timeout: float | None = None

        def settimeout(self, seconds: float) -> None:
            self.timeout = seconds

    class SocketModule:
        def socket(self, *args: object) -> FakeSocket:
            made.append(FakeSocket())
            return made[-1]

        def getaddrinfo(self, *args: object) -> list[object]:
            return [("addr", args)]

    class UmqttSimple:
        socket: object = SocketModule()

    module = hw.timed(hw.timed(UmqttSimple))  # once, however often it is asked
    assert isinstance(module.socket, hw.TimedSockets)
    assert not isinstance(module.socket._real, hw.TimedSockets)
    module.socket.socket()
    assert made[0].timeout == hw.MQTT_SOCKET_TIMEOUT_S
    assert module.socket.getaddrinfo("hub.local", 1883) == [("addr", ("hub.local", 1883))]
