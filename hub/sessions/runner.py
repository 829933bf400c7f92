"""The session runner: the one owner of session state while the hub runs.

Everything that changes sessions is an item in one bounded inbox, taken in order by one
consumer: motion and sensor status (MQTT, BLE), the player's answers, and requests
(`invoke` from the CLI over the control socket, the HTTP API). Per turn the consumer

1. takes what is queued as a batch (waiting for the first item at most until the engine's
   next deadline),
2. lets the pure engine decide each item, in order (deadlines that passed come first),
3. writes the batch's rows in one transaction through the store writer, and
4. only once they are committed, publishes the sessions and hands playback to the player.

Music therefore never starts for a session whose row is not committed. Ingest adapters
queue a `Receipt` behind what they hand on; it is settled after the commit that holds
everything before it, so MQTT acknowledges only committed motion.

When the disk refuses writes (full, read-only, I/O error, file replaced), the decided rows
are held in memory, in order, and written with the next successful commit (retried with
backoff; `unwritable` says why meanwhile). The engine's state stays as decided, so
sessions go on, music plays and receipts are settled while at most HOLD_ROWS rows are
held; beyond that receipts wait, and the broker keeps what is not acknowledged.

The player runs in tasks of their own, one per speaker, each taking its speaker's commands
one at a time, in order: a hung Spotify never delays ingest, and a speaker that hangs never
delays another room's music. Their answers come back through the inbox like everything
else. A request, or a status update, needs the database's answer before the next item is
decided, so what came before it is committed first. While a batch commits, the next one
gathers in the inbox (group commit); a full inbox makes the ingest adapters wait
(back-pressure).

The engine is only ever called from the consumer, so it needs no lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final, TypeVar

from hub.clock import HubClock
from hub.config import SensorConfig
from hub.controls import ControlCommand, Controls, apply, check
from hub.errors import HubError, StorageUnavailableError, StoreError
from hub.futures import settle
from hub.ingest.mqtt_decode import Inbound, StatusUpdate
from hub.model import MotionEvent, Receipt, SensorState, Session
from hub.playback.port import Follower, PlaybackResult, Player
from hub.sessions.changes import Change, CreateSession, EndSession
from hub.sessions.engine import (
    Command,
    DropEvent,
    PersistSession,
    SessionEngine,
    StartPlayback,
    StopPlayback,
    TransferPlayback,
)
from hub.store.meta import CONTROLS_KEY, set_meta
from hub.store.sensors import SensorRepository
from hub.store.sessions import SessionRepository
from hub.store.timeouts import Learned
from hub.store.writer import Save, StoreWriter

_LOGGER = logging.getLogger(__name__)
_T = TypeVar("_T")

PlayerCommand = StartPlayback | StopPlayback | TransferPlayback
# Sessions the engine starts without asking for music, and why, for the log.
_SILENT_STARTS: Final = {
    "quiet_hours": "quiet hours",
    "stale": "the motion is older than the timeout",
    "do_not_disturb": "do-not-disturb",
}
MAX_BATCH: Final = 1_000  # items decided and committed together at most
BUSY_BATCH: Final = 4  # a turn this big means a flood …
LINGER: Final = 0.002  # … so the next turn gathers this long before it decides
MAX_COUNTERS: Final = 200
# Shutdown (SIGTERM ends the hub within 5 s): the player's work gets this much in all.
PLAYBACK_WAIT: Final = 2.0
# While the database cannot be written: rows kept in memory before receipts wait (about
# 5 MB), and the retry backoff (doubling from the first to the cap, in seconds).
HOLD_ROWS: Final = 10_000
RETRY_FIRST: Final = 0.5
RETRY_CAP: Final = 30.0


@dataclass(frozen=True, slots=True)
class _Started:
    """The player's answer to a StartPlayback, or to a TransferPlayback (the music moved to
    this session's speaker is its start)."""

    session_id: str
    result: PlaybackResult


@dataclass(frozen=True, slots=True)
class _Stopped:
    """The player's answer to a StopPlayback."""

    session_id: str
    stopped: bool


_Answer = _Started | _Stopped
# A player that cannot move music answers every move with this.
_CANNOT_MOVE: Final = PlaybackResult(started=False, note="cannot_move")


@dataclass(frozen=True, slots=True)
class _Request:
    """A create, update or end from `invoke` or the API; `answer` gets the session or the
    HubError that refused it."""

    change: Change
    answer: asyncio.Future[Session]


@dataclass(frozen=True, slots=True)
class _StoreCall:
    """A database write that must happen in order with session changes (e.g. a sensor's
    display name)."""

    function: Callable[[SessionRepository], Any]
    answer: asyncio.Future[Any]


@dataclass(frozen=True, slots=True)
class _ControlRequest:
    """A control command from `spottypotty dnd`, the dashboard or the API; `answer` gets the
    controls it leaves, or the HubError that refused it. (MQTT's come as bare commands.)"""

    command: ControlCommand
    answer: asyncio.Future[Controls]


@dataclass(frozen=True, slots=True)
class _UseTimeouts:
    """Rooms' timeouts learned from their history (`timeout_minutes = "auto"`), to use from
    the next decision on; `answer` is settled once they are."""

    learned: Mapping[str, Learned]
    answer: asyncio.Future[None]


class _Tick:
    """Look at the clock now (it may have jumped, or a test moved it)."""


_TICK: Final = _Tick()
_Item = (
    Inbound
    | ControlCommand
    | _Started
    | _Stopped
    | _Request
    | _StoreCall
    | _ControlRequest
    | _UseTimeouts
    | _Tick
)


@dataclass(slots=True)
class _Turn:
    """What one turn decided: rows to commit, then playback to hand on."""

    saves: list[Save] = field(default_factory=list)
    playback: list[PlayerCommand] = field(default_factory=list)


class SessionRunner:
    def __init__(
        self,
        engine: SessionEngine,
        writer: StoreWriter,
        player: Player,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        on_session: Callable[[Session], None] | None = None,
        on_control: Callable[[ControlCommand, Controls], None] | None = None,
        controls: Controls | None = None,
        inbox_size: int = 10_000,
    ) -> None:
        self.engine = engine
        # People's controls (hub.controls): the runner's to change, the engine's to obey.
        self.controls = controls if controls is not None else Controls()
        engine.set_controls(self.controls)
        self._on_control = on_control
        self._writer = writer
        self._player = player
        self._clock = clock
        self._monotonic = monotonic
        self._held: list[Save] = []  # decided, not yet written: the disk refused them
        self._waiting_receipts: list[Receipt] = []  # settled once fewer than HOLD_ROWS held
        self._retry_at = 0.0  # monotonic: when to try writing what is held again
        self._retry_delay = RETRY_FIRST
        self.unwritable: str | None = None  # why the database cannot be written, while so
        self._unwritable_since: float | None = None  # monotonic
        self.storage_changed = asyncio.Event()  # set when `unwritable` changes: tell people
        self._on_session = on_session
        self._inbox: asyncio.Queue[_Item] = asyncio.Queue(maxsize=inbox_size)
        # One lane per speaker: its queue, and its player call in flight.
        self._lanes: dict[str, asyncio.Queue[PlayerCommand]] = {}
        self._in_flight: dict[str, asyncio.Future[_Answer]] = {}
        self._players: asyncio.TaskGroup | None = None  # where lane tasks run, while running
        self._lane_tasks: list[asyncio.Task[None]] = []
        self._finishing = False
        self._last_batch = 0
        self._pause_active = True
        self._playback_wait = PLAYBACK_WAIT
        self.counters: Counter[str] = Counter()
        self.last_decision = clock()
        # The hub's clock (hub/clock.py) is watched for steps and synchronisation; a plain
        # callable (tests, one-off `invoke`) is taken as it is.
        self._hub_clock = clock if isinstance(clock, HubClock) else None
        # After a step: how many items already queued were stamped before it, and by how
        # much to move them.
        self._restamp: tuple[int, float] = (0, 0.0)
        self._clock_unsaved = False  # the store's correction failed: try again next turn

    @property
    def inbox(self) -> asyncio.Queue[Inbound]:
        """Where ingest adapters put what they decoded (bounded: a flood pushes back)."""
        return self._inbox  # type: ignore[return-value] # adapters only ever put Inbound

    @property
    def held_rows(self) -> int:
        """Rows decided but not yet written (the database refused them; retried)."""
        return len(self._held)

    def unwritable_for(self) -> float:
        """Seconds since the database last refused a write with nothing written since
        (0 while writes succeed)."""
        since = self._unwritable_since
        return 0.0 if since is None else self._monotonic() - since

    def poke(self) -> None:
        """Look at the clock again now (the clock may have jumped, or a test moved it)."""
        with contextlib.suppress(asyncio.QueueFull):  # a full inbox wakes the runner anyway
            self._inbox.put_nowait(_TICK)

    # --- requests: the one way other programs change sessions ----------------------------

    async def change(self, change: Change) -> Session:
        """Carry out a create, update or end in order with motion; the session it leaves.

        Raises the HubError that refused it (NotFoundError, ConflictError, …).
        """
        answer: asyncio.Future[Session] = asyncio.get_running_loop().create_future()
        await self._inbox.put(_Request(change, answer))
        return await answer

    async def control(self, command: ControlCommand) -> Controls:
        """Carry out a control command in order with motion; the controls it leaves.

        Raises ValidationError for a room not configured, StoreError when it cannot be saved.
        """
        answer: asyncio.Future[Controls] = asyncio.get_running_loop().create_future()
        await self._inbox.put(_ControlRequest(command, answer))
        return await answer

    async def use_timeouts(self, learned: Mapping[str, Learned]) -> None:
        """Use rooms' learned timeouts (`hub.store.timeouts`, read off the writer's thread)
        in order with motion: from the next decision, an active session's deadline too."""
        answer: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._inbox.put(_UseTimeouts(dict(learned), answer))
        await answer

    async def store(self, function: Callable[[SessionRepository], _T]) -> _T:
        """Run a database write on the writer, in order with session changes."""
        answer: asyncio.Future[_T] = asyncio.get_running_loop().create_future()
        await self._inbox.put(_StoreCall(function, answer))
        return await answer

    # --- the consumer ----------------------------------------------------------------------

    async def _consume(self) -> None:
        while not (self._finishing and self._inbox.empty()):
            await self._turn(await self._next_batch())

    async def _next_batch(self) -> list[_Item]:
        """What is queued (at most MAX_BATCH items), waiting for the first one until the
        next deadline; empty when the deadline came first."""
        batch: list[_Item] = []
        if self._inbox.empty():
            try:
                async with asyncio.timeout(self._until_deadline()):
                    batch.append(await self._inbox.get())
            except TimeoutError:
                return batch
        if self._last_batch >= BUSY_BATCH:
            # Under a flood each turn's commit costs about the same however many rows it
            # has: let more arrive first. A lone motion never waits (its last turn was small).
            await asyncio.sleep(LINGER)
        while len(batch) < MAX_BATCH and not self._inbox.empty():
            batch.append(self._inbox.get_nowait())
        self._last_batch = len(batch)
        return batch

    def _until_deadline(self) -> float | None:
        """Seconds until the engine's next deadline or the next retry of held rows (0 when
        due), or None without either."""
        deadline = self.engine.next_deadline()
        wait = None if deadline is None else max(0.0, deadline - self._clock())
        if self._held:
            retry = max(0.0, self._retry_at - self._monotonic())
            wait = retry if wait is None else min(wait, retry)
        if self._hub_clock is not None:  # look at the clock now and then, even when idle
            check = self._hub_clock.check_interval()
            wait = check if wait is None else min(wait, check)
        return wait

    async def _turn(self, batch: list[_Item]) -> None:
        """Decide the batch in order, commit it, then hand playback on."""
        if self._hub_clock is not None:
            batch = await self._watch_clock(self._hub_clock, batch)
        now = self._clock()
        self.last_decision = now
        turn = _Turn()
        receipts: list[Receipt] = []
        self._plan(self.engine.on_tick(now), turn)  # what is due ends first
        for item in batch:
            match item:
                case Receipt():
                    receipts.append(item)
                case MotionEvent():
                    self.counters["motion"] += 1
                    self._plan(self.engine.on_motion(item, now), turn)
                case SensorState():
                    self.counters["state"] += 1
                    self._plan(self.engine.on_state(item, now), turn)
                case _Started(session_id=session_id, result=result):
                    answer = self.engine.on_playback_started(
                        session_id,
                        started=result.started,
                        device_id=result.device_id,
                        note=result.note,
                        now=now,
                    )
                    self._plan(answer, turn)
                case _Stopped(session_id=session_id, stopped=stopped):
                    self._plan(
                        self.engine.on_playback_stopped(session_id, stopped=stopped, now=now), turn
                    )
                case _Tick():
                    pass
                case _UseTimeouts(learned=learned, answer=answer):
                    self.engine.use_timeouts(
                        {room: value.seconds for room, value in learned.items()}
                    )
                    for room, value in learned.items():
                        _LOGGER.info(
                            "room %s: %s", room, value.describe(), extra={"SENSOR_ID": room}
                        )
                    settle(answer, None)
                case (
                    StatusUpdate()
                    | _Request()
                    | _StoreCall()
                    | ControlCommand()
                    | _ControlRequest()
                ):
                    # These need the database's answer first: what came before is committed.
                    await self._commit(turn)
                    turn = _Turn()
                    await self._serve(item, now)
        await self._commit(turn)
        self._settle(receipts)

    def _settle(self, receipts: list[Receipt]) -> None:
        """Everything before these receipts is committed (or held): settle them, unless
        too much is held — then they wait, and so does the broker's redelivery of the rest."""
        if len(self._held) > HOLD_ROWS:
            self._waiting_receipts.extend(receipts)
            return
        if self._waiting_receipts:
            receipts = [*self._waiting_receipts, *receipts]
            self._waiting_receipts = []
        for receipt in receipts:
            receipt.committed()

    async def _watch_clock(self, clock: HubClock, batch: list[_Item]) -> list[_Item]:
        """A step of the system clock moves what is in flight with it (the engine's
        sessions, the motion stamped before it); a step before, or the arrival of,
        synchronisation corrects what was recorded. Returns the batch on the new timeline."""
        left, delta = self._restamp
        if left:  # queued when an earlier step was seen
            moved = min(left, len(batch))
            batch = [_restamped(item, delta) for item in batch[:moved]] + batch[moved:]
            self._restamp = (left - moved, delta)
        change = clock.observe()
        if change is not None and change.step is not None:
            self.counters["clock_steps"] += 1
            self.engine.shift(change.step, history=change.corrects_history)
            batch = [_restamped(item, change.step) for item in batch]
            left, delta = self._restamp
            self._restamp = (max(left, self._inbox.qsize()), delta + change.step)
        if change is not None or self._clock_unsaved:
            try:
                corrected = await self._writer.call(
                    partial(SessionRepository.set_clock, state=clock.state)
                )
            except HubError as exc:  # the rows keep their own base: corrected next time
                self._clock_unsaved = True
                _LOGGER.warning("could not correct the recorded times yet: %s", exc)
            else:
                self._clock_unsaved = False
                if corrected:
                    _LOGGER.info("corrected or confirmed the times of %d row(s)", corrected)
        return batch

    def _plan(self, commands: Iterable[Command], turn: _Turn) -> None:
        for command in commands:
            match command:
                case PersistSession(session=session, created=created, event=event):
                    turn.saves.append(Save(session, created, event))
                case StartPlayback() | StopPlayback() | TransferPlayback():
                    turn.playback.append(command)
                case DropEvent(event=event, reason=reason):
                    self._count(reason, event.sensor_id)
                    _LOGGER.debug("dropped motion from %s: %s", event.sensor_id, reason)
                    if reason == "out_of_order" and isinstance(event, MotionEvent):
                        # Real motion of a known sensor: keep it.
                        turn.saves.append(Save(None, event=event))

    async def _commit(self, turn: _Turn) -> dict[str, BaseException]:
        """Write the turn's rows (after any held ones) in one transaction; then publish and
        hand playback on. Returns the sessions whose rows could not be saved, with why."""
        saves = turn.saves
        if self._held:
            self._held.extend(saves)
            saves = self._held if self._monotonic() >= self._retry_at else []
            if not saves:  # not time to retry yet: held, as decided
                self._hand_on(turn, {}, turn.saves)
                return {}
        outcomes = await self._writer.write(saves)
        refused = [error for error in outcomes if isinstance(error, StorageUnavailableError)]
        if refused and len(refused) == len(outcomes):  # the disk, not the rows: hold them
            self._hold(saves, refused[0])
            self._hand_on(turn, {}, turn.saves)
            return {}
        if self._held:
            self._written_again(len(saves))
        failed: dict[str, BaseException] = {}
        written: list[Save] = []
        for save, error in zip(saves, outcomes, strict=True):
            if error is None:
                written.append(save)
                continue
            self.counters["persist_failed"] += 1
            if save.session is None:
                _LOGGER.error("could not save a motion event: %s", error)
                continue
            _LOGGER.error("could not save session %s: %s", save.session.session_id, error)
            failed[save.session.session_id] = error
        self._hand_on(turn, failed, written)
        return failed

    def _hand_on(self, turn: _Turn, failed: dict[str, BaseException], kept: list[Save]) -> None:
        """Publish the sessions of `kept` (written or held) and queue the turn's playback."""
        for save in kept:
            if save.session is not None:
                self._saved(save.session, created=save.created)
        for command in turn.playback:
            started = isinstance(command, StartPlayback | TransferPlayback)
            if started and command.session.session_id in failed:
                continue  # no row, no music: the session does not exist (or is not as decided)
            self._hand_to_player(command)

    def _hold(self, saves: list[Save], error: BaseException) -> None:
        """The disk refused `saves`: keep them, in order, and retry with backoff."""
        now = self._monotonic()
        first = self._unwritable_since is None
        if first:
            self._unwritable_since = now
            self._retry_delay = RETRY_FIRST
        was_over = len(self._held) > HOLD_ROWS
        self._held = saves if saves is self._held else [*self._held, *saves]
        self.unwritable = str(error)
        self.counters["write_refused"] += 1
        self._retry_at = now + self._retry_delay
        self._retry_delay = min(RETRY_CAP, self._retry_delay * 2)
        if first:
            self.storage_changed.set()
            _LOGGER.error(
                "%s; holding %d row(s) in memory and retrying", self.unwritable, len(self._held)
            )
        if len(self._held) > HOLD_ROWS and not was_over:
            _LOGGER.error(
                "over %d rows held: no longer acknowledging MQTT messages (the broker keeps "
                "them until the database can be written)",
                HOLD_ROWS,
            )

    def _written_again(self, rows: int) -> None:
        _LOGGER.warning(
            "database writable again after %.0f s: wrote %d held row(s)",
            self.unwritable_for(),
            rows,
        )
        self._held = []
        self.unwritable = None
        self._unwritable_since = None
        self.storage_changed.set()

    def _saved(self, session: Session, *, created: bool) -> None:
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

    async def _serve(
        self,
        item: StatusUpdate | _Request | _StoreCall | ControlCommand | _ControlRequest,
        now: float,
    ) -> None:
        match item:
            case StatusUpdate():
                await self._record_availability(item)
            case ControlCommand():
                with contextlib.suppress(HubError):  # logged: MQTT has no one to answer
                    await self._carry_out_control(item, now)
            case _ControlRequest(command=command, answer=answer):
                try:
                    settle(answer, await self._carry_out_control(command, now))
                except HubError as exc:
                    settle(answer, error=exc)
            case _StoreCall(function=function, answer=answer):
                try:
                    settle(answer, await self._writer.call(function))
                except HubError as exc:
                    settle(answer, error=exc)
            case _Request(change=change, answer=answer):
                try:
                    settle(answer, await self._carry_out(change, now))
                except HubError as exc:
                    settle(answer, error=exc)

    async def _carry_out(self, change: Change, now: float) -> Session:
        stored: Session | None = None
        if not isinstance(change, CreateSession) and not self.engine.tracks(change.session_id):
            read = partial(SessionRepository.get, session_id=change.session_id)
            stored = await self._writer.call(read)
        session, commands = self.engine.on_change(change, stored, now)
        turn = _Turn()
        self._plan(commands, turn)
        error = (await self._commit(turn)).get(session.session_id)
        if error is not None:
            raise StoreError(f"session {session.session_id} could not be saved: {error}")
        return session

    async def _carry_out_control(self, command: ControlCommand, now: float) -> Controls:
        """Check, save and apply a control; buttons act at once. Logged either way."""
        rooms = self.engine.rooms()
        try:
            check(command, rooms)
        except HubError as exc:
            self.counters["control_refused"] += 1
            _LOGGER.warning("refused a control from %s: %s", command.source, exc)
            raise
        _LOGGER.info("control from %s: %s", command.source, command.describe())
        self.counters["control"] += 1
        if command.control == "end_session" and command.room_id is not None:
            await self._end_sessions([command.room_id], now, music_only=False)
        if command.control == "dnd" and command.value:
            # "Not now" means now too: music the hub is playing there stops with its session
            # (the next motion starts a silent one). Silent sessions go on.
            targets = list(rooms) if command.room_id is None else [command.room_id]
            await self._end_sessions(targets, now, music_only=True)
        controls = apply(self.controls, command, now)
        if controls != self.controls:
            text = controls.to_json()
            try:
                await self._writer.call(
                    lambda repository: set_meta(repository.db, {CONTROLS_KEY: text})
                )
            except HubError as exc:
                self.counters["persist_failed"] += 1
                _LOGGER.error("control not applied, it could not be saved: %s", exc)  # noqa: TRY400
                raise
            self.controls = controls
            self.engine.set_controls(controls)
        if self._on_control is not None:
            self._on_control(command, self.controls)
        return self.controls

    async def _end_sessions(self, room_ids: Iterable[str], now: float, *, music_only: bool) -> None:
        """End the rooms' active sessions (only those making music, if `music_only`),
        pausing what the hub started, as an `end_session` request would."""
        for room_id in room_ids:
            session = self.engine.active.get(room_id)
            if session is not None and (not music_only or self.engine.makes_music(room_id)):
                await self._carry_out(EndSession(session.session_id), now)

    async def _record_availability(self, status: StatusUpdate) -> None:
        if not self.engine.knows(status.sensor_id):
            self._count("unknown_sensor_status", status.sensor_id)
            return
        self.counters["status"] += 1

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

    def _count(self, reason: str, sensor_id: str) -> None:
        """A per-sensor counter; made-up sensor ids share one once there are many, so a
        flood of random topics cannot grow memory (or the stats topic) without bound."""
        key = f"{reason}:{sensor_id}"
        if key not in self.counters and len(self.counters) >= MAX_COUNTERS:
            key = f"{reason}:(others)"
        self.counters[key] += 1

    # --- the player --------------------------------------------------------------------------

    def _hand_to_player(self, command: PlayerCommand) -> None:
        """Queue the command in its speaker's lane (started on first use)."""
        lane = _lane(command)
        queue = self._lanes.get(lane)
        if queue is None:
            queue = self._lanes[lane] = asyncio.Queue()
            self._start_lane(lane, queue)
        queue.put_nowait(command)

    def _start_lane(self, lane: str, queue: asyncio.Queue[PlayerCommand]) -> None:
        if self._players is not None:
            task = self._players.create_task(self._play(lane, queue), name=f"player:{lane}")
            self._lane_tasks.append(task)

    async def _play(self, lane: str, queue: asyncio.Queue[PlayerCommand]) -> None:
        """One speaker's playback, one command at a time, in order; each answer goes back
        through the inbox."""
        while True:
            command = await queue.get()
            call = asyncio.ensure_future(self._call_player(command))
            self._in_flight[lane] = call
            # Shielded: at shutdown `finish()` waits (bounded) for a start in flight.
            answer = await asyncio.shield(call)
            await self._inbox.put(answer)
            del self._in_flight[lane]  # only now: its answer is in the inbox

    async def _call_player(self, command: PlayerCommand) -> _Answer:
        session = command.session
        match command:
            case StartPlayback(sensor=sensor):
                return _Started(session.session_id, await self._player.start(session, sensor))
            case TransferPlayback(source=source, sensor=sensor):
                if not isinstance(self._player, Follower):
                    return _Started(session.session_id, _CANNOT_MOVE)
                moved = await self._player.transfer(session, source, sensor)
                return _Started(session.session_id, moved)
            case StopPlayback(sensor=stop_sensor):
                stopped = await self._player.stop(session, stop_sensor)
                return _Stopped(session.session_id, stopped)

    # --- shutdown ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Decide until `finish()`; then settle the player's work and record it."""
        async with asyncio.TaskGroup() as players:
            self._players = players
            for lane, queue in self._lanes.items():  # queued before the runner ran
                self._start_lane(lane, queue)
            try:
                await self._consume()
            finally:
                self._players = None
                for task in self._lane_tasks:
                    task.cancel()
        await self._finish_playback()
        if self._held:
            self._retry_at = 0.0  # one last try
            await self._commit(_Turn())
        if self._held:
            events = sum(1 for save in self._held if save.event is not None)
            _LOGGER.error(
                "stopping with %d motion row(s) not written (%s): they are lost",
                events,
                self.unwritable,
            )

    def finish(self, *, pause_active: bool = True, playback_wait: float = PLAYBACK_WAIT) -> None:
        """Decide what is queued, then stop (the ingest adapters must have stopped first).

        Then, within `playback_wait` seconds in all, the player's work is settled: see
        `_finish_playback`. `pause_active`: also pause the music of sessions still active
        (the daemon stopping; not a one-off `invoke`).
        """
        self._finishing = True
        self._pause_active = pause_active
        self._playback_wait = playback_wait
        self.poke()

    async def _finish_playback(self) -> None:
        """Side by side, within `playback_wait` seconds in all: the player's call in flight
        is awaited and its answer recorded; pauses queued for sessions that ended are
        carried out; with `pause_active`, what the hub started for sessions still active is
        paused (and a start in flight that lands in time, after it). What has not answered
        by the deadline counts as not paused, and everything is recorded. Sessions still
        active stay active: the next start takes them over."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._playback_wait
        speakers: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

        def pause(session: Session, sensor: SensorConfig | None) -> asyncio.Future[bool]:
            """Side by side across speakers, one after another on each: two sessions on one
            speaker must not both see it playing and both pause it."""

            async def in_turn() -> bool:
                async with speakers[session.spotify_device_id or session.session_id]:
                    return await self._player.stop(session, sensor)

            return asyncio.ensure_future(in_turn())

        ended: dict[asyncio.Future[bool], Session] = {}
        for queue in self._lanes.values():  # sessions that ended with music to pause
            while not queue.empty():
                command = queue.get_nowait()
                if isinstance(command, StopPlayback):
                    ended[pause(command.session, command.sensor)] = command.session
        active = {pause(session, None): session for session in self._playing_sessions()}
        in_flight = list(self._in_flight.values())
        if in_flight:
            await asyncio.wait(in_flight, timeout=max(0.0, deadline - loop.time()))
            landed: list[_Item] = [
                call.result()
                for call in in_flight
                if call.done() and not call.cancelled() and call.exception() is None
            ]
            if landed:
                await self._turn(landed)  # a start that landed is playing now
                pausing = {session.session_id for session in active.values()}
                for session in self._playing_sessions():
                    if session.session_id not in pausing:
                        active[pause(session, None)] = session
        pauses = [*ended, *active]
        if pauses:
            await asyncio.wait(pauses, timeout=max(0.0, deadline - loop.time()))
        calls: list[asyncio.Future[Any]] = [*pauses, *in_flight]
        late = [call for call in calls if not call.done()]
        for task in late:
            task.cancel()
        if late:
            _LOGGER.warning(
                "%d player call(s) did not answer within %.1f s of stopping: music may play on",
                len(late),
                self._playback_wait,
            )
        answers: list[_Item] = [_Stopped(s.session_id, _paused(t)) for t, s in ended.items()]
        await self._turn(answers)  # through the engine, as any pause
        now = self._clock()
        saves = []
        for task, session in active.items():
            stopped = _paused(task)
            saves.append(Save(session.with_changes(playback_stopped=stopped, updated_at=now)))
            _LOGGER.info(
                "session %s: %s at shutdown",
                session.session_id,
                "paused" if stopped else "not paused",
                extra={"SENSOR_ID": session.sensor_id, "SESSION_ID": session.session_id},
            )
        for outcome in await self._writer.write(saves):
            if outcome is not None:
                _LOGGER.error("could not record a pause at shutdown: %s", outcome)

    def _playing_sessions(self) -> list[Session]:
        """Active sessions whose music the hub started and has not paused (when asked to)."""
        if not self._pause_active:
            return []
        return [
            session
            for session in self.engine.active.values()
            if session.playback_started and not session.playback_stopped
        ]


def _lane(command: PlayerCommand) -> str:
    """The speaker a command is for: the sensor's device as configured (a start and the
    stop of its session share it), else the device the session played on."""
    if command.sensor is not None and command.sensor.spotify_device:
        return command.sensor.spotify_device.strip().casefold()
    return command.session.spotify_device_id or ""


def _restamped(item: _Item, delta: float) -> _Item:
    """`item` with its receive time (and when it happened) on a clock `delta` seconds later."""
    match item:
        case MotionEvent():
            return dataclasses.replace(
                item, received_at=item.received_at + delta, occurred_at=item.occurred_at + delta
            )
        case StatusUpdate() | SensorState():
            return dataclasses.replace(item, received_at=item.received_at + delta)
        case _:
            return item


def _paused(task: asyncio.Future[bool]) -> bool:
    """A pause's answer; one that failed or did not come in time counts as not paused."""
    return task.done() and not task.cancelled() and task.exception() is None and task.result()
