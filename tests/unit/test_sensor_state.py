from __future__ import annotations

from sqlite_utils import Database

from hub.model import MotionEvent, open_session
from hub.store import SessionRepository
from hub.store.sensors import SensorRepository, SensorState

T0 = 1_800_000_000.0


def test_availability_changes_are_stored_and_repeats_write_nothing(db: Database) -> None:
    sensors = SensorRepository(db)
    assert sensors.record_availability("bath", online=True, at=T0) is True
    assert sensors.record_availability("bath", online=True, at=T0 + 60) is False  # no rewrite
    assert sensors.state("bath").availability_changed_at == T0
    assert sensors.record_availability("bath", online=False, at=T0 + 120) is True
    state = sensors.state("bath")
    assert (state.availability, state.availability_changed_at) == ("offline", T0 + 120)


def test_battery_signal_and_firmware_are_each_the_latest_reported(db: Database) -> None:
    session = open_session(
        session_id="s1", sensor_id="bath", user_id="u", start=T0, now=T0, ttl_days=30
    )
    sessions = SessionRepository(db)
    first = MotionEvent("bath", T0, T0, battery_level=90, signal_strength=-60)
    later = MotionEvent("bath", T0 + 30, T0 + 30, battery_level=89, firmware_version="1.0.0")
    sessions.save(session, created=True, event=first)
    sessions.save(session.with_changes(motion_events_count=2), created=False, event=later)
    assert SensorRepository(db).state("bath") == SensorState(
        sensor_id="bath",
        last_motion_at=T0 + 30,
        battery_level=89,
        signal_strength=-60,  # the later event did not say: still the last one known
        firmware_version="1.0.0",
        active_session_id="s1",
    )


def test_a_sensor_never_heard_from(db: Database) -> None:
    assert SensorRepository(db).state("ghost") == SensorState(sensor_id="ghost")
