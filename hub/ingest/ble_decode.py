"""BTHome v2 service data → domain values: pure functions, no I/O, no clock, no bleak.

Two parts (contracts §4):

- `decode_service_data(address, data, bindkey)` reads the bytes after the UUID `0xFCD2`:
  the device-info byte, then either plaintext objects or `ciphertext + counter (4, LE) + MIC
  (4)` encrypted with AES-CCM (nonce = MAC + `d2fc` + device info + counter, 4-byte MIC, no
  associated data). Objects are read with the table `OBJECTS` (object id → name, length,
  kind, scale). The answer is an `Advert`; malformed bytes raise `ParseError`, and nothing
  else. A wrong key is not malformed: it is `Encryption.WRONG_KEY`, values unread.
- `BleGuard` decides which adverts become events, per configured address: only adverts
  from a configured `ble_address` count; a sensor with a `ble_bindkey` is believed only
  when its advert decrypts and its counter went up (see "Counters" below); plaintext from a
  keyed sensor is a downgrade; the many repeats of one advert (same packet id, else same
  counter, else the same bytes) make one event; motion (`0x21`) or occupancy (`0x23`) true
  is a `MotionEvent`, false a `MotionCleared` (never starts anything).

Why not the `bthome-ble` library (measured with 3.25.0, the version the vectors were
checked with): it parses a habluetooth `BluetoothServiceInfoBleak`, not bytes, and keeps
its own per-device state (cumulative sensor values, a replay rule that lets any counter
below 100 through and an equal counter pass, a 4-second packet-id window) that we would
have to second-guess rather than reuse; it logs a WARNING on every failed decryption
(we need "once per address"); and it pulls in 20 packages / 58 MB (habluetooth,
bluetooth-adapters, bluetooth-auto-recovery, usb-devices, PyRIC, ...) with an import time
of ~90 ms on a desktop x86 (several hundred ms on a Pi, of a 1.5 s start-up budget).
`cryptography` alone imports in ~12 ms. The object table below follows the BTHome v2
spec (and bthome-ble's `const.py`, MIT), and the shared vectors decode exactly.

Counters (bthome.io/encryption: a 4-byte little-endian counter "should increase every
advertisement"; replay protection is the receiver's job). For a keyed sensor the guard
keeps the last counter it believed:

- higher than the last: new; equal: a repeat of the same advert (dropped quietly);
- lower: a device that lost power (or wrapped 0xFFFFFFFF → 0) starts again from a low
  value, so a lower counter below `COUNTER_RESET_LIMIT` is believed as a restart (it did
  decrypt, so it was made with the key); any other lower counter is a replay (rejected,
  reported once);
- after a restart the counter climbs slowly again: a leap of `COUNTER_RESET_LIMIT` or
  more back into the range used before the restart is an old advert replayed (rejected).

What this leaves open, on purpose: someone who recorded a sensor's adverts can replay one
whose counter is below the limit, once, as a "restart" (and the few after it). Refusing
restarts would instead lock the sensor out after every battery change until the hub
restarts (the bthome-ble bug report #116 shape); a stray motion event costs less. The
counters live in memory: after a hub restart the first advert of each sensor is believed.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESCCM

from hub.config import HubConfig
from hub.errors import ParseError
from hub.ingest.mqtt_decode import MotionCleared
from hub.model import MotionEvent

BTHOME_UUID16: Final = 0xFCD2
BTHOME_UUID: Final = "0000fcd2-0000-1000-8000-00805f9b34fb"
UUID_BYTES: Final = b"\xd2\xfc"  # the UUID as it is sent (little-endian)
SOURCE: Final = "ble"

BTHOME_VERSION: Final = 2
BINDKEY_BYTES: Final = 16
COUNTER_BYTES: Final = 4
MIC_BYTES: Final = 4
COUNTER_RESET_LIMIT: Final = 1 << 16  # a lower counter under this is a device restart

_ENCRYPTED_FLAG: Final = 0x01  # device info bit 0
_TRIGGER_FLAG: Final = 0x04  # device info bit 2: "trigger based" (sleepy) device
_VERSION_SHIFT: Final = 5  # device info bits 5-7
_MAC_BYTES: Final = 6
_MAX_BATTERY: Final = 100
_RSSI_RANGE: Final = range(-127, 21)  # dBm, as MotionEvent.signal_strength takes it
_PREVIEW_BYTES: Final = 32

Value = bool | int | float | str


class Encryption(enum.StrEnum):
    """How an advert's values were (or were not) read."""

    NONE = "none"  # plaintext
    DECRYPTED = "decrypted"  # encrypted, and the bindkey verified its MIC
    NO_KEY = "no_key"  # encrypted, no bindkey given: values unread
    WRONG_KEY = "wrong_key"  # encrypted, the bindkey did not verify the MIC: values unread


class _Kind(enum.Enum):
    UINT = enum.auto()
    SINT = enum.auto()
    BOOL = enum.auto()
    BUTTON = enum.auto()
    DIMMER = enum.auto()
    TIMESTAMP = enum.auto()
    FIRMWARE = enum.auto()
    TEXT = enum.auto()  # length-prefixed UTF-8
    RAW = enum.auto()  # length-prefixed bytes, shown as hex


@dataclass(frozen=True, slots=True)
class _Object:
    """One object id: value = raw * multiply / divide (exact for the spec's decimal factors)."""

    name: str
    length: int  # bytes after the id; for TEXT / RAW the length comes from the first byte
    kind: _Kind = _Kind.UINT
    divide: int = 1
    multiply: int = 1


_U, _S, _B = _Kind.UINT, _Kind.SINT, _Kind.BOOL

# BTHome v2 object ids (bthome.io/format). Objects come in ascending id order; an id not in
# this table has an unknown length, so reading stops there (see Advert.unknown_object).
OBJECTS: Final[Mapping[int, _Object]] = MappingProxyType(
    {
        0x00: _Object("packet_id", 1),
        0x01: _Object("battery", 1),
        0x02: _Object("temperature", 2, _S, 100),
        0x03: _Object("humidity", 2, _U, 100),
        0x04: _Object("pressure", 3, _U, 100),
        0x05: _Object("illuminance", 3, _U, 100),
        0x06: _Object("mass_kg", 2, _U, 100),
        0x07: _Object("mass_lb", 2, _U, 100),
        0x08: _Object("dew_point", 2, _S, 100),
        0x09: _Object("count", 1),
        0x0A: _Object("energy", 3, _U, 1000),
        0x0B: _Object("power", 3, _U, 100),
        0x0C: _Object("voltage", 2, _U, 1000),
        0x0D: _Object("pm25", 2),
        0x0E: _Object("pm10", 2),
        0x0F: _Object("generic_boolean", 1, _B),
        0x10: _Object("power_on", 1, _B),
        0x11: _Object("opening", 1, _B),
        0x12: _Object("co2", 2),
        0x13: _Object("tvoc", 2),
        0x14: _Object("moisture", 2, _U, 100),
        0x15: _Object("battery_low", 1, _B),
        0x16: _Object("battery_charging", 1, _B),
        0x17: _Object("carbon_monoxide", 1, _B),
        0x18: _Object("cold", 1, _B),
        0x19: _Object("connectivity", 1, _B),
        0x1A: _Object("door", 1, _B),
        0x1B: _Object("garage_door", 1, _B),
        0x1C: _Object("gas_detected", 1, _B),
        0x1D: _Object("heat", 1, _B),
        0x1E: _Object("light", 1, _B),
        0x1F: _Object("lock", 1, _B),
        0x20: _Object("moisture_detected", 1, _B),
        0x21: _Object("motion", 1, _B),
        0x22: _Object("moving", 1, _B),
        0x23: _Object("occupancy", 1, _B),
        0x24: _Object("plug", 1, _B),
        0x25: _Object("presence", 1, _B),
        0x26: _Object("problem", 1, _B),
        0x27: _Object("running", 1, _B),
        0x28: _Object("safety", 1, _B),
        0x29: _Object("smoke", 1, _B),
        0x2A: _Object("sound", 1, _B),
        0x2B: _Object("tamper", 1, _B),
        0x2C: _Object("vibration", 1, _B),
        0x2D: _Object("window", 1, _B),
        0x2E: _Object("humidity", 1),
        0x2F: _Object("moisture", 1),
        0x3A: _Object("button", 1, _Kind.BUTTON),
        0x3C: _Object("dimmer", 2, _Kind.DIMMER),
        0x3D: _Object("count", 2),
        0x3E: _Object("count", 4),
        0x3F: _Object("rotation", 2, _S, 10),
        0x40: _Object("distance_mm", 2),
        0x41: _Object("distance_m", 2, _U, 10),
        0x42: _Object("duration", 3, _U, 1000),
        0x43: _Object("current", 2, _U, 1000),
        0x44: _Object("speed", 2, _U, 100),
        0x45: _Object("temperature", 2, _S, 10),
        0x46: _Object("uv_index", 1, _U, 10),
        0x47: _Object("volume", 2, _U, 10),
        0x48: _Object("volume_ml", 2),
        0x49: _Object("volume_flow_rate", 2, _U, 1000),
        0x4A: _Object("voltage", 2, _U, 10),
        0x4B: _Object("gas", 3, _U, 1000),
        0x4C: _Object("gas", 4, _U, 1000),
        0x4D: _Object("energy", 4, _U, 1000),
        0x4E: _Object("volume", 4, _U, 1000),
        0x4F: _Object("water", 4, _U, 1000),
        0x50: _Object("timestamp", 4, _Kind.TIMESTAMP),
        0x51: _Object("acceleration", 2, _U, 1000),
        0x52: _Object("gyroscope", 2, _U, 1000),
        0x53: _Object("text", 1, _Kind.TEXT),
        0x54: _Object("raw", 1, _Kind.RAW),
        0x55: _Object("volume_storage", 4, _U, 1000),
        0x56: _Object("conductivity", 2),
        0x57: _Object("temperature", 1, _S),
        0x58: _Object("temperature", 1, _S, 100, 35),
        0x59: _Object("count", 1, _S),
        0x5A: _Object("count", 2, _S),
        0x5B: _Object("count", 4, _S),
        0x5C: _Object("power", 4, _S, 100),
        0x5D: _Object("current", 2, _S, 1000),
        0x5E: _Object("direction", 2, _U, 100),
        0x5F: _Object("precipitation", 2, _U, 10),
        0x60: _Object("channel", 1),
        0x61: _Object("rotational_speed", 2),
        0x62: _Object("speed", 4, _S, 1_000_000),
        0x63: _Object("acceleration", 4, _S, 1_000_000),
        0x64: _Object("light_level", 1),
        0x65: _Object("settings_revision", 1),
        0xF0: _Object("device_type_id", 2),
        0xF1: _Object("firmware_version", 4, _Kind.FIRMWARE),
        0xF2: _Object("firmware_version", 3, _Kind.FIRMWARE),
    }
)

BUTTON_EVENTS: Final[Mapping[int, str]] = MappingProxyType(
    {
        0x00: "none",
        0x01: "press",
        0x02: "double_press",
        0x03: "triple_press",
        0x04: "long_press",
        0x05: "long_double_press",
        0x06: "long_triple_press",
        0x80: "hold_press",
    }
)
DIMMER_EVENTS: Final[Mapping[int, str]] = MappingProxyType(
    {0x00: "none", 0x01: "rotate_left", 0x02: "rotate_right"}
)
MOTION_KEYS: Final = ("motion", "occupancy")


# --- the advert -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Advert:
    """One BTHome v2 service-data payload, decoded.

    `values` maps object names to values in the order sent; a name sent twice gets `_2`,
    `_3`, ... (`temperature`, `temperature_2`). Binary objects are bools, scaled objects
    floats, the rest ints (`text` str, `raw` hex str, `button` e.g. `"press"`, `dimmer`
    e.g. `"rotate_left:3"`, `firmware_version` e.g. `"1.2.3.4"`, `timestamp` epoch seconds).
    """

    encryption: Encryption
    trigger_based: bool = False
    counter: int | None = None  # encrypted adverts only
    values: Mapping[str, Value] = field(default_factory=lambda: MappingProxyType({}))
    unknown_object: int | None = None  # reading stopped at this object id (not in OBJECTS)

    @property
    def encrypted(self) -> bool:
        return self.encryption is not Encryption.NONE

    @property
    def readable(self) -> bool:
        """Plaintext, or decrypted with a verified key: `values` are the sensor's."""
        return self.encryption in {Encryption.NONE, Encryption.DECRYPTED}

    @property
    def packet_id(self) -> int | None:
        value = self.values.get("packet_id")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def battery(self) -> int | None:
        """Battery percentage, when sent and sensible (0..100)."""
        value = self.values.get("battery")
        if isinstance(value, int) and not isinstance(value, bool) and value <= _MAX_BATTERY:
            return value
        return None

    @property
    def motion(self) -> bool | None:
        """True if motion or occupancy is reported, False if reported clear, else None."""
        states = [self.values[key] for key in MOTION_KEYS if key in self.values]
        if not states:
            return None
        return any(state is True for state in states)

    @property
    def firmware_version(self) -> str | None:
        value = self.values.get("firmware_version")
        return value if isinstance(value, str) else None

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict (for `spottypotty ble decode` and `ble scan`)."""
        out: dict[str, object] = {
            "encryption": self.encryption.value,
            "encrypted": self.encrypted,
            "trigger_based": self.trigger_based,
        }
        if self.counter is not None:
            out["counter"] = self.counter
        out["values"] = dict(self.values)
        if self.unknown_object is not None:
            out["unknown_object"] = f"0x{self.unknown_object:02x}"
        return out


# --- decoding -------------------------------------------------------------------------------


def _preview(data: bytes) -> str:
    shown = data[:_PREVIEW_BYTES].hex()
    return shown + "..." if len(data) > _PREVIEW_BYTES else shown


def mac_bytes(address: str) -> bytes:
    """`54:48:E6:8F:80:A5` → 6 bytes; ParseError when it is not a MAC address."""
    parts = address.split(":")
    if len(parts) != _MAC_BYTES or any(len(part) != 2 for part in parts):  # noqa: PLR2004
        raise ParseError(f"not a MAC address: {address[:40]!r}")
    try:
        return bytes.fromhex("".join(parts))
    except ValueError:
        raise ParseError(f"not a MAC address: {address[:40]!r}") from None


def parse_bindkey(text: str) -> bytes:
    """32 hex characters → 16 bytes; ParseError (which never echoes the key) otherwise."""
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        raise ParseError("the bindkey must be 32 hex characters") from None
    if len(key) != BINDKEY_BYTES:
        raise ParseError(f"the bindkey must be 32 hex characters, got {len(text.strip())}")
    return key


@functools.lru_cache(maxsize=64)
def _cipher(bindkey: bytes) -> AESCCM:
    return AESCCM(bindkey, tag_length=MIC_BYTES)


def _value(spec: _Object, raw: bytes) -> Value:
    kind = spec.kind
    if kind is _Kind.BOOL:
        return raw[0] != 0
    if kind is _Kind.BUTTON:
        return BUTTON_EVENTS.get(raw[0], f"0x{raw[0]:02x}")
    if kind is _Kind.DIMMER:
        return f"{DIMMER_EVENTS.get(raw[0], f'0x{raw[0]:02x}')}:{raw[1]}"
    if kind is _Kind.FIRMWARE:
        return ".".join(str(part) for part in reversed(raw))
    if kind is _Kind.TEXT:
        return raw.decode("utf-8", "replace")
    if kind is _Kind.RAW:
        return raw.hex()
    number = int.from_bytes(raw, "little", signed=kind is _Kind.SINT)
    if spec.divide == 1 and spec.multiply == 1:
        return number
    return number * spec.multiply / spec.divide


def decode_objects(payload: bytes) -> tuple[dict[str, Value], int | None]:
    """Plaintext BTHome v2 objects → (values, the unknown object id reading stopped at)."""
    values: dict[str, Value] = {}
    index = 0
    while index < len(payload):
        object_id = payload[index]
        spec = OBJECTS.get(object_id)
        if spec is None:
            return values, object_id
        start = index + 1
        length = spec.length
        if spec.kind in {_Kind.TEXT, _Kind.RAW}:
            if start >= len(payload):
                raise ParseError(f"object 0x{object_id:02x} ({spec.name}) has no length byte")
            length = payload[start]
            start += 1
        end = start + length
        if end > len(payload):
            raise ParseError(
                f"object 0x{object_id:02x} ({spec.name}) needs {length} byte(s), "
                f"{len(payload) - start} left: {_preview(payload)}"
            )
        name = spec.name
        copy = 2
        while name in values:
            name = f"{spec.name}_{copy}"
            copy += 1
        values[name] = _value(spec, payload[start:end])
        index = end
    return values, None


def decode_service_data(address: str, data: bytes, bindkey: bytes | None) -> Advert:
    """BTHome v2 service data (the bytes after UUID 0xFCD2) → Advert; ParseError if malformed.

    `address` (the advertiser's MAC, any case) is only needed to decrypt: it is part of the
    nonce. `bindkey` (16 bytes) is tried on encrypted adverts; without one they decode
    with `Encryption.NO_KEY` and no values.
    """
    if bindkey is not None and len(bindkey) != BINDKEY_BYTES:
        raise ValueError("bindkey must be 16 bytes")
    if not data:
        raise ParseError("empty BTHome service data")
    info = data[0]
    version = info >> _VERSION_SHIFT
    if version != BTHOME_VERSION:
        raise ParseError(f"BTHome version {version} in device info 0x{info:02x}, expected 2")
    trigger_based = bool(info & _TRIGGER_FLAG)
    if not info & _ENCRYPTED_FLAG:
        values, unknown = decode_objects(data[1:])
        return Advert(Encryption.NONE, trigger_based, None, MappingProxyType(values), unknown)
    if len(data) < 1 + COUNTER_BYTES + MIC_BYTES:
        raise ParseError(f"encrypted BTHome advert too short ({len(data)} bytes)")
    ciphertext = data[1 : -COUNTER_BYTES - MIC_BYTES]
    counter_bytes = data[-COUNTER_BYTES - MIC_BYTES : -MIC_BYTES]
    mic = data[-MIC_BYTES:]
    counter = int.from_bytes(counter_bytes, "little")
    if bindkey is None:
        return Advert(Encryption.NO_KEY, trigger_based, counter)
    nonce = mac_bytes(address) + UUID_BYTES + data[:1] + counter_bytes
    try:
        plaintext = _cipher(bindkey).decrypt(nonce, ciphertext + mic, None)
    except InvalidTag:
        return Advert(Encryption.WRONG_KEY, trigger_based, counter)
    values, unknown = decode_objects(plaintext)
    return Advert(Encryption.DECRYPTED, trigger_based, counter, MappingProxyType(values), unknown)


# --- the guard ------------------------------------------------------------------------------


class Reason(enum.StrEnum):
    """Why an advert made no event."""

    STRANGER = "stranger"  # no configured sensor has this address
    MALFORMED = "malformed"  # ParseError
    DOWNGRADE = "downgrade"  # plaintext from a sensor with a bindkey
    WRONG_KEY = "wrong_key"  # the configured bindkey does not verify the MIC
    NO_KEY = "no_key"  # encrypted adverts from a sensor configured without a bindkey
    REPLAY = "replay"  # the counter went down (and not as a restart)
    REPEAT = "repeat"  # the same advert again (same packet id / counter / bytes)
    NO_MOTION = "no_motion"  # a believed advert with neither motion nor occupancy


# Reasons a person has to act on: the caller logs them once per address (Verdict.first).
REPORTED_ONCE: Final = frozenset({Reason.DOWNGRADE, Reason.WRONG_KEY, Reason.NO_KEY, Reason.REPLAY})


class KeyStatus(enum.StrEnum):
    """A keyed sensor's bindkey, as far as the hub can tell (for `doctor` and status)."""

    UNVERIFIED = "unverified"  # no encrypted advert seen yet
    VERIFIED = "verified"  # the last encrypted advert decrypted
    WRONG_KEY = "wrong_key"  # the last encrypted advert did not


@dataclass(frozen=True, slots=True)
class BleSensor:
    """A configured BLE sensor: its id and its bindkey (16 bytes) if it has one."""

    sensor_id: str
    bindkey: bytes | None = field(default=None, repr=False)  # a secret: never in reprs


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the guard made of one advert: an event, or the reason there is none."""

    event: MotionEvent | MotionCleared | None
    reason: Reason | None = None
    sensor_id: str | None = None
    first: bool = False  # the first time `reason` (one of REPORTED_ONCE) for this address
    counter_reset: bool = False  # believed as a device restart (counter went down, low)


class _State:
    __slots__ = ("counter", "identity", "key_status", "reported", "retired")

    def __init__(self) -> None:
        self.counter: int | None = None
        self.retired: int | None = None  # the highest counter before the last restart
        self.identity: object = None
        self.key_status = KeyStatus.UNVERIFIED
        self.reported: set[Reason] = set()


def _int_or_none(value: int | None, allowed: range) -> int | None:
    return value if value is not None and value in allowed else None


class BleGuard:
    """Per configured address: which adverts to believe, and which are new events.

    Pure (no clock, no I/O): `now` comes in with every advert. Memory is bounded by the
    number of configured sensors; strangers leave no trace.
    """

    __slots__ = ("_sensors", "_states")

    def __init__(self, sensors: Mapping[str, BleSensor]) -> None:
        self._sensors = {address.upper(): sensor for address, sensor in sensors.items()}
        self._states = {address: _State() for address in self._sensors}

    @classmethod
    def from_config(cls, config: HubConfig) -> BleGuard:
        sensors: dict[str, BleSensor] = {}
        for sensor in config.sensors:
            if sensor.ble_address:
                key = bytes.fromhex(sensor.ble_bindkey) if sensor.ble_bindkey else None
                # check-config rejects one address for two sensors; if it slips through,
                # the first sensor keeps the address.
                sensors.setdefault(sensor.ble_address.upper(), BleSensor(sensor.id, key))
        return cls(sensors)

    def __len__(self) -> int:
        return len(self._sensors)

    def addresses(self) -> tuple[str, ...]:
        """The configured addresses, upper case."""
        return tuple(self._sensors)

    def sensor(self, address: str) -> BleSensor | None:
        return self._sensors.get(address.upper())

    def bindkey(self, address: str) -> bytes | None:
        sensor = self._sensors.get(address.upper())
        return sensor.bindkey if sensor is not None else None

    def key_status(self, address: str) -> KeyStatus | None:
        """None for an address without a bindkey (or not configured)."""
        address = address.upper()
        if self.bindkey(address) is None:
            return None
        return self._states[address].key_status

    def counters(self) -> dict[str, tuple[int | None, int | None]]:
        """Per address (counter, highest counter before the last restart): what the hub
        keeps across its own restarts, so an old advert is not believed after one."""
        return {
            address: (state.counter, state.retired)
            for address, state in self._states.items()
            if state.counter is not None
        }

    def restore(self, saved: Mapping[str, tuple[int | None, int | None]]) -> None:
        """Take back what `counters()` gave before a restart (unknown addresses ignored)."""
        for address, (counter, retired) in saved.items():
            state = self._states.get(address.upper())
            if state is not None:
                state.counter, state.retired = counter, retired

    def last_counter(self, address: str) -> int | None:
        state = self._states.get(address.upper())
        return state.counter if state is not None else None

    def feed(self, address: str, data: bytes, now: float, *, rssi: int | None = None) -> Verdict:
        """Decode (with the address's bindkey) and judge one service-data payload."""
        sensor = self.sensor(address)
        if sensor is None:
            return Verdict(None, Reason.STRANGER)
        try:
            advert = decode_service_data(address, data, sensor.bindkey)
        except ParseError:
            return Verdict(None, Reason.MALFORMED, sensor.sensor_id)
        return self.judge(address, advert, now, rssi=rssi)

    def accept(
        self, address: str, advert: Advert, now: float, *, rssi: int | None = None
    ) -> MotionEvent | MotionCleared | None:
        """`judge(...).event`: the event this advert makes, if any."""
        return self.judge(address, advert, now, rssi=rssi).event

    def judge(
        self, address: str, advert: Advert, now: float, *, rssi: int | None = None
    ) -> Verdict:
        address = address.upper()
        sensor = self._sensors.get(address)
        if sensor is None:
            return Verdict(None, Reason.STRANGER)
        state = self._states[address]
        keyed = sensor.bindkey is not None
        reset = False
        if keyed:
            if advert.encryption is Encryption.NONE:
                return self._refuse(state, sensor, Reason.DOWNGRADE)
            if advert.encryption is not Encryption.DECRYPTED:
                # NO_KEY here means the advert was decoded without the sensor's key (a
                # caller's mistake, or a replayed decode): nothing in it can be believed.
                state.key_status = KeyStatus.WRONG_KEY
                return self._refuse(state, sensor, Reason.WRONG_KEY)
            state.key_status = KeyStatus.VERIFIED
            counter = advert.counter
            last = state.counter
            if counter is not None and last is not None:
                if counter == last:
                    return Verdict(None, Reason.REPEAT, sensor.sensor_id)
                if counter < last:
                    if counter >= COUNTER_RESET_LIMIT:
                        return self._refuse(state, sensor, Reason.REPLAY)
                    reset = True
                    state.retired = max(state.retired or 0, last)
                elif (
                    state.retired is not None
                    and counter <= state.retired
                    and counter - last >= COUNTER_RESET_LIMIT
                ):
                    # A leap back into the range the device used before its restart:
                    # an old advert replayed, not the slow climb of a live counter.
                    return self._refuse(state, sensor, Reason.REPLAY)
            state.counter = counter
            if reset:
                state.identity = None  # the packet id restarted with the device
        elif advert.encrypted:
            return self._refuse(state, sensor, Reason.NO_KEY)
        identity = _identity(advert)
        if identity == state.identity:
            return Verdict(None, Reason.REPEAT, sensor.sensor_id, counter_reset=reset)
        state.identity = identity
        motion = advert.motion
        if motion is None:
            return Verdict(None, Reason.NO_MOTION, sensor.sensor_id, counter_reset=reset)
        if not motion:
            cleared = MotionCleared(sensor.sensor_id, now)
            return Verdict(cleared, None, sensor.sensor_id, counter_reset=reset)
        event = MotionEvent(
            sensor_id=sensor.sensor_id,
            occurred_at=now,
            received_at=now,
            source=SOURCE,
            seq=advert.packet_id if advert.packet_id is not None else advert.counter,
            battery_level=advert.battery,
            signal_strength=_int_or_none(rssi, _RSSI_RANGE),
            firmware_version=advert.firmware_version,
        )
        return Verdict(event, None, sensor.sensor_id, counter_reset=reset)

    def _refuse(self, state: _State, sensor: BleSensor, reason: Reason) -> Verdict:
        first = reason in REPORTED_ONCE and reason not in state.reported
        if first:
            state.reported.add(reason)
        return Verdict(None, reason, sensor.sensor_id, first)


def _identity(advert: Advert) -> object:
    """What makes two adverts the same event: packet id, else counter, else the values."""
    if advert.packet_id is not None:
        return ("packet_id", advert.packet_id)
    if advert.counter is not None:
        return ("counter", advert.counter)
    return ("values", tuple(advert.values.items()))
