"""Music that follows you (issue 15 item 4), in the pure engine with an injected clock:
when it moves, where to, and the hysteresis that keeps a walk through the hall from
flapping it."""

from __future__ import annotations

import dataclasses

from hub.config import HubConfig, HubSection, RoomConfig, SensorConfig, SessionsSection
from hub.model import EndReason, MotionEvent, SensorState, StateKind
from hub.sessions.engine import (
    Command,
    PersistSession,
    SessionEngine,
    StartPlayback,
    StopPlayback,
    TransferPlayback,
)
from tests.spotify_rig import FOLLOW_BATHROOM, FOLLOW_BEDROOM, FOLLOW_PLAYLIST

BEDROOM, BATHROOM, PLAYLIST = FOLLOW_BEDROOM, FOLLOW_BATHROOM, FOLLOW_PLAYLIST
HALL = SensorConfig(id="hall", user_id="u", spotify_device="Hall speaker", follow=True)
CONFIG = HubConfig(
    hub=HubSection(timezone="UTC"),
    sessions=SessionsSection(timeout_minutes=5, debounce_seconds=10),
    sensors=(BEDROOM, BATHROOM, HALL),
)
T = 1_800_000_000.0  # 2027-01-15 08:00 UTC
AFTER = 20.0  # follow_after_seconds, the default
BEDROOM_DEVICE = "b" * 40
BATHROOM_DEVICE = "a" * 40


def ids(sensor_id: str, start: float) -> str:
    return f"session-{sensor_id}-{start:.0f}"


def motion(sensor_id: str, at: float) -> MotionEvent:
    return MotionEvent(sensor_id=sensor_id, occurred_at=at, received_at=at)


def playing_in_the_bedroom(config: HubConfig = CONFIG) -> SessionEngine:
    """An engine whose bedroom session plays what the hub started, motion last at T."""
    engine = SessionEngine(config, new_id=ids)
    engine.on_motion(motion("bedroom", T), now=T)
    engine.on_playback_started(
        ids("bedroom", T), started=True, device_id=BEDROOM_DEVICE, note="started", now=T + 0.5
    )
    return engine


def playback(commands: list[Command]) -> list[Command]:
    return [c for c in commands if not isinstance(c, PersistSession)]


def saved(commands: list[Command]) -> dict[str, list[str]]:
    """Session id -> the decisions of its last PersistSession among `commands`."""
    last = {c.session.session_id: c.session for c in commands if isinstance(c, PersistSession)}
    return {sid: [d.detail for d in session.decisions] for sid, session in last.items()}


def test_music_moves_at_once_when_its_room_has_been_quiet_long_enough() -> None:
    engine = playing_in_the_bedroom()
    bath_id, bed_id = ids("bathroom", T + 30), ids("bedroom", T)

    commands = engine.on_motion(motion("bathroom", T + 30), now=T + 30)

    [move] = playback(commands)
    assert isinstance(move, TransferPlayback)
    assert (move.session.session_id, move.source.session_id) == (bath_id, bed_id)
    assert move.sensor.spotify_device == "Bathroom speaker"  # its lane, and its volume
    assert move.source.spotify_device_id == BEDROOM_DEVICE
    trace = saved(commands)
    assert "waiting for the music playing in bedroom to follow here" in trace[bath_id][1]
    assert (
        trace[bath_id][-1]
        == "asked to move the music playing in bedroom here (no motion there for 30 s)"
    )
    assert (
        trace[bed_id][-1]
        == f"asked to move its music to bathroom ({bath_id}): no motion here for 30 s"
    )


def test_both_sessions_record_the_move_and_the_old_ones_end_pauses_nothing() -> None:
    engine = playing_in_the_bedroom()
    bath_id, bed_id = ids("bathroom", T + 30), ids("bedroom", T)
    engine.on_motion(motion("bathroom", T + 30), now=T + 30)

    answer = engine.on_playback_started(
        bath_id, started=True, device_id=BATHROOM_DEVICE, note="moved", now=T + 31
    )

    assert playback(answer) == []
    bath, bed = engine.active["bathroom"], engine.active["bedroom"]
    assert (bath.playback_started, bath.spotify_device_id, bath.playback_note) == (
        True,
        BATHROOM_DEVICE,
        "moved",
    )
    assert bath.spotify_context_uri == PLAYLIST  # what plays there now, not its own album
    assert bath.decisions[-1].detail == f"player: moved here from bedroom on {BATHROOM_DEVICE}"
    assert bed.playback_note == "moved_away"
    assert bed.decisions[-1].detail == (
        f"player: its music moved to bathroom ({bath_id}); its end pauses nothing"
    )
    assert not engine.makes_music("bedroom")
    assert engine.makes_music("bathroom")

    ends = engine.on_tick(T + 300)  # the bedroom's timeout: over as usual, nothing paused
    assert playback(ends) == []
    [end] = ends
    assert isinstance(end, PersistSession)
    assert end.session.session_id == bed_id
    assert end.session.end_reason is EndReason.TIMEOUT
    assert end.session.end == T + 300

    [_, stop] = engine.on_tick(T + 330)  # the bathroom's end pauses the music it took
    assert isinstance(stop, StopPlayback)
    assert stop.session.session_id == bath_id


def test_a_new_session_waits_until_the_music_room_has_been_quiet_then_takes_it() -> None:
    engine = playing_in_the_bedroom()

    commands = engine.on_motion(motion("bathroom", T + 5), now=T + 5)

    assert playback(commands) == []  # not its own music: the account plays one stream
    assert engine.next_deadline() == T + AFTER
    assert playback(engine.on_tick(T + AFTER - 0.001)) == []
    [move] = playback(engine.on_tick(T + AFTER))
    assert isinstance(move, TransferPlayback)
    assert engine.next_deadline() == T + 300  # the bedroom's own end


def test_motion_back_in_the_music_room_keeps_the_music_there() -> None:
    engine = playing_in_the_bedroom()
    engine.on_motion(motion("bathroom", T + 5), now=T + 5)

    # Back in the bedroom: the bathroom saw no motion since, so the music stays put.
    engine.on_motion(motion("bedroom", T + 12), now=T + 12)
    assert engine.next_deadline() == T + 5 + 300  # the bathroom's end: nothing to follow
    assert playback(engine.on_tick(T + 60)) == []

    # In the bathroom again: it moves once the bedroom has been quiet since T + 12.
    engine.on_motion(motion("bathroom", T + 70), now=T + 70)
    [move] = playback(engine.on_tick(T + 70))
    assert isinstance(move, TransferPlayback)
    assert move.session.session_id == ids("bathroom", T + 5)


def test_the_music_skips_the_hall_passed_on_the_way() -> None:
    engine = playing_in_the_bedroom()
    engine.on_motion(motion("hall", T + 4), now=T + 4)
    engine.on_motion(motion("bathroom", T + 9), now=T + 9)

    commands = engine.on_tick(T + AFTER)

    [move] = playback(commands)
    assert isinstance(move, TransferPlayback)
    assert move.session.sensor_id == "bathroom"
    hall = saved(commands)[ids("hall", T + 4)]
    assert hall[-1] == "no music: the music followed to bathroom instead"
    # The hall does not wait for it again: once the music is in the bathroom and the
    # bathroom goes quiet, nothing moves it back to the hall.
    engine.on_playback_started(
        move.session.session_id, started=True, device_id=BATHROOM_DEVICE, note="moved", now=T + 21
    )
    assert playback(engine.on_tick(T + 120)) == []
    assert engine.next_deadline() == T + 300  # the bedroom's end: no move is due


def test_a_held_music_room_keeps_its_music() -> None:
    radar = SensorConfig(id="bed_radar", user_id="u", kind="presence")
    pir = SensorConfig(id="bed_pir", user_id="u")
    bedroom = RoomConfig("bedroom", "Bedroom", ("bed_pir", "bed_radar"), BEDROOM)
    config = dataclasses.replace(CONFIG, sensors=(pir, radar, BATHROOM), rooms=(bedroom,))
    engine = SessionEngine(config, new_id=ids)
    engine.on_motion(motion("bed_pir", T), now=T)
    engine.on_playback_started(
        ids("bedroom", T), started=True, device_id=BEDROOM_DEVICE, note="started", now=T
    )
    occupied = SensorState(sensor_id="bed_radar", kind=StateKind.OCCUPANCY, on=True, received_at=T)
    engine.on_state(occupied, now=T)  # someone lies still in the bedroom

    engine.on_motion(motion("bathroom", T + 30), now=T + 30)  # someone else, in the bathroom

    assert playback(engine.on_tick(T + 200)) == []
    clear = dataclasses.replace(occupied, on=False, received_at=T + 210)
    engine.on_state(clear, now=T + 210)  # they left, after the bathroom's motion
    assert playback(engine.on_tick(T + 240)) == []  # the bathroom's motion is older


def test_music_that_did_not_move_lets_the_new_room_play_its_own() -> None:
    engine = playing_in_the_bedroom()
    bath_id = ids("bathroom", T + 30)
    engine.on_motion(motion("bathroom", T + 30), now=T + 30)

    answer = engine.on_playback_started(
        bath_id, started=False, device_id=None, note="not_playing_there", now=T + 31
    )

    [start] = playback(answer)
    assert isinstance(start, StartPlayback)
    assert start.sensor.context_uri == BATHROOM.context_uri
    assert start.session.decisions[-2].detail == "player: did not move (not_playing_there)"
    bed = engine.active["bedroom"]
    assert bed.decisions[-1].detail == "player: its music did not move"
    assert engine.makes_music("bedroom")  # still its music: its end pauses it


def test_a_waiting_room_plays_its_own_when_the_music_room_ends_first() -> None:
    config = dataclasses.replace(
        CONFIG, sensors=(dataclasses.replace(BEDROOM, follow_after_seconds=600), BATHROOM, HALL)
    )
    engine = playing_in_the_bedroom(config)
    engine.on_motion(motion("bathroom", T + 5), now=T + 5)

    commands = engine.on_tick(T + 300)  # the bedroom ends before 600 s of quiet

    assert [type(c) for c in playback(commands)] == [StopPlayback, StartPlayback]
    assert saved(commands)[ids("bathroom", T + 5)][-2] == (
        "the music in bedroom ended before it could follow"
    )


def test_rooms_without_follow_play_their_own() -> None:
    config = dataclasses.replace(
        CONFIG, sensors=(BEDROOM, dataclasses.replace(BATHROOM, follow=False), HALL)
    )
    engine = playing_in_the_bedroom(config)

    [start] = playback(engine.on_motion(motion("bathroom", T + 30), now=T + 30))

    assert isinstance(start, StartPlayback)


def test_a_session_ending_while_it_waits_stops_waiting() -> None:
    engine = playing_in_the_bedroom()
    bath = ids("bathroom", T + 5)
    engine.on_motion(motion("bathroom", T + 5), now=T + 5)
    engine.on_motion(motion("bedroom", T + 10), now=T + 10)  # the music's room stays busy

    assert playback(engine.on_tick(T + 305)) == []  # the bathroom's end: silent, no stop
    assert "bathroom" not in engine.active
    assert engine.next_deadline() == T + 310  # the bedroom's end; nothing waits
    assert engine.tracks(bath)


def test_state_reports_do_not_confuse_waiting() -> None:
    engine = playing_in_the_bedroom()
    engine.on_motion(motion("bathroom", T + 5), now=T + 5)
    clear = SensorState(sensor_id="hall", kind=StateKind.OCCUPANCY, on=False, received_at=T + 6)
    engine.on_state(clear, now=T + 6)

    [move] = playback(engine.on_tick(T + AFTER))
    assert isinstance(move, TransferPlayback)
