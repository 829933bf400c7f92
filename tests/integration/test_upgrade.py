"""A database made by the oldest schema keeps all its data when today's hub opens it."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlite_utils import Database

from hub.config import HubConfig, SensorConfig
from hub.model import MotionEvent, SessionStatus, new_session_id, open_session
from hub.sessions.engine import PersistSession, SessionEngine
from hub.store import SessionRepository, close_database, open_database
from hub.store.schema import KNOWN_MIGRATIONS, MIGRATIONS
from hub.store.sensors import SensorRepository
from hub.store.sessions import session_row

pytestmark = pytest.mark.integration

OLDEST = "0001_initial"
START = 1_704_412_800.0


def _columns(db: Database, table: str) -> list[str]:
    return [row[1] for row in db.execute(f"PRAGMA table_info({table})").fetchall()]


def _dump(db: Database, table: str, columns: list[str]) -> list[tuple[object, ...]]:
    """The rows' values in `columns` (a later migration may add columns; none is lost)."""
    order = ", ".join(columns)
    return [tuple(row) for row in db.execute(f"SELECT {order} FROM {table} ORDER BY 1, 2")]


def test_migrations_on_upgrade_keep_all_data(tmp_path: Path) -> None:
    assert KNOWN_MIGRATIONS[0] == OLDEST
    path = tmp_path / "hub.db"
    old = Database(path)
    old.enable_wal()
    later = KNOWN_MIGRATIONS[1:]
    if later:
        MIGRATIONS.apply(old, stop_before=later[0])
    else:  # pragma: no cover - only until the second migration exists
        MIGRATIONS.apply(old)
    assert [m.name for m in MIGRATIONS.applied(old)] == [OLDEST]

    repository = SessionRepository(old)
    old_columns = set(_columns(old, "sessions"))
    for index in range(20):
        start = START + index * 3600
        sensor = f"sensor{index % 3}"
        session = open_session(
            session_id=new_session_id(sensor, start),
            sensor_id=sensor,
            user_id="u",
            start=start,
            now=start,
            ttl_days=30,
            spotify_context_uri="spotify:playlist:37i9dQZF1DXcBWIGoYBM5M",
        )
        event = MotionEvent(sensor, start, start, seq=index, battery_level=80, signal_strength=-50)
        if index < 17:  # the last three stay active, as after a crash
            session = session.with_changes(
                status=SessionStatus.COMPLETED, end=start + 300, playback_stopped=True
            )
        # As the hub of that schema wrote it: its columns only.
        row = {key: value for key, value in session_row(session).items() if key in old_columns}
        old.table("sessions").insert(row)
        repository.record_event(event, session.session_id)
    SensorRepository(old).record_availability("sensor0", online=True, at=START)
    tables = ("sessions", "motion_events", "sensors")
    columns = {table: _columns(old, table) for table in tables}
    before = {table: _dump(old, table, columns[table]) for table in tables}
    old.close()

    db = open_database(path, integrity_check=True)
    try:
        assert [m.name for m in MIGRATIONS.applied(db)] == KNOWN_MIGRATIONS
        for table, rows in before.items():
            assert _dump(db, table, columns[table]) == rows, table
        upgraded = SessionRepository(db)
        assert len(upgraded.all_active()) == 3
        assert upgraded.get(_first_id(db)) is not None
    finally:
        close_database(db)

    again = open_database(path)  # a second open migrates nothing more
    try:
        assert [m.name for m in MIGRATIONS.applied(again)] == KNOWN_MIGRATIONS
    finally:
        close_database(again)


def _first_id(db: Database) -> str:
    row = db.execute("SELECT sessionId FROM sessions ORDER BY startTime LIMIT 1").fetchone()
    return str(row[0])


def test_an_old_config_and_database_give_the_sessions_they_always_did(tmp_path: Path) -> None:
    """No `[[rooms]]`, a database of the schema before end reasons: sensors are their own
    rooms with their ids, and a session goes on and ends as it did (the record gains
    `endReason`, beside the seed's fields, and nothing else changes)."""
    path = tmp_path / "hub.db"
    old = Database(path)
    MIGRATIONS.apply(old, stop_before="0005_end_reason")
    old_columns = set(_columns(old, "sessions"))
    start = START
    session = open_session(
        session_id=new_session_id("bath", start),
        sensor_id="bath",
        user_id="u",
        start=start,
        now=start,
        ttl_days=30,
        spotify_context_uri="spotify:playlist:37i9dQZF1DXcBWIGoYBM5M",
    )
    row = {key: value for key, value in session_row(session).items() if key in old_columns}
    old.table("sessions").insert(row)
    old.close()
    config = HubConfig(sensors=(SensorConfig(id="bath", user_id="u"),))

    db = open_database(path)
    try:
        [recovered] = SessionRepository(db).all_active()
        assert recovered.to_record() == session.to_record()
        engine = SessionEngine(config)
        engine.restore([recovered])
        engine.on_motion(MotionEvent("bath", start + 60, start + 60), start + 60)
        [persist] = engine.on_tick(start + 360)
    finally:
        close_database(db)
    assert isinstance(persist, PersistSession)
    expected = session.with_changes(
        last_motion=start + 60,
        motion_events_count=2,
        status=SessionStatus.COMPLETED,
        end=start + 360,
        updated_at=start + 360,
    ).to_record()
    assert persist.session.to_record() == {**expected, "endReason": "timeout"}
