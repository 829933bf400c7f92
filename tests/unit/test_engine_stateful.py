"""The session engine under random interleavings of motion, ticks and player answers.

The machine keeps its own model of the store (the latest value of every persisted
session, the motion-event rows) and of the player (requests not yet answered), and
checks every command against it. Oracles are written independently of the engine:
quiet hours from the plain local hour, timeouts from a table.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from hub.config import HubConfig, HubSection, QuietHours, SensorConfig, SessionsSection
from hub.model import MotionEvent, Session, SessionStatus
from hub.sessions.engine import (
    Command,
    DropEvent,
    PersistSession,
    SessionEngine,
    StartPlayback,
    StopPlayback,
)

LONDON = ZoneInfo("Europe/London")
CONFIG = HubConfig(
    hub=HubSection(timezone="Europe/London"),
    sessions=SessionsSection(timeout_minutes=5, debounce_seconds=10, ttl_days=30),
    sensors=(
        SensorConfig(
            id="bathroom",
            user_id="user-1",
            quiet_hours=QuietHours(start=dt.time(22, 0), end=dt.time(7, 0)),
        ),
        SensorConfig(id="kitchen", user_id="user-2", timeout_minutes=1.5),
        SensorConfig(id="garage", user_id="user-3", enabled=False),
    ),
)
TIMEOUTS = {"bathroom": 300.0, "kitchen": 90.0, "garage": 300.0, "attic": 300.0}
PLAYING_SENSORS = {"bathroom", "kitchen"}
# Evening before a DST change in London: runs cross 22:00 and, with long steps, the night.
BASE = dt.datetime(2024, 3, 30, 21, 50, tzinfo=LONDON).timestamp()


def quiet(instant: float) -> bool:
    """The bathroom's 22:00-07:00, read off the local clock."""
    hour = dt.datetime.fromtimestamp(instant, LONDON).hour
    return hour >= 22 or hour < 7


def deadline(session: Session) -> float:
    return session.last_motion + TIMEOUTS[session.sensor_id]


advances = st.one_of(
    st.floats(0, 15),  # inside the debounce window
    st.floats(0, 120),  # around the kitchen's timeout
    st.floats(0, 400),  # around the bathroom's timeout
    st.floats(0, 20_000),  # an outage, or the night passing
)
# How long before `now` the motion happened: on time, a little late, stale, or a sensor
# clock slightly ahead.
offsets = st.one_of(st.just(0.0), st.floats(0, 30), st.floats(0, 2_000), st.floats(-5, 0))


class EngineMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.counter = 0
        self.engine = SessionEngine(CONFIG, new_id=self.new_id)
        self.now = BASE
        self.store: dict[str, Session] = {}  # session_id -> last persisted value
        self.event_rows: dict[str, int] = {}  # session_id -> motion-event rows
        self.pending_starts: list[str] = []  # StartPlayback not yet answered
        self.pending_stops: list[str] = []  # StopPlayback not yet answered
        self.start_requested: set[str] = set()  # every StartPlayback ever emitted
        self.last_ended: dict[str, str] = {}  # sensor_id -> its most recently ended session

    def new_id(self, sensor_id: str, start: float) -> str:
        self.counter += 1
        return f"s{self.counter}-{sensor_id}-{start}"

    # --- the model of the store and the player ---

    def apply(self, commands: list[Command]) -> None:
        for command in commands:
            match command:
                case PersistSession(session=session, event=event, created=created):
                    self.persist(session, event, created=created)
                case StartPlayback(session=session, sensor=sensor):
                    assert sensor.id == session.sensor_id
                    assert sensor.id in PLAYING_SENSORS
                    assert session.session_id in self.store
                    self.pending_starts.append(session.session_id)
                    self.start_requested.add(session.session_id)
                case StopPlayback(session=session, sensor=sensor):
                    # Only what the hub asked to play is ever paused.
                    assert session.session_id in self.start_requested
                    assert sensor is not None
                    assert sensor.id == session.sensor_id
                    assert session.status is SessionStatus.COMPLETED
                    self.pending_stops.append(session.session_id)
                case DropEvent():
                    pass

    def persist(self, session: Session, event: MotionEvent | None, *, created: bool) -> None:
        sid = session.session_id
        if created:
            assert sid not in self.store
            assert session.is_active
            assert session.motion_events_count == 1
            assert event is not None
            assert event.occurred_at == session.start
        else:
            before = self.store[sid]
            assert session.motion_events_count >= before.motion_events_count
            assert session.last_motion >= before.last_motion
            assert session.start == before.start
            assert session.updated_at >= before.updated_at
            assert before.is_active or not session.is_active  # ended sessions stay ended
            if before.is_active and not session.is_active:
                self.last_ended[session.sensor_id] = sid
        if event is not None:
            assert event.sensor_id == session.sensor_id
            assert session.start <= event.occurred_at <= session.last_motion
            self.event_rows[sid] = self.event_rows.get(sid, 0) + 1
        self.store[sid] = session
        active_sensors = [s.sensor_id for s in self.store.values() if s.is_active]
        assert len(active_sensors) == len(set(active_sensors)), "two active sessions"

    # --- rules ---

    @rule(
        sensor_id=st.sampled_from(["bathroom", "kitchen", "garage", "attic"]),
        advance=advances,
        offset=offsets,
    )
    def motion(self, sensor_id: str, advance: float, offset: float) -> None:
        self.send_motion(sensor_id, advance, offset)

    @precondition(lambda self: bool(self.engine.active))
    @rule(data=st.data(), advance=st.floats(0, 30), offset=st.floats(-5, 20))
    def more_motion(self, data: st.DataObject, advance: float, offset: float) -> None:
        """A person still in the room: motion soon after, for a sensor with a session."""
        self.send_motion(data.draw(st.sampled_from(sorted(self.engine.active))), advance, offset)

    def send_motion(self, sensor_id: str, advance: float, offset: float) -> None:
        self.now += advance
        occurred_at = round(self.now - offset, 6)  # the engine keeps times on the µs grid
        event = MotionEvent(sensor_id=sensor_id, occurred_at=occurred_at, received_at=self.now)
        commands = self.engine.on_motion(event, self.now)
        self.apply(commands)

        stale = self.now - occurred_at >= TIMEOUTS[sensor_id]
        starts = [c for c in commands if isinstance(c, StartPlayback)]
        if sensor_id not in PLAYING_SENSORS:
            reason = "unknown_sensor" if sensor_id == "attic" else "disabled_sensor"
            assert commands[-1] == DropEvent(event, reason)
            assert not any(isinstance(c, PersistSession) and c.event is event for c in commands)
        if starts:
            assert len(starts) == 1
            assert starts[0].session.start == occurred_at
            assert not stale
            assert not (sensor_id == "bathroom" and quiet(occurred_at))

    @precondition(lambda self: bool(self.last_ended))
    @rule(data=st.data(), where=st.floats(-0.2, 1.2), advance=st.floats(0, 400))
    def replayed_motion(self, data: st.DataObject, where: float, advance: float) -> None:
        """Motion from around the sensor's last ended session, as a buffer replays it."""
        sensor_id = data.draw(st.sampled_from(sorted(self.last_ended)))
        ended = self.store[self.last_ended[sensor_id]]
        assert ended.end is not None
        self.now += advance
        occurred_at = round(ended.start + where * (ended.end - ended.start), 6)
        event = MotionEvent(sensor_id=sensor_id, occurred_at=occurred_at, received_at=self.now)
        # Decide before the call which session it may amend: the call first ends an
        # expired active session, which then is the sensor's most recently ended one.
        active = self.engine.active.get(sensor_id)
        candidate = ended if active is None else active.with_changes(end=deadline(active))
        amends = (
            (active is None or deadline(active) <= self.now)
            and self.now - occurred_at >= TIMEOUTS[sensor_id]
            and candidate.start <= occurred_at <= deadline(candidate)
        )
        commands = self.engine.on_motion(event, self.now)
        self.apply(commands)
        if amends:  # rule 5: it joins the ended session instead of starting one
            assert not any(isinstance(c, PersistSession) and c.created for c in commands)
            assert not any(isinstance(c, StartPlayback) for c in commands)
            amended = self.store[candidate.session_id]
            assert amended.status is SessionStatus.COMPLETED
            assert amended.last_motion >= occurred_at

    @rule(advance=advances)
    def tick(self, advance: float) -> None:
        self.now += advance
        self.apply(self.engine.on_tick(self.now))

    @rule()
    def tick_at_next_deadline(self) -> None:
        due = self.engine.next_deadline()
        if due is None:
            return
        self.now = max(self.now, due)
        ending = [s.session_id for s in self.engine.active.values() if deadline(s) <= self.now]
        assert ending, "next_deadline() named no session"
        self.apply(self.engine.on_tick(self.now))
        for sid in ending:
            assert self.store[sid].status is SessionStatus.COMPLETED
            assert self.store[sid].end == deadline(self.store[sid])

    @precondition(lambda self: bool(self.pending_starts))
    @rule(data=st.data(), started=st.booleans(), advance=st.floats(0, 60))
    def playback_started(self, data: st.DataObject, started: bool, advance: float) -> None:
        self.now += advance
        sid = self.pending_starts.pop(data.draw(st.integers(0, len(self.pending_starts) - 1)))
        was_active = self.store[sid].is_active
        commands = self.engine.on_playback_started(
            sid, started=started, device_id="dev" if started else None, note=None, now=self.now
        )
        self.apply(commands)
        assert self.store[sid].playback_started is started
        # A start that lands after the end is stopped again; otherwise nothing is stopped.
        stops = [c for c in commands if isinstance(c, StopPlayback)]
        assert len(stops) == (1 if started and not was_active else 0)

    @precondition(lambda self: bool(self.pending_stops))
    @rule(data=st.data(), stopped=st.booleans(), advance=st.floats(0, 60))
    def playback_stopped(self, data: st.DataObject, stopped: bool, advance: float) -> None:
        self.now += advance
        sid = self.pending_stops.pop(data.draw(st.integers(0, len(self.pending_stops) - 1)))
        self.apply(self.engine.on_playback_stopped(sid, stopped=stopped, now=self.now))

    @rule(started=st.booleans())
    def answer_for_an_unknown_session(self, started: bool) -> None:
        answer = self.engine.on_playback_started(
            "nope", started=started, device_id=None, note=None, now=self.now
        )
        assert answer == []
        assert self.engine.on_playback_stopped("nope", stopped=started, now=self.now) == []

    # --- invariants ---

    @invariant()
    def active_sessions_match_the_store(self) -> None:
        in_store = {s.sensor_id: s for s in self.store.values() if s.is_active}
        assert dict(self.engine.active) == in_store

    @invariant()
    def next_deadline_is_the_earliest_active_deadline(self) -> None:
        expected = min((deadline(s) for s in self.engine.active.values()), default=None)
        assert self.engine.next_deadline() == expected

    @invariant()
    def completed_sessions_end_exactly_at_their_deadline(self) -> None:
        for session in self.store.values():
            assert session.is_active or session.end == deadline(session)

    @invariant()
    def counts_match_the_event_rows(self) -> None:
        for sid, session in self.store.items():
            assert session.motion_events_count == self.event_rows[sid]

    @invariant()
    def sessions_awaiting_an_answer_are_remembered(self) -> None:
        for sid in [*self.pending_starts, *self.pending_stops]:
            assert sid in self.engine._tracked

    def teardown(self) -> None:
        """Ticking past next_deadline() ends every session that was created."""
        while (due := self.engine.next_deadline()) is not None:
            before = len(self.engine.active)
            self.now = max(self.now, due)
            self.apply(self.engine.on_tick(self.now))
            assert len(self.engine.active) < before
        for session in self.store.values():
            assert session.status is SessionStatus.COMPLETED
            assert session.end == deadline(session)


TestEngine = EngineMachine.TestCase
TestEngine.settings = settings(max_examples=200, stateful_step_count=40, deadline=None)
