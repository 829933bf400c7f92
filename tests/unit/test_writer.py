"""The store writer thread: a batch is one transaction, each save's outcome kept apart."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from hub.errors import ConflictError, StoreError
from hub.model import MotionEvent, Session, open_session
from hub.store.writer import Save, StoreWriter

T0 = 1_800_000_000.0


def _session(session_id: str, sensor_id: str) -> Session:
    return open_session(
        session_id=session_id, sensor_id=sensor_id, user_id="u", start=T0, now=T0, ttl_days=30
    )


def _committed(path: Path, session_id: str) -> bool:
    with sqlite3.connect(path) as db:
        found = db.execute("SELECT count(*) FROM sessions WHERE sessionId = ?", [session_id])
        return bool(found.fetchone()[0])


async def test_a_batch_is_one_transaction_committed_before_it_answers(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    async with StoreWriter(path, ttl_days=30) as writer:
        saves = [Save(_session(f"s{n}", f"sensor-{n}"), created=True) for n in range(50)]
        outcomes = await writer.write(saves)
        assert all(_committed(path, f"s{n}") for n in range(50))
    assert outcomes == [None] * 50
    assert (writer.stats.rows, writer.stats.transactions) == (50, 1)


async def test_a_failing_save_fails_alone(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    async with StoreWriter(path, ttl_days=30) as writer:
        await writer.call(lambda repository: repository.save(_session("a", "bath"), created=True))
        # One batch: the middle one is a second active session for "bath".
        outcomes = await writer.write(
            [
                Save(_session("b", "hall"), created=True),
                Save(_session("c", "bath"), created=True),
                Save(_session("d", "porch"), created=True),
            ]
        )
    assert [error is None for error in outcomes] == [True, False, True]
    assert isinstance(outcomes[1], ConflictError)
    assert [_committed(path, sid) for sid in "bcd"] == [True, False, True]
    assert writer.stats.failures == 1


async def test_an_event_of_no_session_is_kept_on_its_own(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    event = MotionEvent("bath", occurred_at=T0, received_at=T0)
    async with StoreWriter(path, ttl_days=30) as writer:
        assert await writer.write([Save(None, event=event)]) == [None]
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT sensorId, sessionId FROM motion_events").fetchall()
    assert rows == [("bath", None)]


async def test_sqlite_errors_reach_callers_as_store_errors(tmp_path: Path) -> None:
    async with StoreWriter(tmp_path / "hub.db", ttl_days=30) as writer:
        with pytest.raises(StoreError, match="database write failed: no such table"):
            await writer.call(lambda repository: repository.db.execute("SELECT * FROM nope"))
