# A counter that only ever increases, across deep sleep, resets and power loss, with few
# flash writes: the BTHome encryption counter (and, low byte, the packet id).
#
# Deep sleep keeps RTC memory, so the live value lives there (no flash write per event).
# Power loss clears RTC memory, so a small file holds a reservation: every value handed out
# is below the reserved ceiling, and the ceiling moves up one block at a time. After a cold
# boot the counter restarts at the old ceiling: a few values are skipped, none is reused.
# Flash writes: one per BLOCK events (LittleFS wear-levels the rest).
import struct

MAGIC = 0x42544843  # "BTHC"
BLOCK = 256
LIMIT = 0xFFFFFFFF  # the BTHome counter is 4 bytes
_RTC_FORMAT = "<III"  # magic, next value, ceiling


class FileSlot:
    """A tiny file holding bytes (the device's flash, or a host temp file)."""

    def __init__(self, path):
        self.path = path

    def read(self):
        try:
            with open(self.path, "rb") as f:
                return f.read()
        except OSError:
            return b""

    def write(self, data):
        tmp = self.path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        import os  # noqa: PLC0415

        try:
            os.rename(tmp, self.path)  # atomic on LittleFS: the old ceiling or the new
        except OSError:  # FAT will not rename over a file
            os.remove(self.path)
            os.rename(tmp, self.path)


class PersistentCounter:
    """`next()` answers 0, 1, 2, ... and never repeats a value, whatever happens between."""

    def __init__(self, rtc, store, block=BLOCK):
        self._rtc = rtc  # .read() -> bytes, .write(bytes): machine.RTC().memory() on device
        self._store = store  # .read() -> bytes, .write(bytes): a FileSlot on device
        self._block = block
        self.flash_writes = 0
        self._next, self._ceiling = self._load()

    def _load(self):
        raw = self._rtc.read()
        size = struct.calcsize(_RTC_FORMAT)
        if len(raw) >= size:
            magic, value, ceiling = struct.unpack(_RTC_FORMAT, bytes(raw[:size]))
            if magic == MAGIC and value <= ceiling:
                return value, ceiling  # woke from deep sleep: RTC memory survived
        # cold boot: restart at the reserved ceiling (values below it may have been used)
        stored = self._store.read()
        start = 0
        if len(stored) >= 4:  # noqa: PLR2004
            start = struct.unpack("<I", bytes(stored[:4]))[0]
        return start, start

    def peek(self):
        return self._next

    def next(self):
        value = self._next
        if value >= LIMIT:
            raise OverflowError("counter exhausted")
        if value >= self._ceiling:
            self._ceiling = min(LIMIT, value + self._block)
            self._store.write(struct.pack("<I", self._ceiling))  # reserve before use
            self.flash_writes += 1
        self._next = value + 1
        self._rtc.write(struct.pack(_RTC_FORMAT, MAGIC, self._next, self._ceiling))
        return value
