"""The hub's clock with injected wall and monotonic clocks: steps, slewing, synchronisation."""

from __future__ import annotations

import logging

import pytest

from hub.clock import (
    CHECK_CONFIRMED,
    CHECK_UNCONFIRMED,
    MAX_SLEW,
    STEP_THRESHOLD,
    SYNC_ASK_INTERVAL,
    HubClock,
    kernel_synchronised,
    system_clock_synchronised,
)

DAY = 86_400.0
T0 = 1_800_000_000.0


class Clocks:
    """A wall clock that can be stepped and a monotonic one that only moves forward."""

    def __init__(self, *, synced: bool = False) -> None:
        self.mono = 1_000.0
        self.offset = T0 - self.mono
        self.synced = synced

    def wall(self) -> float:
        return self.mono + self.offset

    def monotonic(self) -> float:
        return self.mono

    def synchronised(self) -> bool:
        return self.synced

    def clock(self) -> HubClock:
        return HubClock(
            wall=self.wall, monotonic=self.monotonic, synchronised=self.synchronised, boot="b1"
        )


def test_time_is_the_wall_clock_and_never_jumps_between_looks() -> None:
    clocks = Clocks()
    clock = clocks.clock()
    assert clock() == T0
    clocks.mono += 5
    clocks.offset += 30 * DAY  # NTP steps the clock …
    assert clock() == T0 + 5  # … the hub's time moves on steadily until it looks


def test_a_step_is_seen_logged_and_followed(caplog: pytest.LogCaptureFixture) -> None:
    clocks = Clocks()
    clock = clocks.clock()
    clocks.mono += 5
    clocks.offset += 30 * DAY
    with caplog.at_level(logging.WARNING, logger="hub.clock"):
        change = clock.observe()
    assert change is not None
    assert change.step == pytest.approx(30 * DAY)
    assert change.corrects_history  # not synchronised: what was recorded is off by it
    assert clock() == pytest.approx(T0 + 5 + 30 * DAY)
    assert "stepped by +2592000.000 s" in caplog.text
    assert clock.observe() is None  # seen once


def test_backward_steps_are_steps_too() -> None:
    clocks = Clocks(synced=True)
    clock = clocks.clock()
    clocks.mono += 1
    clocks.offset -= 60
    change = clock.observe()
    assert change is not None
    assert change.step == pytest.approx(-60)
    assert not change.corrects_history  # the clock was synchronised: history stays


def test_slewing_is_followed_silently() -> None:
    clocks = Clocks(synced=True)
    clock = clocks.clock()
    for _ in range(100):  # 500 ppm for 100 minutes: 3 s in all, never a step
        clocks.mono += 60
        clocks.offset += 60 * MAX_SLEW / 2
        assert clock.observe() is None
    assert clock() == pytest.approx(clocks.wall())


def test_just_over_the_threshold_is_a_step() -> None:
    clocks = Clocks(synced=True)
    clock = clocks.clock()
    clocks.offset += STEP_THRESHOLD * 1.5
    change = clock.observe()
    assert change is not None
    assert change.step == pytest.approx(STEP_THRESHOLD * 1.5)


def test_synchronisation_is_seen_once_and_kept() -> None:
    clocks = Clocks()
    clock = clocks.clock()
    assert not clock.state.confirmed
    assert clock.check_interval() == CHECK_UNCONFIRMED
    clocks.synced = True
    clocks.mono += SYNC_ASK_INTERVAL
    clocks.offset += 30 * DAY  # the step that came with it
    change = clock.observe()
    assert change is not None
    assert change.confirmed_now
    assert change.corrects_history
    assert change.state.confirmed
    assert change.state.boot_id == "b1"
    assert change.state.base == pytest.approx(clocks.offset)
    assert clock.check_interval() == CHECK_CONFIRMED
    clocks.synced = False  # the kernel flag lapses after hours without NTP: still confirmed
    assert clock.observe() is None
    assert clock.confirmed


def test_a_busy_hub_asks_about_synchronisation_once_a_second() -> None:
    clocks = Clocks()
    asked: list[float] = []

    def synchronised() -> bool:
        asked.append(clocks.mono)
        return False

    clock = HubClock(
        wall=clocks.wall, monotonic=clocks.monotonic, synchronised=synchronised, boot="b1"
    )
    for _ in range(1_000):  # turns 10 ms apart for 10 s
        clocks.mono += 0.01
        clock.observe()
    assert 9 <= len(asked) - 1 <= 11  # (the first answer is the constructor's)


def test_the_system_can_be_asked() -> None:
    assert kernel_synchronised() in {True, False, None}
    assert isinstance(system_clock_synchronised(), bool)
    assert HubClock().state.boot_id
