"""Occupancy: presence that holds, doors, rooms of several sensors, end reasons — the
engine scenario by scenario, with an injected clock (nothing sleeps)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from zoneinfo import ZoneInfo

from hub.config import HubConfig, HubSection, RoomConfig, SensorConfig, SessionsSection
from hub.model import EndReason, MotionEvent, SensorState, Session, StateKind
from hub.sessions.changes import EndSession
from hub.sessions.engine import (
    Command,
    DropEvent,
    PersistSession,
    SessionEngine,
    StartPlayback,
    StopPlayback,
)

LONDON = ZoneInfo("Europe/London")
T = dt.datetime(2024, 6, 12, 12, 0, tzinfo=LONDON).timestamp()
TIMEOUT = 300.0
DOOR_TIMEOUT = 60.0
MAX_HOLD = 240 * 60.0

PIR = SensorConfig(id="bath_pir", user_id="user-1")
RADAR = SensorConfig(
    id="bath_radar", user_id="user-1", mqtt_topic="z2m/radar", mqtt_format="zigbee2mqtt"
)
DOOR = SensorConfig(id="bath_door", user_id="user-1", kind="door")
BATHROOM = RoomConfig(
    id="bathroom",
    name="Bathroom",
    sensor_ids=("bath_pir", "bath_radar", "bath_door"),
    settings=SensorConfig(id="bathroom", user_id="user-1", spotify_device="Bathroom speaker"),
)
CONFIG = HubConfig(
    hub=HubSection(timezone="Europe/London"),
    sessions=SessionsSection(timeout_minutes=5, debounce_seconds=10, ttl_days=30),
    sensors=(PIR, RADAR, DOOR),
    rooms=(BATHROOM,),
)


def ids(room_id: str, start: float) -> str:
    return f"session-{room_id}-{start:.3f}"


def engine_for(config: HubConfig = CONFIG) -> SessionEngine:
    return SessionEngine(config, new_id=ids)


def motion(at: float, sensor: str = "bath_pir") -> MotionEvent:
    return MotionEvent(sensor_id=sensor, occurred_at=at, received_at=at)


def radar(at: float, *, on: bool, retained: bool = False) -> SensorState:
    return SensorState("bath_radar", StateKind.OCCUPANCY, on=on, received_at=at, retained=retained)


def door(at: float, *, opened: bool) -> SensorState:
    return SensorState("bath_door", StateKind.CONTACT, on=opened, received_at=at)


def ended(commands: list[Command]) -> Session:
    [session] = [
        c.session for c in commands if isinstance(c, PersistSession) and not c.session.is_active
    ]
    return session


def test_sitting_still_keeps_the_music_and_the_clear_ends_it_one_timeout_later() -> None:
    engine = engine_for()
    started = engine.on_state(radar(T, on=True), now=T)
    assert [type(c) for c in started] == [PersistSession, StartPlayback]
    # Thirty simulated minutes of someone sitting still: no motion, the radar holds.
    for minute in range(1, 31):
        assert engine.on_tick(T + minute * 60) == []
    assert engine.next_deadline() == T + MAX_HOLD
    clear_at = T + 1800
    [release] = engine.on_state(radar(clear_at, on=False), now=clear_at)
    assert isinstance(release, PersistSession)  # the trace says why the timeout runs again
    assert release.session.decisions[-1].rule == "release"
    assert engine.next_deadline() == clear_at + TIMEOUT
    assert engine.on_tick(clear_at + TIMEOUT - 0.001) == []
    final = ended(engine.on_tick(clear_at + TIMEOUT))
    assert (final.end, final.end_reason) == (clear_at + TIMEOUT, EndReason.PRESENCE_CLEARED)
    assert final.sensor_id == "bathroom"


def test_a_room_of_three_sensors_makes_one_session_and_one_play() -> None:
    engine = engine_for()
    commands = [
        *engine.on_state(door(T, opened=True), now=T),
        *engine.on_motion(motion(T + 1), now=T + 1),
        *engine.on_state(radar(T + 20, on=True), now=T + 20),
        *engine.on_state(door(T + 21, opened=False), now=T + 21),
        *engine.on_motion(motion(T + 40), now=T + 40),
    ]
    starts = [c for c in commands if isinstance(c, StartPlayback)]
    assert len(starts) == 1
    assert starts[0].sensor == BATHROOM.settings  # the room's speaker and music
    assert {c.session.session_id for c in commands if isinstance(c, PersistSession)} == {
        "session-bathroom-1718190001.000"
    }
    # Motion events keep the id of the sensor that saw them.
    events = [c.event for c in commands if isinstance(c, PersistSession) and c.event]
    assert {e.sensor_id for e in events} == {"bath_pir", "bath_radar"}


def test_the_door_rule_holds_a_closed_room_and_the_door_opening_ends_it() -> None:
    engine = engine_for()
    engine.on_motion(motion(T), now=T)  # in through the open door
    engine.on_state(door(T + 5, opened=False), now=T + 5)
    engine.on_motion(motion(T + 10), now=T + 10)  # seen while the door is closed: inside
    assert engine.on_tick(T + 10 + TIMEOUT * 6) == []  # sitting still, no presence sensor
    opened_at = T + 2000
    engine.on_state(door(opened_at, opened=True), now=opened_at)
    final = ended(engine.on_tick(opened_at + DOOR_TIMEOUT))
    assert (final.end, final.end_reason) == (opened_at + DOOR_TIMEOUT, EndReason.DOOR_OPENED)


def test_motion_after_the_door_opened_counts_from_the_motion() -> None:
    engine = engine_for()
    engine.on_state(door(T, opened=False), now=T)
    engine.on_motion(motion(T + 1), now=T + 1)
    engine.on_state(door(T + 100, opened=True), now=T + 100)
    engine.on_motion(motion(T + 120), now=T + 120)  # still someone there
    assert engine.next_deadline() == T + 120 + TIMEOUT
    assert ended(engine.on_tick(T + 120 + TIMEOUT)).end_reason is EndReason.TIMEOUT


def test_a_door_open_for_ever_never_blocks_the_end_and_a_door_alone_never_starts() -> None:
    engine = engine_for()
    assert engine.on_state(door(T, opened=True), now=T) == []
    assert engine.on_state(door(T + 1, opened=False), now=T + 1) == []
    assert engine.active == {}
    engine.on_state(door(T + 2, opened=True), now=T + 2)
    engine.on_motion(motion(T + 3), now=T + 3)
    final = ended(engine.on_tick(T + 3 + TIMEOUT))
    assert (final.end, final.end_reason) == (T + 3 + TIMEOUT, EndReason.TIMEOUT)


def test_a_flapping_presence_source_makes_one_session() -> None:
    engine = engine_for()
    commands: list[Command] = []
    for second in range(120):
        at = T + second
        commands += engine.on_state(radar(at, on=second % 2 == 0), now=at)
    created = [c for c in commands if isinstance(c, PersistSession) and c.created]
    assert len(created) == 1
    assert len([c for c in commands if isinstance(c, StartPlayback)]) == 1
    # Coalesced like motion: a row per debounce window, not one per flap.
    assert engine.active["bathroom"].motion_events_count == 12


def test_a_clear_before_its_on_is_taken_in_receive_order_and_counted() -> None:
    engine = engine_for()
    clear = radar(T, on=False)
    assert engine.on_state(clear, now=T) == [DropEvent(clear, "unpaired_clear")]
    assert [type(c) for c in engine.on_state(radar(T + 0.1, on=True), now=T + 0.1)] == [
        PersistSession,
        StartPlayback,
    ]
    assert engine.next_deadline() == T + 0.1 + MAX_HOLD  # held: the ON came last


def test_a_retained_occupied_state_at_start_up_plays_no_music() -> None:
    engine = engine_for()
    assert engine.on_state(radar(T, on=True, retained=True), now=T) == []
    assert engine.active == {}
    # A PIR then sees someone: the room is known to be occupied, so the session holds.
    engine.on_motion(motion(T + 60), now=T + 60)
    assert engine.next_deadline() == T + 60 + MAX_HOLD


def test_a_retained_state_holds_a_recovered_session() -> None:
    engine = engine_for()
    [persist, _] = engine_for().on_motion(motion(T), now=T)
    assert isinstance(persist, PersistSession)
    engine.restore([persist.session])
    [held] = engine.on_state(radar(T + 1, on=True, retained=True), now=T + 1)
    assert isinstance(held, PersistSession)
    assert (held.event, held.session.motion_events_count) == (None, 1)  # not new motion
    assert engine.next_deadline() == T + 1 + MAX_HOLD


def test_a_stuck_presence_source_is_cut_at_max_hold_then_ignored_until_it_clears() -> None:
    engine = engine_for()
    engine.on_state(radar(T, on=True), now=T)
    final = ended(engine.on_tick(T + MAX_HOLD))
    assert (final.end, final.end_reason) == (T + MAX_HOLD, EndReason.MAX_HOLD)
    # It says occupied again (a repeat): nothing starts.
    assert engine.on_state(radar(T + MAX_HOLD + 5, on=True), now=T + MAX_HOLD + 5) == []
    # Motion starts a session the stuck source does not hold.
    later = T + MAX_HOLD + 100
    engine.on_motion(motion(later), now=later)
    assert engine.next_deadline() == later + TIMEOUT
    # Once it clears and says occupied again, it holds again.
    engine.on_state(radar(later + 1, on=False), now=later + 1)
    engine.on_state(radar(later + 2, on=True), now=later + 2)
    assert engine.next_deadline() == later + 2 + MAX_HOLD


def test_an_end_by_request_says_so() -> None:
    engine = engine_for()
    engine.on_state(radar(T, on=True), now=T)
    session_id = engine.active["bathroom"].session_id
    session, commands = engine.on_change(EndSession(session_id), None, T + 10)
    assert session.end_reason is EndReason.ENDED_BY_REQUEST
    assert isinstance(commands[-1], StopPlayback)


def test_a_motion_sensor_that_sends_clears_holds_between_them() -> None:
    """BTHome motion sensors (Shelly BLU Motion) send motion, then a clear: once a clear
    has been heard, their motion is a held state."""
    shelly = SensorConfig(id="shelly", user_id="u")
    engine = engine_for(HubConfig(sensors=(shelly,)))
    engine.on_motion(motion(T, "shelly"), now=T)
    assert engine.next_deadline() == T + TIMEOUT  # a pulse, for all we know yet
    clear = SensorState("shelly", StateKind.OCCUPANCY, on=False, received_at=T + 30, source="ble")
    engine.on_state(clear, now=T + 30)
    assert engine.next_deadline() == T + TIMEOUT  # the pulse's: nothing was held
    engine.on_motion(motion(T + 40, "shelly"), now=T + 40)
    assert engine.next_deadline() == T + 40 + MAX_HOLD  # held until its next clear


def test_an_explicit_motion_kind_makes_on_a_pulse_and_off_nothing() -> None:
    esphome_pir = SensorConfig(
        id="pir", user_id="u", mqtt_topic="pir/state", mqtt_format="esphome", kind="motion"
    )
    engine = engine_for(HubConfig(sensors=(esphome_pir,)))
    on = SensorState("pir", StateKind.OCCUPANCY, on=True, received_at=T)
    assert [type(c) for c in engine.on_state(on, now=T)] == [PersistSession, StartPlayback]
    off = SensorState("pir", StateKind.OCCUPANCY, on=False, received_at=T + 5)
    assert engine.on_state(off, now=T + 5) == []
    assert engine.next_deadline() == T + TIMEOUT


def test_a_config_without_rooms_keeps_sensor_ids_and_records() -> None:
    """Each sensor its own room, same ids: the same commands as a room made of it alone
    (with its keys) — and the record's sensorId is the sensor's."""
    pir = SensorConfig(id="bathroom_main", user_id="u", context_uri="spotify:album:x1")
    alone = engine_for(HubConfig(sensors=(pir,)))
    roomed = engine_for(
        HubConfig(
            sensors=(pir,),
            rooms=(
                RoomConfig(
                    "bathroom_main", "", ("bathroom_main",), dataclasses.replace(pir, name="")
                ),
            ),
        )
    )
    for engine in (alone, roomed):
        first = engine.on_motion(motion(T, "bathroom_main"), now=T)
        assert isinstance(first[0], PersistSession)
        assert first[0].session.sensor_id == "bathroom_main"
    assert ended(alone.on_tick(T + TIMEOUT)) == ended(roomed.on_tick(T + TIMEOUT))


def test_learned_timeouts_apply_at_once_to_an_active_session() -> None:
    engine = engine_for()
    engine.on_motion(motion(T), now=T)
    assert engine.next_deadline() == T + TIMEOUT
    engine.use_timeouts({"bathroom": 120.0, "nowhere": 1.0})
    assert engine.next_deadline() == T + 120
    final = ended(engine.on_tick(T + 120))
    assert (final.end, final.end_reason) == (T + 120, EndReason.TIMEOUT)
    assert engine.timeout("bathroom") == 120.0


def test_a_clock_step_moves_holds_clears_and_doors_with_the_session() -> None:
    engine = engine_for()
    engine.on_state(radar(T, on=True), now=T)
    engine.shift(3600.0, history=False)
    assert engine.next_deadline() == T + 3600 + MAX_HOLD  # the hold moved with the clock
    engine.on_state(radar(T + 3700, on=False), now=T + 3700)
    engine.shift(-60.0, history=False)
    assert engine.next_deadline() == T + 3700 - 60 + TIMEOUT  # and the clear
    final = ended(engine.on_tick(T + 3640 + TIMEOUT))
    assert (final.end, final.end_reason) == (T + 3640 + TIMEOUT, EndReason.PRESENCE_CLEARED)
