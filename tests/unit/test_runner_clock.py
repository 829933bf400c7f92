"""The runner across a step of the system clock, with an injected wall clock: a Pi booted a
month behind, then stepped by NTP."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from hub.clock import HubClock
from hub.config import HubConfig, SensorConfig, SessionsSection
from hub.model import MotionEvent, Session
from hub.playback.dry_run import DryRunPlayer
from hub.sessions.engine import SessionEngine
from hub.sessions.runner import SessionRunner
from hub.store import close_database, open_database
from hub.store.writer import StoreWriter
from hub.sync.outbox import Outbox

DAY = 86_400.0
TRUE_T0 = 1_800_000_000.0
BEHIND = 30 * DAY  # the Pi booted with a clock a month behind
BOOT = "boot-1"


async def until(saved: asyncio.Queue[Session], check: Callable[[Session], bool]) -> Session:
    async with asyncio.timeout(5):
        while not check(session := await saved.get()):
            pass
    return session


class Pi:
    """A wall clock a month behind until NTP steps it, and a monotonic clock."""

    def __init__(self) -> None:
        self.mono = 50.0
        self.offset = TRUE_T0 - BEHIND - self.mono
        self.synced = False

    def wall(self) -> float:
        return self.mono + self.offset

    def ntp(self) -> None:
        self.offset += BEHIND
        self.synced = True

    def clock(self) -> HubClock:
        return HubClock(
            wall=self.wall, monotonic=lambda: self.mono, synchronised=lambda: self.synced, boot=BOOT
        )


async def test_the_runner_corrects_a_session_when_ntp_steps_the_clock(tmp_path: Path) -> None:
    config = HubConfig(
        sessions=SessionsSection(timeout_minutes=0.1, debounce_seconds=0, ttl_days=30),
        sensors=(SensorConfig(id="bath", user_id="u"),),
    )
    pi = Pi()
    clock = pi.clock()
    saved: asyncio.Queue[Session] = asyncio.Queue()
    path = tmp_path / "hub.db"
    async with StoreWriter(path, ttl_days=30) as writer:
        await writer.call(lambda repository: repository.set_clock(clock.state))
        runner = SessionRunner(
            SessionEngine(config), writer, DryRunPlayer(), clock=clock, on_session=saved.put_nowait
        )
        task = asyncio.create_task(runner.run())
        await runner.inbox.put(MotionEvent("bath", occurred_at=clock(), received_at=clock()))
        first = await asyncio.wait_for(saved.get(), 5)
        assert first.start == TRUE_T0 - BEHIND
        pi.mono += 3.5
        pi.ntp()
        await runner.inbox.put(MotionEvent("bath", occurred_at=clock(), received_at=clock()))
        extended = await until(saved, lambda session: session.motion_events_count == 2)
        # The step ended nothing: the same session, on the corrected timeline.
        assert extended.session_id == first.session_id
        assert extended.is_active
        assert (extended.start, extended.last_motion) == (TRUE_T0, TRUE_T0 + 3.5)
        assert extended.ttl == int(TRUE_T0 + 30 * DAY)
        assert runner.counters["clock_steps"] == 1
        pi.mono += 6.0  # the timeout after the last motion, in real time
        runner.poke()
        ended = await until(saved, lambda session: not session.is_active)
        assert ended.end == TRUE_T0 + 3.5 + 6.0
        runner.finish()
        await asyncio.wait_for(task, 5)
    db = open_database(path)
    try:
        (row,) = db.execute("SELECT startTime, ttl, durationMinutes, clockBoot FROM sessions")
        assert row == (int(TRUE_T0), int(TRUE_T0 + 30 * DAY), round(9.5 / 60, 2), None)
        assert Outbox(db).count_due_sessions() == 1
    finally:
        close_database(db)
