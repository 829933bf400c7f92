"""BTHome v2 decoding and the BLE guard (replay, downgrade, wrong key, counter reset)."""

from __future__ import annotations

import importlib
import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESCCM
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.config import parse_config
from hub.errors import ParseError
from hub.ingest.ble_decode import (
    OBJECTS,
    RESTART_LIMIT,
    Advert,
    BleGuard,
    BleSensor,
    Encryption,
    KeyStatus,
    Reason,
    decode_objects,
    decode_service_data,
    mac_bytes,
    parse_bindkey,
)
from hub.model import MotionEvent, SensorState, StateKind
from tests import bthome_encode as enc
from tests.conftest import FIXTURES

ADDRESS = "54:48:E6:8F:80:A5"
KEY = bytes.fromhex("231d39c1d7cc1ab1aee224cd096db932")
OTHER_KEY = bytes.fromhex("00112233445566778899aabbccddeeff")
PLAIN_ADDRESS = "A4:C1:38:8D:18:B2"
NOW = 1_704_412_800.0


def keyed_guard() -> BleGuard:
    return BleGuard({ADDRESS: BleSensor("bathroom", KEY), PLAIN_ADDRESS: BleSensor("hall")})


def sealed(payload: bytes, counter: int, key: bytes = KEY) -> bytes:
    return enc.encrypted(payload, address=ADDRESS, bindkey=key, counter=counter)


# --- the test vectors (tests/fixtures) ------------------------------------------------------


def test_every_vector_with_decoded_values_decodes_exactly(
    bthome_vectors: list[dict[str, Any]],
) -> None:
    checked = 0
    for vector in bthome_vectors:
        if "decoded" not in vector:
            continue
        key = bytes.fromhex(vector["bindkey"]) if "bindkey" in vector else None
        advert = decode_service_data(vector["address"], bytes.fromhex(vector["service_data"]), key)
        assert advert.readable, vector["name"]
        assert dict(advert.values) == vector["decoded"], vector["name"]
        assert advert.encrypted == (key is not None), vector["name"]
        checked += 1
    assert checked == 3


def test_shelly_motion_vector(bthome_vectors: list[dict[str, Any]]) -> None:
    vector = next(v for v in bthome_vectors if v["name"].startswith("Shelly"))
    data = bytes.fromhex(vector["service_data"])
    advert = decode_service_data(vector["address"], data, KEY)
    assert advert == Advert(Encryption.DECRYPTED, counter=857870592, values={"motion": True})
    assert advert.motion is True
    # Without the key: no values, the key unverified.
    assert decode_service_data(vector["address"], data, None) == Advert(
        Encryption.NO_KEY, counter=857870592
    )
    assert decode_service_data(vector["address"], data, OTHER_KEY) == Advert(
        Encryption.WRONG_KEY, counter=857870592
    )
    # Through the guard: a keyed sensor starts "unverified"; one without a key never
    # believes the advert and says why.
    guard = BleGuard({vector["address"]: BleSensor("motion", KEY)})
    assert guard.key_status(vector["address"]) is KeyStatus.UNVERIFIED
    unkeyed = BleGuard({vector["address"]: BleSensor("motion")})
    verdict = unkeyed.feed(vector["address"], data, NOW)
    assert (verdict.event, verdict.reason) == (None, Reason.NO_KEY)
    assert isinstance(guard.feed(vector["address"], data, NOW).event, MotionEvent)


def test_plain_vector_whole_advert(bthome_vectors: list[dict[str, Any]]) -> None:
    vector = next(v for v in bthome_vectors if v["name"].startswith("plain"))
    advert = decode_service_data(vector["address"], bytes.fromhex(vector["service_data"]), None)
    assert advert == Advert(
        Encryption.NONE,
        values={"packet_id": 9, "battery": 93, "temperature": 23.97, "humidity": 63.27},
    )
    assert (advert.packet_id, advert.battery, advert.motion) == (9, 93, None)
    assert not advert.encrypted


def test_spec_encryption_example_byte_for_byte() -> None:
    # bthome.io/encryption: nonce 5448e68f80a5 d2fc 41 33221100, plaintext 02ca09 03bf13.
    data = bytes.fromhex("41e445f3c9962b332211006c7c4519")
    assert (
        enc.encrypted(
            bytes.fromhex("02ca0903bf13"), address=ADDRESS, bindkey=KEY, counter=0x00112233
        )
        == data
    )
    advert = decode_service_data(ADDRESS, data, KEY)
    assert advert == Advert(
        Encryption.DECRYPTED,
        counter=0x00112233,
        values={"temperature": 25.06, "humidity": 50.55},
    )
    # The address is part of the nonce: lower case works, another MAC does not decrypt.
    assert decode_service_data(ADDRESS.lower(), data, KEY).readable
    assert decode_service_data("54:48:E6:8F:80:A6", data, KEY).encryption is Encryption.WRONG_KEY


def test_counter_wrap_sequence_is_accepted(bthome_vectors: list[dict[str, Any]]) -> None:
    vector = next(v for v in bthome_vectors if "sequence" in v)
    guard = BleGuard({vector["address"]: BleSensor("s", bytes.fromhex(vector["bindkey"]))})
    first, second = (bytes.fromhex(h) for h in vector["sequence"])
    v1 = guard.feed(vector["address"], first, NOW)
    assert v1.reason is Reason.NO_MOTION  # believed; it just carries no motion
    assert guard.last_counter(vector["address"]) == 0xFFFFFFFF
    v2 = guard.feed(vector["address"], second, NOW + 60)
    assert v2.reason is Reason.NO_MOTION
    assert not v2.counter_reset  # a wrap is newer (modulo 2**32), not a restart
    assert guard.last_counter(vector["address"]) == 0
    # ... and the advert from before the wrap, replayed afterwards, is behind: refused.
    assert guard.feed(vector["address"], first, NOW + 120).reason is Reason.REPLAY


# --- decoding details -----------------------------------------------------------------------


def test_encoder_round_trip_motion_and_occupancy() -> None:
    payload = enc.objects(packet_id=7, battery=88, temperature=-3.5, motion=False, occupancy=True)
    advert = decode_service_data(ADDRESS, sealed(payload, 5), KEY)
    assert advert == Advert(
        Encryption.DECRYPTED,
        counter=5,
        values={
            "packet_id": 7,
            "battery": 88,
            "temperature": -3.5,
            "motion": False,
            "occupancy": True,
        },
    )
    assert advert.motion is True  # occupancy counts


def test_trigger_based_flag_and_repeated_names() -> None:
    payload = bytes.fromhex("02ca09") + bytes.fromhex("45e600") + bytes.fromhex("2100")
    advert = decode_service_data(ADDRESS, enc.plain(payload, trigger_based=True), None)
    assert advert.trigger_based
    assert advert.values == {"temperature": 25.06, "temperature_2": 23.0, "motion": False}
    assert advert.motion is False


def test_special_kinds() -> None:
    payload = (
        bytes.fromhex("3a04")  # button long press
        + bytes.fromhex("3c0203")  # dimmer rotate right 3 steps
        + bytes.fromhex("50ae0a9665")  # timestamp
        + bytes.fromhex("5303")
        + b"hi!"  # text
        + bytes.fromhex("5402beef")  # raw
        + bytes.fromhex("5864")  # temperature 100 * 0.35
        + bytes.fromhex("f104030201")  # firmware 1.2.3.4
    )
    advert = decode_service_data(ADDRESS, enc.plain(payload), None)
    assert advert.values == {
        "button": "long_press",
        "dimmer": "rotate_right:3",
        "timestamp": 0x65960AAE,
        "text": "hi!",
        "raw": "beef",
        "temperature": 35.0,
        "firmware_version": "1.2.3.4",
    }
    assert advert.firmware_version == "1.2.3.4"


def test_unknown_object_stops_reading_and_keeps_what_came_before() -> None:
    advert = decode_service_data(ADDRESS, enc.plain(bytes.fromhex("0003 2101 ee0102")), None)
    assert advert.values == {"packet_id": 3, "motion": True}
    assert advert.unknown_object == 0xEE
    assert advert.to_json()["unknown_object"] == "0xee"


def test_a_truncated_last_object_keeps_what_came_before() -> None:
    # motion, then a temperature (2 bytes) with 1 byte left: bthome-ble keeps the motion.
    advert = decode_service_data(ADDRESS, enc.plain(bytes.fromhex("0007 2101 0210")), None)
    assert advert.values == {"packet_id": 7, "motion": True}
    assert advert.truncated_object == 0x02
    assert advert.to_json()["truncated_object"] == "0x02"
    for cut in ("53", "5305ab", "3b"):  # text without / short of its length; command
        assert decode_service_data(ADDRESS, bytes.fromhex("402101" + cut), None).values == {
            "motion": True
        }


def test_command_object_0x3b() -> None:
    # The spec's example: 3b 01 03 05 = step up, one argument byte, 5 steps.
    advert = decode_service_data(ADDRESS, bytes.fromhex("40 3b010305 2101"), None)
    assert advert.values == {"command": "step_up:05", "motion": True}
    bare = decode_service_data(ADDRESS, bytes.fromhex("40 3b0002 3b00ff"), None)
    assert bare.values == {"command": "toggle", "command_2": "0xff"}
    # The high 3 bits of the length byte are reserved: they do not change the length.
    assert decode_service_data(ADDRESS, bytes.fromhex("40 3be001 2101"), None).motion is True


def test_device_info_mac_bit_skips_the_mac_and_decrypts_with_it() -> None:
    mac = bytes.fromhex("a5808fe64854")  # 54:48:E6:8F:80:A5, sent reversed
    # Without bit 1 these bytes would be read as objects: a5 is unknown, and in the
    # constructed case below 21 01 (motion) would come out of the MAC itself.
    plain = decode_service_data(PLAIN_ADDRESS, bytes([0x42]) + mac + bytes.fromhex("2300"), None)
    assert plain.values == {"occupancy": False}
    assert plain.mac == ADDRESS
    tricky = bytes([0x42]) + bytes.fromhex("000021010000") + bytes.fromhex("2100")
    assert decode_service_data(PLAIN_ADDRESS, tricky, None).values == {"motion": False}
    # Encrypted with the MAC it carries (the device-info byte, bit 1 set, is in the nonce).
    info = bytes([0x43])
    counter = (31).to_bytes(4, "little")
    nonce = bytes.fromhex(ADDRESS.replace(":", "")) + b"\xd2\xfc" + info + counter
    box = AESCCM(KEY, tag_length=4).encrypt(nonce, enc.objects(packet_id=4, motion=True), None)
    with_mac = info + mac + box[:-4] + counter + box[-4:]
    advert = decode_service_data(PLAIN_ADDRESS, with_mac, KEY)  # advertised from elsewhere
    assert advert.encryption is Encryption.DECRYPTED
    assert advert.values == {"packet_id": 4, "motion": True}
    assert advert.mac == ADDRESS


def test_the_object_table_is_the_spec_object_list() -> None:
    """tests/fixtures/bthome-objects.json is the spec's object list, kept by hand: every id
    there is in OBJECTS with its length, format and factor, and OBJECTS has nothing else."""
    spec = json.loads((FIXTURES / "bthome-objects.json").read_text("utf-8"))["objects"]
    formats = {
        "uint": {"UINT"},
        "sint": {"SINT"},
        "binary": {"BOOL"},
        "event": {"BUTTON", "DIMMER", "COMMAND"},
        "timestamp": {"TIMESTAMP"},
        "string": {"TEXT"},
        "raw": {"RAW"},
        "device": {"UINT", "FIRMWARE"},
    }
    assert sorted(OBJECTS) == [int(entry["id"], 16) for entry in spec]
    for entry in spec:
        ours = OBJECTS[int(entry["id"], 16)]
        assert ours.kind.name in formats[entry["format"]], entry
        if entry["length"] == "variable":
            assert ours.kind.name in {"TEXT", "RAW", "COMMAND"}, entry
        else:
            assert ours.length == entry["length"], entry
        factor = Fraction(entry.get("factor", "1"))
        assert Fraction(ours.multiply, ours.divide) == factor, entry


@pytest.mark.parametrize(
    ("hex_data", "message"),
    [
        ("", "empty"),
        ("20", "version 1"),
        ("60", "version 3"),
        ("41aabbccddeeff00", "too short"),
        ("42aabbcc", "a MAC follows"),
    ],
)
def test_malformed_is_parse_error(hex_data: str, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        decode_service_data(ADDRESS, bytes.fromhex(hex_data), KEY)


def test_bad_address_only_matters_for_decryption() -> None:
    data = sealed(enc.objects(motion=True), 1)
    with pytest.raises(ParseError, match="MAC"):
        decode_service_data("not-a-mac", data, KEY)
    assert decode_service_data("not-a-mac", data, None).encryption is Encryption.NO_KEY
    assert decode_service_data("not-a-mac", enc.plain(b"\x21\x01"), KEY).motion is True
    with pytest.raises(ParseError):
        mac_bytes("54:48:E6:8F:80:ZZ")


def test_parse_bindkey_never_echoes_the_key() -> None:
    assert parse_bindkey(" 231D39C1D7CC1AB1AEE224CD096DB932 ") == KEY
    for bad in ("231d39c1d7cc1ab1aee224cd096db9", "zz1d39c1d7cc1ab1aee224cd096db932"):
        with pytest.raises(ParseError) as info:
            parse_bindkey(bad)
        assert bad not in str(info.value)


def test_a_wrong_length_bindkey_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        decode_service_data(ADDRESS, b"\x40", b"short")


def test_object_table_is_sane() -> None:
    assert OBJECTS[0x21].name == "motion"
    assert OBJECTS[0x23].name == "occupancy"
    assert OBJECTS[0x00].name == "packet_id"
    assert OBJECTS[0x01].name == "battery"
    assert all(spec.length >= 1 and spec.divide >= 1 for spec in OBJECTS.values())


def test_to_json_is_json() -> None:
    advert = decode_service_data(ADDRESS, sealed(enc.objects(packet_id=1, motion=True), 9), KEY)
    assert json.loads(json.dumps(advert.to_json())) == {
        "encryption": "decrypted",
        "encrypted": True,
        "trigger_based": False,
        "counter": 9,
        "values": {"packet_id": 1, "motion": True},
    }


@settings(max_examples=500)
@given(data=st.binary(max_size=64), with_key=st.booleans())
def test_random_bytes_only_ever_parse_error_or_advert(data: bytes, with_key: bool) -> None:
    try:
        advert = decode_service_data(ADDRESS, data, KEY if with_key else None)
    except ParseError:
        return
    assert isinstance(advert, Advert)
    json.dumps(advert.to_json())


@settings(max_examples=300)
@given(payload=st.binary(max_size=40))
def test_random_plaintext_objects_never_crash(payload: bytes) -> None:
    read = decode_objects(payload)  # never raises: it stops where it cannot go on
    assert read.unknown_object is None or read.truncated_object is None
    assert all(isinstance(value, bool | int | float | str) for value in read.values.values())


@settings(max_examples=300)
@given(
    motion=st.booleans(),
    packet_id=st.integers(0, 255),
    battery=st.integers(0, 100),
    temperature=st.integers(-4000, 4000).map(lambda t: t / 100),
    keep=st.integers(0, 9),
)
def test_a_cut_advert_keeps_exactly_the_objects_before_the_cut(
    motion: bool, packet_id: int, battery: int, temperature: float, keep: int
) -> None:
    whole = enc.objects(packet_id=packet_id, battery=battery, temperature=temperature)
    whole += enc.objects(motion=motion)  # objects of 2, 2, 3 and 2 bytes: 9 in all
    full = list(decode_objects(whole).values.items())
    part = decode_objects(whole[:keep])
    boundaries = {0: 0, 2: 1, 4: 2, 7: 3, 9: 4}  # bytes kept -> whole objects in them
    whole_objects = max(n for at, n in boundaries.items() if at <= keep)
    assert list(part.values.items()) == full[:whole_objects]
    assert (part.truncated_object is None) == (keep in boundaries)


# --- the guard ------------------------------------------------------------------------------


def test_strangers_are_ignored() -> None:
    guard = keyed_guard()
    verdict = guard.feed("11:22:33:44:55:66", enc.plain(enc.objects(motion=True)), NOW)
    assert verdict.event is None
    assert verdict.reason is Reason.STRANGER
    assert verdict.sensor_id is None


def test_motion_event_from_an_encrypted_sensor() -> None:
    guard = keyed_guard()
    data = sealed(enc.objects(packet_id=4, battery=77, motion=True), 10)
    verdict = guard.feed(ADDRESS.lower(), data, NOW, rssi=-61)
    assert verdict.event == MotionEvent(
        sensor_id="bathroom",
        occurred_at=NOW,
        received_at=NOW,
        source="ble",
        seq=4,
        battery_level=77,
        signal_strength=-61,
    )
    assert guard.key_status(ADDRESS) is KeyStatus.VERIFIED


def test_seq_falls_back_to_the_counter_and_bad_rssi_is_dropped() -> None:
    guard = keyed_guard()
    event = guard.accept(
        ADDRESS, decode_service_data(ADDRESS, sealed(b"\x21\x01", 99), KEY), NOW, rssi=127
    )
    assert isinstance(event, MotionEvent)
    assert (event.seq, event.signal_strength, event.battery_level) == (99, None, None)


def test_repeats_of_one_advert_make_one_event() -> None:
    guard = keyed_guard()
    data = sealed(enc.objects(packet_id=1, motion=True), 10)
    assert isinstance(guard.feed(ADDRESS, data, NOW).event, MotionEvent)
    for _ in range(5):
        verdict = guard.feed(ADDRESS, data, NOW + 0.1)
        assert (verdict.event, verdict.reason, verdict.first) == (None, Reason.REPEAT, False)
    # Same packet id, higher counter (a device that re-sends one event): still a repeat.
    again = sealed(enc.objects(packet_id=1, motion=True), 11)
    assert guard.feed(ADDRESS, again, NOW + 0.2).reason is Reason.REPEAT
    # A new packet id is a new event.
    fresh = sealed(enc.objects(packet_id=2, motion=True), 12)
    assert isinstance(guard.feed(ADDRESS, fresh, NOW + 5).event, MotionEvent)


def test_plain_sensor_dedups_by_packet_id_then_by_values() -> None:
    guard = keyed_guard()
    with_id = enc.plain(enc.objects(packet_id=9, motion=True))
    assert isinstance(guard.feed(PLAIN_ADDRESS, with_id, NOW).event, MotionEvent)
    assert guard.feed(PLAIN_ADDRESS, with_id, NOW).reason is Reason.REPEAT
    bare_on = enc.plain(enc.objects(motion=True))
    bare_off = enc.plain(enc.objects(motion=False))
    assert isinstance(guard.feed(PLAIN_ADDRESS, bare_on, NOW).event, MotionEvent)
    assert guard.feed(PLAIN_ADDRESS, bare_on, NOW).reason is Reason.REPEAT
    assert isinstance(guard.feed(PLAIN_ADDRESS, bare_off, NOW).event, SensorState)
    assert guard.key_status(PLAIN_ADDRESS) is None


def test_replay_is_refused_and_reported_once() -> None:
    guard = keyed_guard()
    old = sealed(enc.objects(packet_id=1, motion=True), RESTART_LIMIT + 10)
    new = sealed(enc.objects(packet_id=2, motion=True), RESTART_LIMIT + 20)
    assert guard.accept(ADDRESS, decode_service_data(ADDRESS, old, KEY), NOW) is not None
    assert guard.accept(ADDRESS, decode_service_data(ADDRESS, new, KEY), NOW) is not None
    first = guard.feed(ADDRESS, old, NOW + 1)
    assert (first.event, first.reason, first.first) == (None, Reason.REPLAY, True)
    second = guard.feed(ADDRESS, old, NOW + 2)
    assert (second.event, second.reason, second.first) == (None, Reason.REPLAY, False)
    assert guard.last_counter(ADDRESS) == RESTART_LIMIT + 20


def test_counter_reset_after_reboot_is_accepted() -> None:
    guard = keyed_guard()
    assert guard.feed(ADDRESS, sealed(enc.objects(packet_id=5, motion=True), 900_000), NOW).event
    # The device lost power: counter and packet id start again (packet id 5 again!).
    rebooted = guard.feed(ADDRESS, sealed(enc.objects(packet_id=5, motion=True), 0), NOW + 60)
    assert isinstance(rebooted.event, MotionEvent)
    assert rebooted.counter_reset
    assert guard.feed(ADDRESS, sealed(enc.objects(packet_id=6, motion=True), 1), NOW + 61).event


def test_downgrade_is_refused_and_reported_once() -> None:
    guard = keyed_guard()
    plain = enc.plain(enc.objects(packet_id=1, motion=True))
    first = guard.feed(ADDRESS, plain, NOW)
    assert (first.event, first.reason, first.first) == (None, Reason.DOWNGRADE, True)
    assert guard.feed(ADDRESS, plain, NOW).first is False


def test_wrong_key_is_reported_once_per_address() -> None:
    guard = keyed_guard()
    verdicts = [
        guard.feed(ADDRESS, sealed(enc.objects(packet_id=n, motion=True), n, OTHER_KEY), NOW)
        for n in range(1, 6)
    ]
    assert all(v.event is None and v.reason is Reason.WRONG_KEY for v in verdicts)
    assert [v.first for v in verdicts] == [True, False, False, False, False]
    assert guard.key_status(ADDRESS) is KeyStatus.WRONG_KEY
    # The right key again (e.g. the sensor was re-keyed): believed, and verified.
    assert guard.feed(ADDRESS, sealed(enc.objects(packet_id=9, motion=True), 9), NOW).event
    assert guard.key_status(ADDRESS) is KeyStatus.VERIFIED


def test_an_advert_decoded_without_the_key_is_not_believed() -> None:
    guard = keyed_guard()
    advert = decode_service_data(ADDRESS, sealed(b"\x21\x01", 3), None)
    assert guard.judge(ADDRESS, advert, NOW).reason is Reason.WRONG_KEY


def test_encrypted_adverts_for_a_sensor_without_a_key() -> None:
    guard = keyed_guard()
    data = enc.encrypted(b"\x21\x01", address=PLAIN_ADDRESS, bindkey=KEY, counter=1)
    verdict = guard.feed(PLAIN_ADDRESS, data, NOW)
    assert (verdict.event, verdict.reason, verdict.first) == (None, Reason.NO_KEY, True)


def test_motion_cleared_and_occupancy_are_held_states() -> None:
    guard = keyed_guard()
    verdict = guard.feed(ADDRESS, sealed(enc.objects(packet_id=1, motion=False), 1), NOW)
    assert verdict.event == SensorState(
        "bathroom", StateKind.OCCUPANCY, on=False, received_at=NOW, source="ble"
    )
    occupancy_on = sealed(enc.objects(packet_id=2, occupancy=True), 2)
    assert guard.feed(ADDRESS, occupancy_on, NOW).event == SensorState(
        "bathroom", StateKind.OCCUPANCY, on=True, received_at=NOW, source="ble"
    )
    occupancy_off = sealed(enc.objects(packet_id=3, occupancy=False), 3)
    off = guard.feed(ADDRESS, occupancy_off, NOW).event
    assert isinstance(off, SensorState)
    assert not off.on


@pytest.mark.parametrize(
    ("object_id", "name"), [(0x1A, "door"), (0x2D, "window"), (0x11, "opening")]
)
def test_door_window_and_opening_are_contacts(object_id: int, name: str) -> None:
    guard = keyed_guard()
    opened = sealed(bytes((0x00, 1, object_id, 1)), 1)
    closed = sealed(bytes((0x00, 2, object_id, 0)), 2)
    assert guard.feed(ADDRESS, opened, NOW).event == SensorState(
        "bathroom", StateKind.CONTACT, on=True, received_at=NOW, source="ble"
    ), name
    assert guard.feed(ADDRESS, closed, NOW).event == SensorState(
        "bathroom", StateKind.CONTACT, on=False, received_at=NOW, source="ble"
    ), name


def test_no_motion_advert_and_malformed() -> None:
    guard = keyed_guard()
    battery_only = sealed(enc.objects(packet_id=1, battery=50), 1)
    assert guard.feed(ADDRESS, battery_only, NOW).reason is Reason.NO_MOTION
    malformed = guard.feed(ADDRESS, b"\x20\x21\x01", NOW)  # BTHome version 1
    assert (malformed.reason, malformed.sensor_id) == (Reason.MALFORMED, "bathroom")


def test_from_config_reads_addresses_and_keys() -> None:
    config = parse_config(
        """
        [[sensors]]
        id = "bathroom"
        user_id = "u"
        ble_address = "54:48:e6:8f:80:a5"
        ble_bindkey = "231D39C1D7CC1AB1AEE224CD096DB932"

        [[sensors]]
        id = "kitchen"
        user_id = "u"
        """
    )
    guard = BleGuard.from_config(config)
    assert len(guard) == 1
    assert guard.sensor(ADDRESS) == BleSensor("bathroom", KEY)
    assert guard.bindkey(ADDRESS.lower()) == KEY
    assert "231d" not in repr(guard.sensor(ADDRESS))


@settings(max_examples=300)
@given(
    data=st.binary(max_size=48),
    address=st.sampled_from([ADDRESS, PLAIN_ADDRESS, "11:22:33:44:55:66"]),
)
def test_random_service_data_never_starts_anything_it_should_not(data: bytes, address: str) -> None:
    guard = keyed_guard()
    verdict = guard.feed(address, data, NOW)
    if address == "11:22:33:44:55:66":
        assert verdict.event is None  # a stranger, whatever it sends
    if address == ADDRESS:
        # Random bytes never carry a valid MIC under our key: nothing is believed.
        assert verdict.event is None
        assert verdict.reason in {
            Reason.MALFORMED,
            Reason.DOWNGRADE,
            Reason.WRONG_KEY,
        }
    if verdict.event is not None:
        assert address == PLAIN_ADDRESS  # only the unkeyed sensor's plaintext is believed


# --- our firmware's encoder (firmware/lib/bthome.py) ------------------------------------------

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware"


@pytest.fixture
def firmware_bthome(monkeypatch: pytest.MonkeyPatch) -> Any:
    if not (FIRMWARE / "lib" / "bthome.py").is_file():
        pytest.skip("firmware/lib/bthome.py is not there")
    # The device imports by bare name from /lib; `cryptolib` is a MicroPython built-in
    # with a CPython stand-in in firmware/host (as tests/firmware/conftest.py does).
    monkeypatch.syspath_prepend(str(FIRMWARE / "lib"))
    monkeypatch.syspath_prepend(str(FIRMWARE / "host"))
    return importlib.import_module("bthome")


def test_firmware_golden_payloads_decode_exactly() -> None:
    golden = json.loads((FIRMWARE / "golden_payloads.json").read_text("utf-8"))
    assert golden["bthome"]
    for case in golden["bthome"]:
        key = bytes.fromhex(case["bindkey"]) if case["bindkey"] else None
        advert = decode_service_data(case["address"], bytes.fromhex(case["service_data"]), key)
        expected = case["expected"]
        assert advert.readable, case["name"]
        assert {
            "encrypted": advert.encrypted,
            "trigger_based": advert.trigger_based,
            "counter": advert.counter,
            "values": dict(advert.values),
        } == expected, case["name"]


@pytest.mark.parametrize("bindkey", [None, KEY])
def test_firmware_encoder_output_decodes_and_makes_events(
    firmware_bthome: Any, bindkey: bytes | None
) -> None:
    fw = firmware_bthome
    mac = fw.parse_mac(ADDRESS)
    sensors = {ADDRESS: BleSensor("bathroom", bindkey)}
    guard = BleGuard(sensors)
    events: list[MotionEvent | SensorState] = []
    for counter, motion in [(0x1233, None), (0x1234, True), (0x1235, False), (0x1236, True)]:
        payload = fw.objects(counter & 0xFF, motion=motion, battery=80)
        data = fw.service_data(payload, bindkey=bindkey, mac=mac, counter=counter)
        advert = decode_service_data(ADDRESS, data, bindkey)
        assert advert.trigger_based
        assert advert.encrypted == (bindkey is not None)
        assert advert.counter == (counter if bindkey else None)
        expected: dict[str, object] = {"packet_id": counter & 0xFF, "battery": 80}
        if motion is not None:
            expected["motion"] = motion
        assert advert.values == expected
        for _ in range(3):  # the firmware repeats each advert; one event each
            event = guard.accept(ADDRESS, decode_service_data(ADDRESS, data, bindkey), NOW)
            if event is not None:
                events.append(event)
    assert [type(e) for e in events] == [MotionEvent, SensorState, MotionEvent]
    assert [e.seq for e in events if isinstance(e, MotionEvent)] == [0x34, 0x36]


def test_our_encoder_and_the_firmware_agree_byte_for_byte(firmware_bthome: Any) -> None:
    fw = firmware_bthome
    for counter in (0, 1, 0x00112233, 0xFFFFFFFF):
        payload = fw.objects(counter & 0xFF, motion=True, battery=55)
        assert payload == enc.objects(packet_id=counter & 0xFF, battery=55, motion=True)
        theirs = fw.service_data(payload, bindkey=KEY, mac=fw.parse_mac(ADDRESS), counter=counter)
        ours = enc.encrypted(
            payload, address=ADDRESS, bindkey=KEY, counter=counter, trigger_based=True
        )
        assert theirs == ours
