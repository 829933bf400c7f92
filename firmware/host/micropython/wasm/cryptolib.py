# AES-128 encryption (ECB) in plain MicroPython, standing in for the
# built-in `cryptolib` on the WebAssembly port, which lacks it: only for measuring the
# heap on a 32-bit MicroPython (heap32.mjs). The firmware never ships this, and the unix
# port's checks use the real, built-in `cryptolib`. FIPS-197, encryption only.
MODE_ECB = 1
_BLOCK = 16
_ROUNDS = 10


def _xtime(a):
    a <<= 1
    return (a ^ 0x11B) & 0xFF if a & 0x100 else a


def _sbox():
    box = bytearray(256)
    p = q = 1
    while True:
        p = p ^ _xtime(p)  # p * 3
        q ^= q << 1
        q ^= q << 2
        q ^= q << 4
        q &= 0xFF
        if q & 0x80:
            q ^= 0x09
        x = q ^ ((q << 1) | (q >> 7)) ^ ((q << 2) | (q >> 6)) ^ ((q << 3) | (q >> 5))
        x ^= (q << 4) | (q >> 4)
        box[p] = (x ^ 0x63) & 0xFF
        if p == 1:
            break
    box[0] = 0x63
    return bytes(box)


_SBOX = _sbox()


class aes:  # noqa: N801 - the built-in's name
    def __init__(self, key, mode):
        if mode != MODE_ECB or len(key) != _BLOCK:
            raise ValueError("AES-128 ECB only")
        words = [bytes(key[i : i + 4]) for i in range(0, 16, 4)]
        rcon = 1
        for i in range(4, 44):
            t = words[i - 1]
            if i % 4 == 0:
                t = bytes((_SBOX[t[1]] ^ rcon, _SBOX[t[2]], _SBOX[t[3]], _SBOX[t[0]]))
                rcon = _xtime(rcon)
            words.append(bytes(a ^ b for a, b in zip(words[i - 4], t)))
        self._keys = [b"".join(words[r * 4 : r * 4 + 4]) for r in range(11)]

    def encrypt(self, data):
        # ECB over whole blocks, as the built-in does.
        return b"".join(self._block(data[i : i + 16]) for i in range(0, len(data), 16))

    def _block(self, block):
        s = bytearray(a ^ b for a, b in zip(block, self._keys[0]))
        for r in range(1, 11):
            s = bytearray(_SBOX[b] for b in s)
            s = bytearray(s[(i + 4 * (i % 4)) % 16] for i in range(16))  # shift rows
            if r < _ROUNDS:
                m = bytearray(16)
                for c in range(0, 16, 4):
                    a0, a1, a2, a3 = s[c], s[c + 1], s[c + 2], s[c + 3]
                    t = a0 ^ a1 ^ a2 ^ a3
                    m[c] = a0 ^ t ^ _xtime(a0 ^ a1)
                    m[c + 1] = a1 ^ t ^ _xtime(a1 ^ a2)
                    m[c + 2] = a2 ^ t ^ _xtime(a2 ^ a3)
                    m[c + 3] = a3 ^ t ^ _xtime(a3 ^ a0)
                s = m
            s = bytearray(a ^ b for a, b in zip(s, self._keys[r]))
        return bytes(s)
