# AES (FIPS-197) in plain Python that runs under CPython and MicroPython alike: the block
# cipher the host stand-ins for MicroPython's built-in `cryptolib` fall back on
# (host/cryptolib.py under CPython without `cryptography`; wasm/cryptolib.py on the
# WebAssembly port, which has no `cryptolib`). Encryption only: CCM needs no more.
# Host-only: never copied to the device, where `cryptolib` is built in.
BLOCK = 16


def _xtime(value):
    value <<= 1
    return (value ^ 0x11B) & 0xFF if value & 0x100 else value


def _sbox():
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


class PureAes:
    """AES-128/192/256, one 16-byte block at a time (`ecb` for more)."""

    def __init__(self, key):
        words = len(key) // 4
        rounds = words + 6
        schedule = [list(key[i : i + 4]) for i in range(0, len(key), 4)]
        rcon = 1
        for i in range(words, 4 * (rounds + 1)):
            word = list(schedule[i - 1])
            if i % words == 0:
                word = [_SBOX[b] for b in word[1:] + word[:1]]
                word[0] ^= rcon
                rcon = _xtime(rcon)
            elif words > 6 and i % words == 4:  # noqa: PLR2004 - AES-256's extra S-box step
                word = [_SBOX[b] for b in word]
            schedule.append([a ^ b for a, b in zip(schedule[i - words], word)])
        self._round_keys = [
            [byte for word in schedule[4 * r : 4 * r + 4] for byte in word]
            for r in range(rounds + 1)
        ]

    def encrypt(self, block):
        state = [a ^ b for a, b in zip(block, self._round_keys[0])]
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
            state = [a ^ b for a, b in zip(state, self._round_keys[r])]
        return bytes(state)


def ecb(cipher, data):
    """`data` (a multiple of 16 bytes) through `cipher.encrypt`, block by block."""
    if len(data) % BLOCK:
        raise ValueError("ECB data must be a multiple of 16 bytes")
    return b"".join(cipher.encrypt(bytes(data[i : i + BLOCK])) for i in range(0, len(data), BLOCK))
