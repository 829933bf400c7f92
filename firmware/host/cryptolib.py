"""CPython stand-in for MicroPython's built-in `cryptolib` (host tests only; never copied
to the device, where `cryptolib` is built into the firmware).

Only what the firmware uses: `aes(key, 1)` (MODE_ECB) with `encrypt(block)`, the AES block
cipher itself. Backed by the `cryptography` package when it is installed; otherwise by the
plain-Python AES in `micropython/pure_aes.py`, so the host tests need nothing beyond the
standard library.
"""

from __future__ import annotations

from typing import Any

MODE_ECB = 1


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
            from pure_aes import PureAes  # noqa: PLC0415 - host/micropython: shared with MicroPython

            self._pure: Any = PureAes(bytes(key))
            self._fast = None
        else:
            self._pure = None
            self._fast = Cipher(algorithms.AES(bytes(key)), modes.ECB()).encryptor()  # noqa: S305 - the CCM building block

    def encrypt(self, data: bytes, out: bytearray | None = None) -> bytes:
        if self._fast is not None:
            if len(data) % 16:
                raise ValueError("ECB data must be a multiple of 16 bytes")
            result = self._fast.update(bytes(data))
        else:
            from pure_aes import ecb  # noqa: PLC0415

            result = ecb(self._pure, data)
        if out is not None:
            out[:] = result
        return result
