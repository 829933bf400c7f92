# BTHome v2 encoder (https://bthome.io): service data for UUID 0xFCD2, plain or AES-CCM
# encrypted with a 16-byte bindkey. Runs unchanged on MicroPython and CPython: the only
# primitive it needs is AES-ECB from `cryptolib` (built into MicroPython; a host shim in
# firmware/host/ provides the same `aes(key, 1)` under CPython). CCM itself (CTR mode plus
# CBC-MAC, 4-byte MIC, no associated data) is implemented here.
import struct

UUID = b"\xd2\xfc"  # 0xFCD2, little-endian as it appears on air and in the nonce
UUID16 = 0xFCD2

# device information byte: bits 5-7 = version 2, bit 2 = trigger based, bit 0 = encrypted
VERSION_2 = 0x40
TRIGGER_BASED = 0x04  # sends irregularly (on events), so receivers do not expect a period
ENCRYPTED = 0x01

# object ids (they must appear in increasing order)
PACKET_ID = 0x00  # uint8
BATTERY = 0x01  # uint8, %
MOTION = 0x21  # uint8, 0 = clear, 1 = detected

MIC_LEN = 4
COUNTER_LEN = 4
MAC_LEN = 6
KEY_LEN = 16
NONCE_LEN = 13  # MAC + UUID + device info + counter
MAX_MESSAGE = 0xFFFF  # CCM with a 2-byte length field
BTHOME_VERSION = 2
_BLOCK = 16
_L = 2  # CCM length field: 15 - 13-byte nonce
_ECB = 1  # cryptolib.MODE_ECB

AD_FLAGS = 0x01
AD_SERVICE_DATA_16 = 0x16
AD_COMPLETE_NAME = 0x09
MAX_ADV = 31  # legacy advertising payload


class BTHomeError(ValueError):
    pass


def objects(packet_id, motion=None, battery=None):
    """Measurement objects in id order: packet id, battery, motion (any may be None)."""
    out = bytearray()
    if packet_id is not None:
        out += bytes((PACKET_ID, packet_id & 0xFF))
    if battery is not None:
        out += bytes((BATTERY, max(0, min(100, int(battery)))))
    if motion is not None:
        out += bytes((MOTION, 1 if motion else 0))
    return bytes(out)


def parse_mac(text):
    """'54:48:E6:8F:80:A5' -> 6 bytes, in the order written (as in the BTHome nonce)."""
    parts = text.replace("-", ":").split(":")
    if len(parts) != MAC_LEN:
        raise BTHomeError("MAC must be six hex bytes: " + text)
    try:
        return bytes(int(p, 16) for p in parts)
    except ValueError:
        raise BTHomeError("MAC must be six hex bytes: " + text) from None


def parse_bindkey(text):
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != KEY_LEN:
        raise BTHomeError("bindkey must be 32 hex digits")
    return key


def nonce(mac, device_info, counter):
    """MAC (6) + UUID d2fc (2) + device info (1) + counter (4, little-endian) = 13 bytes."""
    if len(mac) != MAC_LEN:
        raise BTHomeError("MAC must be 6 bytes")
    return bytes(mac) + UUID + bytes((device_info,)) + struct.pack("<I", counter & 0xFFFFFFFF)


def _xor(a, b):
    return bytes(x ^ y for x, y in zip(a, b))


def _ecb(key):
    from cryptolib import aes  # noqa: PLC0415 - MicroPython built-in; host shim in tests

    return aes(key, _ECB)


def _block(cipher, data):
    return bytes(cipher.encrypt(bytes(data)))


def _mac_and_stream(key, nonce13, message):
    """CCM (RFC 3610) with M = 4, L = 2, no associated data: (T, S0, keystream)."""
    if len(nonce13) != NONCE_LEN:
        raise BTHomeError("nonce must be 13 bytes")
    if len(message) > MAX_MESSAGE:
        raise BTHomeError("message too long")
    # One cipher object per purpose: on MicroPython an aes object is single-use direction-wise
    # and some ports keep state, so do not share it between the MAC and the counter stream.
    cipher = _ecb(key)
    b0 = bytes((((MIC_LEN - 2) // 2) << 3 | (_L - 1),)) + nonce13 + struct.pack(">H", len(message))
    x = _block(cipher, b0)
    for start in range(0, len(message), _BLOCK):
        chunk = message[start : start + _BLOCK]
        chunk = chunk + bytes(_BLOCK - len(chunk))
        x = _block(cipher, _xor(x, chunk))
    tag = x[:MIC_LEN]
    blocks = (len(message) + _BLOCK - 1) // _BLOCK
    counters = b"".join(
        bytes((_L - 1,)) + nonce13 + struct.pack(">H", i) for i in range(blocks + 1)
    )
    stream = _block(_ecb(key), counters)
    return tag, stream[:_BLOCK], stream[_BLOCK:]


def ccm_encrypt(key, nonce13, plaintext):
    """AES-CCM, 4-byte MIC: ciphertext + MIC."""
    tag, s0, stream = _mac_and_stream(key, nonce13, plaintext)
    return _xor(plaintext, stream) + _xor(tag, s0)


def ccm_decrypt(key, nonce13, ciphertext_and_mic):
    """The inverse of ccm_encrypt; raises BTHomeError when the MIC does not match."""
    if len(ciphertext_and_mic) < MIC_LEN:
        raise BTHomeError("too short for a MIC")
    ciphertext = ciphertext_and_mic[:-MIC_LEN]
    mic = ciphertext_and_mic[-MIC_LEN:]
    blocks = (len(ciphertext) + _BLOCK - 1) // _BLOCK
    counters = b"".join(
        bytes((_L - 1,)) + nonce13 + struct.pack(">H", i) for i in range(blocks + 1)
    )
    stream = _block(_ecb(key), counters)
    plaintext = _xor(ciphertext, stream[_BLOCK:])
    tag, s0, _ = _mac_and_stream(key, nonce13, plaintext)
    if _xor(tag, s0) != bytes(mic):
        raise BTHomeError("MIC mismatch: wrong bindkey or corrupted data")
    return plaintext


def service_data(payload, device_info=VERSION_2 | TRIGGER_BASED, bindkey=None, mac=None, counter=0):
    """The bytes after the UUID: device info, then the objects, plain or encrypted.

    Encrypted: device info (with the encrypted bit) + ciphertext + counter (4, LE) + MIC (4).
    """
    if bindkey is None:
        return bytes((device_info & ~ENCRYPTED,)) + bytes(payload)
    info = device_info | ENCRYPTED
    sealed = ccm_encrypt(bindkey, nonce(mac, info, counter), bytes(payload))
    return (
        bytes((info,))
        + sealed[:-MIC_LEN]
        + struct.pack("<I", counter & 0xFFFFFFFF)
        + sealed[-MIC_LEN:]
    )


def open_service_data(data, bindkey=None, mac=None):
    """(device info, objects bytes, counter or None): the inverse of service_data."""
    if not data:
        raise BTHomeError("empty service data")
    info = data[0]
    if info >> 5 != BTHOME_VERSION:
        raise BTHomeError("not BTHome v2")
    if not info & ENCRYPTED:
        return info, bytes(data[1:]), None
    if bindkey is None:
        raise BTHomeError("encrypted, and no bindkey")
    if len(data) < 1 + COUNTER_LEN + MIC_LEN:
        raise BTHomeError("too short for encrypted BTHome")
    counter = struct.unpack("<I", bytes(data[-8:-4]))[0]
    sealed = bytes(data[1:-8]) + bytes(data[-4:])
    return info, ccm_decrypt(bindkey, nonce(mac, info, counter), sealed), counter


def advertisement(data, name=None):
    """A legacy advertising payload: flags, BTHome service data, optionally the name."""
    adv = bytes((2, AD_FLAGS, 0x06))  # LE general discoverable, BR/EDR not supported
    adv += bytes((len(data) + 3, AD_SERVICE_DATA_16)) + UUID + bytes(data)
    if name:
        encoded = name.encode()
        room = MAX_ADV - len(adv) - 2
        if room > 0:
            encoded = encoded[:room]
            adv += bytes((len(encoded) + 1, AD_COMPLETE_NAME)) + encoded
    if len(adv) > MAX_ADV:
        raise BTHomeError("advertisement exceeds 31 bytes")
    return adv
