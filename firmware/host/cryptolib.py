"""CPython stand-in for MicroPython's built-in `cryptolib` (host tests only; never copied
to the device, where `cryptolib` is built into the firmware).

Only what the firmware uses: `aes(key, 1)` (MODE_ECB) with `encrypt(block)`, the AES block
cipher itself. Backed by the `cryptography` package when it is installed; otherwise by a
small pure-Python AES (FIPS-197), so the host tests need nothing beyond the standard library.
"""

from __future__ import annotations

MODE_ECB = 1
_BLOCK = 16


def _xtime(value: int) -> int:
    value <<= 1
    return (value ^ 0x11B) & 0xFF if value & 0x100 else value


def _sbox() -> bytes:
    box = bytearray(256)
    p = q = 1
    while True:  # walk the multiplicative group with generator 3; q tracks the inverse
        p = p ^ _xtime(p)
        q ^= q << 1
        q ^= q << 2
        q ^= q << 4
        q &= 0xFF
        if q & 0x80:
            q ^= 0x09
        x = q ^ (q << 1 | q >> 7) ^ (q << 2 | q >> 6) ^ (q << 3 | q >> 5) ^ (q << 4 | q >> 4)
        box[p] = (x ^ 0x63) & 0xFF
        if p == 1:
            break
    box[0] = 0x63
    return bytes(box)


_SBOX = _sbox()


class _PureAes:
    def __init__(self, key: bytes) -> None:
        words = len(key) // 4
        rounds = words + 6
        schedule = [list(key[i : i + 4]) for i in range(0, len(key), 4)]
        rcon = 1
        for i in range(words, 4 * (rounds + 1)):
            word = list(schedule[i - 1])
            if i % words == 0:
                word = [_SBOX[b] for b in (*word[1:], word[0])]
                word[0] ^= rcon
                rcon = _xtime(rcon)
            elif words > 6 and i % words == 4:  # noqa: PLR2004 - AES-256's extra S-box step
                word = [_SBOX[b] for b in word]
            schedule.append([a ^ b for a, b in zip(schedule[i - words], word, strict=True)])
        self._round_keys = [
            [byte for word in schedule[4 * r : 4 * r + 4] for byte in word]
            for r in range(rounds + 1)
        ]

    def encrypt(self, block: bytes) -> bytes:
        state = [a ^ b for a, b in zip(block, self._round_keys[0], strict=True)]
        last = len(self._round_keys) - 1
        for r in range(1, last + 1):
            state = [_SBOX[b] for b in state]
            state = [state[(i + 4 * (i % 4)) % 16] for i in range(16)]  # ShiftRows
            if r != last:
                mixed = []
                for c in range(4):
                    col = state[4 * c : 4 * c + 4]
                    total = col[0] ^ col[1] ^ col[2] ^ col[3]
                    mixed += [col[i] ^ total ^ _xtime(col[i] ^ col[(i + 1) % 4]) for i in range(4)]
                state = mixed
            state = [a ^ b for a, b in zip(state, self._round_keys[r], strict=True)]
        return bytes(state)


class aes:  # noqa: N801 - MicroPython's name
    """`cryptolib.aes(key, MODE_ECB)`: `encrypt(data)` for a multiple of 16 bytes."""

    def __init__(self, key: bytes, mode: int, iv: bytes | None = None) -> None:
        if mode != MODE_ECB or iv is not None:
            raise ValueError("only MODE_ECB (1) is provided on the host")
        if len(key) not in {16, 24, 32}:
            raise ValueError("key must be 16, 24 or 32 bytes")
        try:
            from cryptography.hazmat.primitives.ciphers import (  # noqa: PLC0415 - optional
                Cipher,
                algorithms,
                modes,
            )
        except ImportError:
            self._pure: _PureAes | None = _PureAes(bytes(key))
            self._fast = None
        else:
            self._pure = None
            self._fast = Cipher(algorithms.AES(bytes(key)), modes.ECB()).encryptor()  # noqa: S305 - the CCM building block

    def encrypt(self, data: bytes, out: bytearray | None = None) -> bytes:
        if len(data) % _BLOCK:
            raise ValueError("ECB data must be a multiple of 16 bytes")
        if self._fast is not None:
            result = self._fast.update(bytes(data))
        else:
            assert self._pure is not None  # noqa: S101
            pure = self._pure
            result = b"".join(
                pure.encrypt(bytes(data[i : i + _BLOCK])) for i in range(0, len(data), _BLOCK)
            )
        if out is not None:
            out[:] = result
        return result
