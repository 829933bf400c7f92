"""PIR edges → debounced motion events (pure logic, injected ticks)."""

from __future__ import annotations

import importlib
from collections.abc import Callable

motion = importlib.import_module("motion")


def feed(debouncer: object, steps: list[tuple[int, int]]) -> list[int]:
    """(ticks, level) steps → the ticks at which an event fired."""
    update: Callable[[int, int], bool] = debouncer.update  # type: ignore[attr-defined]
    return [now for now, level in steps if update(level, now)]


def test_a_rising_edge_is_an_event_and_bounces_are_not() -> None:
    d = motion.Debouncer(debounce_ms=2000, repeat_ms=0)
    steps = [(0, 0), (100, 1), (150, 0), (180, 1), (400, 0), (2099, 1), (2200, 0), (2300, 1)]
    assert feed(d, steps) == [100, 2300]
    assert d.suppressed == 2


def test_a_level_held_high_repeats_so_the_session_stays_alive() -> None:
    d = motion.Debouncer(debounce_ms=2000, repeat_ms=60000)
    steps = [(t, 1) for t in range(0, 200001, 1000)] + [(200500, 0)]
    assert feed(d, steps) == [0, 60000, 120000, 180000]


def test_the_warm_up_swallows_the_pirs_settling_then_reports_a_held_level() -> None:
    d = motion.Debouncer(debounce_ms=2000, repeat_ms=0, warmup_ms=30000, now=0)
    steps = [(1000, 1), (2000, 0), (29000, 1), (30000, 1), (31000, 1), (40000, 0), (45000, 1)]
    assert feed(d, steps) == [30000, 45000]


def test_ticks_wrap_around_with_the_devices_ticks_diff() -> None:
    period = 1 << 30  # MicroPython's ticks period on the ESP32

    def diff(a: int, b: int) -> int:
        return ((a - b + period // 2) % period) - period // 2

    d = motion.Debouncer(debounce_ms=2000, repeat_ms=0, diff=diff)
    near_wrap = period - 500
    steps = [(near_wrap, 1), (near_wrap + 100, 0), (700, 1), (800, 0), (2000, 1)]
    assert feed(d, steps) == [near_wrap, 2000]


class FakePin:
    def __init__(self) -> None:
        self.level = 0
        self.handler: Callable[[object], None] | None = None

    def irq(self, handler: Callable[[object], None]) -> None:
        self.handler = handler

    def value(self) -> int:
        return self.level

    def pulse(self) -> None:
        assert self.handler is not None
        self.level = 1
        self.handler(self)
        self.level = 0


def test_an_edge_latched_by_the_interrupt_counts_even_if_the_pulse_is_over() -> None:
    ticks = [0]
    pin = FakePin()
    pir = motion.PirInput(pin, motion.Debouncer(2000, 0), clock=lambda: ticks[0])
    assert pir.poll() is None
    ticks[0] = 500
    pin.pulse()  # a short AM312 pulse while the main loop was busy (Wi-Fi connect)
    ticks[0] = 9000
    assert pir.poll() == 500  # the event is dated at the edge, not when it was noticed
    assert pir.poll() is None
    pin.level = 1
    ticks[0] = 12000
    assert pir.poll() == 12000  # a rising level without an interrupt (missed IRQ) also counts
