"""The runner with a real SQLite file and writer thread, a fake clock and a fake player."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pytest

from hub.config import HubConfig, SensorConfig, SessionsSection
from hub.controls import ControlCommand, Controls
from hub.errors import ConflictError, NotFoundError, ValidationError
from hub.model import MotionEvent, Receipt, Session
from hub.playback.port import PlaybackResult
from hub.sessions import runner as runner_module
from hub.sessions.changes import CreateSession, EndSession, UpdateSession
from hub.sessions.engine import Command, EngineError, SessionEngine
from hub.sessions.runner import MAX_BATCH, PLAYBACK_WAIT, RETRY_FIRST, SessionRunner
from hub.store import SessionRepository, close_database, open_database
from hub.store.meta import CONTROLS_KEY, get_meta
from hub.store.sessions import SessionQuery
from hub.store.timeouts import learn_timeouts
from hub.store.writer import StoreWriter
from tests.unit.test_timeouts import history

T0 = 1_800_000_000.0
CONFIG = HubConfig(
    sessions=SessionsSection(timeout_minutes=5, debounce_seconds=10),
    sensors=(
        SensorConfig(id="bath", user_id="u", context_uri="spotify:playlist:x"),
        SensorConfig(id="hall", user_id="u"),
    ),
)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@dataclass
class FakePlayer:
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    started: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    calls: asyncio.Queue[str] = field(default_factory=asyncio.Queue)

    async def start(self, session: Session, sensor: SensorConfig) -> PlaybackResult:
        await self.gate.wait()
        self.started.append(session.session_id)
        self.calls.put_nowait(f"start {session.sensor_id}")
        return PlaybackResult(started=True, device_id="dev-1", note="started")

    async def stop(self, session: Session, sensor: SensorConfig | None) -> bool:
        self.stopped.append(session.session_id)
        self.calls.put_nowait(f"stop {session.sensor_id}")
        return True


@dataclass
class Hub:
    runner: SessionRunner
    player: FakePlayer
    clock: Clock
    path: Path
    saved: asyncio.Queue[Session]
    task: asyncio.Task[None]
    monotonic: Clock
    settled: asyncio.Queue[int] = field(default_factory=asyncio.Queue)

    async def receipt(self, number: int) -> None:
        """Queue a receipt; `settled` gets `number` once everything before it is committed."""
        await self.runner.inbox.put(Receipt(partial(self.settled.put_nowait, number)))

    async def next_settled(self) -> int:
        async with asyncio.timeout(5):
            return await self.settled.get()

    def events(self) -> int:
        db = open_database(self.path)
        try:
            return int(db.execute("SELECT count(*) FROM motion_events").fetchone()[0])
        finally:
            close_database(db)

    async def motion(self, sensor: str, *, at: float | None = None) -> None:
        when = self.clock.now if at is None else at
        await self.runner.inbox.put(MotionEvent(sensor, occurred_at=when, received_at=when))

    async def next_saved(self) -> Session:
        async with asyncio.timeout(5):
            return await self.saved.get()

    def rows(self) -> list[Session]:
        db = open_database(self.path)
        try:
            return SessionRepository(db).query(SessionQuery(limit=1000))[0]
        finally:
            close_database(db)


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    path = tmp_path / "hub.db"
    clock = Clock()
    saved: asyncio.Queue[Session] = asyncio.Queue()
    player = FakePlayer()
    monotonic = Clock()
    async with StoreWriter(path, ttl_days=30) as writer:
        engine = SessionEngine(CONFIG)
        runner = SessionRunner(
            engine,
            writer,
            player,
            clock=clock,
            monotonic=monotonic,
            on_session=saved.put_nowait,
        )
        task = asyncio.create_task(runner.run(), name="runner")
        yield Hub(runner, player, clock, path, saved, task, monotonic)
        if not task.done():
            task.cancel()
        with pytest.raises((asyncio.CancelledError, ExceptionGroup)):
            await task


async def test_motion_commits_the_session_then_hands_start_to_the_player(hub: Hub) -> None:
    await hub.motion("bath")
    created = await hub.next_saved()
    assert created.sensor_id == "bath"
    assert [s.session_id for s in hub.rows()] == [created.session_id]  # committed
    hub.player.gate.set()
    assert await asyncio.wait_for(hub.player.calls.get(), 5) == "start bath"
    answered = await hub.next_saved()
    assert (answered.playback_started, answered.spotify_device_id) == (True, "dev-1")


async def test_a_receipt_is_settled_only_once_what_came_before_it_is_committed(
    hub: Hub,
) -> None:
    committed_when_settled: list[int] = []
    await hub.motion("bath")
    await hub.runner.inbox.put(Receipt(lambda: committed_when_settled.append(hub.events())))
    await hub.receipt(1)
    assert await hub.next_settled() == 1
    assert committed_when_settled == [1]  # the motion's row was there when it was settled


def _refuse_writes(*, on: bool) -> Callable[[SessionRepository], object]:
    # SQLite's own read-only switch: writes fail with SQLITE_READONLY, as on a disk
    # remounted read-only (tests/integration/test_storage_faults.py does the real thing).
    return lambda repository: repository.db.execute(f"PRAGMA query_only = {int(on)}")


async def test_a_refusing_disk_holds_rows_in_memory_and_writes_them_in_order_later(
    hub: Hub,
) -> None:
    hub.player.gate.set()
    await hub.runner.store(_refuse_writes(on=True))
    for n in range(6):  # outside the 10 s debounce: each motion counts
        await hub.motion("bath", at=T0 + n * 11)
        await hub.receipt(n)
        assert await hub.next_settled() == n  # held, not lost: acknowledged
    assert (hub.rows(), hub.events()) == ([], 0)
    assert hub.runner.unwritable is not None
    assert "database not writable" in hub.runner.unwritable
    # The session goes on as decided: music plays, state is published.
    assert await asyncio.wait_for(hub.player.calls.get(), 5) == "start bath"
    assert hub.runner.engine.active["bath"].motion_events_count == 6
    held = hub.runner.held_rows
    assert held >= 6

    await hub.runner._writer.call(_refuse_writes(on=False))
    hub.monotonic.now += RETRY_FIRST  # the retry is due
    hub.runner.poke()
    while hub.runner.held_rows:  # noqa: ASYNC110 - the runner's own count
        await asyncio.sleep(0)
    (row,) = hub.rows()
    assert (row.motion_events_count, row.playback_started, hub.events()) == (6, True, 6)
    assert hub.runner.unwritable is None


async def test_beyond_hold_rows_receipts_wait_until_the_rows_are_written(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner_module, "HOLD_ROWS", 3)
    await hub.runner.store(_refuse_writes(on=True))
    for n in range(6):  # a row each, one turn each
        await hub.motion("bath", at=T0 + n * 11)
        await hub.receipt(n)
        await hub.runner.store(lambda _repository: None)  # decided
    settled = [hub.settled.get_nowait() for _ in range(hub.settled.qsize())]
    assert settled == [0, 1, 2]  # then more than 3 rows were held: the broker keeps the rest
    await hub.runner._writer.call(_refuse_writes(on=False))
    hub.monotonic.now += RETRY_FIRST
    hub.runner.poke()
    assert [await hub.next_settled() for _ in range(3)] == [3, 4, 5]
    assert hub.events() == 6


async def test_a_hung_player_never_delays_persistence(hub: Hub) -> None:
    await hub.motion("bath")  # its start hangs: the gate stays closed
    await hub.next_saved()
    await hub.motion("hall")
    hall = await hub.next_saved()
    assert hall.sensor_id == "hall"
    assert {s.sensor_id for s in hub.rows()} == {"bath", "hall"}
    assert hub.player.started == []


async def test_a_session_ends_at_its_deadline_when_the_clock_passes_it(hub: Hub) -> None:
    hub.player.gate.set()
    await hub.motion("bath")
    created = await hub.next_saved()
    await hub.next_saved()  # playback answer
    hub.clock.now = T0 + 10_000  # long after the 5-minute deadline
    hub.runner.poke()
    ended = await hub.next_saved()
    assert not ended.is_active
    assert ended.end == created.last_motion + 300
    assert await asyncio.wait_for(hub.player.calls.get(), 5) == "start bath"
    assert await asyncio.wait_for(hub.player.calls.get(), 5) == "stop bath"
    stopped = await hub.next_saved()
    assert stopped.playback_stopped is True


async def test_a_flood_makes_one_session_with_coalesced_counts(hub: Hub) -> None:
    for i in range(1000):
        await hub.motion("bath", at=T0 + i * 0.001)  # 1,000 messages in one second
    hub.clock.now = T0 + 1
    await hub.motion("bath", at=T0 + 1)
    while True:  # wait until the last motion is persisted
        session = await hub.next_saved()
        if session.last_motion == T0 + 1:
            break
    rows = hub.rows()
    assert len(rows) == 1
    assert rows[0].motion_events_count == 1  # all inside one debounce window
    assert rows[0].last_motion == T0 + 1


async def test_unknown_sensors_are_counted_never_played(hub: Hub) -> None:
    hub.player.gate.set()
    await hub.motion("garden_shed")
    await hub.motion("hall")
    await hub.next_saved()
    assert hub.runner.counters["unknown_sensor:garden_shed"] == 1
    assert [s.sensor_id for s in hub.rows()] == ["hall"]


async def test_sessions_left_active_by_a_crash_end_at_their_old_deadline(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    clock = Clock()
    first: asyncio.Queue[Session] = asyncio.Queue()
    async with StoreWriter(path, ttl_days=30) as writer:
        engine = SessionEngine(CONFIG)
        runner = SessionRunner(
            engine, writer, FakePlayer(), clock=clock, on_session=first.put_nowait
        )
        await runner.inbox.put(MotionEvent("bath", occurred_at=T0, received_at=T0))
        task = asyncio.create_task(runner.run())
        await asyncio.wait_for(first.get(), 5)  # committed
        task.cancel()  # the "crash": nothing ended, nothing cleaned up
        with pytest.raises(asyncio.CancelledError):
            await task

    clock.now = T0 + 86_400  # the hub was down for a day
    saved: asyncio.Queue[Session] = asyncio.Queue()
    async with StoreWriter(path, ttl_days=30) as writer:
        engine = SessionEngine(CONFIG)
        engine.restore(await writer.call(lambda repo: repo.all_active()))
        runner = SessionRunner(
            engine, writer, FakePlayer(), clock=clock, on_session=saved.put_nowait
        )
        task = asyncio.create_task(runner.run())
        ended = await asyncio.wait_for(saved.get(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert not ended.is_active
    assert ended.end == T0 + 300


async def test_every_message_of_a_burst_is_decided(hub: Hub) -> None:
    # Three sensors, 1,200 motions queued at once, each 11 s apart per sensor (outside the
    # 10 s debounce; the clock stays at T0, so none is stale): every one must be decided
    # and counted, none lost however the runner batches them.
    for step in range(400):
        for sensor in ("bath", "hall"):
            hub.runner.inbox.put_nowait(
                MotionEvent(sensor, occurred_at=T0 + step * 11, received_at=T0 + step * 11)
            )
        hub.runner.inbox.put_nowait(MotionEvent("garden", T0 + step, T0 + step))
    while hub.runner.counters["motion"] < 1200:  # noqa: ASYNC110 - the runner's own count
        await asyncio.sleep(0)
    await hub.runner._writer.call(lambda _repository: None)  # everything committed
    counts = {s.sensor_id: s.motion_events_count for s in hub.rows()}
    assert counts == {"bath": 400, "hall": 400}
    assert hub.runner.counters["unknown_sensor:garden"] == 400


async def test_an_end_request_ends_the_session_in_order_and_pauses_what_the_hub_started(
    hub: Hub,
) -> None:
    hub.player.gate.set()
    await hub.motion("bath")
    created = await hub.next_saved()
    assert (await hub.next_saved()).playback_started
    hub.clock.now = T0 + 30
    ended = await hub.runner.change(EndSession(created.session_id))
    assert (ended.is_active, ended.end) == (False, T0 + 30)
    assert "bath" not in hub.runner.engine.active  # the engine knows: no second owner
    assert await asyncio.wait_for(hub.player.calls.get(), 5) == "start bath"
    assert await asyncio.wait_for(hub.player.calls.get(), 5) == "stop bath"
    await hub.next_saved()  # the end, as committed
    assert (await hub.next_saved()).playback_stopped is True
    hub.clock.now = T0 + 40
    await hub.motion("bath")  # the next motion starts a new session
    fresh = await hub.next_saved()
    assert fresh.session_id != created.session_id
    assert fresh.is_active
    by_id = {s.session_id: s for s in hub.rows()}
    assert by_id[created.session_id].end == T0 + 30  # never overwritten by the deadline


async def test_a_create_request_while_a_session_is_active_is_a_conflict(hub: Hub) -> None:
    await hub.motion("bath")
    created = await hub.next_saved()
    with pytest.raises(ConflictError) as refused:
        await hub.runner.change(CreateSession("bath"))
    assert refused.value.session_id == created.session_id
    assert [s.session_id for s in hub.rows()] == [created.session_id]


async def test_a_created_session_takes_motion_and_plays_nothing(hub: Hub) -> None:
    made = await hub.runner.change(CreateSession("bath"))
    assert made.session_id in {s.session_id for s in hub.rows()}
    hub.clock.now = T0 + 30
    await hub.motion("bath")
    while (await hub.next_saved()).motion_events_count < 2:
        pass
    assert [s.session_id for s in hub.rows()] == [made.session_id]
    assert hub.player.started == []


async def test_requests_for_unknown_or_ended_sessions_are_refused(hub: Hub) -> None:
    with pytest.raises(NotFoundError):
        await hub.runner.change(EndSession("session-nope"))
    made = await hub.runner.change(CreateSession("hall"))
    await hub.runner.change(EndSession(made.session_id))
    with pytest.raises(ConflictError, match="already ended"):
        await hub.runner.change(EndSession(made.session_id))
    with pytest.raises(ConflictError, match="takes no more motion"):
        await hub.runner.change(UpdateSession(made.session_id, increment_motion_count=True))


async def test_out_of_order_motion_is_kept_as_an_event(hub: Hub) -> None:
    hub.player.gate.set()
    await hub.motion("bath")
    await hub.next_saved()
    await hub.motion("bath", at=T0 - 120)  # buffered motion from before the session
    while hub.runner.counters["out_of_order:bath"] < 1:  # noqa: ASYNC110 - runner's count
        await asyncio.sleep(0)
    await hub.runner._writer.call(lambda _repository: None)
    db = open_database(hub.path)
    try:
        rows = db.execute("SELECT timestamp, sessionId FROM motion_events ORDER BY timestamp")
        assert [tuple(r) for r in rows] == [(T0 - 120, None), (T0, hub.rows()[0].session_id)]
    finally:
        close_database(db)


async def test_made_up_sensor_ids_cannot_grow_the_counters_without_bound(hub: Hub) -> None:
    for n in range(1_000):
        await hub.motion(f"intruder-{n}")
    while sum(v for k, v in hub.runner.counters.items() if k.startswith("unknown_")) < 1_000:  # noqa: ASYNC110
        await asyncio.sleep(0)
    assert len(hub.runner.counters) <= 201
    assert hub.runner.counters["unknown_sensor:(others)"] > 0


async def test_a_stale_session_wakes_the_runner_for_its_deadline(hub: Hub) -> None:
    # No session yet: the runner sleeps with no deadline at all. Motion from 10 minutes ago
    # makes a session whose deadline has already passed: the runner must end it unprompted.
    stale = T0 - 600
    await hub.runner.inbox.put(MotionEvent("bath", occurred_at=stale, received_at=T0))
    created = await hub.next_saved()
    ended = await hub.next_saved()  # no poke, no clock move
    assert (created.is_active, ended.is_active) == (True, False)
    assert ended.end == stale + 300


async def test_an_engine_failure_fails_the_runner(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(event: MotionEvent, now: float) -> list[Command]:
        raise EngineError("no transition")

    monkeypatch.setattr(hub.runner.engine, "on_motion", broken)
    await hub.motion("bath")
    with pytest.raises(ExceptionGroup) as failed:
        await asyncio.wait_for(hub.task, 5)
    assert failed.group_contains(EngineError)


async def test_a_stuck_disk_fills_the_bounded_inbox_and_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    async with StoreWriter(path, ttl_days=30) as writer:
        runner = SessionRunner(SessionEngine(CONFIG), writer, FakePlayer(), inbox_size=100)
        task = asyncio.create_task(runner.run())
        gate = threading.Event()
        blocked = asyncio.ensure_future(writer.call(lambda _repository: gate.wait(5)))
        accepted = 0
        with contextlib.suppress(asyncio.QueueFull):
            for n in range(10_000):  # buffered motion from before any session: kept as events
                runner.inbox.put_nowait(MotionEvent("bath", T0 + n * 11, T0 + n * 11))
                accepted += 1
                await asyncio.sleep(0)
        assert accepted < 100 + MAX_BATCH  # memory stays bounded: the inbox pushes back
        gate.set()
        await blocked
        while runner.counters["motion"] < accepted:  # noqa: ASYNC110 - the runner's count
            await asyncio.sleep(0)
        await writer.call(lambda _repository: None)
        runner.finish()
        await asyncio.wait_for(task, 5)
    db = open_database(path)
    try:
        (events,) = db.execute("SELECT count(*) FROM motion_events").fetchone()
        assert events == accepted
    finally:
        close_database(db)


@dataclass
class HungStart(FakePlayer):
    """Its start answers only when the test says so; its stop answers at once."""

    async def start(self, session: Session, sensor: SensorConfig) -> PlaybackResult:
        self.calls.put_nowait(f"start {session.sensor_id}")
        await self.gate.wait()
        self.started.append(session.session_id)
        return PlaybackResult(started=True, device_id="dev-1", note="started")


async def test_finishing_waits_for_a_start_in_flight_then_pauses_and_records_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "hub.db"
    player = HungStart()
    async with StoreWriter(path, ttl_days=30) as writer:
        runner = SessionRunner(SessionEngine(CONFIG), writer, player, clock=Clock())
        task = asyncio.create_task(runner.run())
        await runner.inbox.put(MotionEvent("bath", occurred_at=T0, received_at=T0))
        assert await asyncio.wait_for(player.calls.get(), 5) == "start bath"  # in flight
        runner.finish()  # SIGTERM now, while Spotify is still answering
        await asyncio.sleep(0)
        player.gate.set()  # the start lands after the stop began
        await asyncio.wait_for(task, 5)
    assert player.stopped == player.started  # what started was paused
    db = open_database(path)
    try:
        (row,) = SessionRepository(db).all_active()
    finally:
        close_database(db)
    assert (row.playback_started, row.playback_stopped) == (True, True)  # and recorded


async def test_a_start_that_never_answers_does_not_hold_the_finish(tmp_path: Path) -> None:
    player = HungStart()
    async with StoreWriter(tmp_path / "hub.db", ttl_days=30) as writer:
        runner = SessionRunner(SessionEngine(CONFIG), writer, player, clock=Clock())
        task = asyncio.create_task(runner.run())
        await runner.inbox.put(MotionEvent("bath", occurred_at=T0, received_at=T0))
        await asyncio.wait_for(player.calls.get(), 5)
        loop = asyncio.get_running_loop()
        began = loop.time()
        runner.finish()
        await asyncio.wait_for(task, PLAYBACK_WAIT + 2)
        assert loop.time() - began < PLAYBACK_WAIT + 1


@dataclass
class GatedStops(FakePlayer):
    """Starts answer at once; every stop waits for the gate (a slow Spotify)."""

    async def start(self, session: Session, sensor: SensorConfig) -> PlaybackResult:
        self.started.append(session.session_id)
        # A speaker per room: pauses on different speakers go side by side.
        return PlaybackResult(started=True, device_id=f"dev-{sensor.id}", note="started")

    async def stop(self, session: Session, sensor: SensorConfig | None) -> bool:
        self.calls.put_nowait(f"stop {session.sensor_id}")
        await self.gate.wait()
        self.stopped.append(session.sensor_id)
        return True


async def test_finishing_pauses_ended_and_active_sessions_side_by_side(tmp_path: Path) -> None:
    # bath ended (its stop in flight), hall ended (its stop queued), porch still plays:
    # the finish pauses all three together, within its one deadline, and records them.
    config = HubConfig(
        sessions=SessionsSection(timeout_minutes=5, debounce_seconds=10),
        sensors=tuple(SensorConfig(id=s, user_id="u") for s in ("bath", "hall", "porch")),
    )
    clock, player = Clock(), GatedStops()
    path = tmp_path / "hub.db"
    saved: asyncio.Queue[Session] = asyncio.Queue()
    async with StoreWriter(path, ttl_days=30) as writer:
        runner = SessionRunner(
            SessionEngine(config), writer, player, clock=clock, on_session=saved.put_nowait
        )
        task = asyncio.create_task(runner.run())
        for sensor in ("bath", "hall"):
            await runner.inbox.put(MotionEvent(sensor, T0, T0))
        clock.now = T0 + 200
        await runner.inbox.put(MotionEvent("porch", clock.now, clock.now))
        started: set[str] = set()
        while len(started) < 3:  # every start answered and recorded before anything ends
            session = await asyncio.wait_for(saved.get(), 5)
            if session.playback_started:
                started.add(session.sensor_id)
        clock.now = T0 + 301  # bath and hall end
        runner.poke()
        assert await asyncio.wait_for(player.calls.get(), 5) == "stop bath"  # in flight
        runner.finish()  # SIGTERM now
        for _ in range(2):  # hall's queued stop and porch's pause start without waiting
            assert (await asyncio.wait_for(player.calls.get(), 5)).startswith("stop ")
        player.gate.set()
        await asyncio.wait_for(task, PLAYBACK_WAIT + 2)
    assert sorted(player.stopped) == ["bath", "hall", "porch"]
    db = open_database(path)
    try:
        rows = {s.sensor_id: s for s in SessionRepository(db).query(SessionQuery(limit=10))[0]}
    finally:
        close_database(db)
    assert {sensor: row.playback_stopped for sensor, row in rows.items()} == {
        "bath": True,
        "hall": True,
        "porch": True,
    }
    assert rows["porch"].is_active  # kept for the next start to take over


@dataclass
class SharedSpeaker(FakePlayer):
    """Every session plays on one speaker; records how many pauses ran at once."""

    running: int = 0
    most_at_once: int = 0

    async def start(self, session: Session, sensor: SensorConfig) -> PlaybackResult:
        self.started.append(session.session_id)
        return PlaybackResult(started=True, device_id="dev-shared", note="started")

    async def stop(self, session: Session, sensor: SensorConfig | None) -> bool:
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        for _ in range(3):  # a GET, then a PUT: other tasks get their turns meanwhile
            await asyncio.sleep(0)
        self.running -= 1
        self.stopped.append(session.sensor_id)
        return True


async def test_finishing_pauses_one_speaker_one_session_at_a_time(tmp_path: Path) -> None:
    # Two rooms on one speaker: both pausing at once would both see it playing and the
    # second pause would be refused (403: already paused).
    clock, player = Clock(), SharedSpeaker()
    saved: asyncio.Queue[Session] = asyncio.Queue()
    async with StoreWriter(tmp_path / "hub.db", ttl_days=30) as writer:
        runner = SessionRunner(
            SessionEngine(CONFIG), writer, player, clock=clock, on_session=saved.put_nowait
        )
        task = asyncio.create_task(runner.run())
        for sensor in ("bath", "hall"):
            await runner.inbox.put(MotionEvent(sensor, T0, T0))
        started: set[str] = set()
        while len(started) < 2:
            session = await asyncio.wait_for(saved.get(), 5)
            if session.playback_started:
                started.add(session.sensor_id)
        runner.finish()
        await asyncio.wait_for(task, PLAYBACK_WAIT + 2)
    assert sorted(player.stopped) == ["bath", "hall"]
    assert player.most_at_once == 1


async def test_controls_are_the_runners_in_order_saved_and_obeyed(hub: Hub) -> None:
    hub.player.gate.set()
    await hub.motion("bath")
    created = await hub.next_saved()
    assert await asyncio.wait_for(hub.player.calls.get(), 5) == "start bath"
    # "End session now" ends the room's session and pauses what the hub started.
    await hub.runner.control(ControlCommand("end_session", "bath", source="test"))
    assert "bath" not in hub.runner.engine.active
    assert await asyncio.wait_for(hub.player.calls.get(), 5) == "stop bath"
    # Do-not-disturb, over MQTT (a bare command): saved, and the next session is silent.
    await hub.runner.inbox.put(ControlCommand("dnd", "bath", value=True))
    hub.clock.now = T0 + 60
    await hub.motion("bath")
    while (session := await hub.next_saved()).session_id == created.session_id:
        pass
    assert session.playback_note == "do_not_disturb"
    assert hub.player.calls.empty()
    db = open_database(hub.path)
    try:
        assert Controls.from_json(get_meta(db, CONTROLS_KEY)).own_dnd("bath", T0 + 60)
    finally:
        close_database(db)
    # Do-not-disturb switched on stops music playing there now: its session ends.
    await hub.motion("hall")
    assert await asyncio.wait_for(hub.player.calls.get(), 5) == "start hall"
    await hub.runner.control(ControlCommand("dnd", None, value=True))
    assert await asyncio.wait_for(hub.player.calls.get(), 5) == "stop hall"
    assert set(hub.runner.engine.active) == {"bath"}  # silent already: it goes on
    # A room not configured is refused, and nothing changes.
    with pytest.raises(ValidationError):
        await hub.runner.control(ControlCommand("dnd", "garden", value=True))
    assert hub.runner.counters["control_refused"] == 1


async def test_learned_timeouts_are_learned_in_order_and_used_at_once(tmp_path: Path) -> None:
    auto = dataclasses.replace(
        CONFIG,
        sensors=(
            SensorConfig(id="bath", user_id="u", timeout_minutes="auto", timeout_bounds=(2, 15)),
        ),
    )
    path = tmp_path / "hub.db"
    db = open_database(path)
    try:
        history(db, [3600.0] * 29, room="bath")  # 30 sessions, no false ends: the shortest
    finally:
        close_database(db)
    async with StoreWriter(path, ttl_days=30) as writer:
        runner = SessionRunner(SessionEngine(auto), writer, FakePlayer(), clock=Clock())
        task = asyncio.create_task(runner.run())
        await runner.inbox.put(MotionEvent("bath", occurred_at=T0, received_at=T0))
        db = open_database(path)
        try:
            learned = learn_timeouts(db, auto.learned_bounds())
        finally:
            close_database(db)
        assert learned["bath"].describe() == "timeout 2 min, learned from 30 sessions"
        await asyncio.wait_for(runner.use_timeouts(learned), 5)
        assert runner.engine.deadline(runner.engine.active["bath"]) == T0 + 120
        runner.finish(pause_active=False)
        await asyncio.wait_for(task, 5)
