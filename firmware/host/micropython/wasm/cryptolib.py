# A stand-in for MicroPython's built-in `cryptolib` on the WebAssembly port, which lacks it:
# only for measuring the heap on a 32-bit MicroPython (heap32.mjs, which also copies
# host/micropython/pure_aes.py here). The unix port's checks use the real, built-in `cryptolib`.
from pure_aes import PureAes, ecb

MODE_ECB = 1


class aes:  # noqa: N801 - the built-in's name
    def __init__(self, key, mode):
        if mode != MODE_ECB:
            raise ValueError("MODE_ECB only")
        self._aes = PureAes(bytes(key))

    def encrypt(self, data):
        return ecb(self._aes, data)
