"""The hub's clock: the wall clock's time, steady between observations, and whether the
system clock can be trusted yet.

A Raspberry Pi has no real-time clock. It boots with the time it last saved (or 1970) and
NTP steps it, perhaps by weeks, once the network is up; an administrator may step it too.
So the hub

- reads time as `monotonic() + base`: between two `observe()` calls it never jumps, so a
  motion stamped by an ingest adapter and the session it extends share one timeline;
- in `observe()` (the runner, at the start of each turn) compares that with the wall clock:
  a difference beyond what NTP's slewing can make (`STEP_THRESHOLD` plus `MAX_SLEW` per
  second since the last look) is a step. It is logged and reported, so the runner moves
  what is in flight by it (a step never ends or prolongs a session by itself); a smaller
  difference is slewing, and `base` simply follows it;
- asks whether the system clock is synchronised: systemd-timesyncd touches
  `/run/systemd/timesync/synchronized` on each successful synchronisation, and the kernel
  clears `STA_UNSYNC` in `adjtimex()` when any NTP daemon (timesyncd, chrony, ntpd) has
  disciplined the clock (what `timedatectl` shows as "System clock synchronized"). Either
  counts. Until then the times the hub records are marked unconfirmed, with the boot and
  the `base` they were made with (`ClockState`), and corrected by the difference once the
  clock is synchronised (`SessionRepository.set_clock`).

Once synchronised, the hub does not go back to "unconfirmed" (the kernel flag lapses after
hours without NTP, which does not make the clock wrong).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

_LOGGER = logging.getLogger(__name__)

TIMESYNC_FLAG: Final = Path("/run/systemd/timesync/synchronized")
BOOT_ID: Final = Path("/proc/sys/kernel/random/boot_id")
# A jump of the wall clock against the monotonic one beyond this is a step (timesyncd
# slews offsets up to 0.4 s and steps larger ones) …
STEP_THRESHOLD: Final = 0.5
# … plus what slewing can add per second between two looks (the kernel's limit is 500 ppm).
MAX_SLEW: Final = 0.001
# How often the runner looks at the clock when nothing else wakes it: soon while the clock
# is unconfirmed (its synchronisation corrects what is recorded), rarely once it is.
CHECK_UNCONFIRMED: Final = 2.0
CHECK_CONFIRMED: Final = 60.0
# Asked at most this often (a stat and a system call) while unconfirmed, however busy.
SYNC_ASK_INTERVAL: Final = 1.0

_STA_UNSYNC: Final = 0x0040
_TIME_ERROR: Final = 5


@dataclass(frozen=True, slots=True)
class ClockState:
    """What the store needs to mark and correct recorded times.

    `base` is the wall clock minus the monotonic clock: the same for every time recorded
    on one timeline. `confirmed`: the system clock has been synchronised.
    """

    boot_id: str
    base: float
    confirmed: bool


@dataclass(frozen=True, slots=True)
class ClockChange:
    """What one `observe()` found: a step of `step` seconds (None: no step), and the state
    the store should now use."""

    step: float | None
    state: ClockState
    confirmed_now: bool  # synchronisation was first seen in this observation

    @property
    def corrects_history(self) -> bool:
        """The step corrects times recorded before: the clock was not synchronised then."""
        return self.step is not None and (self.confirmed_now or not self.state.confirmed)


class _Timex(ctypes.Structure):
    # struct timex (glibc, 64-bit time_t layouts alike): modes, then longs and ints.
    # Only `status` is read; the tail is padding large enough for every layout.
    _fields_ = (
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("_rest", ctypes.c_byte * 256),
    )


def kernel_synchronised() -> bool | None:
    """Whether the kernel says an NTP daemon disciplines the clock (`adjtimex`, read only);
    None when that cannot be asked."""
    adjtimex = _adjtimex()
    if adjtimex is None:
        return None
    timex = _Timex()  # modes = 0: read, never set
    state = adjtimex(ctypes.byref(timex))
    if state < 0:
        return None
    return state != _TIME_ERROR and not timex.status & _STA_UNSYNC


@functools.cache
def _adjtimex() -> Callable[[Any], int] | None:
    try:
        # The process's own symbol table (dlopen(NULL)), so an LD_PRELOAD'ed adjtimex
        # (the tests' clock shim) is the one called.
        function: Callable[[Any], int] = ctypes.CDLL(None, use_errno=True).adjtimex
    except (OSError, AttributeError):
        return None
    return function


def system_clock_synchronised() -> bool:
    """timesyncd's flag file, or the kernel's NTP status (see the module docstring)."""
    return TIMESYNC_FLAG.exists() or bool(kernel_synchronised())


def boot_id() -> str:
    """This boot's id: monotonic time, and so `base`, is comparable only within one boot."""
    with contextlib.suppress(OSError):
        return BOOT_ID.read_text(encoding="ascii").strip()
    return "unknown-boot"


class HubClock:
    """`clock()` is the hub's time (epoch seconds); `observe()` looks at the wall clock."""

    def __init__(
        self,
        *,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        synchronised: Callable[[], bool] = system_clock_synchronised,
        boot: str | None = None,
    ) -> None:
        self._wall = wall
        self._monotonic = monotonic
        self._synchronised = synchronised
        self._boot = boot if boot is not None else boot_id()
        looked = monotonic()
        self._base = wall() - looked
        self._looked = looked
        self._confirmed = synchronised()
        self._asked = looked  # when synchronisation was last asked about

    def __call__(self) -> float:
        return self._monotonic() + self._base

    @property
    def state(self) -> ClockState:
        return ClockState(self._boot, self._base, self._confirmed)

    @property
    def confirmed(self) -> bool:
        return self._confirmed

    def check_interval(self) -> float:
        """Seconds until the clock is worth another look when nothing else happens."""
        return CHECK_CONFIRMED if self._confirmed else CHECK_UNCONFIRMED

    def observe(self) -> ClockChange | None:
        """Compare with the wall clock and the synchronisation status; None when nothing
        the hub must act on changed (slewing is followed silently)."""
        looked = self._monotonic()
        drift = self._wall() - (looked + self._base)
        limit = STEP_THRESHOLD + MAX_SLEW * (looked - self._looked)
        self._looked = looked
        self._base += drift
        step = drift if abs(drift) > limit else None
        confirmed_now = False
        if not self._confirmed and looked - self._asked >= SYNC_ASK_INTERVAL:
            self._asked = looked
            confirmed_now = self._synchronised()
        self._confirmed = self._confirmed or confirmed_now
        if step is not None:
            _LOGGER.warning(
                "the system clock stepped by %+.3f s (%s); sessions keep their real length",
                step,
                "synchronised" if self._confirmed else "not synchronised yet",
            )
        if confirmed_now:
            _LOGGER.info("the system clock is synchronised: recorded times are confirmed")
        if step is None and not confirmed_now:
            return None
        return ClockChange(step, self.state, confirmed_now)
