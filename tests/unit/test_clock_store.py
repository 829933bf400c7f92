"""Times recorded before the system clock is synchronised: marked, corrected by the measured
step, confirmed once it is, and never uploaded before — in the store and through the runner
with an injected wall clock (a Pi booted a month behind, then stepped by NTP)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlite_utils import Database

from hub.clock import ClockState, HubClock
from hub.config import HubConfig, SensorConfig, SessionsSection
from hub.model import MotionEvent, Session, open_session
from hub.playback.dry_run import DryRunPlayer
from hub.sessions.engine import SessionEngine
from hub.sessions.runner import SessionRunner
from hub.store import SessionRepository, close_database, open_database
from hub.store.writer import StoreWriter
from hub.sync.outbox import Outbox

DAY = 86_400.0
TRUE_T0 = 1_800_000_000.0
BEHIND = 30 * DAY  # the Pi booted with a clock a month behind
BOOT = "boot-1"


@pytest.fixture
def db() -> Iterator[Database]:
    database = open_database(None)
    yield database
    close_database(database)


def session_at(start: float, sensor: str = "bath") -> Session:
    return open_session(
        session_id=f"session-{sensor}-{int(start)}-00000000",
        sensor_id=sensor,
        user_id="u",
        start=start,
        now=start,
        ttl_days=30,
    )


def unconfirmed_sessions(db: Database) -> int:
    return int(
        db.execute("SELECT count(*) FROM sessions WHERE clockBoot IS NOT NULL").fetchone()[0]
    )


def unconfirmed(base: float, boot: str = BOOT) -> ClockState:
    return ClockState(boot_id=boot, base=base, confirmed=False)


def test_rows_written_unconfirmed_are_corrected_and_confirmed_by_the_step(db: Database) -> None:
    repository = SessionRepository(db, ttl_days=30)
    repository.set_clock(unconfirmed(base=-BEHIND))
    wrong = TRUE_T0 - BEHIND
    event = MotionEvent("bath", occurred_at=wrong, received_at=wrong)
    repository.save(session_at(wrong), created=True, event=event)
    outbox = Outbox(db)
    assert unconfirmed_sessions(db) == 1
    assert (outbox.count_due_sessions(), outbox.count_due_events()) == (0, 0)
    # NTP steps the clock a month forward; timesyncd says it is synchronised.
    touched = repository.set_clock(ClockState(BOOT, base=0.0, confirmed=True))
    assert touched == 4  # the session and its event corrected, then both confirmed
    (row,) = db.execute("SELECT startTime, ttl, startTimeISO, clockBoot FROM sessions")
    assert row == (int(TRUE_T0), int(TRUE_T0 + 30 * DAY), "2027-01-15T08:00:00.000000+00:00", None)
    (event_row,) = db.execute("SELECT timestamp, receivedAt, ttl, clockBoot FROM motion_events")
    assert event_row == (TRUE_T0, TRUE_T0, int(TRUE_T0 + 30 * DAY), None)
    assert (outbox.count_due_sessions(), outbox.count_due_events()) == (1, 1)
    # Written from now on: confirmed.
    repository.save(session_at(TRUE_T0 + 100, "hall"), created=True)
    assert unconfirmed_sessions(db) == 0


def test_a_restart_in_the_same_boot_corrects_what_the_last_process_wrote(db: Database) -> None:
    first = SessionRepository(db, ttl_days=30)
    first.set_clock(unconfirmed(base=-BEHIND))
    first.save(session_at(TRUE_T0 - BEHIND), created=True)
    # The clock stepped while the hub was restarting: the new process only sees its base.
    second = SessionRepository(db, ttl_days=30)
    assert second.set_clock(unconfirmed(base=0.0)) == 1
    (row,) = db.execute("SELECT startTime, clockBoot, clockBase FROM sessions")
    assert row == (int(TRUE_T0), BOOT, 0.0)  # corrected, still unconfirmed
    assert Outbox(db).count_due_sessions() == 0


def test_rows_of_another_boot_cannot_be_corrected_and_stay_unsent(db: Database) -> None:
    old = SessionRepository(db, ttl_days=30)
    old.set_clock(unconfirmed(base=-BEHIND, boot="an-earlier-boot"))
    old.save(session_at(TRUE_T0 - BEHIND), created=True)
    now = SessionRepository(db, ttl_days=30)
    assert now.set_clock(ClockState(BOOT, base=0.0, confirmed=True)) == 0
    (row,) = db.execute("SELECT startTime, clockBoot FROM sessions")
    assert row == (int(TRUE_T0 - BEHIND), "an-earlier-boot")
    assert Outbox(db).count_due_sessions() == 0


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
