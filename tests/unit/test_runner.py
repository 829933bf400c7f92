"""The runner with a real SQLite file and writer thread, a fake clock and a fake player."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pytest

from hub.config import HubConfig, SensorConfig, SessionsSection
from hub.ingest.mqtt_decode import StatusUpdate
from hub.model import MotionEvent, Session, open_session
from hub.playback.port import PlaybackResult
from hub.sessions.engine import Command, EngineError, SessionEngine
from hub.sessions.runner import MAX_WRITES_IN_FLIGHT, SessionRunner
from hub.store import SessionRepository, close_database, open_database
from hub.store.sessions import SessionQuery
from hub.store.writer import StoreWriter

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
    async with StoreWriter(path, ttl_days=30) as writer:
        engine = SessionEngine(CONFIG)
        runner = SessionRunner(engine, writer, player, clock=clock, on_session=saved.put_nowait)
        task = asyncio.create_task(runner.run(), name="runner")
        yield Hub(runner, player, clock, path, saved, task)
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


def adopted(hub: Hub) -> bool:
    return "session-bath-invoked" in {s.session_id for s in hub.runner.engine.active.values()}


async def test_a_session_made_by_another_writer_is_adopted_not_duplicated(hub: Hub) -> None:
    hub.player.gate.set()
    # `spottypotty invoke create_session` beside the running daemon: the engine never saw it.
    outsider = open_session(
        session_id="session-bath-invoked",
        sensor_id="bath",
        user_id="u",
        start=T0,
        now=T0,
        ttl_days=30,
    )
    await hub.runner._writer.call(partial(SessionRepository.save, session=outsider, created=True))
    await hub.motion("bath")  # the engine makes its own session: the database refuses it
    while not adopted(hub):  # noqa: ASYNC110 - until the runner adopts it
        await asyncio.sleep(0)
    hub.clock.now = T0 + 30
    await hub.motion("bath")
    extended = await hub.next_saved()
    assert extended.session_id == "session-bath-invoked"
    assert extended.motion_events_count == 2
    assert [s.session_id for s in hub.rows()] == ["session-bath-invoked"]
    assert hub.player.started == []  # no music for a session that never existed


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


async def idle(runner: SessionRunner) -> None:
    """Until the runner waits on an empty inbox (where `offer` may decide at once)."""
    async with asyncio.timeout(5):
        while not runner.offer_ready:  # noqa: ASYNC110 - the runner's own state
            await asyncio.sleep(0)


async def test_an_offered_motion_is_decided_at_once_by_an_idle_runner(hub: Hub) -> None:
    await idle(hub.runner)
    assert hub.runner.offer(MotionEvent("bath", occurred_at=T0, received_at=T0))
    assert hub.runner.counters["motion"] == 1  # decided in the caller's turn, no task switch
    assert set(hub.runner.engine.active) == {"bath"}
    created = await hub.next_saved()
    assert [s.session_id for s in hub.rows()] == [created.session_id]


async def test_an_offer_never_overtakes_what_is_queued(hub: Hub) -> None:
    await idle(hub.runner)
    queued = MotionEvent("bath", occurred_at=T0, received_at=T0)
    hub.runner.inbox.put_nowait(queued)
    assert not hub.runner.offer(MotionEvent("hall", occurred_at=T0, received_at=T0))
    assert hub.runner.counters["motion"] == 0
    assert hub.runner.inbox.get_nowait() is queued


async def test_only_motion_is_decided_at_once(hub: Hub) -> None:
    await idle(hub.runner)
    status = StatusUpdate("bath", online=True, received_at=T0)
    assert not hub.runner.offer(status)  # recording availability awaits the writer


async def test_an_offered_session_wakes_the_runner_for_its_deadline(hub: Hub) -> None:
    # No session yet: the runner sleeps with no deadline at all. Motion from 10 minutes ago
    # makes a session whose deadline has already passed: the runner must wake for it now.
    await idle(hub.runner)
    stale = T0 - 600
    assert hub.runner.offer(MotionEvent("bath", occurred_at=stale, received_at=T0))
    created = await hub.next_saved()
    assert created.is_active
    ended = await hub.next_saved()  # no poke, no clock move: the re-armed timer did it
    assert not ended.is_active
    assert ended.end == stale + 300


async def test_an_engine_failure_in_an_offer_fails_the_runner(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    await idle(hub.runner)

    def broken(event: MotionEvent, now: float) -> list[Command]:
        raise EngineError("no transition")

    monkeypatch.setattr(hub.runner.engine, "on_motion", broken)
    assert hub.runner.offer(MotionEvent("bath", occurred_at=T0, received_at=T0))
    # Failing: nothing more is decided on the engine's half-changed state.
    assert not hub.runner.offer(MotionEvent("hall", occurred_at=T0, received_at=T0))
    with pytest.raises(ExceptionGroup) as failed:
        await asyncio.wait_for(hub.task, 5)
    assert failed.group_contains(EngineError)


async def test_poke_and_offer_while_the_runner_is_already_waking_up(hub: Hub) -> None:
    # The runner's timer has fired, and the runner has not run yet: a poke or an offer in
    # that moment (the same loop turn) must neither fail nor be lost.
    await idle(hub.runner)
    loop = asyncio.get_running_loop()
    outcomes: list[object] = []

    def attempt(action: Callable[[], object]) -> None:
        try:
            outcomes.append(action())
        except Exception as exc:  # noqa: BLE001 - what the test looks for
            outcomes.append(exc)

    hub.runner.poke()  # the timer fires at the start of the next loop turn …
    event = MotionEvent("bath", occurred_at=T0 - 600, received_at=T0)  # already due to end
    loop.call_soon(attempt, hub.runner.poke)  # … and these run in that same turn, after it
    loop.call_soon(attempt, partial(hub.runner.offer, event))
    created = await hub.next_saved()
    ended = await hub.next_saved()
    assert outcomes == [None, True]
    assert (created.is_active, ended.is_active) == (True, False)


async def test_out_of_order_events_count_against_the_writes_in_flight(hub: Hub) -> None:
    hub.player.gate.set()
    await hub.motion("bath")
    await hub.next_saved()
    gate = threading.Event()
    blocked = hub.runner._writer.submit(lambda _repository: gate.wait(5))  # a stuck disk
    flood = MAX_WRITES_IN_FLIGHT + 50
    for n in range(flood):  # buffered motion from before the session: kept, never decided
        at = T0 - 1_000 + n * 0.01
        hub.runner.inbox.put_nowait(MotionEvent("bath", occurred_at=at, received_at=T0))
    for _ in range(5_000):  # the runner may go as far as the bound lets it
        await asyncio.sleep(0)
    assert hub.runner.counters["out_of_order:bath"] <= MAX_WRITES_IN_FLIGHT + 1
    assert not hub.runner.inbox.empty()  # the rest waits: memory stays bounded
    gate.set()
    await blocked
    while hub.runner.counters["out_of_order:bath"] < flood:  # noqa: ASYNC110 - runner's count
        await asyncio.sleep(0)
    await hub.runner._writer.call(lambda _repository: None)
    db = open_database(hub.path)
    try:
        kept = db.execute("SELECT count(*) FROM motion_events WHERE sessionId IS NULL")
        assert kept.fetchone()[0] == flood
    finally:
        close_database(db)
