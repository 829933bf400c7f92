"""A BTHome v2 encoder for tests: plaintext and AES-CCM encrypted service data.

Written from the spec (bthome.io/format, bthome.io/encryption), independently of
`hub.ingest.ble_decode`, so a round trip checks the decoder rather than mirroring it.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.ciphers.aead import AESCCM

UUID_LE = bytes.fromhex("d2fc")
DEVICE_INFO_PLAIN = 0x40  # version 2
DEVICE_INFO_ENCRYPTED = 0x41  # version 2 + encryption flag
TRIGGER_BASED = 0x04


def objects(
    *,
    packet_id: int | None = None,
    battery: int | None = None,
    temperature: float | None = None,
    door: bool | None = None,
    motion: bool | None = None,
    occupancy: bool | None = None,
) -> bytes:
    """Objects in ascending id order, as the spec asks."""
    out = bytearray()
    if packet_id is not None:
        out += bytes([0x00, packet_id & 0xFF])
    if battery is not None:
        out += bytes([0x01, battery])
    if temperature is not None:
        out += bytes([0x02]) + round(temperature * 100).to_bytes(2, "little", signed=True)
    if door is not None:
        out += bytes([0x1A, int(door)])  # True = open
    if motion is not None:
        out += bytes([0x21, int(motion)])
    if occupancy is not None:
        out += bytes([0x23, int(occupancy)])
    return bytes(out)


def plain(payload: bytes, *, trigger_based: bool = False) -> bytes:
    info = DEVICE_INFO_PLAIN | (TRIGGER_BASED if trigger_based else 0)
    return bytes([info]) + payload


def encrypted(
    payload: bytes, *, address: str, bindkey: bytes, counter: int, trigger_based: bool = False
) -> bytes:
    info = bytes([DEVICE_INFO_ENCRYPTED | (TRIGGER_BASED if trigger_based else 0)])
    counter_bytes = counter.to_bytes(4, "little")
    nonce = bytes.fromhex(address.replace(":", "")) + UUID_LE + info + counter_bytes
    sealed = AESCCM(bindkey, tag_length=4).encrypt(nonce, payload, None)
    ciphertext, mic = sealed[:-4], sealed[-4:]
    return info + ciphertext + counter_bytes + mic
