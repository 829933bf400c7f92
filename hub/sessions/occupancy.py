"""Occupancy rules: what a sensor's report means for its room, as data (pure, no clock).

A report is a pulse (`MotionEvent`) or a state held until the next (`SensorState`: on or
off). What it means depends on the sensor's kind (`SIGNALS`): a motion sensor's pulse, or
its `ON`, is motion; a presence sensor's on is "occupied" and its off "clear"; a door's on
is "open" and its off "closed". A sensor whose kind is not configured takes it from what
it sends: pulses are motion (until the sensor sends a clear: a motion sensor that sends
clears holds its state between them, as presence), occupancy states are presence, contact
states a door.

A room is held — its session never ends by timeout — while any of its presence sources
says occupied, or while its door is closed with someone seen inside since it closed (the
"wasp in a box": motion or presence while the door is closed means someone is inside until
the door opens). The door is one small table, `DOOR_MOVES` (as h11's `_state.py`). What
ends a hold anchors the room's next deadline: every presence source clear ->
clear + timeout (`presence_cleared`); the door opening on someone inside -> open + door
timeout (`door_opened`). A hold that never ends is cut at `max_hold` (a stuck mmWave),
after which its sources are ignored until they clear.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum, auto
from types import MappingProxyType
from typing import Final

from hub.config import SensorKind
from hub.model import MotionEvent, SensorState, StateKind


class Signal(Enum):
    MOTION = auto()  # someone moved: starts or extends a session
    OCCUPIED = auto()  # a presence source says someone is there: starts and holds
    CLEAR = auto()  # a presence source says no one is there
    DOOR_OPEN = auto()
    DOOR_CLOSED = auto()
    NOTHING = auto()  # means nothing for sessions (a motion sensor's OFF, a door's pulse)


class Report(Enum):
    PULSE = auto()  # a MotionEvent
    ON = auto()  # a SensorState that is on (occupied, open)
    OFF = auto()  # a SensorState that is off (clear, closed)


# (the sensor's kind, what it reported) -> what it means for the room
SIGNALS: Final[Mapping[tuple[SensorKind, Report], Signal]] = MappingProxyType(
    {
        ("motion", Report.PULSE): Signal.MOTION,
        ("motion", Report.ON): Signal.MOTION,
        ("motion", Report.OFF): Signal.NOTHING,  # a PIR's "no motion": sessions time out
        ("presence", Report.PULSE): Signal.OCCUPIED,
        ("presence", Report.ON): Signal.OCCUPIED,
        ("presence", Report.OFF): Signal.CLEAR,
        ("door", Report.PULSE): Signal.NOTHING,
        ("door", Report.ON): Signal.DOOR_OPEN,
        ("door", Report.OFF): Signal.DOOR_CLOSED,
    }
)
# The kind of a sensor whose kind is not configured, by what it sends.
_KIND_OF_STATE: Final[Mapping[StateKind, SensorKind]] = MappingProxyType(
    {StateKind.OCCUPANCY: "presence", StateKind.CONTACT: "door"}
)
# Signals that say someone is in the room (they may start a session).
ACTIVITY: Final = frozenset({Signal.MOTION, Signal.OCCUPIED})


class Door(Enum):
    NONE = auto()  # no door reported yet (or the room has none)
    OPEN = auto()
    CLOSED = auto()  # closed, no one seen inside since
    CLOSED_OCCUPIED = auto()  # closed with someone seen inside: the room is held


# (door, signal) -> (next door, whether the move releases the room: the door opened on
# someone inside). Pairs not listed leave the door as it is (motion with the door open,
# a door reporting the state it is in, ...).
DOOR_MOVES: Final[Mapping[tuple[Door, Signal], tuple[Door, bool]]] = MappingProxyType(
    {
        (Door.NONE, Signal.DOOR_OPEN): (Door.OPEN, False),
        # Closed with no one seen inside: someone may be in there, but only motion or
        # presence while it stays closed says so.
        (Door.NONE, Signal.DOOR_CLOSED): (Door.CLOSED, False),
        (Door.OPEN, Signal.DOOR_CLOSED): (Door.CLOSED, False),
        (Door.CLOSED, Signal.DOOR_OPEN): (Door.OPEN, False),
        (Door.CLOSED, Signal.MOTION): (Door.CLOSED_OCCUPIED, False),
        (Door.CLOSED, Signal.OCCUPIED): (Door.CLOSED_OCCUPIED, False),
        (Door.CLOSED_OCCUPIED, Signal.DOOR_OPEN): (Door.OPEN, True),
    }
)


def kind_of(
    configured: SensorKind | None, report: MotionEvent | SensorState, clears: bool
) -> SensorKind:
    """The sensor's kind: as configured, else from what it sends (`clears`: it has sent a
    clear, so its pulses are a held state)."""
    if configured is not None:
        return configured
    if isinstance(report, SensorState):
        return _KIND_OF_STATE[report.kind]
    return "presence" if clears else "motion"


def report_of(report: MotionEvent | SensorState) -> Report:
    if isinstance(report, MotionEvent):
        return Report.PULSE
    return Report.ON if report.on else Report.OFF


@dataclass(slots=True)
class RoomState:
    """What a room's sensors last said (changed in place by `apply`)."""

    occupied: set[str] = field(default_factory=set)  # presence sources saying occupied
    stuck: set[str] = field(default_factory=set)  # held a session to max_hold; until clear
    doors_open: dict[str, bool] = field(default_factory=dict)
    door: Door = Door.NONE

    @property
    def held(self) -> bool:
        """Someone is in the room for sure: no timeout, only max_hold."""
        return bool(self.occupied - self.stuck) or self.door is Door.CLOSED_OCCUPIED

    def apply(self, sensor_id: str, signal: Signal, on: bool) -> Outcome:
        """Take one signal; say what it changed."""
        repeat = False
        if signal is Signal.OCCUPIED:
            repeat = sensor_id in self.occupied
            self.occupied.add(sensor_id)
        elif signal is Signal.CLEAR:
            repeat = sensor_id not in self.occupied
            self.occupied.discard(sensor_id)
            self.stuck.discard(sensor_id)
        door_signal = signal
        if signal in {Signal.DOOR_OPEN, Signal.DOOR_CLOSED}:
            self.doors_open[sensor_id] = on
            # Several doors: the room is closed only when every one is.
            door_signal = Signal.DOOR_OPEN if any(self.doors_open.values()) else Signal.DOOR_CLOSED
        self.door, opened_on_someone = DOOR_MOVES.get((self.door, door_signal), (self.door, False))
        return Outcome(repeat=repeat, door_opened=opened_on_someone)

    def cut(self) -> None:
        """The hold reached max_hold: its sources are ignored until they say something new."""
        self.stuck |= self.occupied
        if self.door is Door.CLOSED_OCCUPIED:
            self.door = Door.CLOSED


@dataclass(frozen=True, slots=True)
class Outcome:
    repeat: bool  # an occupied source said occupied again, or a clear one clear
    door_opened: bool  # the door opened on someone inside
