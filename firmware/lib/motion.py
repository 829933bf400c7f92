# PIR edges -> debounced motion events. Pure logic: time comes in as ticks (ms), so the same
# code runs on the device (time.ticks_ms, with wrap-around) and under CPython tests.
#
# A PIR (HC-SR501, AM312) holds its output high for a few seconds per detection, and an
# HC-SR501 in retrigger mode ("H") stays high as long as someone keeps moving. So:
# - a rising edge is an event, unless the previous event was less than `debounce_ms` ago
#   (contact bounce, the AM312's back-to-back pulses);
# - while the output stays high, an event every `repeat_ms`, so a person who never leaves
#   the PIR's view keeps the hub's session alive;
# - nothing during `warmup_ms` after power-on (a PIR needs up to a minute to settle).
try:
    from time import ticks_add, ticks_diff, ticks_ms
except ImportError:  # CPython: plain integers, no wrap-around

    def ticks_diff(a, b):
        return a - b

    def ticks_add(a, b):
        return a + b

    def ticks_ms():
        import time  # noqa: PLC0415

        return int(time.monotonic() * 1000)


class Debouncer:
    def __init__(self, debounce_ms=2000, repeat_ms=60000, warmup_ms=0, now=0, diff=ticks_diff):
        self.debounce_ms = debounce_ms
        self.repeat_ms = repeat_ms
        self._diff = diff
        self._ready_at = ticks_add(now, warmup_ms) if warmup_ms else None
        self._high = False
        self._last = None  # ticks of the last event
        self.suppressed = 0  # edges swallowed by the debounce

    def update(self, level, now, rose=False):
        """Feed the PIR level (and whether an edge rose since the last call); True = event."""
        rising = rose or (level and not self._high)
        self._high = bool(level)
        if self._ready_at is not None:
            if self._diff(now, self._ready_at) < 0:
                return False
            self._ready_at = None
            rising = rising or self._high  # already high when the warm-up ends
        if rising:
            if self._last is not None and self._diff(now, self._last) < self.debounce_ms:
                self.suppressed += 1
                return False
            self._last = now
            return True
        if (
            self._high
            and self.repeat_ms
            and self._last is not None
            and self._diff(now, self._last) >= self.repeat_ms
        ):
            self._last = now
            return True
        return False


class PirInput:
    """The PIR pin with an edge interrupt. The handler only latches the edge (and when);
    the main loop calls `poll()`, so nothing slow or allocating runs in interrupt context
    and an edge that happened during a blocking call (Wi-Fi connect) is not lost."""

    def __init__(self, pin, debouncer, clock=ticks_ms):
        self._pin = pin
        self._debouncer = debouncer
        self._clock = clock
        self._rose = False
        self._rose_at = 0
        pin.irq(handler=self._irq)

    def _irq(self, _pin):
        if not self._rose:
            self._rose_at = self._clock()
        self._rose = True

    def poll(self):
        """None, or the ticks at which the motion event happened (the latched edge)."""
        now = self._clock()
        rose, at = self._rose, self._rose_at
        self._rose = False
        if self._debouncer.update(self._pin.value(), now, rose):
            return at if rose else now
        return None
