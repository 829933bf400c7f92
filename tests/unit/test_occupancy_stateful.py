"""The occupancy rules under random interleavings: a room of a PIR, an mmWave and a door.

The machine keeps its own model of the room, written from the issue's rules rather than
from the engine: which presence sources say occupied, whether the door is closed with
someone seen inside, and the instants a deadline may be anchored to. Every ended session
is checked against it: one active session per room; a held room never ends by timeout
(only at max_hold, from the hold's start); an end happens exactly at last motion + timeout,
clear + timeout, door opening + door timeout or hold start + max_hold, whichever the rules
say; a door alone never starts a session.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from hub.config import HubConfig, RoomConfig, SensorConfig, SessionsSection
from hub.model import EndReason, MotionEvent, SensorState, Session, StateKind
from hub.sessions.engine import Command, PersistSession, SessionEngine, StartPlayback

TIMEOUT = 300.0
DOOR_TIMEOUT = 60.0
MAX_HOLD = 3600.0
ROOM = "bathroom"
CONFIG = HubConfig(
    sessions=SessionsSection(
        timeout_minutes=TIMEOUT / 60,
        debounce_seconds=10,
        max_hold_minutes=MAX_HOLD / 60,
        door_timeout_seconds=DOOR_TIMEOUT,
    ),
    sensors=(
        SensorConfig(id="pir", user_id="u"),
        SensorConfig(id="radar", user_id="u", kind="presence"),
        SensorConfig(id="door", user_id="u", kind="door"),
    ),
    rooms=(RoomConfig(ROOM, "", ("pir", "radar", "door"), SensorConfig(id=ROOM, user_id="u")),),
)
T0 = 1_718_190_000.0
advances = st.one_of(st.floats(0, 15), st.floats(0, 120), st.floats(0, 400), st.floats(0, 5000))


class OccupancyMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.counter = 0
        self.engine = SessionEngine(CONFIG, new_id=self.new_id)
        self.now = T0
        self.store: dict[str, Session] = {}
        self.starts = 0
        # The model of the room.
        self.radar_on = False
        self.radar_stuck = False
        self.door_closed: bool | None = None
        self.inside = False  # seen while the door was closed, since it closed
        self.active: str | None = None
        self.hold_since: float | None = None
        self.cleared_at: float | None = None
        self.door_opened_at: float | None = None

    def new_id(self, room_id: str, start: float) -> str:
        self.counter += 1
        return f"session-{room_id}-{int(start)}-{self.counter:08x}"

    @property
    def held(self) -> bool:
        return (self.radar_on and not self.radar_stuck) or bool(self.door_closed and self.inside)

    # --- expected deadline ---

    def expected(self, session: Session) -> tuple[float, EndReason]:
        if self.hold_since is not None:
            return round(self.hold_since + MAX_HOLD, 6), EndReason.MAX_HOLD
        anchor, due, reason = session.last_motion, session.last_motion + TIMEOUT, EndReason.TIMEOUT
        if self.cleared_at is not None and self.cleared_at >= anchor:
            anchor, due, reason = (
                self.cleared_at,
                self.cleared_at + TIMEOUT,
                EndReason.PRESENCE_CLEARED,
            )
        if self.door_opened_at is not None and self.door_opened_at >= anchor:
            due, reason = self.door_opened_at + DOOR_TIMEOUT, EndReason.DOOR_OPENED
        return round(due, 6), reason

    def apply(self, commands: list[Command]) -> None:
        for command in commands:
            if isinstance(command, StartPlayback):
                self.starts += 1
            if not isinstance(command, PersistSession):
                continue
            session = command.session
            if command.created:
                assert self.active is None, "two active sessions in one room"
                assert session.sensor_id == ROOM
                self.active = session.session_id
                self.hold_since = session.start if self.held else None
                self.cleared_at = self.door_opened_at = None
            elif not session.is_active and self.store[session.session_id].is_active:
                before = self.store[session.session_id]
                end, reason = self.expected(before.with_changes(last_motion=session.last_motion))
                assert (session.end, session.end_reason) == (end, reason)
                if reason is EndReason.MAX_HOLD:
                    assert self.hold_since is not None
                    assert session.end == round(self.hold_since + MAX_HOLD, 6)
                    self.radar_stuck = self.radar_on
                    self.inside = False
                else:
                    assert not self.held, "a held room ended by timeout"
                self.active = None
                self.hold_since = None
            self.store[session.session_id] = session

    def tick_first(self) -> None:
        self.apply(self.engine.on_tick(self.now))

    def after_change(self) -> None:
        if self.active is None:
            return
        if self.held and self.hold_since is None:
            self.hold_since = self.now
        elif not self.held and self.hold_since is not None:
            self.hold_since = None

    # --- rules ---

    @rule(step=advances)
    def advance(self, step: float) -> None:
        self.now += step
        self.apply(self.engine.on_tick(self.now))

    @rule()
    def pir(self) -> None:
        self.tick_first()
        if self.door_closed:
            self.inside = True
        commands = self.engine.on_motion(MotionEvent("pir", self.now, self.now), self.now)
        self.apply(commands)
        self.after_change()

    @rule(on=st.booleans())
    def radar(self, on: bool) -> None:
        self.tick_first()
        was = self.radar_on
        self.radar_on = on
        if not on:
            self.radar_stuck = False
        if on and self.door_closed:
            self.inside = True
        state = SensorState("radar", StateKind.OCCUPANCY, on=on, received_at=self.now)
        self.apply(self.engine.on_state(state, self.now))
        if self.active is not None and was and not on:
            self.cleared_at = self.now
        self.after_change()

    @rule(opened=st.booleans())
    def door(self, opened: bool) -> None:
        self.tick_first()
        active_before = self.active
        if opened and self.door_closed and self.inside:
            self.inside = False
            if self.active is not None:
                self.door_opened_at = self.now
        if not opened and not self.door_closed:
            self.inside = False
        self.door_closed = not opened
        state = SensorState("door", StateKind.CONTACT, on=opened, received_at=self.now)
        commands = self.engine.on_state(state, self.now)
        self.apply(commands)
        assert not any(isinstance(c, PersistSession) and c.created for c in commands), (
            "a door started a session"
        )
        assert self.active == active_before
        self.after_change()

    @invariant()
    def one_active_session_and_one_play_per_session(self) -> None:
        active = [s for s in self.store.values() if s.is_active]
        assert len(active) <= 1
        assert set(self.engine.active) <= {ROOM}
        assert self.starts <= len(self.store)

    @invariant()
    def deadline_is_the_rules(self) -> None:
        if self.active is not None:
            session = self.engine.active[ROOM]
            assert self.engine.next_deadline() == self.expected(session)[0]


TestOccupancy = OccupancyMachine.TestCase
TestOccupancy.settings = settings(max_examples=300, stateful_step_count=60, deadline=None)
