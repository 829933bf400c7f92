"""MQTT topic + payload → domain values: pure functions, no I/O, no clock, no aiomqtt.

What arrives (contracts §3):

- `{prefix}/{sensorId}/motion`: the SpottyPottySense firmware's JSON ("seed" format);
- `{prefix}/{sensorId}/status`: `{"status": "online"|"offline", ...}` or the bare word;
- a configured sensor's own `mqtt_topic`, in its `mqtt_format`: `seed`, `esphome`
  (`ON`/`OFF`) or `zigbee2mqtt` (`{"occupancy": true, ...}`).

`TopicRouter.decode` answers a `MotionEvent` (a pulse), a `SensorState` (a state held
until the next: occupied or clear, open or closed), a `StatusUpdate` or None for a topic
nobody asked for. Malformed input raises `ParseError`, whose message says what was wrong and
quotes at most ~80 characters of the payload.

Clock trust (which instant becomes `MotionEvent.occurred_at`, the one the session
lifecycle uses):

- By default `occurred_at = received_at`, the hub's receive time. Sensor clocks drift, are
  unset after a reboot without NTP, or are simply wrong; the receive time is always good
  enough for live motion. This holds even for a sensor timestamp within a few seconds of
  the hub's clock: it is recorded in `sensor_timestamp`, never used.
- The one exception: the firmware marks an event `"late": true` when it buffered it while
  the broker was unreachable. Then, if the event carries a timestamp that lies in the past
  and at most `MAX_LATE_SECONDS` (24 h) before `received_at`, `occurred_at` is that
  timestamp, so the session engine recognises buffered motion as stale instead of starting
  music for someone who left long ago. A late event whose timestamp is missing, in the
  future or older than 24 h falls back to `received_at` (with `late=True` kept).

This is what decoding alone can say. The session engine then dates motion that sat in
the broker (the hub stopped, or restarting) by the sensor's clock corrected by its learnt
offset, once that offset is known and stable (`hub/sessions/sensor_clocks.py`).

Retained messages: the broker replays a topic's retained message on subscribe. For status
that is the point (the contract retains it); a retained motion message is old motion, not
motion now (it decodes to None); a retained state (ESPHome and Zigbee2MQTT retain theirs
by default) is the sensor's current state, marked `retained`: it is taken as the room's
state, but starts no session (no music at boot for an mmWave that says occupied).
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Final, NoReturn

from hub.config import HubConfig, MqttFormat
from hub.controls import ControlCommand
from hub.errors import ParseError
from hub.model import MotionEvent, Receipt, SensorState, StateKind
from hub.timeutil import parse_iso

MAX_PAYLOAD: Final = 64 * 1024
MAX_LATE_SECONDS: Final = 24 * 60 * 60  # a late (buffered) timestamp older than this is not trusted
MOTION_EVENT: Final = "motion_detected"
SOURCE: Final = "mqtt"

# Seqs remembered per sensor: more than can be committed but not yet acknowledged when the
# hub is killed (one turn's batch), so a redelivery after a restart is still recognised.
DEDUP_WINDOW: Final = 1_024
DEDUP_MAX_SENSORS: Final = 1_000  # sensors remembered; the least recently seen is forgotten

_SENSOR_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_PREVIEW_LIMIT = 80
_LATEST_EPOCH = 1e11  # year 5138: anything larger is a unit mistake (ms, µs)
_MAX_SEQ = 2**63 - 1  # SQLite INTEGER
_MAX_FIRMWARE_VERSION = 32


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """A sensor's availability (`{prefix}/{sensorId}/status`, retained; last will `offline`)."""

    sensor_id: str
    online: bool
    received_at: float


# What ingest adapters put into the session runner's inbox.
# What ingest adapters hand the session runner (a control command comes over MQTT too).
Inbound = MotionEvent | StatusUpdate | SensorState | ControlCommand | Receipt


Decoded = MotionEvent | StatusUpdate | SensorState
# (sensor id, payload, receive time) -> value; raises ParseError.
Decoder = Callable[[str, bytes, float], Decoded]


# --- helpers --------------------------------------------------------------------------------


def _preview(data: bytes | str) -> str:
    """At most ~80 characters of a payload or value, for an error message."""
    text = data.decode("utf-8", "backslashreplace") if isinstance(data, bytes) else data
    shown = repr(text)
    return shown if len(shown) <= _PREVIEW_LIMIT else shown[: _PREVIEW_LIMIT - 4] + "...'"


def _show(value: object) -> str:
    """A JSON value for an error message, by kind for containers, truncated otherwise."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _preview(value)
    return repr(value)[:_PREVIEW_LIMIT]


def _reject_constant(name: str) -> NoReturn:
    raise ParseError(f"payload is not valid JSON: {name} is not a number")


# One decoder for every message: json.loads(..., parse_constant=...) would build a new
# JSONDecoder per call, a cost paid on every motion message.
_JSON = json.JSONDecoder(parse_constant=_reject_constant)


def _text(payload: bytes) -> str:
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ParseError(f"payload is not valid UTF-8 (byte {exc.start})") from None


def _json_object(payload: bytes) -> dict[str, Any]:
    text = _text(payload)
    try:
        value = _JSON.decode(text)
    except ValueError as exc:  # JSONDecodeError, or int()'s digit limit
        raise ParseError(f"payload is not valid JSON ({exc}): {_preview(text)}") from None
    except RecursionError:
        raise ParseError("payload is not valid JSON: nested too deeply") from None
    if not isinstance(value, dict):
        raise ParseError(f"payload must be a JSON object, got {_show(value)}")
    return value


def _is_number(value: object) -> bool:
    # bool is an int subclass in Python; `true` is never a number here.
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_sensor_id(sensor_id: str) -> str:
    if not _SENSOR_ID.fullmatch(sensor_id):
        raise ParseError(
            f"sensor id in topic must be 1-64 characters of A-Z a-z 0-9 _ -, "
            f"got {_preview(sensor_id)}"
        )
    return sensor_id


# --- field readers (a missing key and JSON null both mean "absent") ---------------------------

_Reader = Callable[[str, Any], Any]


def _int_between(low: int, high: int) -> _Reader:
    def read(name: str, value: Any) -> int:
        if not _is_int(value) or not low <= value <= high:
            raise ParseError(f"{name}: must be an integer {low}..{high}, got {_show(value)}")
        return int(value)

    return read


def _short_string(limit: int) -> _Reader:
    def read(name: str, value: Any) -> str:
        if not isinstance(value, str) or len(value) > limit:
            raise ParseError(
                f"{name}: must be a string of at most {limit} characters, got {_show(value)}"
            )
        return value

    return read


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ParseError(f"{name}: must be true or false, got {_show(value)}")
    return value


def _seq(name: str, value: Any) -> int:
    if not _is_int(value) or not 0 <= value <= _MAX_SEQ:
        raise ParseError(f"{name}: must be a non-negative integer, got {_show(value)}")
    return int(value)


def _timestamp(name: str, value: Any) -> float:
    """Epoch seconds (a number, not a bool) or an ISO-8601 string (naive means UTC)."""
    if _is_number(value):
        seconds = float(value)
    elif isinstance(value, str):
        try:
            seconds = parse_iso(value.strip())
        except (ParseError, OverflowError, ValueError):
            raise ParseError(
                f"{name}: not an ISO-8601 time or epoch seconds: {_preview(value)}"
            ) from None
    else:
        raise ParseError(f"{name}: must be epoch seconds or an ISO-8601 string, got {_show(value)}")
    if not 0 <= seconds < _LATEST_EPOCH:  # also rejects inf and nan (1e400 parses as inf)
        raise ParseError(f"{name}: epoch seconds out of range: {_show(value)}")
    return seconds


def _read(obj: Mapping[str, Any], key: str, reader: _Reader, where: str = "") -> Any:
    value = obj.get(key)
    return None if value is None else reader(where + key, value)


# metadata key -> (MotionEvent field, reader)
_METADATA_FIELDS: Final[Mapping[str, tuple[str, _Reader]]] = MappingProxyType(
    {
        "batteryLevel": ("battery_level", _int_between(0, 100)),
        "signalStrength": ("signal_strength", _int_between(-127, 20)),  # dBm
        "firmwareVersion": ("firmware_version", _short_string(_MAX_FIRMWARE_VERSION)),
    }
)


# --- the formats ----------------------------------------------------------------------------


def trusted_occurrence(sensor_timestamp: float | None, late: bool, received_at: float) -> float:
    """The clock-trust rule of the module docstring: which instant is `occurred_at`."""
    if late and sensor_timestamp is not None:
        age = received_at - sensor_timestamp
        if 0 <= age <= MAX_LATE_SECONDS:
            return sensor_timestamp
    return received_at


def encode_seed_motion(
    sensor_id: str,
    *,
    seq: int,
    timestamp: float | None = None,
    late: bool = False,
    battery_level: int | None = None,
    signal_strength: int | None = None,
    firmware_version: str | None = None,
) -> bytes:
    """The firmware's motion payload (contracts §3), as `spottypotty simulate` sends it."""
    payload: dict[str, Any] = {"event": MOTION_EVENT, "sensorId": sensor_id, "seq": seq}
    if timestamp is not None:
        payload["timestamp"] = int(timestamp)
    if late:
        payload["late"] = True
    metadata = {
        "batteryLevel": battery_level,
        "signalStrength": signal_strength,
        "firmwareVersion": firmware_version,
    }
    if any(value is not None for value in metadata.values()):
        payload["metadata"] = {k: v for k, v in metadata.items() if v is not None}
    return json.dumps(payload, separators=(",", ":")).encode()


def decode_seed(sensor_id: str, payload: bytes, received_at: float) -> MotionEvent:
    """The firmware's motion JSON (contracts §3); `sensor_id` (from the topic) wins."""
    obj = _json_object(payload)
    # Unknown keys (and the payload's own "sensorId") are tolerated and ignored: newer
    # firmware may add fields, and the hub must keep decoding what it understands.
    event = obj.get("event")
    if event != MOTION_EVENT:
        problem = "missing" if event is None else f"unknown event {_show(event)}"
        raise ParseError(f"event: {problem}, expected {MOTION_EVENT!r}")
    sensor_timestamp: float | None = _read(obj, "timestamp", _timestamp)
    late = bool(_read(obj, "late", _bool))
    seq: int | None = _read(obj, "seq", _seq)
    metadata_fields: dict[str, Any] = {}
    metadata = obj.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise ParseError(f"metadata: must be an object, got {_show(metadata)}")
        for key, (attribute, reader) in _METADATA_FIELDS.items():
            metadata_fields[attribute] = _read(metadata, key, reader, "metadata.")
    return MotionEvent(
        sensor_id=sensor_id,
        occurred_at=trusted_occurrence(sensor_timestamp, late, received_at),
        received_at=received_at,
        source=SOURCE,
        sensor_timestamp=sensor_timestamp,
        seq=seq,
        late=late,
        **metadata_fields,
    )


_STATUS_WORDS: Final[Mapping[str, bool]] = MappingProxyType({"online": True, "offline": False})


def decode_status(sensor_id: str, payload: bytes, received_at: float) -> StatusUpdate:
    """`{"status": "online"|"offline", ...}` or the bare word (a plain last will)."""
    text = _text(payload).strip()
    if text in _STATUS_WORDS:
        return StatusUpdate(sensor_id, _STATUS_WORDS[text], received_at)
    status = _json_object(payload).get("status")  # other keys (ip, rssi, ...) are tolerated
    if not isinstance(status, str) or status not in _STATUS_WORDS:
        raise ParseError(f'status: must be "online" or "offline", got {_show(status)}')
    return StatusUpdate(sensor_id, _STATUS_WORDS[status], received_at)


def decode_esphome(sensor_id: str, payload: bytes, received_at: float) -> Decoded:
    """An ESPHome binary sensor's state, `ON` or `OFF` (case as ESPHome sends it). Held until
    the next one: occupied or clear for motion and presence, open or closed for a door (the
    sensor's `kind` says which)."""
    text = _text(payload).strip()
    if text in _ESPHOME_STATES:
        return SensorState(sensor_id, StateKind.OCCUPANCY, _ESPHOME_STATES[text], received_at)
    raise ParseError(f"ESPHome state must be ON or OFF, got {_preview(text)}")


_ESPHOME_STATES: Final[Mapping[str, bool]] = MappingProxyType({"ON": True, "OFF": False})
# Zigbee2MQTT state keys, first found wins -> (kind, whether `true` means on). `contact`
# is true when the contact is *closed*, so the door is open (on) when it is false.
_ZIGBEE2MQTT_STATES: Final[Mapping[str, tuple[StateKind, bool]]] = MappingProxyType(
    {
        "occupancy": (StateKind.OCCUPANCY, True),
        "presence": (StateKind.OCCUPANCY, True),
        "contact": (StateKind.CONTACT, False),
    }
)


def decode_zigbee2mqtt(sensor_id: str, payload: bytes, received_at: float) -> Decoded:
    """A Zigbee2MQTT device's state object: `occupancy`, `presence` (mmWave) or `contact`
    (a door: true = closed), and optionally `battery`.

    `linkquality` is an LQI (0..255), not dBm, so it never becomes `signal_strength`; it
    and every other key (tamper, voltage, illuminance, ...) are tolerated and ignored.
    """
    obj = _json_object(payload)
    key = next((key for key in _ZIGBEE2MQTT_STATES if obj.get(key) is not None), None)
    if key is None:
        raise ParseError("occupancy, presence or contact: one is required, got none")
    value = obj[key]
    if not isinstance(value, bool):
        raise ParseError(f"{key}: must be true or false, got {_show(value)}")
    battery = obj.get("battery")
    if battery is not None and (not _is_number(battery) or not 0 <= battery <= 100):  # noqa: PLR2004
        raise ParseError(f"battery: must be a number 0..100, got {_show(battery)}")
    kind, true_is_on = _ZIGBEE2MQTT_STATES[key]
    return SensorState(
        sensor_id,
        kind,
        value == true_is_on,
        received_at,
        battery_level=None if battery is None else round(battery),
    )


# format -> decoder for a configured sensor's own topic
FORMAT_DECODERS: Final[Mapping[MqttFormat, Decoder]] = MappingProxyType(
    {"seed": decode_seed, "esphome": decode_esphome, "zigbee2mqtt": decode_zigbee2mqtt}
)
# last topic level under the prefix -> decoder
_PREFIX_DECODERS: Final[Mapping[str, Decoder]] = MappingProxyType(
    {"motion": decode_seed, "status": decode_status}
)


# --- routing --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ForeignRoute:
    """A sensor on its own topic (`mqtt_topic`), in its own format (`mqtt_format`)."""

    sensor_id: str
    format: MqttFormat


@dataclass(frozen=True, slots=True)
class TopicRouter:
    """Which topics to subscribe to, and which decoder reads each message."""

    prefix: str = "sensors"
    foreign: Mapping[str, ForeignRoute] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: HubConfig) -> TopicRouter:
        foreign: dict[str, ForeignRoute] = {}
        for sensor in config.sensors:
            if sensor.mqtt_topic:
                # check-config rejects one topic for two sensors; should it slip through, the
                # first sensor keeps the topic.
                foreign.setdefault(sensor.mqtt_topic, ForeignRoute(sensor.id, sensor.mqtt_format))
        return cls(prefix=config.mqtt.topic_prefix, foreign=MappingProxyType(foreign))

    def subscriptions(self) -> list[str]:
        """Topic filters, each once: the prefix's motion and status, then foreign topics."""
        filters = [f"{self.prefix}/+/{kind}" for kind in _PREFIX_DECODERS]
        filters.extend(topic for topic in self.foreign if topic not in filters)
        return filters

    def _route(self, topic: str) -> tuple[str, Decoder] | None:
        route = self.foreign.get(topic)  # an exact, configured topic wins over the prefix
        if route is not None:
            return route.sensor_id, FORMAT_DECODERS[route.format]
        head = self.prefix + "/"
        if not topic.startswith(head):
            return None
        levels = topic[len(head) :].split("/")
        if len(levels) != 2:  # noqa: PLR2004 - {sensorId}/{kind}: `+` is exactly one level
            return None
        sensor_id, kind = levels
        decoder = _PREFIX_DECODERS.get(kind)
        return None if decoder is None else (sensor_id, decoder)

    def decode(
        self, topic: str, payload: bytes, received_at: float, *, retained: bool = False
    ) -> Decoded | None:
        """One message → a value; None for a topic nobody asked for (or replayed motion).

        Raises ParseError for a malformed payload or a bad sensor id in the topic.
        `retained` is the message's retain flag: a retained motion message is old motion
        the broker replays on subscribe, not motion now, so it decodes to None; a retained
        state is the sensor's current state, marked `retained` (it starts nothing).
        """
        route = self._route(topic)
        if route is None:
            return None
        sensor_id, decoder = route
        if len(payload) > MAX_PAYLOAD:
            raise ParseError(f"payload of {len(payload)} bytes exceeds 64 KiB")
        if decoder is decode_status and not payload:
            return None  # an empty retained message: someone cleared the sensor's status
        value = decoder(_check_sensor_id(sensor_id), payload, received_at)
        if retained and isinstance(value, MotionEvent):
            return None
        if retained and isinstance(value, SensorState):
            return replace(value, retained=True)
        return value


# --- QoS-1 redelivery ---------------------------------------------------------------------


@dataclass(slots=True)
class _Window:
    """The seqs seen from one sensor near its highest: bit i of `seen` is set when seq
    `highest - i` was seen (one small int per sensor, however large the window)."""

    highest: int
    seen: int = 1


class SeqDeduplicator:
    """Drops QoS-1 redeliveries by the firmware's per-boot `seq` counter.

    A seq already seen within `window` of the highest seen from that sensor is a duplicate;
    None is never one. A seq more than `window` below the highest means the firmware
    rebooted and its counter restarted: the sensor's window starts over. A reboot whose
    counter had not got far (its seqs still inside the window) is only caught by `reset`,
    which the MQTT adapter calls when the sensor announces itself online. A missed
    duplicate only extends a session; a dropped motion event could stop the music.

    Memory is bounded: a `window`-bit mask per sensor, `max_sensors` sensors (the least
    recently seen is forgotten first). Pure: no clock, no I/O.
    """

    __slots__ = ("_mask", "_max_sensors", "_sensors", "_window")

    def __init__(self, window: int = DEDUP_WINDOW, max_sensors: int = DEDUP_MAX_SENSORS) -> None:
        if window < 1 or max_sensors < 1:
            raise ValueError("window and max_sensors must be at least 1")
        self._window = window
        self._mask = (1 << window) - 1
        self._max_sensors = max_sensors
        self._sensors: OrderedDict[str, _Window] = OrderedDict()

    def __len__(self) -> int:
        """How many sensors are remembered."""
        return len(self._sensors)

    def is_duplicate(self, sensor_id: str, seq: int | None) -> bool:
        """True for a redelivery; otherwise remember `seq` and answer False."""
        if seq is None:
            return False
        window = self._sensors.get(sensor_id)
        if window is None:
            self._sensors[sensor_id] = _Window(highest=seq)
            if len(self._sensors) > self._max_sensors:
                self._sensors.popitem(last=False)
            return False
        self._sensors.move_to_end(sensor_id)
        if seq > window.highest:
            ahead = seq - window.highest
            window.seen = (window.seen << ahead | 1) & self._mask if ahead < self._window else 1
            window.highest = seq
            return False
        age = window.highest - seq
        if age < self._window:
            bit = 1 << age
            if window.seen & bit:
                return True
            window.seen |= bit
            return False
        if age > self._window:  # the counter restarted: a reboot
            self._sensors[sensor_id] = _Window(highest=seq)
        return False

    def reset(self, sensor_id: str) -> None:
        """Forget a sensor's seqs (it rebooted: its counter starts again)."""
        self._sensors.pop(sensor_id, None)

    def forget(self, sensor_id: str, seq: int | None) -> None:
        """Take back one seq: its message was never handed on, so its redelivery is new."""
        window = self._sensors.get(sensor_id)
        if seq is None or window is None:
            return
        age = window.highest - seq
        if 0 <= age < self._window:
            window.seen &= ~(1 << age)
