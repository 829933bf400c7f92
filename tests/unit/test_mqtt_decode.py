"""MQTT decoding: topics, the three payload formats, clock trust, and QoS-1 dedup."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.config import HubConfig, MqttSection, SensorConfig
from hub.errors import ParseError
from hub.ingest.mqtt_decode import (
    MAX_LATE_SECONDS,
    MAX_PAYLOAD,
    SeqDeduplicator,
    StatusUpdate,
    TopicRouter,
)
from hub.model import MotionEvent, SensorState, StateKind

NOW = 1_704_412_900.5  # the hub's receive time in these tests
# contracts §3, byte for byte
CONTRACT_EXAMPLE = (
    b'{"event":"motion_detected","sensorId":"bathroom_main","timestamp":1704412800,"seq":17,'
    b'"metadata":{"batteryLevel":85,"signalStrength":-45,"firmwareVersion":"1.0.0"}}'
)
ESPHOME_TOPIC = "bathroom-pir/binary_sensor/motion/state"
Z2M_TOPIC = "zigbee2mqtt/hall_motion"
SEED_FOREIGN_TOPIC = "legacy/kitchen/pir"

CONFIG = HubConfig(
    sensors=(
        SensorConfig(id="bathroom_main", user_id="u"),
        SensorConfig(id="pir", user_id="u", mqtt_topic=ESPHOME_TOPIC, mqtt_format="esphome"),
        SensorConfig(id="hall", user_id="u", mqtt_topic=Z2M_TOPIC, mqtt_format="zigbee2mqtt"),
    )
)
ROUTER = TopicRouter.from_config(CONFIG)


def motion(payload: bytes | dict[str, Any], sensor: str = "bathroom_main") -> Any:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return ROUTER.decode(f"sensors/{sensor}/motion", raw, NOW)


# --- seed format ------------------------------------------------------------------------------


def test_contract_example() -> None:
    assert motion(CONTRACT_EXAMPLE) == MotionEvent(
        sensor_id="bathroom_main",
        occurred_at=NOW,  # not late: the sensor's clock is recorded, not trusted
        received_at=NOW,
        source="mqtt",
        sensor_timestamp=1_704_412_800.0,
        seq=17,
        battery_level=85,
        signal_strength=-45,
        firmware_version="1.0.0",
        late=False,
    )


def test_minimal_payload() -> None:
    assert motion({"event": "motion_detected"}) == MotionEvent(
        sensor_id="bathroom_main", occurred_at=NOW, received_at=NOW
    )


def test_iso_timestamp_and_null_optionals() -> None:
    payload = {
        "event": "motion_detected",
        "timestamp": "2024-01-05T00:00:00Z",
        "seq": None,
        "late": None,
        "metadata": {"batteryLevel": None, "firmwareVersion": "2.1.0-rc1"},
    }
    assert motion(payload) == MotionEvent(
        sensor_id="bathroom_main",
        occurred_at=NOW,
        received_at=NOW,
        sensor_timestamp=1_704_412_800.0,
        firmware_version="2.1.0-rc1",
    )


def test_naive_iso_timestamp_is_utc() -> None:
    event = motion({"event": "motion_detected", "timestamp": "2024-01-05T00:00:00"})
    assert event.sensor_timestamp == 1_704_412_800.0


def test_late_buffered_event_keeps_its_own_time() -> None:
    buffered_at = NOW - 3600
    payload = {"event": "motion_detected", "timestamp": buffered_at, "seq": 3, "late": True}
    assert motion(payload) == MotionEvent(
        sensor_id="bathroom_main",
        occurred_at=buffered_at,
        received_at=NOW,
        sensor_timestamp=buffered_at,
        seq=3,
        late=True,
    )


@pytest.mark.parametrize(
    "timestamp",
    [
        NOW + 5,  # in the future: clock drift, not buffering
        NOW - MAX_LATE_SECONDS - 1,  # older than a day: the sensor's clock is wrong
    ],
)
def test_late_event_with_untrusted_time_uses_receive_time(timestamp: float) -> None:
    payload = {"event": "motion_detected", "timestamp": timestamp, "late": True}
    assert motion(payload) == MotionEvent(
        sensor_id="bathroom_main",
        occurred_at=NOW,
        received_at=NOW,
        sensor_timestamp=timestamp,
        late=True,
    )


def test_late_event_without_timestamp() -> None:
    assert motion({"event": "motion_detected", "late": True}) == MotionEvent(
        sensor_id="bathroom_main", occurred_at=NOW, received_at=NOW, late=True
    )


def test_untrusted_far_future_timestamp() -> None:
    far = NOW + 10 * 365 * 86_400
    assert motion({"event": "motion_detected", "timestamp": far}) == MotionEvent(
        sensor_id="bathroom_main", occurred_at=NOW, received_at=NOW, sensor_timestamp=far
    )


def test_close_non_late_timestamp_is_not_used() -> None:
    event = motion({"event": "motion_detected", "timestamp": NOW - 1})
    assert event.occurred_at == NOW
    assert event.sensor_timestamp == NOW - 1


def test_topic_sensor_wins_over_payload() -> None:
    payload = {"event": "motion_detected", "sensorId": "someone_else"}
    assert motion(payload, sensor="kitchen") == MotionEvent(
        sensor_id="kitchen", occurred_at=NOW, received_at=NOW
    )


def test_unknown_keys_are_tolerated() -> None:
    payload = {
        "event": "motion_detected",
        "newField": [1, 2],
        "metadata": {"batteryLevel": 50, "uptime": 12},
    }
    assert motion(payload) == MotionEvent(
        sensor_id="bathroom_main", occurred_at=NOW, received_at=NOW, battery_level=50
    )


def test_unknown_sensor_under_prefix_is_still_decoded() -> None:
    # Whether an unregistered sensor may start anything is the engine's decision.
    assert motion({"event": "motion_detected"}, sensor="not-configured") == MotionEvent(
        sensor_id="not-configured", occurred_at=NOW, received_at=NOW
    )


# --- bad seed input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"x" * (MAX_PAYLOAD + 1), f"payload of {MAX_PAYLOAD + 1} bytes exceeds 64 KiB"),
        (b'{"event":"motion_detected\xff"}', "not valid UTF-8"),
        (b"motion!", "not valid JSON"),
        (b"", "not valid JSON"),
        (b'{"event":"motion_detected","timestamp":NaN}', "not valid JSON"),
        (b"[1, 2]", "must be a JSON object, got an array"),
        (b'"motion_detected"', "must be a JSON object"),
        (b"[" * 100_000, "exceeds 64 KiB"),
        (b"[" * 60_000, "nested too deeply"),
        (b'{"event":"motion_cleared"}', "unknown event"),
        (b'{"sensorId":"x"}', "event: missing"),
        (b'{"event":"motion_detected","seq":-1}', "seq: must be a non-negative integer"),
        (b'{"event":"motion_detected","seq":"17"}', "seq: must be a non-negative integer"),
        (b'{"event":"motion_detected","seq":1.5}', "seq"),
        (b'{"event":"motion_detected","seq":true}', "seq"),
        (b'{"event":"motion_detected","late":1}', "late: must be true or false"),
        (b'{"event":"motion_detected","timestamp":true}', "timestamp"),
        (b'{"event":"motion_detected","timestamp":[1]}', "timestamp"),
        (b'{"event":"motion_detected","timestamp":"yesterday"}', "timestamp: not an ISO"),
        (b'{"event":"motion_detected","timestamp":1704412800000}', "timestamp: epoch seconds"),
        (b'{"event":"motion_detected","timestamp":-5}', "timestamp: epoch seconds"),
        (b'{"event":"motion_detected","timestamp":1e400}', "timestamp: epoch seconds"),
        (b'{"event":"motion_detected","metadata":[]}', "metadata: must be an object"),
        (
            b'{"event":"motion_detected","metadata":{"batteryLevel":140}}',
            "metadata.batteryLevel: must be an integer 0..100",
        ),
        (b'{"event":"motion_detected","metadata":{"batteryLevel":85.5}}', "batteryLevel"),
        (b'{"event":"motion_detected","metadata":{"signalStrength":45}}', "signalStrength"),
        (b'{"event":"motion_detected","metadata":{"firmwareVersion":1}}', "firmwareVersion"),
        (
            b'{"event":"motion_detected","metadata":{"firmwareVersion":"' + b"9" * 33 + b'"}}',
            "firmwareVersion",
        ),
    ],
)
def test_bad_seed_payload(payload: bytes, message: str) -> None:
    with pytest.raises(ParseError, match=message.replace("(", r"\(")):
        motion(payload)


@pytest.mark.parametrize(
    "topic", ["sensors/bad id/motion", "sensors//motion", f"sensors/{'a' * 65}/status"]
)
def test_bad_sensor_id_in_topic(topic: str) -> None:
    with pytest.raises(ParseError, match="sensor id in topic"):
        ROUTER.decode(topic, b'{"event":"motion_detected"}', NOW)


def test_error_messages_never_echo_a_long_payload() -> None:
    junk = "not json " * 5000
    with pytest.raises(ParseError) as caught:
        motion(junk.encode())
    assert len(str(caught.value)) < 200
    with pytest.raises(ParseError) as caught:
        motion({"event": "motion_detected", "timestamp": junk})
    assert len(str(caught.value)) < 200


# --- status -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "online"),
    [
        (b'{"status":"online","ip":"192.168.1.20","rssi":-60}', True),
        (b'{"status":"offline"}', False),
        (b"online", True),
        (b"offline\n", False),
    ],
)
def test_status(payload: bytes, online: bool) -> None:
    assert ROUTER.decode("sensors/bathroom_main/status", payload, NOW) == StatusUpdate(
        sensor_id="bathroom_main", online=online, received_at=NOW
    )


@pytest.mark.parametrize("payload", [b'{"status":"ONLINE"}', b"{}", b"up", b'{"status":1}'])
def test_bad_status(payload: bytes) -> None:
    with pytest.raises(ParseError):
        ROUTER.decode("sensors/bathroom_main/status", payload, NOW)


def test_cleared_retained_status_is_nothing() -> None:
    assert ROUTER.decode("sensors/bathroom_main/status", b"", NOW, retained=True) is None


def test_retained_status_is_decoded() -> None:
    assert ROUTER.decode(
        "sensors/bathroom_main/status", b"offline", NOW, retained=True
    ) == StatusUpdate("bathroom_main", online=False, received_at=NOW)


# --- ESPHome and Zigbee2MQTT -----------------------------------------------------------------


def test_esphome_on_off_is_a_held_state() -> None:
    assert ROUTER.decode(ESPHOME_TOPIC, b"ON", NOW) == SensorState(
        "pir", StateKind.OCCUPANCY, on=True, received_at=NOW
    )
    assert ROUTER.decode(ESPHOME_TOPIC, b" OFF\r\n", NOW) == SensorState(
        "pir", StateKind.OCCUPANCY, on=False, received_at=NOW
    )


@pytest.mark.parametrize("payload", [b"on", b"Off", b"", b"ON OFF", b"1", b"\xff"])
def test_esphome_bad_state(payload: bytes) -> None:
    with pytest.raises(ParseError):
        ROUTER.decode(ESPHOME_TOPIC, payload, NOW)


def test_zigbee2mqtt_occupancy_with_battery_and_linkquality() -> None:
    payload = b'{"occupancy":true,"battery":84.6,"linkquality":120,"tamper":false}'
    # linkquality is an LQI, not dBm: it is never a signal strength.
    assert ROUTER.decode(Z2M_TOPIC, payload, NOW) == SensorState(
        "hall", StateKind.OCCUPANCY, on=True, received_at=NOW, battery_level=85
    )
    assert ROUTER.decode(Z2M_TOPIC, b'{"occupancy":false,"battery":84}', NOW) == SensorState(
        "hall", StateKind.OCCUPANCY, on=False, received_at=NOW, battery_level=84
    )
    assert ROUTER.decode(Z2M_TOPIC, b'{"occupancy":true}', NOW) == SensorState(
        "hall", StateKind.OCCUPANCY, on=True, received_at=NOW
    )


@pytest.mark.parametrize(
    ("payload", "kind", "on"),
    [
        (b'{"presence":true,"illuminance":12}', StateKind.OCCUPANCY, True),  # Aqara FP1, Tuya
        (b'{"presence":false}', StateKind.OCCUPANCY, False),
        (b'{"contact":true,"battery":100}', StateKind.CONTACT, False),  # true = closed
        (b'{"contact":false}', StateKind.CONTACT, True),  # open
        (b'{"occupancy":null,"presence":true}', StateKind.OCCUPANCY, True),
    ],
)
def test_zigbee2mqtt_presence_and_contact(payload: bytes, kind: StateKind, on: bool) -> None:
    state = ROUTER.decode(Z2M_TOPIC, payload, NOW)
    assert isinstance(state, SensorState)
    assert (state.kind, state.on) == (kind, on)


@pytest.mark.parametrize(
    "payload",
    [
        b'{"battery":80}',
        b'{"occupancy":"true"}',
        b'{"occupancy":1}',
        b'{"occupancy":null}',
        b'{"occupancy":true,"battery":140}',
        b'{"occupancy":true,"battery":"80"}',
        b'{"occupancy":true,"battery":true}',
        b"[true]",
        b"ON",
    ],
)
def test_zigbee2mqtt_bad_payload(payload: bytes) -> None:
    with pytest.raises(ParseError):
        ROUTER.decode(Z2M_TOPIC, payload, NOW)


@pytest.mark.parametrize(
    ("topic", "payload"),
    [
        ("sensors/bathroom_main/motion", CONTRACT_EXAMPLE),
    ],
)
def test_retained_motion_is_old_motion(topic: str, payload: bytes) -> None:
    assert ROUTER.decode(topic, payload, NOW, retained=True) is None


@pytest.mark.parametrize(
    ("topic", "payload"),
    [
        (ESPHOME_TOPIC, b"ON"),
        (Z2M_TOPIC, b'{"occupancy":true}'),
        (Z2M_TOPIC, b'{"occupancy":false}'),
        (Z2M_TOPIC, b'{"contact":true}'),
    ],
)
def test_a_retained_state_is_the_current_state(topic: str, payload: bytes) -> None:
    live = ROUTER.decode(topic, payload, NOW)
    assert isinstance(live, SensorState)
    assert ROUTER.decode(topic, payload, NOW, retained=True) == dataclasses.replace(
        live, retained=True
    )


# --- routing ----------------------------------------------------------------------------------


def test_subscriptions_with_two_foreign_sensors() -> None:
    assert ROUTER.subscriptions() == [
        "sensors/+/motion",
        "sensors/+/status",
        ESPHOME_TOPIC,
        Z2M_TOPIC,
    ]


def test_subscriptions_are_deduplicated_and_follow_the_prefix() -> None:
    config = HubConfig(
        mqtt=MqttSection(topic_prefix="home/sensors"),
        sensors=(
            SensorConfig(id="a", user_id="u", mqtt_topic=ESPHOME_TOPIC, mqtt_format="esphome"),
            SensorConfig(id="b", user_id="u", mqtt_topic=ESPHOME_TOPIC, mqtt_format="esphome"),
        ),
    )
    router = TopicRouter.from_config(config)
    assert router.subscriptions() == [
        "home/sensors/+/motion",
        "home/sensors/+/status",
        ESPHOME_TOPIC,
    ]
    assert router.decode(ESPHOME_TOPIC, b"ON", NOW) == SensorState(
        "a", StateKind.OCCUPANCY, on=True, received_at=NOW
    )
    assert router.decode("home/sensors/x/status", b"online", NOW) == StatusUpdate(
        "x", online=True, received_at=NOW
    )


def test_seed_format_on_a_foreign_topic() -> None:
    config = HubConfig(
        sensors=(SensorConfig(id="kitchen", user_id="u", mqtt_topic=SEED_FOREIGN_TOPIC),)
    )
    router = TopicRouter.from_config(config)
    assert router.decode(SEED_FOREIGN_TOPIC, CONTRACT_EXAMPLE, NOW) == MotionEvent(
        sensor_id="kitchen",
        occurred_at=NOW,
        received_at=NOW,
        sensor_timestamp=1_704_412_800.0,
        seq=17,
        battery_level=85,
        signal_strength=-45,
        firmware_version="1.0.0",
    )


@pytest.mark.parametrize(
    "topic",
    [
        "other/bathroom_main/motion",
        "sensors/bathroom_main/battery",
        "sensors/a/b/motion",
        "sensors/motion",
        "sensors",
        "sensorsx/a/motion",
        "bathroom-pir/binary_sensor/motion",
        "BATHROOM-PIR/binary_sensor/motion/state",
        "",
    ],
)
def test_unknown_topic_is_none(topic: str) -> None:
    # Even an oversized payload is not looked at on a topic nobody asked for.
    assert ROUTER.decode(topic, b"x" * (MAX_PAYLOAD + 1), NOW) is None


def test_oversized_payload_on_foreign_topic() -> None:
    with pytest.raises(ParseError, match="exceeds 64 KiB"):
        ROUTER.decode(ESPHOME_TOPIC, b" " * (MAX_PAYLOAD + 1), NOW)
    assert ROUTER.decode(ESPHOME_TOPIC, b"ON".ljust(MAX_PAYLOAD), NOW) is not None


# --- property tests ---------------------------------------------------------------------------

ALL_TOPICS = [
    "sensors/bathroom_main/motion",
    "sensors/bathroom_main/status",
    ESPHOME_TOPIC,
    Z2M_TOPIC,
    SEED_FOREIGN_TOPIC,
]
FUZZ_ROUTER = TopicRouter.from_config(
    HubConfig(
        sensors=(*CONFIG.sensors, SensorConfig(id="k", user_id="u", mqtt_topic=SEED_FOREIGN_TOPIC))
    )
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
KNOWN_KEYS = ["event", "sensorId", "timestamp", "seq", "late", "metadata", "status"]
KNOWN_KEYS += ["occupancy", "battery", "linkquality", "batteryLevel", "signalStrength"]
known_objects = st.dictionaries(
    st.sampled_from(KNOWN_KEYS),
    json_values | st.sampled_from(["motion_detected", "online", "offline"]),
)
payloads = (
    st.binary(max_size=300)
    | st.sampled_from([b"ON", b"OFF", b"online", b"offline", b"", b"[" * 5000])
    | json_values.map(lambda v: json.dumps(v).encode())
    | known_objects.map(lambda v: json.dumps(v).encode())
    | known_objects.map(lambda v: json.dumps({"metadata": v, "event": "motion_detected"}).encode())
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(topic=st.sampled_from(ALL_TOPICS), payload=payloads, retained=st.booleans(), now=st.floats())
def test_any_bytes_decode_or_raise_parse_error(
    topic: str, payload: bytes, retained: bool, now: float
) -> None:
    message = ""
    try:
        value = FUZZ_ROUTER.decode(topic, payload, now, retained=retained)
    except ParseError as exc:  # the only exception a peer can cause
        message = str(exc)
    else:
        assert value is None or isinstance(value, MotionEvent | StatusUpdate | SensorState)
    assert len(message) < 300  # never the whole payload


sensor_ids = st.from_regex(r"\A[A-Za-z0-9_-]{1,64}\Z")
instants = st.floats(min_value=0, max_value=4e9, allow_nan=False)
iso_times = st.datetimes(
    min_value=dt.datetime(1971, 1, 1),  # noqa: DTZ001 - made aware by `timezones`
    max_value=dt.datetime(2100, 1, 1),  # noqa: DTZ001
    timezones=st.just(dt.UTC)
    | st.builds(lambda m: dt.timezone(dt.timedelta(minutes=m)), st.integers(-720, 720)),
)


@settings(max_examples=300)
@given(
    sensor_id=sensor_ids,
    payload_sensor=st.none() | st.text(max_size=10),
    received_at=st.floats(min_value=1e9, max_value=3e9),
    timestamp=st.none() | instants | st.integers(0, 4_000_000_000) | iso_times,
    late=st.none() | st.booleans(),
    seq=st.none() | st.integers(0, 2**63 - 1),
    battery=st.none() | st.integers(0, 100),
    signal=st.none() | st.integers(-127, 20),
    firmware=st.none() | st.text(max_size=32),
    near=st.booleans(),
)
def test_valid_seed_payload_round_trips(
    *,
    sensor_id: str,
    payload_sensor: str | None,
    received_at: float,
    timestamp: float | dt.datetime | None,
    late: bool | None,
    seq: int | None,
    battery: int | None,
    signal: int | None,
    firmware: str | None,
    near: bool,
) -> None:
    if near and isinstance(timestamp, float):
        timestamp = received_at - timestamp % (2 * MAX_LATE_SECONDS)  # within reach of "late"
    payload: dict[str, Any] = {"event": "motion_detected"}
    if payload_sensor is not None:
        payload["sensorId"] = payload_sensor
    if isinstance(timestamp, dt.datetime):
        payload["timestamp"] = timestamp.isoformat()
        sensor_ts: float | None = timestamp.timestamp()
    else:
        payload["timestamp"] = timestamp
        sensor_ts = None if timestamp is None else float(timestamp)
    payload["late"] = late
    payload["seq"] = seq
    metadata = {"batteryLevel": battery, "signalStrength": signal, "firmwareVersion": firmware}
    payload["metadata"] = {key: value for key, value in metadata.items() if value is not None}
    trusted = bool(late) and sensor_ts is not None and 0 <= received_at - sensor_ts <= 86_400

    decoded = TopicRouter().decode(
        f"sensors/{sensor_id}/motion", json.dumps(payload).encode(), received_at
    )

    assert decoded == MotionEvent(
        sensor_id=sensor_id,
        occurred_at=sensor_ts if trusted and sensor_ts is not None else received_at,
        received_at=received_at,
        source="mqtt",
        sensor_timestamp=sensor_ts,
        seq=seq,
        battery_level=battery,
        signal_strength=signal,
        firmware_version=firmware,
        late=bool(late),
    )


# --- QoS-1 redelivery ------------------------------------------------------------------------


def test_redelivery_is_dropped() -> None:
    dedup = SeqDeduplicator()
    assert [dedup.is_duplicate("a", seq) for seq in (17, 18, 17, 19, 18)] == [
        False,
        False,
        True,
        False,
        True,
    ]
    assert dedup.is_duplicate("b", 17) is False  # per sensor


def test_none_is_never_a_duplicate() -> None:
    dedup = SeqDeduplicator()
    assert [dedup.is_duplicate("a", None) for _ in range(3)] == [False, False, False]
    assert len(dedup) == 0


def test_out_of_order_is_not_a_duplicate() -> None:
    dedup = SeqDeduplicator()
    assert [dedup.is_duplicate("a", seq) for seq in (5, 3, 4, 3)] == [False, False, False, True]


def test_reboot_resets_the_window() -> None:
    dedup = SeqDeduplicator(window=64)
    for seq in range(1, 201):
        assert dedup.is_duplicate("a", seq) is False
    # The counter restarted at 1: far below the highest seen, so a new boot.
    assert [dedup.is_duplicate("a", seq) for seq in (1, 2, 2, 3)] == [False, False, True, False]


def test_reset_forgets_a_short_lived_boot() -> None:
    dedup = SeqDeduplicator()
    for seq in range(1, 6):
        dedup.is_duplicate("a", seq)
    assert dedup.is_duplicate("a", 1) is True  # inside the window: looks like a redelivery
    dedup.reset("a")  # the sensor announced itself online again
    assert dedup.is_duplicate("a", 1) is False
    dedup.reset("never-seen")


def test_seqs_outside_the_window_are_forgotten() -> None:
    dedup = SeqDeduplicator(window=4)
    for seq in range(10):
        dedup.is_duplicate("a", seq)
    assert dedup.is_duplicate("a", 9) is True
    assert dedup.is_duplicate("a", 6) is True
    assert dedup.is_duplicate("a", 5) is False  # forgotten: accepted again


def test_memory_is_bounded() -> None:
    dedup = SeqDeduplicator(window=64, max_sensors=100)
    for seq in range(10_000):
        dedup.is_duplicate("a", seq)
    assert dedup._sensors["a"].seen.bit_length() <= 64  # one 64-bit mask
    for number in range(1_000):
        dedup.is_duplicate(f"s{number}", 1)
    assert len(dedup) == 100
    assert "a" not in dedup._sensors  # least recently seen goes first
    assert dedup.is_duplicate("s999", 1) is True


def test_recently_seen_sensor_is_kept() -> None:
    dedup = SeqDeduplicator(max_sensors=2)
    dedup.is_duplicate("a", 1)
    dedup.is_duplicate("b", 1)
    dedup.is_duplicate("a", 2)  # touches a
    dedup.is_duplicate("c", 1)  # evicts b
    assert dedup.is_duplicate("a", 1) is True
    assert dedup.is_duplicate("b", 1) is False


@pytest.mark.parametrize(("window", "max_sensors"), [(0, 1), (1, 0)])
def test_dedup_bounds_must_be_positive(window: int, max_sensors: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        SeqDeduplicator(window=window, max_sensors=max_sensors)


@given(
    seqs=st.lists(st.tuples(st.sampled_from("abc"), st.none() | st.integers(0, 300)), max_size=300)
)
def test_dedup_state_stays_consistent(seqs: list[tuple[str, int | None]]) -> None:
    dedup = SeqDeduplicator(window=8, max_sensors=2)
    recent: dict[str, list[int]] = {}
    for sensor, seq in seqs:
        duplicate = dedup.is_duplicate(sensor, seq)
        if seq is None:
            assert duplicate is False
            continue
        if duplicate:  # only ever a seq seen before from that sensor
            assert seq in recent.get(sensor, [])
        recent.setdefault(sensor, []).append(seq)
    assert len(dedup) <= 2
    for window in dedup._sensors.values():
        assert window.seen.bit_length() <= 8


def test_a_seq_taken_back_is_new_again_and_only_once() -> None:
    # The link takes back the seq of a message it could not hand on (its put was cancelled
    # as the connection broke): the broker's redelivery must then be accepted, once.
    dedup = SeqDeduplicator(window=4)
    assert not dedup.is_duplicate("bath", 5)
    dedup.forget("bath", 5)
    dedup.forget("bath", 99)  # never seen: nothing to take back
    assert not dedup.is_duplicate("bath", 5)
    assert dedup.is_duplicate("bath", 5)
