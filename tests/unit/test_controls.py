"""People's controls (hub.controls): command topics decoded, state changed, saved, and the
engine obeying them (do-not-disturb, enabled, timeout), with explicit `now` values."""

from __future__ import annotations

import pytest

from hub.config import HubConfig, SensorConfig, SessionsSection
from hub.controls import (
    ControlCommand,
    Controls,
    apply,
    check,
    command_topic,
    decode_command,
)
from hub.errors import ParseError, ValidationError
from hub.model import MotionEvent
from hub.sessions.engine import DropEvent, PersistSession, SessionEngine, StartPlayback

T = 1_800_000_000.0
CONFIG = HubConfig(
    sessions=SessionsSection(timeout_minutes=5, debounce_seconds=10),
    sensors=(
        SensorConfig(id="bath", user_id="u", name="Bathroom"),
        SensorConfig(id="hall", user_id="u"),
    ),
)


def test_without_rooms_each_sensor_is_its_own_room() -> None:
    assert [(r.id, r.name, r.sensor_ids) for r in CONFIG.all_rooms()] == [
        ("bath", "Bathroom", ("bath",)),
        ("hall", "hall", ("hall",)),
    ]


@pytest.mark.parametrize(
    ("topic", "payload", "command"),
    [
        ("spottypotty/rooms/bath/dnd/set", b"ON", ControlCommand("dnd", "bath", value=True)),
        ("spottypotty/rooms/bath/dnd/set", b"off", ControlCommand("dnd", "bath", value=False)),
        (
            "spottypotty/rooms/bath/dnd/set",
            b"30",
            ControlCommand("dnd", "bath", value=True, minutes=30.0),
        ),
        (
            "spottypotty/rooms/bath/enabled/set",
            b"OFF",
            ControlCommand("enabled", "bath", value=False),
        ),
        ("spottypotty/rooms/bath/timeout/set", b"7.5", ControlCommand("timeout", "bath", 7.5)),
        ("spottypotty/rooms/bath/timeout/set", b"", ControlCommand("timeout", "bath", None)),
        ("spottypotty/rooms/bath/end_session/set", b"PRESS", ControlCommand("end_session", "bath")),
        ("spottypotty/rooms/h/test_playback/set", b"", ControlCommand("test_playback", "h")),
        ("spottypotty/hub/dnd/set", b"ON", ControlCommand("dnd", None, value=True)),
        ("spottypotty/hub/status", b"online", None),
    ],
)
def test_command_topics_decode(topic: str, payload: bytes, command: ControlCommand | None) -> None:
    assert decode_command(topic, payload) == command


@pytest.mark.parametrize(
    ("topic", "payload"),
    [
        ("spottypotty/rooms/bath/volume/set", b"5"),
        ("spottypotty/rooms/bath/enabled/set", b"maybe"),
        ("spottypotty/rooms/bath/dnd/set", b"-5"),
        ("spottypotty/rooms/bath/dnd/set", b"nan"),
        ("spottypotty/rooms/bath/timeout/set", b"0"),
        ("spottypotty/rooms/bath/timeout/set", b"9999"),
        ("spottypotty/rooms/bath/dnd/set", b"x" * 300),
    ],
)
def test_bad_commands_are_parse_errors(topic: str, payload: bytes) -> None:
    with pytest.raises(ParseError):
        decode_command(topic, payload)


def test_command_topics_round_trip() -> None:
    assert decode_command(command_topic("bath", "enabled"), b"ON") == ControlCommand(
        "enabled", "bath", value=True
    )
    assert decode_command(command_topic(None, "dnd"), b"OFF") == ControlCommand(
        "dnd", None, value=False
    )


def test_commands_about_no_room_are_refused() -> None:
    rooms = {"bath"}
    check(ControlCommand("dnd", "bath", value=True), rooms)
    with pytest.raises(ValidationError):
        check(ControlCommand("dnd", "garden", value=True), rooms)
    with pytest.raises(ValidationError):
        check(ControlCommand("end_session", None), rooms)


def test_do_not_disturb_with_auto_off_and_the_hub_wide_switch() -> None:
    controls = apply(Controls(), ControlCommand("dnd", "bath", value=True, minutes=10), T)
    assert controls.dnd("bath", T + 599)
    assert not controls.dnd("bath", T + 600)  # ended by itself
    assert not controls.dnd("hall", T)
    assert controls.dnd_until("bath", T) == T + 600
    everywhere = apply(controls, ControlCommand("dnd", None, value=True), T)
    assert everywhere.dnd("hall", T + 10_000)
    assert not everywhere.own_dnd("hall", T)
    assert not apply(everywhere, ControlCommand("dnd", None, value=False), T).dnd("hall", T)


def test_controls_survive_as_json() -> None:
    controls = Controls()
    for command in (
        ControlCommand("dnd", "bath", value=True, minutes=30),
        ControlCommand("enabled", "hall", value=False),
        ControlCommand("timeout", "hall", 2.5),
        ControlCommand("dnd", None, value=True),
    ):
        controls = apply(controls, command, T)
    assert Controls.from_json(controls.to_json()) == controls
    assert Controls.from_json("not json") == Controls()
    assert Controls.from_json(None) == Controls()


def motion(sensor_id: str, at: float) -> MotionEvent:
    return MotionEvent(sensor_id=sensor_id, occurred_at=at, received_at=at)


def test_do_not_disturb_records_the_session_and_plays_nothing() -> None:
    engine = SessionEngine(CONFIG)
    engine.set_controls(apply(Controls(), ControlCommand("dnd", "bath", value=True), T))
    commands = engine.on_motion(motion("bath", T), T)
    assert [type(c) for c in commands] == [PersistSession]
    assert engine.active["bath"].playback_note == "do_not_disturb"
    # Another room still plays.
    assert any(isinstance(c, StartPlayback) for c in engine.on_motion(motion("hall", T), T))


def test_a_room_switched_off_drops_motion_until_switched_on() -> None:
    engine = SessionEngine(CONFIG)
    off = apply(Controls(), ControlCommand("enabled", "bath", value=False), T)
    engine.set_controls(off)
    assert engine.on_motion(motion("bath", T), T) == [
        DropEvent(motion("bath", T), "disabled_sensor")
    ]
    engine.set_controls(apply(off, ControlCommand("enabled", "bath", value=True), T))
    assert engine.active == {}
    assert engine.on_motion(motion("bath", T + 1), T + 1)
    assert "bath" in engine.active


def test_a_shorter_timeout_moves_the_active_sessions_deadline() -> None:
    engine = SessionEngine(CONFIG)
    engine.on_motion(motion("bath", T), T)
    assert engine.next_deadline() == T + 300
    engine.set_controls(apply(Controls(), ControlCommand("timeout", "bath", 1), T + 10))
    assert engine.next_deadline() == T + 60
    ended = engine.on_tick(T + 60)
    assert [c.session.end for c in ended if isinstance(c, PersistSession)] == [T + 60]
    # Longer again: the ended session keeps the deadline it ended at (no EngineError later).
    engine.set_controls(apply(Controls(), ControlCommand("timeout", "bath", 10), T + 61))
    assert engine.on_motion(motion("bath", T + 62), T + 62)
    assert engine.next_deadline() == T + 62 + 600
