"""BTHome v2 service data → domain values: pure functions, no I/O, no clock, no bleak.

Two parts (contracts §4):

- `decode_service_data(address, data, bindkey)` reads the bytes after the UUID `0xFCD2`:
  the device-info byte, then either plaintext objects or `ciphertext + counter (4, LE) + MIC
  (4)` encrypted with AES-CCM (nonce = MAC + `d2fc` + device info + counter, 4-byte MIC, no
  associated data). Objects are read with the table `OBJECTS` (object id → name, length,
  kind, scale); an unknown id or a last object cut short stops reading, and what came
  before is kept (`Advert.unknown_object` / `truncated_object`). The answer is an
  `Advert`; malformed bytes raise `ParseError`, and nothing else. A wrong key is not
  malformed: it is `Encryption.WRONG_KEY`, values unread.
- `BleGuard` decides which adverts become events, per configured address: only adverts
  from a configured `ble_address` count; a sensor with a `ble_bindkey` is believed only
  when its advert decrypts and its counter passes the replay rules below; plaintext from
  a keyed sensor is a downgrade; motion (`0x21`) true is a `MotionEvent` (a pulse);
  occupancy (`0x23`) or presence (`0x25`) is a held `SensorState` (occupied or clear), as
  is motion false (a clear); door (`0x1A`), window (`0x2D`) or opening (`0x11`) is a
  contact `SensorState` (true = open).

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

Replay protection (bthome.io/encryption: the 4-byte counter "should increase every
advertisement"; refusing old ones is the receiver's job). Per keyed sensor the guard keeps
the last counter it believed, and believes a decrypted advert only when its counter is

- newer: ahead of the last by less than 2**31, modulo 2**32 (RFC 1982 serial numbers), so
  a wrap 0xFFFFFFFF → 0 is newer and the counters before the wrap are not;
- a provable restart: behind the last but below `RESTART_LIMIT` (100; our firmware keeps
  its counter across deep sleep and power loss, so only a re-flash starts it again at 0,
  and bthome-ble believes restarts below 100 too), and that low value not believed before;
- the last one again with content not seen at it (firmwares that send two messages per
  counter); the same counter and content again is a repeat, dropped quietly.

Everything else is a replay, however it is interleaved with real adverts: a counter at or
behind the last is never believed twice, and after a restart a leap of more than
`MAX_CLIMB` back into the counters used before it is refused. A sensor reset to some other
counter is locked out: after `LOCKOUT_REFUSALS` replays in a row the verdict says so (the
caller reports it once), and `retrust()` (`spottypotty sensors retrust ID`) believes its
next advert whatever the counter. The state (`CounterState`) is saved by the daemon and
restored after a hub restart; a restored sensor's last counter counts as fully seen.

Repeats: the same values (packet id included) again within `REPEAT_SECONDS` of the last
time they were heard are one burst, one event; later they are new motion, even with
identical values and no packet id (a plaintext sensor reporting motion minutes apart).
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESCCM

from hub.config import HubConfig
from hub.errors import ParseError
from hub.model import MotionEvent, SensorState, StateKind

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
_MAC_FLAG: Final = 0x02  # device info bit 1: the advertiser's MAC follows (reversed)
_TRIGGER_FLAG: Final = 0x04  # device info bit 2: "trigger based" (sleepy) device
_VERSION_SHIFT: Final = 5  # device info bits 5-7
_MAC_BYTES: Final = 6
_MAX_BATTERY: Final = 100
_RSSI_RANGE: Final = range(-127, 21)  # dBm, as MotionEvent.signal_strength takes it

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
    COMMAND = enum.auto()  # argument length (low 5 bits), opcode, arguments


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
        0x3B: _Object("command", 2, _Kind.COMMAND),  # 2 = the length byte and the opcode
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
COMMANDS: Final[Mapping[int, str]] = MappingProxyType(
    {0x00: "off", 0x01: "on", 0x02: "toggle", 0x03: "step_up", 0x04: "step_down"}
)
_COMMAND_ARGS_MASK: Final = 0x1F  # the length byte's high 3 bits are reserved
MOTION_KEYS: Final = ("motion", "occupancy")
# Objects that hold a state until the next advert says otherwise, first found wins.
_STATE_KEYS: Final[Mapping[str, StateKind]] = MappingProxyType(
    {
        "occupancy": StateKind.OCCUPANCY,
        "presence": StateKind.OCCUPANCY,
        "door": StateKind.CONTACT,
        "window": StateKind.CONTACT,
        "opening": StateKind.CONTACT,
    }
)


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
    truncated_object: int | None = None  # reading stopped here: its value was cut short
    mac: str | None = None  # the MAC the advert carries (device info bit 1), if any

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
        if self.truncated_object is not None:
            out["truncated_object"] = f"0x{self.truncated_object:02x}"
        if self.mac is not None:
            out["mac"] = self.mac
        return out


# --- decoding -------------------------------------------------------------------------------


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
    if kind is _Kind.COMMAND:
        return _command(raw)
    number = int.from_bytes(raw, "little", signed=kind is _Kind.SINT)
    if spec.divide == 1 and spec.multiply == 1:
        return number
    return number * spec.multiply / spec.divide


def _command(raw: bytes) -> str:
    name = COMMANDS.get(raw[1], f"0x{raw[1]:02x}")
    return f"{name}:{raw[2:].hex()}" if len(raw) > 2 else name  # noqa: PLR2004


def _length(spec: _Object, payload: bytes, start: int) -> tuple[int, int] | None:
    """(where the value starts, its length) for the object whose id is at `start - 1`;
    None when the payload ends before its length is known."""
    if spec.kind in {_Kind.TEXT, _Kind.RAW}:
        if start >= len(payload):
            return None
        return start + 1, payload[start]
    if spec.kind is _Kind.COMMAND:
        if start >= len(payload):
            return None
        return start, spec.length + (payload[start] & _COMMAND_ARGS_MASK)
    return start, spec.length


@dataclass(frozen=True, slots=True)
class Objects:
    """What `decode_objects` read: the values, and why reading stopped early, if it did."""

    values: dict[str, Value]
    unknown_object: int | None = None  # an id not in OBJECTS: its length is unknown
    truncated_object: int | None = None  # an id whose value the payload cut short


def decode_objects(payload: bytes) -> Objects:
    """Plaintext BTHome v2 objects, in order, until the end, an unknown id or a cut-short
    value: what came before either is kept (as bthome-ble does), never an error."""
    values: dict[str, Value] = {}
    index = 0
    while index < len(payload):
        object_id = payload[index]
        spec = OBJECTS.get(object_id)
        if spec is None:
            return Objects(values, unknown_object=object_id)
        where = _length(spec, payload, index + 1)
        if where is None or where[0] + where[1] > len(payload):
            return Objects(values, truncated_object=object_id)
        start, length = where
        name = spec.name
        copy = 2
        while name in values:
            name = f"{spec.name}_{copy}"
            copy += 1
        values[name] = _value(spec, payload[start : start + length])
        index = start + length
    return Objects(values)


def decode_service_data(address: str, data: bytes, bindkey: bytes | None) -> Advert:
    """BTHome v2 service data (the bytes after UUID 0xFCD2) → Advert; ParseError if malformed.

    `address` (the advertiser's MAC, any case) is only needed to decrypt: it is part of the
    nonce, unless the advert carries its own MAC (device info bit 1, older firmwares that
    advertise from a random address): then that one is. `bindkey` (16 bytes) is tried on
    encrypted adverts; without one they decode with `Encryption.NO_KEY` and no values.
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
    body = data[1:]
    mac: bytes | None = None
    if info & _MAC_FLAG:
        if len(body) < _MAC_BYTES:
            raise ParseError(f"device info 0x{info:02x} says a MAC follows; {len(body)} byte(s)")
        mac, body = bytes(reversed(body[:_MAC_BYTES])), body[_MAC_BYTES:]
    shown_mac = ":".join(f"{byte:02X}" for byte in mac) if mac is not None else None
    if not info & _ENCRYPTED_FLAG:
        return _read(Encryption.NONE, trigger_based, None, body, shown_mac)
    if len(body) < COUNTER_BYTES + MIC_BYTES:
        raise ParseError(f"encrypted BTHome advert too short ({len(data)} bytes)")
    ciphertext = body[: -COUNTER_BYTES - MIC_BYTES]
    counter_bytes = body[-COUNTER_BYTES - MIC_BYTES : -MIC_BYTES]
    mic = body[-MIC_BYTES:]
    counter = int.from_bytes(counter_bytes, "little")
    if bindkey is None:
        return Advert(Encryption.NO_KEY, trigger_based, counter, mac=shown_mac)
    nonce_mac = mac if mac is not None else mac_bytes(address)
    nonce = nonce_mac + UUID_BYTES + data[:1] + counter_bytes
    try:
        plaintext = _cipher(bindkey).decrypt(nonce, ciphertext + mic, None)
    except InvalidTag:
        return Advert(Encryption.WRONG_KEY, trigger_based, counter, mac=shown_mac)
    return _read(Encryption.DECRYPTED, trigger_based, counter, plaintext, shown_mac)


def _read(
    encryption: Encryption,
    trigger_based: bool,
    counter: int | None,
    plaintext: bytes,
    mac: str | None,
) -> Advert:
    read = decode_objects(plaintext)
    return Advert(
        encryption,
        trigger_based,
        counter,
        MappingProxyType(read.values),
        read.unknown_object,
        read.truncated_object,
        mac,
    )


# --- the guard ------------------------------------------------------------------------------

COUNTER_MODULUS: Final = 1 << 32  # the encryption counter is 4 bytes
SERIAL_WINDOW: Final = 1 << 31  # up to this far ahead, modulo 2**32, is newer (RFC 1982)
RESTART_LIMIT: Final = 100  # a counter this low, behind the last, may be a restart
MAX_CLIMB: Final = 1024  # after a restart: how far ahead a counter the sensor used before may be
LOCKOUT_REFUSALS: Final = 3  # replays in a row, none believed between: the sensor is locked out
REPEAT_SECONDS: Final = 10.0  # the same plaintext advert within this: one burst, one event
_MAX_CONTENTS: Final = 8  # different messages believed at one counter
_MAX_IDENTITIES: Final = 32  # recent adverts kept per sensor for the repeat window


class Reason(enum.StrEnum):
    """Why an advert made no event."""

    STRANGER = "stranger"  # no configured sensor has this address
    MALFORMED = "malformed"  # ParseError
    DOWNGRADE = "downgrade"  # plaintext from a sensor with a bindkey
    WRONG_KEY = "wrong_key"  # the configured bindkey does not verify the MIC
    NO_KEY = "no_key"  # encrypted adverts from a sensor configured without a bindkey
    REPLAY = "replay"  # a counter already used: not newer, and no provable restart
    REPEAT = "repeat"  # the same advert again (same counter and content / same plaintext)
    NO_MOTION = "no_motion"  # a believed advert with no motion, occupancy or contact


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
class CounterState:
    """What the guard keeps of a keyed sensor across hub restarts (see the module doc)."""

    counter: int | None = None  # the last counter believed
    retired: int | None = None  # the highest counter believed before the last restart
    low_seen: int = 0  # bit n set: counter n (< RESTART_LIMIT) was believed since trusted
    trust_next: bool = False  # `sensors retrust`: believe the next advert that decrypts

    def to_json(self) -> dict[str, object]:
        return {
            "counter": self.counter,
            "retired": self.retired,
            "lowSeen": f"{self.low_seen:x}",
            "trustNext": self.trust_next,
        }

    @classmethod
    def from_json(cls, saved: object) -> CounterState:
        """The `to_json` form, or the older `[counter, retired]`; ValueError or TypeError
        otherwise."""
        if isinstance(saved, list) and len(saved) == 2:  # noqa: PLR2004
            return cls(_counter_or_none(saved[0]), _counter_or_none(saved[1]))
        if not isinstance(saved, dict):
            raise TypeError(f"not a saved BLE counter: {saved!r:.80}")
        return cls(
            _counter_or_none(saved.get("counter")),
            _counter_or_none(saved.get("retired")),
            int(str(saved.get("lowSeen", "0")), 16) & ((1 << RESTART_LIMIT) - 1),
            saved.get("trustNext") is True,
        )


def load_counter_states(saved: Mapping[str, object]) -> dict[str, CounterState]:
    """`CounterState.from_json` for each saved address; an unreadable entry is skipped
    (that sensor starts afresh, as on a new hub)."""
    states: dict[str, CounterState] = {}
    for address, entry in saved.items():
        try:
            states[address.upper()] = CounterState.from_json(entry)
        except (ValueError, TypeError):
            continue
    return states


def dump_counter_states(states: Mapping[str, CounterState]) -> dict[str, object]:
    return {address: state.to_json() for address, state in sorted(states.items())}


def _counter_or_none(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < COUNTER_MODULUS:
        return value
    raise ValueError(f"not a BTHome counter: {value!r:.40}")


class _Step(enum.Enum):
    """How a keyed sensor's counter moved (`_step`): the guard's one transition table."""

    TRUSTED = enum.auto()  # first advert ever, or the one after `retrust`: believed as it is
    NEWER = enum.auto()  # ahead of the last (modulo 2**32: a wrap is newer too)
    SAME_COUNTER = enum.auto()  # the last counter with content not seen at it yet
    RESTART = enum.auto()  # behind, low, and that low value never believed before
    REPEAT = enum.auto()  # the last counter with content already seen at it
    REPLAY = enum.auto()  # anything else


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the guard made of one advert: an event, or the reason there is none."""

    event: MotionEvent | SensorState | None
    reason: Reason | None = None
    sensor_id: str | None = None
    first: bool = False  # the first time `reason` (one of REPORTED_ONCE) for this address
    counter_reset: bool = False  # believed as a device restart (counter went back, low)
    locked_out: bool = False  # this refusal makes LOCKOUT_REFUSALS in a row: say so, once
    retrusted: bool = False  # believed because the owner ran `sensors retrust`
    advert: Advert | None = None  # what was decoded (None for strangers and malformed data)


class _State:
    __slots__ = (
        "contents",
        "counter",
        "identities",
        "key_status",
        "last_motion",
        "low_seen",
        "refusals",
        "reported",
        "retired",
        "trust_next",
    )

    def __init__(self) -> None:
        self.counter: int | None = None
        self.retired: int | None = None
        self.low_seen = 0
        self.trust_next = False
        # The messages believed at `counter`; None after a hub restart: all of them.
        self.contents: set[tuple[tuple[str, Value], ...]] | None = set()
        self.identities: dict[tuple[tuple[str, Value], ...], float] = {}  # values: heard at
        self.last_motion: bool | None = None
        self.refusals = 0  # replays in a row
        self.key_status = KeyStatus.UNVERIFIED
        self.reported: set[Reason] = set()

    def saved(self) -> CounterState:
        return CounterState(self.counter, self.retired, self.low_seen, self.trust_next)

    def load(self, saved: CounterState) -> None:
        self.counter, self.retired = saved.counter, saved.retired
        self.low_seen, self.trust_next = saved.low_seen, saved.trust_next
        self.contents = None


def _int_or_none(value: int | None, allowed: range) -> int | None:
    return value if value is not None and value in allowed else None


def _step(state: _State, counter: int, content: tuple[tuple[str, Value], ...]) -> _Step:
    """Judge a decrypted advert's counter against the last one believed (no changes)."""
    last = state.counter
    if last is None or state.trust_next:
        return _Step.TRUSTED
    if counter == last:
        if state.contents is None or content in state.contents:
            return _Step.REPEAT
        return _Step.SAME_COUNTER if len(state.contents) < _MAX_CONTENTS else _Step.REPEAT
    ahead = (counter - last) % COUNTER_MODULUS
    if ahead < SERIAL_WINDOW:
        retired = state.retired
        if retired is not None and last < counter <= retired and ahead > MAX_CLIMB:
            # A leap back into the counters the sensor used before its restart: an old
            # advert replayed, not the climb of a live counter.
            return _Step.REPLAY
        return _Step.NEWER
    if counter < RESTART_LIMIT and not state.low_seen >> counter & 1:
        return _Step.RESTART
    return _Step.REPLAY


def _move(state: _State, step: _Step, counter: int, content: tuple[tuple[str, Value], ...]) -> None:
    """Believe `counter` (a step other than REPEAT / REPLAY)."""
    last = state.counter
    if step is _Step.TRUSTED:
        # After a retrust, as after a restart, what the sensor used before is guarded.
        state.retired = last if last is not None and counter < last else None
        state.low_seen, state.trust_next = 0, False
    elif step is _Step.RESTART:
        state.retired = max(state.retired or 0, last or 0)
    elif step is _Step.NEWER and last is not None and counter < last:
        state.retired, state.low_seen = None, 0  # wrapped: a new round of counters
    if state.retired is not None and counter > state.retired:
        state.retired = None  # climbed past everything used before the restart
    if counter < RESTART_LIMIT:
        state.low_seen |= 1 << counter
    if step is _Step.SAME_COUNTER and state.contents is not None:
        state.contents.add(content)
    else:
        state.contents = {content}
    state.counter = counter
    state.refusals = 0


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

    def address_of(self, sensor_id: str) -> str | None:
        """The configured address of `sensor_id`, upper case."""
        for address, sensor in self._sensors.items():
            if sensor.sensor_id == sensor_id:
                return address
        return None

    def bindkey(self, address: str) -> bytes | None:
        sensor = self._sensors.get(address.upper())
        return sensor.bindkey if sensor is not None else None

    def key_status(self, address: str) -> KeyStatus | None:
        """None for an address without a bindkey (or not configured)."""
        address = address.upper()
        if self.bindkey(address) is None:
            return None
        return self._states[address].key_status

    def counters(self) -> dict[str, CounterState]:
        """Per keyed address, what the hub keeps across its own restarts, so that an old
        advert is not believed after one (and a retrust is not forgotten)."""
        return {
            address: state.saved()
            for address, state in self._states.items()
            if state.counter is not None or state.trust_next
        }

    def restore(self, saved: Mapping[str, CounterState]) -> None:
        """Take back what `counters()` gave before a restart (unknown addresses ignored)."""
        for address, counter_state in saved.items():
            state = self._states.get(address.upper())
            if state is not None:
                state.load(counter_state)

    def last_counter(self, address: str) -> int | None:
        state = self._states.get(address.upper())
        return state.counter if state is not None else None

    def retrust(self, address: str) -> bool:
        """Believe the next advert from `address` that decrypts, whatever its counter (after
        the owner reset a sensor that is now locked out). False if not a keyed address."""
        address = address.upper()
        if self.bindkey(address) is None:
            return False
        state = self._states[address]
        state.trust_next = True
        state.refusals = 0
        state.reported.discard(Reason.REPLAY)
        return True

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
    ) -> MotionEvent | SensorState | None:
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
        content = tuple(advert.values.items())
        step: _Step | None = None
        retrusted = False
        if sensor.bindkey is not None:
            if advert.encryption is Encryption.NONE:
                return self._refuse(state, sensor, Reason.DOWNGRADE, advert)
            if advert.encryption is not Encryption.DECRYPTED or advert.counter is None:
                # NO_KEY here means the advert was decoded without the sensor's key (a
                # caller's mistake, or a replayed decode): nothing in it can be believed.
                state.key_status = KeyStatus.WRONG_KEY
                return self._refuse(state, sensor, Reason.WRONG_KEY, advert)
            state.key_status = KeyStatus.VERIFIED
            step = _step(state, advert.counter, content)
            if step is _Step.REPEAT:
                return Verdict(None, Reason.REPEAT, sensor.sensor_id, advert=advert)
            if step is _Step.REPLAY:
                state.refusals += 1
                verdict = self._refuse(state, sensor, Reason.REPLAY, advert)
                if state.refusals == LOCKOUT_REFUSALS:
                    verdict = replace(verdict, locked_out=True)
                return verdict
            retrusted = step is _Step.TRUSTED and state.trust_next
            _move(state, step, advert.counter, content)
        elif advert.encrypted:
            return self._refuse(state, sensor, Reason.NO_KEY, advert)
        if self._repeated(state, advert, now):
            # One event sent several times (a burst; some firmwares bump the counter for
            # each copy, keeping the packet id): the counter moved on, nothing else did.
            return Verdict(None, Reason.REPEAT, sensor.sensor_id, advert=advert)
        event, reason = _event(sensor, advert, now, rssi)
        return Verdict(
            event,
            reason,
            sensor.sensor_id,
            counter_reset=step is _Step.RESTART,
            retrusted=retrusted,
            advert=advert,
        )

    def _repeated(self, state: _State, advert: Advert, now: float) -> bool:
        """The same values (packet id included) heard within REPEAT_SECONDS are a repeat
        (one burst). Later they are new motion even when identical (sensors without a
        packet id), and so they are at once after the motion state changed in between."""
        content = tuple(advert.values.items())
        motion = advert.motion
        if motion is not None and motion != state.last_motion:
            state.identities.clear()
            state.last_motion = motion
        heard = state.identities.get(content)
        recent = sorted(
            ((at, seen) for seen, at in state.identities.items() if now - at < REPEAT_SECONDS),
            key=lambda pair: pair[0],
        )
        # Bounded: forged plaintext at a high rate must not grow it without end.
        state.identities = {seen: at for at, seen in recent[-_MAX_IDENTITIES + 1 :]}
        state.identities[content] = now
        return heard is not None and now - heard < REPEAT_SECONDS

    def _refuse(
        self, state: _State, sensor: BleSensor, reason: Reason, advert: Advert | None
    ) -> Verdict:
        first = reason in REPORTED_ONCE and reason not in state.reported
        if first:
            state.reported.add(reason)
        return Verdict(None, reason, sensor.sensor_id, first, advert=advert)


def _event(
    sensor: BleSensor, advert: Advert, now: float, rssi: int | None
) -> tuple[MotionEvent | SensorState | None, Reason | None]:
    """The event a believed advert makes: motion (a pulse), a state (occupancy, a clear, a
    door), or none (NO_MOTION)."""
    motion = advert.values.get("motion")
    if motion is True:
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
        return event, None
    if motion is False:  # a motion sensor that sends clears holds its state between them
        return _state(sensor, StateKind.OCCUPANCY, on=False, now=now, advert=advert), None
    for key, kind in _STATE_KEYS.items():
        value = advert.values.get(key)
        if isinstance(value, bool):
            return _state(sensor, kind, on=value, now=now, advert=advert), None
    return None, Reason.NO_MOTION


def _state(
    sensor: BleSensor, kind: StateKind, *, on: bool, now: float, advert: Advert
) -> SensorState:
    return SensorState(sensor.sensor_id, kind, on, now, source=SOURCE, battery_level=advert.battery)
