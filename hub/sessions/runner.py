"""The session runner: feeds motion and deadlines to the engine and carries out its
commands — persistence through the one store writer, playback through the `Player` in a
task of its own, so a slow or hung player never delays ingest or persistence.

The engine is only ever called from this event loop, between awaits, so it needs no lock.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from functools import partial

from hub.errors import ConflictError, HubError
from hub.ingest.mqtt_decode import MotionCleared, StatusUpdate
from hub.model import MotionEvent, Session
from hub.playback.port import Player
from hub.sessions.engine import (
    Command,
    DropEvent,
    PersistSession,
    SessionEngine,
    StartPlayback,
    StopPlayback,
)
from hub.store.sensors import SensorRepository
from hub.store.sessions import SessionRepository
from hub.store.writer import StoreWriter

_LOGGER = logging.getLogger(__name__)

Inbound = MotionEvent | StatusUpdate | MotionCleared
# Sessions the engine starts without asking for music, and why, for the log.
_SILENT_STARTS = {"quiet_hours": "quiet hours", "stale": "the motion is older than the timeout"}
PlayerCommand = StartPlayback | StopPlayback
MAX_WRITES_IN_FLIGHT = 1_000
MAX_COUNTERS = 200


def _nothing(_repository: SessionRepository) -> None:
    """A writer call that only waits for what was queued before it."""


class SessionRunner:
    def __init__(
        self,
        engine: SessionEngine,
        writer: StoreWriter,
        player: Player,
        *,
        clock: Callable[[], float] = time.time,
        on_session: Callable[[Session], None] | None = None,
        inbox_size: int = 10_000,
    ) -> None:
        self.engine = engine
        self._writer = writer
        self._player = player
        self._clock = clock
        self._on_session = on_session
        self._inbox: asyncio.Queue[Inbound] = asyncio.Queue(maxsize=inbox_size)
        self._waiting: asyncio.Timeout | None = None
        self._idle = False  # waiting on an empty inbox: offer() may decide at once
        self._failure: Exception | None = None  # raised by offer()'s decision
        # Each player command with the number of saves that must be reported first (its
        # session's row among them).
        self._player_queue: asyncio.Queue[tuple[PlayerCommand, int]] = asyncio.Queue()
        self._saves_queued = 0
        self._saves_reported = 0  # the writer reports saves in the order they were queued
        self._unsaved: set[str] = set()  # failed creations whose StartPlayback is queued
        self._created = False  # a session was created since the runner armed its timer
        self._conflicts: list[str] = []  # sensors whose active session another writer made
        self.counters: Counter[str] = Counter()
        self.last_decision = clock()

    @property
    def inbox(self) -> asyncio.Queue[Inbound]:
        """Where ingest adapters put what they decoded (bounded: a flood pushes back)."""
        return self._inbox

    def poke(self) -> None:
        """Look at the clock again now (the clock may have jumped, or a test moved it)."""
        self._wake_at(asyncio.get_running_loop().time())

    def _wake_at(self, when: float) -> None:
        """Wake the waiting runner at loop time `when` if that is sooner than planned.

        Only ever sooner; and a timer that has fired is left alone: the runner is waking
        up, and its Timeout refuses a reschedule (asyncio may fire a timer a clock tick
        early, so "sooner" alone does not rule that out).
        """
        waiting = self._waiting
        if waiting is None or waiting.expired():
            return
        armed = waiting.when()
        if armed is None or when < armed:
            waiting.reschedule(when)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self._decide(), name="runner-decide")
            group.create_task(self._play(), name="runner-player")

    async def _decide(self) -> None:
        while True:
            await self._bound_in_flight()
            item = await self._next_item()
            if self._failure is not None:
                raise self._failure
            await self._adopt_conflicts()
            if isinstance(item, StatusUpdate) and self.engine.knows(item.sensor_id):
                await self._record_availability(item)
            self._decide_now(item)

    @property
    def offer_ready(self) -> bool:
        """Whether the runner waits on an empty inbox, so `offer` may decide at once."""
        return self._idle and self._inbox.empty()

    def offer(self, item: Inbound) -> bool:
        """Decide a motion event at once, in the caller's turn of the event loop, when the
        runner waits for work and nothing is queued ahead of it; else False (queue it).

        Under a flood this saves a task wake-up and a timer per message: the MQTT link
        offers each message from its socket callback before it queues it.
        """
        if (
            self._failure is not None  # the runner is failing: decide nothing more
            or not self.offer_ready
            or not isinstance(item, MotionEvent)
            or self._conflicts
            or self._saves_queued - self._saves_reported >= MAX_WRITES_IN_FLIGHT
        ):
            return False
        try:
            self._decide_now(item)
        except Exception as exc:  # noqa: BLE001 - our bug: the runner task fails with it
            self._failure = exc
            self.poke()
            return True
        if self._created:  # only a new session can bring a deadline sooner than the armed one
            self._rearm()
        return True

    def _decide_now(self, item: Inbound | None) -> None:
        now = self._clock()
        self.last_decision = now
        match item:
            case MotionEvent():
                self.counters["motion"] += 1
                commands = self.engine.on_motion(item, now)
            case StatusUpdate() if not self.engine.knows(item.sensor_id):
                self._count("unknown_sensor_status", item.sensor_id)
                commands = self.engine.on_tick(now)
            case StatusUpdate():
                self.counters["status"] += 1
                commands = self.engine.on_tick(now)  # a busy inbox must not hold deadlines
            case MotionCleared():
                self.counters["motion_cleared"] += 1  # a clear never ends or starts anything
                commands = self.engine.on_tick(now)
            case None:  # a deadline came, or a poke
                commands = self.engine.on_tick(now)
        self._execute(commands)

    def _rearm(self) -> None:
        """The runner sleeps until the deadline it saw: wake it earlier if one came sooner."""
        self._created = False
        delay = self._until_deadline()
        if delay is not None:
            self._wake_at(asyncio.get_running_loop().time() + delay)

    def _until_deadline(self) -> float | None:
        """Seconds until the engine's next deadline (0 when due), or None without one."""
        deadline = self.engine.next_deadline()
        return None if deadline is None else max(0.0, deadline - self._clock())

    async def _adopt_conflicts(self) -> None:
        while self._conflicts:
            sensor_id = self._conflicts.pop()
            stored = await self._writer.call(
                partial(SessionRepository.active_for, sensor_id=sensor_id)
            )
            if stored is not None:
                self.engine.adopt(stored)
                _LOGGER.warning(
                    "sensor %s: adopted session %s, made outside the hub's own motion handling",
                    sensor_id,
                    stored.session_id,
                )

    async def _next_item(self) -> Inbound | None:
        """The next decoded message, or None when a deadline (or a poke) comes first.

        Under load no timer is armed per message: deciding any message ends what is due.
        """
        if not self._inbox.empty():
            return self._inbox.get_nowait()
        wait = self._until_deadline()
        self._created = False
        self._idle = True
        try:
            async with asyncio.timeout(wait) as self._waiting:
                return await self._inbox.get()
        except TimeoutError:
            return None
        finally:
            self._idle = False
            self._waiting = None

    async def _record_availability(self, status: StatusUpdate) -> None:
        def record(repository: SessionRepository) -> bool:
            return SensorRepository(repository.db).record_availability(
                status.sensor_id, online=status.online, at=status.received_at
            )

        try:
            if await self._writer.call(record):
                _LOGGER.info(
                    "sensor %s is %s",
                    status.sensor_id,
                    "online" if status.online else "offline",
                    extra={"SENSOR_ID": status.sensor_id},
                )
        except HubError:
            self.counters["persist_failed"] += 1
            _LOGGER.exception("could not record the status of sensor %s", status.sensor_id)

    def _execute(self, commands: Iterable[Command]) -> None:
        """Hand writes to the writer without waiting for each commit (so a burst becomes
        one group commit); playback waits for its session's row, in the player task."""
        for command in commands:
            match command:
                case PersistSession(session=session, created=created, event=event):
                    self._writer.save(session, created=created, event=event, then=self._persisted)
                    self._saves_queued += 1
                    self._created |= created
                case StartPlayback() | StopPlayback():
                    self._player_queue.put_nowait((command, self._saves_queued))
                case DropEvent(event=event, reason=reason):
                    self._count(reason, event.sensor_id)
                    _LOGGER.debug("dropped motion from %s: %s", event.sensor_id, reason)
                    if reason == "out_of_order":  # real motion of a known sensor: keep it
                        kept = self._writer.submit(
                            partial(SessionRepository.record_event, event=event)
                        )
                        self._saves_queued += 1  # counted for back-pressure like a save
                        kept.add_done_callback(self._event_recorded)

    def _event_recorded(self, written: asyncio.Future[None]) -> None:
        self._saves_reported += 1
        if not written.cancelled() and (error := written.exception()) is not None:
            self.counters["persist_failed"] += 1
            _LOGGER.error("could not save a motion event: %s", error)

    def _count(self, reason: str, sensor_id: str) -> None:
        """A per-sensor counter; made-up sensor ids share one once there are many, so a
        flood of random topics cannot grow memory (or the stats topic) without bound."""
        key = f"{reason}:{sensor_id}"
        if key not in self.counters and len(self.counters) >= MAX_COUNTERS:
            key = f"{reason}:(others)"
        self.counters[key] += 1

    async def _bound_in_flight(self) -> None:
        """Back-pressure: a disk slower than the radio must not grow memory without bound."""
        while self._saves_queued - self._saves_reported > MAX_WRITES_IN_FLIGHT:
            await self._writer.call(_nothing)

    def _persisted(self, session: Session, created: bool, error: BaseException | None) -> None:
        self._saves_reported += 1
        if error is not None:
            self.counters["persist_failed"] += 1
            _LOGGER.error("could not save session %s: %s", session.session_id, error)
            if created and session.playback_note is None:
                # A StartPlayback for it is queued: the player task skips it (and forgets
                # the entry), so this holds no more than the player queue does.
                self._unsaved.add(session.session_id)
            if created and isinstance(error, ConflictError):
                # Another writer (invoke, the API) made the sensor's active session first:
                # the decision loop adopts it, so motion extends the session that exists.
                self._conflicts.append(session.sensor_id)
                self.poke()
            return
        if created and session.playback_note in _SILENT_STARTS:
            _LOGGER.info(
                "session %s for %s: no music (%s)",
                session.session_id,
                session.sensor_id,
                _SILENT_STARTS[session.playback_note],
                extra={"SENSOR_ID": session.sensor_id, "SESSION_ID": session.session_id},
            )
        if self._on_session is not None:
            self._on_session(session)

    async def _play(self) -> None:
        """One playback at a time, in order, each after its session's row is committed;
        answers go back to the engine."""
        while True:
            command, saves_before = await self._player_queue.get()
            if self._saves_reported < saves_before:
                # Everything queued so far is committed (or failed) when this call runs.
                await self._writer.call(_nothing)
            session = command.session
            match command:
                case StartPlayback(sensor=sensor):
                    if session.session_id in self._unsaved:
                        self._unsaved.discard(session.session_id)
                        continue  # no row, no music: the session does not exist
                    result = await self._player.start(session, sensor)
                    answer = self.engine.on_playback_started(
                        session.session_id,
                        started=result.started,
                        device_id=result.device_id,
                        note=result.note,
                        now=self._clock(),
                    )
                case StopPlayback(sensor=stop_sensor):
                    stopped = await self._player.stop(session, stop_sensor)
                    answer = self.engine.on_playback_stopped(
                        session.session_id, stopped=stopped, now=self._clock()
                    )
            self._execute(answer)

    async def pause_all(self) -> None:
        """At shutdown: pause what the hub started for sessions still active."""
        for session in self.engine.active.values():
            if session.playback_started:
                await self._player.stop(session, None)
