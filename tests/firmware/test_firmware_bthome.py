"""The firmware's BTHome v2 encoder and its AES-CCM, built on the AES-ECB primitive only."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESCCM
from hypothesis import given
from hypothesis import strategies as st

bthome = importlib.import_module("bthome")
cryptolib = importlib.import_module("cryptolib")

KEY = bytes.fromhex("231d39c1d7cc1ab1aee224cd096db932")
ADDRESS = "54:48:E6:8F:80:A5"


@pytest.fixture
def vectors(bthome_vectors: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {vector["name"]: vector for vector in bthome_vectors}


def test_the_specifications_encryption_example_byte_for_byte(
    vectors: dict[str, dict[str, Any]],
) -> None:
    vector = vectors["encryption example from the BTHome specification"]
    key = bytes.fromhex(vector["bindkey"])
    mac = bthome.parse_mac(vector["address"])
    assert bthome.nonce(mac, 0x41, 0x00112233).hex() == "5448e68f80a5d2fc4133221100"
    plaintext = bytes.fromhex("02ca0903bf13")  # temperature 25.06, humidity 50.55
    made = bthome.service_data(plaintext, 0x40, key, mac, 0x00112233)
    assert made.hex() == vector["service_data"]
    info, opened, counter = bthome.open_service_data(made, key, mac)
    assert (info, opened, counter) == (0x41, plaintext, 0x00112233)


def test_the_shelly_motion_vector_byte_for_byte(vectors: dict[str, dict[str, Any]]) -> None:
    vector = vectors["Shelly BLU Motion, encrypted, motion detected"]
    mac = bthome.parse_mac(vector["address"])
    made = bthome.service_data(bthome.objects(None, motion=True), 0x40, KEY, mac, 857870592)
    assert made.hex() == vector["service_data"]


def test_counter_wrap_vectors_open(vectors: dict[str, dict[str, Any]]) -> None:
    vector = vectors["encrypted, counter 0xFFFFFFFF then counter 0 (a reset) must both be accepted"]
    mac = bthome.parse_mac(vector["address"])
    counters = [bthome.open_service_data(bytes.fromhex(s), KEY, mac)[2] for s in vector["sequence"]]
    assert counters == [0xFFFFFFFF, 0]


def test_the_plain_vector_objects(vectors: dict[str, dict[str, Any]]) -> None:
    vector = vectors["plain: packet id, battery, temperature, humidity (no motion)"]
    data = bytes.fromhex(vector["service_data"])
    assert data[:5] == bthome.service_data(bthome.objects(9, battery=93), 0x40)


def test_plain_frames() -> None:
    payload = bthome.objects(0x107, motion=True, battery=150)  # packet id wraps, battery clamps
    assert payload.hex() == "000701642101"
    assert bthome.service_data(payload).hex() == "44000701642101"  # v2 + trigger based
    assert bthome.objects(3, motion=False).hex() == "00032100"


def test_a_wrong_key_or_a_changed_byte_fails_the_mic() -> None:
    mac = bthome.parse_mac(ADDRESS)
    sealed = bthome.service_data(bthome.objects(1, motion=True), 0x44, KEY, mac, 5)
    with pytest.raises(bthome.BTHomeError, match="MIC"):
        bthome.open_service_data(sealed, bytes(16), mac)
    tampered = bytearray(sealed)
    tampered[1] ^= 1
    with pytest.raises(bthome.BTHomeError, match="MIC"):
        bthome.open_service_data(bytes(tampered), KEY, mac)


def test_the_advertisement_is_legacy_sized_with_the_service_data() -> None:
    mac = bthome.parse_mac(ADDRESS)
    data = bthome.service_data(bthome.objects(200, motion=True, battery=99), 0x44, KEY, mac, 1)
    adv = bthome.advertisement(data, "SPS-bathroom_main-long-name")
    assert len(adv) <= 31
    assert adv[:3] == b"\x02\x01\x06"
    assert adv[3:8] == bytes((len(data) + 3, 0x16, 0xD2, 0xFC, data[0]))
    assert adv[5 + 2 : 5 + 2 + len(data)] == data
    assert adv[5 + 2 + len(data) + 1] == 0x09  # the name, cut to what fits


def test_bad_keys_and_macs_are_refused() -> None:
    with pytest.raises(bthome.BTHomeError):
        bthome.parse_bindkey("00")
    with pytest.raises(bthome.BTHomeError):
        bthome.parse_mac("54:48:E6")
    with pytest.raises(bthome.BTHomeError):
        bthome.open_service_data(b"\x20\x00")  # version 1


@given(
    key=st.binary(min_size=16, max_size=16),
    mac=st.binary(min_size=6, max_size=6),
    counter=st.integers(0, 0xFFFFFFFF),
    plaintext=st.binary(max_size=40),
)
def test_our_ccm_equals_the_cryptography_librarys(
    key: bytes, mac: bytes, counter: int, plaintext: bytes
) -> None:
    nonce = bthome.nonce(mac, 0x45, counter)
    ours = bthome.ccm_encrypt(key, nonce, plaintext)
    assert ours == AESCCM(key, tag_length=4).encrypt(nonce, plaintext, None)
    assert bthome.ccm_decrypt(key, nonce, ours) == plaintext


def test_the_host_aes_shim_matches_fips_197(monkeypatch: pytest.MonkeyPatch) -> None:
    block = bytes.fromhex("00112233445566778899aabbccddeeff")
    expected = {
        16: "69c4e0d86a7b0430d8cdb78070b4c55a",
        24: "dda97ca4864cdfe06eaf70a0ec0d7191",
        32: "8ea2b7ca516745bfeafc49904b496089",
    }
    for size, ciphertext in expected.items():
        assert cryptolib.aes(bytes(range(size)), 1).encrypt(block).hex() == ciphertext
    # and the pure-Python fallback (used when `cryptography` is missing) agrees
    monkeypatch.setitem(sys.modules, "cryptography.hazmat.primitives.ciphers", None)
    for size, ciphertext in expected.items():
        assert cryptolib.aes(bytes(range(size)), 1).encrypt(block * 2).hex() == ciphertext * 2


def test_encrypted_and_plain_frames_decode_with_the_hubs_ble_decoder() -> None:
    ble_decode = pytest.importorskip(
        "hub.ingest.ble_decode", reason="the hub's BLE decoder is not in this tree yet"
    )
    mac = bthome.parse_mac(ADDRESS)
    for counter in (0, 1, 255, 256, 0x12345678):
        payload = bthome.objects(counter & 0xFF, motion=counter % 2 == 0, battery=42)
        for key in (None, KEY):
            data = bthome.service_data(payload, 0x44, key, mac if key else None, counter)
            advert = ble_decode.decode_service_data(ADDRESS, data, key)
            assert advert.readable
            assert advert.packet_id == counter & 0xFF
            assert advert.battery == 42
            assert advert.motion is (counter % 2 == 0)
            assert advert.counter == (counter if key else None)
