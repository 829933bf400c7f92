"""The session engine: motion, sensor states, deadlines and playback results in, commands
out.

Pure and synchronous: no asyncio, no I/O, no wall clock. Every method takes `now`
(epoch seconds) and returns the commands the runner must carry out, in order. Timeouts
are data (`next_deadline()`), so nothing here ever sleeps.

Sessions are per room (`HubConfig.all_rooms`; a sensor in no room is its own room): one
active session per room, however many of its sensors report, and its record's `sensorId`
is the room's id. What a report means for the room (motion, occupied, clear, a door) and
how it holds the room are `hub.sessions.occupancy`'s tables. A session ends at its
deadline, the anchor of the latest relevant event: last motion + timeout, every presence
source clear + timeout, the door opening on someone inside + door timeout; while the room
is held there is no timeout, only `max_hold` from the hold's start. The session records
which one ended it (`endReason`).

Music can follow a person between rooms with `follow = true` (rule 8, below `_end`): a new
session waits for the music another room's session plays, and once that room has been
quiet long enough asks the player to move it here (`TransferPlayback`); the answer is the
new session's start, and the old session's end then pauses nothing.

A session's playback lifecycle is one table, `_TRANSITIONS` (as h11's `_state.py`):
every legal move is listed there and nowhere else, and a missing entry is our bug
(`EngineError`). Bad input never raises: motion is dropped with a reason, and a player
answer to a request the engine did not make (or already had answered) is ignored before
the table is consulted.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from enum import Enum, auto
from types import MappingProxyType
from typing import Final, TypeAlias

from hub.config import HubConfig, Room, SensorConfig
from hub.controls import Controls
from hub.errors import ConflictError, HubError, NotFoundError
from hub.model import (
    SESSION_ID_PREFIX,
    Decision,
    EndReason,
    MotionEvent,
    SensorState,
    Session,
    SessionStatus,
    StateKind,
    new_session_id,
    open_session,
)
from hub.sessions.changes import (
    Change,
    CreateSession,
    EndSession,
    UpdateSession,
    created,
    ended,
    updated,
)
from hub.sessions.occupancy import (
    ACTIVITY,
    SIGNALS,
    RoomState,
    Signal,
    kind_of,
    report_of,
)
from hub.sessions.policy import in_quiet_hours, playback_for
from hub.sessions.sensor_clocks import SensorClocks
from hub.timeutil import local_zone

# --- commands -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PersistSession:
    """Write the session row (insert when `created`, else update) and, if `event` is not
    None, the motion-event row linked to it, in one transaction."""

    session: Session
    event: MotionEvent | None
    created: bool


@dataclass(frozen=True, slots=True)
class StartPlayback:
    """Ask the player to start playing for this session (`sensor`: the room's playback
    settings, as a sensor's)."""

    session: Session
    sensor: SensorConfig


@dataclass(frozen=True, slots=True)
class StopPlayback:
    """Ask the player to pause what the hub started for this session.

    `sensor` is None when the session's sensor is no longer configured (a session
    restored from the store after the sensor was removed).
    """

    session: Session
    sensor: SensorConfig | None


@dataclass(frozen=True, slots=True)
class TransferPlayback:
    """Music that follows you: ask the player to move what the hub started for `source`
    (another room's session) to this session's speaker (`sensor`: the room's settings)."""

    session: Session
    source: Session
    sensor: SensorConfig


@dataclass(frozen=True, slots=True)
class DropEvent:
    """The event is not part of any session (counted per sensor).

    `reason`: "unknown_sensor" | "disabled_sensor" | "out_of_order" for motion; for
    states also "unpaired_clear" (a clear from a source that was not occupied: reordered
    by the broker, or the first state heard).
    """

    event: MotionEvent | SensorState
    reason: str


Command: TypeAlias = PersistSession | StartPlayback | StopPlayback | TransferPlayback | DropEvent


class EngineError(HubError):
    """The engine reached a state its own rules forbid: a bug here, never bad input."""


# --- the playback lifecycle table --------------------------------------------------------


class _Phase(Enum):
    # While the session is active:
    IDLE = auto()  # nothing of ours plays, nothing in flight (stale, quiet, refused, restored)
    REQUESTED = auto()  # StartPlayback emitted, no answer yet
    PLAYING = auto()  # the player said it started
    # Once the session has ended:
    DONE = auto()  # nothing of ours to stop
    STOPPING = auto()  # StopPlayback emitted, no answer yet
    STOPPED = auto()  # the player answered a stop


class _Input(Enum):
    REQUEST = auto()  # a new session asks to play (engine-made)
    END = auto()  # the deadline passed (engine-made)
    STARTED = auto()  # the player: started
    REFUSED = auto()  # the player: did not start
    STOP_RESULT = auto()  # the player: answered a stop
    MOVED_AWAY = auto()  # the player: moved this session's music to another room's session


_ACTIVE_PHASES: Final = frozenset({_Phase.IDLE, _Phase.REQUESTED, _Phase.PLAYING})

# (phase, input) -> (next phase, emit StopPlayback)
_TRANSITIONS: Final[Mapping[tuple[_Phase, _Input], tuple[_Phase, bool]]] = {
    (_Phase.IDLE, _Input.REQUEST): (_Phase.REQUESTED, False),
    (_Phase.IDLE, _Input.END): (_Phase.DONE, False),
    (_Phase.REQUESTED, _Input.STARTED): (_Phase.PLAYING, False),
    (_Phase.REQUESTED, _Input.REFUSED): (_Phase.IDLE, False),
    # The start may still succeed after the session ended: ask to stop it anyway.
    (_Phase.REQUESTED, _Input.END): (_Phase.STOPPING, True),
    (_Phase.PLAYING, _Input.END): (_Phase.STOPPING, True),
    # A late "started" must not undo the newer intent: stop again.
    (_Phase.STOPPING, _Input.STARTED): (_Phase.STOPPING, True),
    (_Phase.STOPPING, _Input.REFUSED): (_Phase.STOPPING, False),
    (_Phase.STOPPING, _Input.STOP_RESULT): (_Phase.STOPPED, False),
    # The player may answer the stop before the start when it runs them concurrently.
    (_Phase.STOPPED, _Input.STARTED): (_Phase.STOPPING, True),
    (_Phase.STOPPED, _Input.REFUSED): (_Phase.STOPPED, False),
    # A second stop (after a late start) answers too; its answer is the newer truth.
    (_Phase.STOPPED, _Input.STOP_RESULT): (_Phase.STOPPED, False),
    # Its music followed someone to another room: that session's now, nothing here to stop.
    (_Phase.PLAYING, _Input.MOVED_AWAY): (_Phase.IDLE, False),
    # It ended while the move was in flight: its stop finds nothing of ours where it played.
    (_Phase.STOPPING, _Input.MOVED_AWAY): (_Phase.STOPPING, False),
    (_Phase.STOPPED, _Input.MOVED_AWAY): (_Phase.STOPPED, False),
}


@dataclass(slots=True)
class _Tracked:
    """The engine's private view of one session (changed in place, then `_put` checks it)."""

    session: Session
    phase: _Phase
    # occurred_at of the session's last counted motion: the debounce window opens here.
    burst_start: float
    # The deadline's anchors besides the last motion (see the module docstring): while the
    # room is held, since when; when it was last released by every presence source
    # clearing, or by the door opening on someone inside.
    hold_since: float | None = None
    cleared_at: float | None = None
    door_opened_at: float | None = None
    # Taken over at start-up, and nothing has happened to it since.
    recovered: bool = False
    # Player requests not yet answered. Only answers to these are accepted, and an ended
    # session stays in memory until they are in (a late start must still be stopped).
    awaiting_start: bool = False
    awaiting_stops: int = 0  # a late start asks for a second stop
    # Music that follows you: the session (id) whose music this one waits for, or asked
    # the player to move here (its start is then that move); and, on the other side,
    # whether this session's music is being moved away (its answer is still to come).
    follows: str | None = None
    moving: bool = False

    @property
    def settled(self) -> bool:
        """Ended with nothing left to answer: nothing can change it but replayed motion."""
        return (
            not self.session.is_active
            and not self.awaiting_start
            and not self.awaiting_stops
            and not self.moving
        )


def _on_grid(instant: float) -> float:
    """An instant on the microsecond grid of ISO-8601 records."""
    return round(instant, 6)


# --- the engine ------------------------------------------------------------------------


class SessionEngine:
    """Decides session lifecycles for every configured sensor; see the module docstring."""

    def __init__(
        self,
        config: HubConfig,
        *,
        new_id: Callable[[str, float], str] = new_session_id,
    ) -> None:
        self._config = config
        # Looked up for every motion event and deadline: indexes, not scans of the config.
        self._sensors = {sensor.id: sensor for sensor in config.sensors}
        self._rooms = {room.id: room for room in config.all_rooms()}
        self._room_of = {
            sensor: room.id for room in self._rooms.values() for sensor in room.sensor_ids
        }
        self._default_timeout = config.sessions.timeout_minutes * 60
        self._default_room = Room(
            id="",
            name="",
            sensor_ids=(),
            settings=SensorConfig(id="", user_id=""),
            timeout_seconds=self._default_timeout,
            door_timeout_seconds=config.sessions.door_timeout_seconds,
            max_hold_seconds=config.sessions.max_hold_minutes * 60,
        )
        self._timeouts = {room.id: room.timeout_seconds for room in self._rooms.values()}
        self._occupancy = {room_id: RoomState() for room_id in self._rooms}
        self._clears_from: set[str] = set()  # sensors of no configured kind that sent a clear
        self._controls = Controls()
        self._new_id = new_id
        self._tz = local_zone(config.hub.timezone)
        # Every session the engine may still act on, by session id: the active ones, the
        # last ended one per room (rule 5) and ended ones with a player answer pending.
        self._tracked: dict[str, _Tracked] = {}
        self._active: dict[str, str] = {}  # room_id -> session_id
        self._last_ended: dict[str, str] = {}  # room_id -> session_id
        self._deadlines: list[tuple[float, str]] = []  # heap of (deadline, session_id)
        # Music that follows you: new sessions waiting for another room's music (waiting
        # session id -> the id of the session whose music it waits for).
        self._waiting: dict[str, str] = {}
        self._clocks = SensorClocks()  # dates motion that sat in the broker
        self._used = False  # restore() must come first

    # --- queries ---

    @property
    def active(self) -> Mapping[str, Session]:
        """room_id -> its active session (a read-only snapshot)."""
        return MappingProxyType(
            {sensor: self._tracked[sid].session for sensor, sid in self._active.items()}
        )

    def makes_music(self, room_id: str) -> bool:
        """Whether the room's active session plays music the hub started (or is starting)."""
        tracked = self._tracked_active(room_id)
        return tracked is not None and tracked.phase in {_Phase.REQUESTED, _Phase.PLAYING}

    def knows(self, sensor_id: str) -> bool:
        """Whether `sensor_id` is a configured sensor (the others never make sessions)."""
        return sensor_id in self._sensors

    def rooms(self) -> Mapping[str, Room]:
        """room_id -> the room (every configured room, and each sensor in none)."""
        return MappingProxyType(self._rooms)

    def room_of(self, sensor_id: str) -> str:
        """The id of the room a sensor is in (its own id for a sensor in no room)."""
        return self._room_of.get(sensor_id, sensor_id)

    def use_timeouts(self, timeouts: Mapping[str, float]) -> None:
        """Rooms' timeouts in seconds (learned from their history); the others keep the
        config's. Active sessions take them at once (a deadline may move sooner)."""
        self._timeouts = {room.id: room.timeout_seconds for room in self._rooms.values()}
        self._timeouts.update(
            (room, seconds) for room, seconds in timeouts.items() if room in self._rooms
        )
        for session_id in self._active.values():
            self._reschedule(self._tracked[session_id])

    def timeout(self, room_id: str) -> float:
        """The room's timeout now, in seconds: a control's override, else configured or
        learned."""
        override = self._controls.timeout_minutes(room_id)
        if override is not None:
            return override * 60
        return self._timeouts.get(room_id, self._default_timeout)

    def deadline(self, session: Session) -> float:
        """When the session ends by the rules (its end, once it has ended by them)."""
        tracked = self._tracked.get(session.session_id)
        if tracked is None or tracked.session is not session:
            tracked = _Tracked(session, _Phase.IDLE, burst_start=session.last_motion)
        return self._due(tracked)[0]

    def _due(self, tracked: _Tracked) -> tuple[float, EndReason]:
        """The deadline and the rule it comes from: held, max_hold from the hold's start;
        else the latest of last motion, clear and door opening, plus its timeout. On the
        microsecond grid the records are written on, so endTime - lastMotionTime is exactly
        the timeout (a bare float sum is sometimes 1 µs off)."""
        room_id = tracked.session.sensor_id
        room = self._rooms.get(room_id, self._default_room)
        if tracked.hold_since is not None:
            return round(tracked.hold_since + room.max_hold_seconds, 6), EndReason.MAX_HOLD
        anchor = tracked.session.last_motion
        due, reason = anchor + self.timeout(room_id), EndReason.TIMEOUT
        if tracked.cleared_at is not None and tracked.cleared_at >= anchor:
            anchor = tracked.cleared_at
            due, reason = anchor + self.timeout(room_id), EndReason.PRESENCE_CLEARED
        if tracked.door_opened_at is not None and tracked.door_opened_at >= anchor:
            due, reason = tracked.door_opened_at + room.door_timeout_seconds, EndReason.DOOR_OPENED
        return round(due, 6), reason

    def set_controls(self, controls: Controls) -> None:
        """People's controls (`hub.controls`), as data: they apply from the next decision;
        an active session takes a changed timeout at once (its deadline moves)."""
        self._controls = controls
        for session_id in self._active.values():
            self._reschedule(self._tracked[session_id])

    def next_deadline(self) -> float | None:
        """The next instant something is due: a session's end, or music that may follow."""
        earliest = self._earliest()
        due = [earliest[0]] if earliest is not None else []
        due.extend(self._follow_times().values())
        return min(due, default=None)

    def _earliest(self) -> tuple[float, str] | None:
        """The earliest current deadline. Entries are lazily kept: motion moves a deadline
        later without touching the heap, so an entry found early is moved to its session's
        current deadline, and one whose session ended (or was replaced) is dropped."""
        while self._deadlines:
            deadline, session_id = self._deadlines[0]
            tracked = self._tracked.get(session_id)
            if tracked is None or not tracked.session.is_active:
                heapq.heappop(self._deadlines)
                continue
            current = self._due(tracked)[0]
            if current == deadline:
                return deadline, session_id
            if current > deadline:
                heapq.heapreplace(self._deadlines, (current, session_id))
            else:  # a sooner entry for the session exists: this one is stale
                heapq.heappop(self._deadlines)
        return None

    # --- inputs ---

    def restore(self, active: Iterable[Session]) -> None:
        """Take over the sessions the store still holds as active (crash recovery).

        Their playback is taken as playing if it had started and was not paused (so ending
        pauses it); the next motion is counted against their last motion. They end at their
        old deadline on the next tick, however long the hub was down.
        """
        if self._used:
            raise EngineError("restore() after the engine has started deciding")
        for session in active:
            if not session.is_active:
                raise EngineError(f"restore() given a {session.status} session")
            if session.sensor_id in self._active:
                raise EngineError(f"two active sessions for room {session.sensor_id!r}")
            playing = session.playback_started and not session.playback_stopped
            phase = _Phase.PLAYING if playing else _Phase.IDLE
            tracked = _Tracked(session, phase, burst_start=session.last_motion, recovered=True)
            self._put(tracked, schedule=True)
            self._active[session.sensor_id] = session.session_id

    def tracks(self, session_id: str) -> bool:
        """Whether the engine holds `session_id` (every active session, and recent ended ones)."""
        return session_id in self._tracked

    def on_change(
        self, change: Change, stored: Session | None, now: float
    ) -> tuple[Session, list[Command]]:
        """A request of `invoke` or the API (the seed's create, update and end), in order
        with motion: the session it leaves, and the commands.

        `stored` is the database's row for a session the engine does not track (an old,
        ended one), else None. Raises NotFoundError, ConflictError or ValidationError.
        """
        self._used = True
        match change:
            case CreateSession():
                return self._create_on_request(change, now)
            case UpdateSession(session_id=session_id) | EndSession(session_id=session_id):
                tracked = self._tracked.get(session_id)
                if tracked is None:
                    if stored is None:
                        hint = (
                            ""
                            if session_id.startswith(SESSION_ID_PREFIX)
                            else " (ids look like session-…)"
                        )
                        raise NotFoundError(f"session {session_id} does not exist{hint}")
                    if stored.is_active:  # every active session is tracked: a bug if not
                        raise EngineError(f"active session {session_id} is not tracked")
                    session = (
                        updated(stored, change, now)
                        if isinstance(change, UpdateSession)
                        else ended(stored, change, now)
                    )
                    return session, [PersistSession(session, event=None, created=False)]
                if isinstance(change, UpdateSession):
                    return self._update_on_request(tracked, change, now)
                return self._end_on_request(tracked, change, now)

    def _create_on_request(
        self, change: CreateSession, now: float
    ) -> tuple[Session, list[Command]]:
        """A session made by request records what its caller does; the hub plays no music for
        it (the seed's caller starts playback itself and reports it with update_session)."""
        # A sensor in a room names its room: the session is the room's.
        change = replace(change, sensor_id=self.room_of(change.sensor_id))
        active = self._tracked_active(change.sensor_id)
        if active is not None:
            active_id = active.session.session_id
            raise ConflictError(
                f"sensor {change.sensor_id} already has an active session {active_id}",
                session_id=active_id,
            )
        room = self._rooms.get(change.sensor_id)
        session = created(
            change,
            None if room is None else room.settings,
            new_id=self._new_id,
            now=now,
            ttl_days=self._config.sessions.ttl_days,
        ).deciding(Decision(now, "start", "created by request (create_session): the caller plays"))
        if session.session_id in self._tracked:
            raise EngineError(f"new_id returned a known session id {session.session_id!r}")
        tracked = _Tracked(session, _Phase.IDLE, burst_start=session.start)
        self._put(tracked, schedule=True)
        self._active[change.sensor_id] = session.session_id
        return session, [PersistSession(session, event=None, created=True)]

    def _update_on_request(
        self, tracked: _Tracked, change: UpdateSession, now: float
    ) -> tuple[Session, list[Command]]:
        session = updated(tracked.session, change, now)
        if session == tracked.session:
            return session, []
        tracked.session = session
        self._put(tracked)
        return session, [PersistSession(session, event=None, created=False)]

    def _end_on_request(
        self, tracked: _Tracked, change: EndSession, now: float
    ) -> tuple[Session, list[Command]]:
        """Ended now (by a person or another program): pause what the hub started for it;
        the sensor's next motion starts a new session."""
        commands = self._end(tracked, now, ended_as=ended(tracked.session, change, now))
        return tracked.session, commands

    def shift(self, delta: float, *, history: bool) -> None:
        """The hub's clock stepped by `delta` seconds (hub/clock.py): move what is in flight
        with it, so the step by itself neither ends nor prolongs a session. `history`: move
        the ended sessions still held too (their times were recorded before the clock was
        synchronised, and the store corrects them by the same step)."""
        for tracked in self._tracked.values():
            if tracked.session.is_active or history:
                tracked.session = tracked.session.shifted(delta)
                tracked.burst_start += delta
                # The deadline's other anchors move with it (a hold, a clear, a door).
                tracked.hold_since = _moved(tracked.hold_since, delta)
                tracked.cleared_at = _moved(tracked.cleared_at, delta)
                tracked.door_opened_at = _moved(tracked.door_opened_at, delta)
        self._deadlines = [
            (self.deadline(self._tracked[session_id].session), session_id)
            for session_id in self._active.values()
        ]
        heapq.heapify(self._deadlines)
        self._clocks.shift(delta)

    def sensor_clock_offsets(self) -> dict[str, tuple[float, float]]:
        """The sensors' learnt clock offsets, to keep across a restart (`SensorClocks`)."""
        return self._clocks.offsets()

    def remember_sensor_clocks(self, kept: Mapping[str, tuple[float, float]]) -> None:
        """Offsets kept before a restart (taken on the same, confirmed timeline)."""
        self._clocks.remember({k: v for k, v in kept.items() if k in self._sensors})

    def on_tick(self, now: float) -> list[Command]:
        """End every active session whose deadline <= now (rule 1), earliest first; then
        move music that may follow someone now (rule 8)."""
        commands = self._end_due(now)
        if self._waiting:
            commands += self._follow_due(now)
        return commands

    def _end_due(self, now: float, *, keep: str | None = None) -> list[Command]:
        self._used = True
        if not self._deadlines or self._deadlines[0][0] > now:
            return []  # the heap's top is never later than the earliest real deadline
        commands: list[Command] = []
        skipped: list[tuple[float, str]] = []
        while (due := self._earliest()) is not None and due[0] <= now:
            heapq.heappop(self._deadlines)
            if due[1] == keep:
                skipped.append(due)
                continue
            commands.extend(self._end(self._tracked[due[1]], now))
        for entry in skipped:
            heapq.heappush(self._deadlines, entry)
        return commands

    def on_motion(self, event: MotionEvent, now: float) -> list[Command]:
        """Rules 2-5, one case per line: drop, extend, amend the last ended, or create.

        Expired sessions end first — except the room's own session when this motion
        happened before its deadline: seen late (a backlog), it still extends it. When
        it happened is the sensor's corrected clock for motion that sat in the broker
        (`SensorClocks`), else its receive time.
        """
        if event.sensor_id in self._sensors:  # (made-up sensor ids teach nothing)
            event = self._clocks.judge(event)
        kept = self._extended_by(event)
        commands = self._end_due(now, keep=kept)
        commands += self._decide(event, now)
        if kept is not None:
            commands += self._end_due(now)  # extended by stale motion: over at once
        return commands

    def on_state(self, state: SensorState, now: float) -> list[Command]:
        """A state a sensor holds (occupied / clear, open / closed): what is due ends
        first, then the room's occupancy changes, which may start, hold or release its
        session. A retained state (the broker's replay at start-up) is the room's current
        state: it holds a session already running, never starts one."""
        commands = self._end_due(now)
        commands += self._decide(state, now)
        return commands

    def _extended_by(self, event: MotionEvent) -> str | None:
        """The active session `event` happened inside of (a session id), if any."""
        sensor = self._sensors.get(event.sensor_id)
        active = self._tracked_active(self.room_of(event.sensor_id))
        if sensor is None or not self._enabled(sensor) or active is None:
            return None
        inside = active.session.start <= _on_grid(event.occurred_at) < self._due(active)[0]
        return active.session.session_id if inside else None

    def _enabled(self, sensor: SensorConfig) -> bool:
        """The sensor's and its room's `enabled`, unless a person's switch says otherwise."""
        room_id = self.room_of(sensor.id)
        room = self._rooms.get(room_id)
        configured = sensor.enabled and (room is None or room.settings.enabled)
        return self._controls.enabled(room_id, configured=configured)

    def _decide(self, report: MotionEvent | SensorState, now: float) -> list[Command]:
        sensor = self._sensors.get(report.sensor_id)
        if sensor is None:
            return [DropEvent(report, "unknown_sensor")]
        if not self._enabled(sensor):
            return [DropEvent(report, "disabled_sensor")]
        if isinstance(report, SensorState) and report.kind is StateKind.OCCUPANCY and not report.on:
            self._clears_from.add(sensor.id)  # it sends clears: its pulses are a held state
        signal = SIGNALS[
            kind_of(sensor.kind, report, sensor.id in self._clears_from), report_of(report)
        ]
        room_id = self.room_of(sensor.id)
        active = self._tracked_active(room_id)
        event = _as_motion(report)
        if (
            isinstance(report, MotionEvent)
            and active is not None
            # On the grid the start was written on: motion at the start's own instant is
            # not before it.
            and _on_grid(event.occurred_at) < active.session.start
        ):
            return [DropEvent(report, "out_of_order")]
        state = self._occupancy[room_id]
        outcome = state.apply(sensor.id, signal, on=isinstance(report, SensorState) and report.on)
        commands: list[Command] = []
        if outcome.repeat and signal is Signal.CLEAR:
            commands.append(DropEvent(report, "unpaired_clear"))
        # Something new says someone is here (a repeated "occupied" or a replayed state
        # is not news: it starts nothing and counts as no motion).
        news = signal in ACTIVITY and not outcome.repeat and not _retained(report)
        if active is not None:
            return commands + self._occupy(
                active,
                state,
                event if news else None,
                now,
                sensor_id=sensor.id,
                door_opened=outcome.door_opened,
                cleared=signal is Signal.CLEAR and not outcome.repeat,
            )
        if not news:
            return commands
        ended = self._amendable(room_id, event, now)
        if ended is not None:
            return commands + self._amend(ended, event, now)
        return commands + self._create(self._rooms[room_id], event, now, cause=signal)

    def on_playback_started(
        self,
        session_id: str,
        *,
        started: bool,
        device_id: str | None,
        note: str | None,
        now: float,
    ) -> list[Command]:
        """Rule 6: record the player's answer; a start after the end is stopped again. (The
        answer to a TransferPlayback is this session's start too: rule 8, `_on_moved`.)"""
        self._used = True
        tracked = self._tracked.get(session_id)
        if tracked is None or not tracked.awaiting_start:
            return []  # not an answer to a StartPlayback or TransferPlayback of ours
        if tracked.follows is not None:
            return self._on_moved(
                tracked, tracked.follows, moved=started, device_id=device_id, note=note, now=now
            )
        phase, stop = self._step(tracked.phase, _Input.STARTED if started else _Input.REFUSED)
        answer = (
            f"player: started on {device_id or 'the device'}"
            if started
            else f"player: did not start ({note or 'no reason given'})"
        )
        session = tracked.session.with_changes(
            playback_started=started,
            spotify_device_id=device_id,
            playback_note=note,
            updated_at=now,
        ).deciding(Decision(now, "player", answer))
        tracked.session, tracked.phase, tracked.awaiting_start = session, phase, False
        tracked.awaiting_stops += 1 if stop else 0
        self._put(tracked)
        commands: list[Command] = [PersistSession(session, event=None, created=False)]
        if stop:
            commands.append(StopPlayback(session, self._settings(session.sensor_id)))
        self._forget_if_settled(session_id)
        return commands

    def on_playback_stopped(self, session_id: str, *, stopped: bool, now: float) -> list[Command]:
        """Rule 7: record whether the player paused what the hub started."""
        self._used = True
        tracked = self._tracked.get(session_id)
        if tracked is None or not tracked.awaiting_stops:
            return []  # not an answer to a StopPlayback of ours
        phase, _ = self._step(tracked.phase, _Input.STOP_RESULT)
        # A second stop (after a late start) finds nothing playing: the first one's "paused"
        # must not be overwritten by it.
        stopped = stopped or bool(tracked.session.playback_stopped)
        session = tracked.session.with_changes(playback_stopped=stopped, updated_at=now)
        session = session.deciding(
            Decision(now, "player", "player: paused" if stopped else "player: not paused")
        )
        tracked.session, tracked.phase = session, phase
        tracked.awaiting_stops -= 1
        self._put(tracked)
        self._forget_if_settled(session_id)
        return [PersistSession(session, event=None, created=False)]

    def _on_moved(
        self,
        tracked: _Tracked,
        source_id: str,
        *,
        moved: bool,
        device_id: str | None,
        note: str | None,
        now: float,
    ) -> list[Command]:
        """Rule 8: the player's answer to a TransferPlayback, recorded in both sessions. The
        music is the new session's now (its end pauses it; the old one's end does not).
        Music that did not move: the new session asks for its room's own instead."""
        session_id = tracked.session.session_id
        source = self._tracked.get(source_id)
        tracked.follows = None
        phase, stop = self._step(tracked.phase, _Input.STARTED if moved else _Input.REFUSED)
        where = source.session.sensor_id if source is not None else "the other room"
        answer = (
            f"player: moved here from {where} on {device_id or 'the device'}"
            if moved
            else f"player: did not move ({note or 'no reason given'})"
        )
        changes: dict[str, object] = {
            "playback_started": moved,
            "spotify_device_id": device_id if moved else None,
            "playback_note": note,
            "updated_at": now,
        }
        if moved and source is not None:  # what plays here now (a restart pauses it by this)
            changes["spotify_context_uri"] = source.session.spotify_context_uri
        session = tracked.session.with_changes(**changes).deciding(Decision(now, "player", answer))
        tracked.session, tracked.phase, tracked.awaiting_start = session, phase, False
        tracked.awaiting_stops += 1 if stop else 0
        commands: list[Command] = []
        if stop:
            commands.append(StopPlayback(session, self._settings(session.sensor_id)))
        elif not moved and session.is_active:
            commands += self._play_own(tracked, now)
        self._put(tracked)
        commands.insert(0, PersistSession(tracked.session, event=None, created=False))
        if source is not None:
            commands += self._moved_away(source, tracked.session, moved=moved, now=now)
        self._forget_if_settled(session_id)
        return commands

    def _moved_away(
        self, source: _Tracked, to: Session, *, moved: bool, now: float
    ) -> list[Command]:
        """The music's old session learns whether its music moved (its end then pauses nothing)."""
        source.moving = False
        if moved:
            phase, _ = self._step(source.phase, _Input.MOVED_AWAY)
            source.phase = phase
            source.session = source.session.with_changes(
                playback_note="moved_away", updated_at=now
            ).deciding(
                Decision(
                    now,
                    "player",
                    f"player: its music moved to {to.sensor_id} ({to.session_id}); "
                    "its end pauses nothing",
                )
            )
        else:
            source.session = source.session.with_changes(updated_at=now).deciding(
                Decision(now, "player", "player: its music did not move")
            )
        self._put(source)
        commands: list[Command] = [PersistSession(source.session, event=None, created=False)]
        self._forget_if_settled(source.session.session_id)
        return commands

    # --- transitions ---

    @staticmethod
    def _step(phase: _Phase, given: _Input) -> tuple[_Phase, bool]:
        """(next phase, emit StopPlayback) from the table; a missing move is our bug."""
        step = _TRANSITIONS.get((phase, given))
        if step is None:
            raise EngineError(f"no transition from {phase.name} on {given.name}")
        return step

    def _create(
        self, room: Room, event: MotionEvent, now: float, *, cause: Signal = Signal.MOTION
    ) -> list[Command]:
        """Rule 3: a new session; playback unless the motion is stale, do-not-disturb holds
        or it is quiet hours."""
        note = self._playback_veto(room, event, now)
        sensor = playback_for(room.settings, event.occurred_at, self._tz)  # the moment's music
        session = open_session(
            session_id=self._new_id(sensor.id, event.occurred_at),
            sensor_id=sensor.id,
            user_id=sensor.user_id,
            start=_on_grid(event.occurred_at),
            now=now,
            ttl_days=self._config.sessions.ttl_days,
            spotify_context_uri=sensor.context_uri or None,
            playback_note=note,
        )
        if session.session_id in self._tracked:
            raise EngineError(f"new_id returned a known session id {session.session_id!r}")
        what = "said occupied" if cause is Signal.OCCUPIED else "saw motion"
        session = session.deciding(
            Decision(
                event.occurred_at, "start", f"{what}: a session for {room.id}", event.sensor_id
            )
        )
        source = self._follow_source(room) if note is None else None
        if note is not None:
            asked = f"no music: {_VETOES.get(note, note)}"
        elif source is not None:
            asked = (
                f"waiting for the music playing in {source.session.sensor_id} to follow here "
                f"(once {source.session.sensor_id} has had no motion for "
                f"{self._follow_after(source):g} s)"
            )
        else:
            asked = (
                f"asked to play {sensor.context_uri or 'what was playing'} on "
                f"{sensor.spotify_device or 'the active device'}"
            )
        session = session.deciding(Decision(event.occurred_at, "play", asked))
        tracked = _Tracked(session, _Phase.IDLE, burst_start=event.occurred_at)
        if self._occupancy[room.id].held:
            tracked.hold_since = event.occurred_at
            tracked.session = _held(session, event.occurred_at, event.sensor_id)
            session = tracked.session
        commands: list[Command] = [PersistSession(session, event=event, created=True)]
        if note is None and source is None:
            self._ask(tracked)
            commands.append(StartPlayback(session, sensor))
        self._put(tracked, schedule=True)
        self._active[sensor.id] = session.session_id
        if source is not None:
            tracked.follows = source.session.session_id
            self._waiting[session.session_id] = tracked.follows
            commands += self._follow_due(now)  # the music's room may be quiet already
        return commands

    def _occupy(
        self,
        tracked: _Tracked,
        state: RoomState,
        event: MotionEvent | None,
        now: float,
        *,
        sensor_id: str,
        door_opened: bool,
        cleared: bool,
    ) -> list[Command]:
        """Rule 4: count or coalesce the motion (`event`, if any) into the active session,
        and hold or release it as the room's occupancy now says."""
        before = self._due(tracked)[0]
        changed, counted = (False, None) if event is None else self._absorb(tracked, event, now)
        if state.held and tracked.hold_since is None:
            tracked.hold_since = now
            tracked.session = _held(tracked.session, now, sensor_id)
            changed = True
        elif not state.held and tracked.hold_since is not None:
            tracked.hold_since = None
            why = (
                "the door opened on someone inside"
                if door_opened
                else "every presence source clear"
            )
            tracked.session = tracked.session.deciding(
                Decision(now, "release", f"released: {why}; the timeout counts from now", sensor_id)
            )
            changed = True
        if cleared and not state.occupied:
            tracked.cleared_at = now
        if door_opened:
            tracked.door_opened_at = now
        tracked.recovered = False
        if self._due(tracked)[0] < before:  # the heap only moves entries later by itself
            self._reschedule(tracked)
        if not changed:
            return []
        self._put(tracked)
        return [PersistSession(tracked.session, event=counted, created=False)]

    def _reschedule(self, tracked: _Tracked) -> None:
        heapq.heappush(self._deadlines, (self._due(tracked)[0], tracked.session.session_id))

    def _amend(self, tracked: _Tracked, event: MotionEvent, now: float) -> list[Command]:
        """Rule 5: replayed motion joins the ended session it belongs to; it stays ended."""
        timed_out = tracked.session.end == self._due(tracked)[0]
        changed, counted = self._absorb(tracked, event, now)
        if not changed:
            return []
        if timed_out:  # a session ended by request keeps the end it was given
            end, reason = self._due(tracked)
            tracked.session = tracked.session.with_changes(end=end, end_reason=reason)
        self._put(tracked)
        return [PersistSession(tracked.session, event=counted, created=False)]

    def _end(
        self, tracked: _Tracked, now: float, *, ended_as: Session | None = None
    ) -> list[Command]:
        """Rule 1: end exactly at the deadline, whenever the tick runs — or as `ended_as`
        (earlier) when a request ends the session."""
        phase, stop = self._step(tracked.phase, _Input.END)
        end, reason = self._due(tracked)
        if ended_as is None and reason is EndReason.MAX_HOLD:
            self._occupancy.get(tracked.session.sensor_id, RoomState()).cut()
        if ended_as is not None:
            session = ended_as.deciding(Decision(now, "end", "ended by request"))
        else:
            reason = EndReason.RECOVERED if tracked.recovered else reason
            session = tracked.session.with_changes(
                status=SessionStatus.COMPLETED, end=end, updated_at=now, end_reason=reason
            ).deciding(Decision(end, "end", f"ended: {_ENDS[reason]}"))
        if stop:
            session = session.deciding(Decision(now, "play", "asked to pause what the hub started"))
        awaiting_stops = tracked.awaiting_stops + (1 if stop else 0)
        tracked.session, tracked.phase, tracked.awaiting_stops = session, phase, awaiting_stops
        self._put(tracked)
        del self._active[session.sensor_id]
        previous = self._last_ended.get(session.sensor_id)
        self._last_ended[session.sensor_id] = session.session_id
        if previous is not None:
            self._forget_if_settled(previous)
        commands: list[Command] = [PersistSession(session, event=None, created=False)]
        if stop:
            commands.append(StopPlayback(session, self._settings(session.sensor_id)))
        if self._waiting.pop(session.session_id, None) is not None:
            tracked.follows = None  # it ended waiting: nothing to move here any more
        for waiter_id in [w for w, s in self._waiting.items() if s == session.session_id]:
            # The music it waited for ends with this session: it plays its own instead.
            why = f"the music in {session.sensor_id} ended before it could follow"
            commands += self._stop_waiting(self._tracked[waiter_id], now, why, play_own=True)
        return commands

    # --- music that follows you (rule 8) ---
    #
    # A new session in a room with `follow = true`, while another such room's session plays
    # what the hub started (same person, another speaker), does not start its own music: it
    # waits for that music. Once the music's room has had no motion for its
    # `follow_after_seconds` (and nothing holds it), the player moves the music to the
    # waiting room's speaker. Hysteresis, so walking through a hall does not flap:
    # - the music leaves a room only after it has been quiet that long: someone pacing
    #   between two rooms keeps it where it is;
    # - it goes only to a room that saw motion after its own room last did, and of those to
    #   the one with the latest motion (where the person is now, not the hall they crossed);
    # - the other rooms waiting for it stop waiting, silent: music that has just arrived
    #   somewhere is never moved on by a room passed through on the way. It moves again
    #   only for a session that starts after it arrived.

    def _follow_source(self, room: Room) -> _Tracked | None:
        """The session whose music may follow into `room`'s new session: in another room
        that follows too, of the same person, on another speaker, playing what the hub
        started and not already moving (the latest started, if several)."""
        mine = room.settings
        if not mine.follow or not mine.spotify_device:
            return None
        found: _Tracked | None = None
        for room_id, session_id in self._active.items():
            other = self._rooms.get(room_id)
            tracked = self._tracked[session_id]
            if (
                other is None
                or room_id == room.id
                or not other.settings.follow
                or other.settings.user_id != mine.user_id
                or _speaker(other.settings) == _speaker(mine)
                or tracked.phase is not _Phase.PLAYING
                or tracked.moving
            ):
                continue
            if found is None or tracked.session.start > found.session.start:
                found = tracked
        return found

    def _follow_after(self, source: _Tracked) -> float:
        room = self._rooms.get(source.session.sensor_id, self._default_room)
        return room.settings.follow_after_seconds

    def _follow_times(self) -> dict[str, float]:
        """Source session id -> when its music may move, for each playing source one of
        whose waiters saw motion after it did (the others wait for motion, not for time);
        none while the source's room is held (someone is there)."""
        times: dict[str, float] = {}
        for waiter_id, source_id in self._waiting.items():
            source = self._tracked.get(source_id)
            if (
                source is None
                or source.phase is not _Phase.PLAYING
                or source.hold_since is not None
                or source_id in times
            ):
                continue
            if self._tracked[waiter_id].session.last_motion > _last_seen(source):
                times[source_id] = _last_seen(source) + self._follow_after(source)
        return times

    def _follow_due(self, now: float) -> list[Command]:
        """Move each music whose time has come to the waiting room with the latest motion;
        the other rooms waiting for it stop waiting."""
        commands: list[Command] = []
        for source_id, at in sorted(self._follow_times().items(), key=lambda item: item[1]):
            if at > now:
                continue
            source = self._tracked[source_id]
            waiters = [self._tracked[w] for w, s in self._waiting.items() if s == source_id]
            moved_on = [w for w in waiters if w.session.last_motion > _last_seen(source)]
            chosen = max(moved_on, key=lambda w: (w.session.last_motion, w.session.start))
            commands += self._move(source, chosen, now)
            for waiter in waiters:
                if waiter is not chosen:
                    why = f"no music: the music followed to {chosen.session.sensor_id} instead"
                    commands += self._stop_waiting(waiter, now, why, play_own=False)
        return commands

    def _move(self, source: _Tracked, waiter: _Tracked, now: float) -> list[Command]:
        """Ask the player to move `source`'s music to `waiter`'s speaker."""
        quiet = now - _last_seen(source)
        del self._waiting[waiter.session.session_id]
        self._ask(
            waiter,
            Decision(
                now,
                "play",
                f"asked to move the music playing in {source.session.sensor_id} here "
                f"(no motion there for {quiet:.0f} s)",
            ),
        )
        source.moving = True
        source.session = source.session.deciding(
            Decision(
                now,
                "play",
                f"asked to move its music to {waiter.session.sensor_id} "
                f"({waiter.session.session_id}): no motion here for {quiet:.0f} s",
            )
        )
        self._put(waiter)
        self._put(source)
        room = self._rooms[waiter.session.sensor_id]
        return [
            PersistSession(source.session, event=None, created=False),
            PersistSession(waiter.session, event=None, created=False),
            TransferPlayback(
                waiter.session, source.session, playback_for(room.settings, now, self._tz)
            ),
        ]

    def _stop_waiting(
        self, waiter: _Tracked, now: float, why: str, *, play_own: bool
    ) -> list[Command]:
        """`waiter` waits no more: silent, or asking for its room's own music."""
        del self._waiting[waiter.session.session_id]
        waiter.follows = None
        waiter.session = waiter.session.deciding(Decision(now, "play", why))
        commands: list[Command] = []
        if play_own:
            commands = self._play_own(waiter, now)
        self._put(waiter)
        return [PersistSession(waiter.session, event=None, created=False), *commands]

    def _play_own(self, tracked: _Tracked, now: float) -> list[Command]:
        """Ask for the room's own music (after music that could not follow here)."""
        room = self._rooms[tracked.session.sensor_id]
        sensor = playback_for(room.settings, now, self._tz)
        asked = (
            f"asked to play {sensor.context_uri or 'what was playing'} on "
            f"{sensor.spotify_device or 'the active device'} instead"
        )
        self._ask(tracked, Decision(now, "play", asked))
        return [StartPlayback(tracked.session, sensor)]

    def _ask(self, tracked: _Tracked, decision: Decision | None = None) -> None:
        """The session asks the player for music (a start, or a move): its answer is due."""
        phase, _ = self._step(tracked.phase, _Input.REQUEST)
        tracked.phase, tracked.awaiting_start = phase, True
        if decision is not None:
            tracked.session = tracked.session.deciding(decision)

    # --- helpers ---

    def _absorb(
        self, tracked: _Tracked, event: MotionEvent, now: float
    ) -> tuple[bool, MotionEvent | None]:
        """Put this motion into the session: (whether anything changed, the event if it
        was counted).

        Coalesced motion still extends the session (the seed dropped it, and music stopped
        on a person still in the room). Nothing changes when the motion adds nothing, so no
        unchanged row is rewritten (flash wear).
        """
        session = tracked.session
        counted = event.occurred_at - tracked.burst_start >= self._config.sessions.debounce_seconds
        last_motion = max(session.last_motion, _on_grid(event.occurred_at))  # never backwards
        if not counted and last_motion == session.last_motion:
            return False, None
        tracked.session = session.with_changes(
            last_motion=last_motion,
            motion_events_count=session.motion_events_count + (1 if counted else 0),
            updated_at=now,
        )
        if not counted:
            return True, None
        tracked.burst_start = event.occurred_at
        return True, event

    def _playback_veto(self, room: Room, event: MotionEvent, now: float) -> str | None:
        """Why a new session must not play, or None when it may."""
        if self._is_stale(room.id, event, now):
            return "stale"  # the person has most likely left already
        if self._controls.dnd(room.id, now):
            return "do_not_disturb"  # a person said "not now": recorded, silent
        if in_quiet_hours(room.settings.quiet_hours, event.occurred_at, self._tz):
            return "quiet_hours"
        return None

    def _is_stale(self, room_id: str, event: MotionEvent, now: float) -> bool:
        return now - event.occurred_at >= self.timeout(room_id)

    def _amendable(self, room_id: str, event: MotionEvent, now: float) -> _Tracked | None:
        """The room's last ended session, if this stale motion falls inside it."""
        session_id = self._last_ended.get(room_id)
        if session_id is None or not self._is_stale(room_id, event, now):
            return None
        ended = self._tracked[session_id].session
        inside = ended.end is not None and ended.start <= event.occurred_at <= ended.end
        return self._tracked[session_id] if inside else None

    def _tracked_active(self, room_id: str) -> _Tracked | None:
        session_id = self._active.get(room_id)
        return None if session_id is None else self._tracked[session_id]

    def _put(self, tracked: _Tracked, *, schedule: bool = False) -> None:
        """Store a session's new state, checking the invariants every transition keeps;
        `schedule` a session that just became active (its deadline enters the heap)."""
        session = tracked.session
        if session.is_active != (tracked.phase in _ACTIVE_PHASES):
            raise EngineError(f"{session.session_id}: status {session.status} in {tracked.phase}")
        if not session.is_active and (session.end is None or session.end > self._due(tracked)[0]):
            raise EngineError(f"{session.session_id}: ended after its deadline")
        self._tracked[session.session_id] = tracked
        if schedule:
            heapq.heappush(self._deadlines, (self._due(tracked)[0], session.session_id))

    def _forget_if_settled(self, session_id: str) -> None:
        """Bound memory: drop an ended session once nothing can act on it any more."""
        tracked = self._tracked[session_id]
        is_last = self._last_ended.get(tracked.session.sensor_id) == session_id
        if tracked.settled and not is_last:
            del self._tracked[session_id]

    def _settings(self, room_id: str) -> SensorConfig | None:
        room = self._rooms.get(room_id)
        return None if room is None else room.settings


# Why a new session plays nothing, and how each rule ends one, for the decision trace.
_VETOES: Final = {
    "stale": "the motion is older than the timeout",
    "quiet_hours": "quiet hours",
}
_ENDS: Final = {
    EndReason.TIMEOUT: "the timeout after the last motion",
    EndReason.PRESENCE_CLEARED: "the timeout after every presence source cleared",
    EndReason.DOOR_OPENED: "the door timeout after the door opened on someone inside",
    EndReason.MAX_HOLD: "held for max_hold: a source that never cleared",
    EndReason.ENDED_BY_REQUEST: "ended by request",
    EndReason.RECOVERED: "taken over after a restart, and over since",
}


def _last_seen(tracked: _Tracked) -> float:
    """When someone was last known in the session's room: its last motion, or a presence
    source clearing or the door opening after it (they were there until then)."""
    anchors = (tracked.cleared_at, tracked.door_opened_at)
    return max([tracked.session.last_motion, *(a for a in anchors if a is not None)])


def _speaker(settings: SensorConfig) -> str:
    """A room's speaker as configured, compared the way the player's lanes are."""
    return settings.spotify_device.strip().casefold()


def _moved(instant: float | None, delta: float) -> float | None:
    return None if instant is None else round(instant + delta, 6)


def _held(session: Session, at: float, sensor_id: str) -> Session:
    return session.deciding(
        Decision(at, "hold", "held: someone is there, no timeout (max_hold at most)", sensor_id)
    )


def _as_motion(report: MotionEvent | SensorState) -> MotionEvent:
    """The motion row a report makes when it says someone is there."""
    if isinstance(report, MotionEvent):
        return report
    return MotionEvent(
        sensor_id=report.sensor_id,
        occurred_at=report.received_at,
        received_at=report.received_at,
        source=report.source,
        battery_level=report.battery_level,
    )


def _retained(report: MotionEvent | SensorState) -> bool:
    return isinstance(report, SensorState) and report.retained
