"""The store writer thread: group commits, outcomes reported in order, errors kept apart."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from hub.errors import ConflictError, StoreError
from hub.model import Session, open_session
from hub.store.writer import BUSY_WITHIN, FLOOD_BATCH, StoreWriter, linger

T0 = 1_800_000_000.0


def _session(session_id: str, sensor_id: str) -> Session:
    return open_session(
        session_id=session_id, sensor_id=sensor_id, user_id="u", start=T0, now=T0, ttl_days=30
    )


class Outcomes:
    """Each reported save: (session id, created, error), and whether its row was readable
    from another connection at that moment (committed)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.reported: list[tuple[str, bool, BaseException | None]] = []
        self.committed: list[bool] = []
        self.all_in = asyncio.Event()
        self.expected = 0

    def __call__(self, session: Session, created: bool, error: BaseException | None) -> None:
        self.reported.append((session.session_id, created, error))
        with sqlite3.connect(self.path) as db:
            found = db.execute(
                "SELECT count(*) FROM sessions WHERE sessionId = ?", [session.session_id]
            ).fetchone()[0]
        self.committed.append(found == 1)
        if len(self.reported) == self.expected:
            self.all_in.set()


async def test_saves_are_reported_in_order_once_committed(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    outcomes = Outcomes(path)
    outcomes.expected = 50
    async with StoreWriter(path, ttl_days=30) as writer:
        for n in range(50):
            writer.save(_session(f"s{n}", f"sensor-{n}"), created=True, then=outcomes)
        await asyncio.wait_for(outcomes.all_in.wait(), 5)
    assert outcomes.reported == [(f"s{n}", True, None) for n in range(50)]
    assert all(outcomes.committed)
    assert writer.stats.rows == 50
    assert writer.stats.transactions < 50  # grouped


async def test_a_failing_save_fails_alone(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    outcomes = Outcomes(path)
    outcomes.expected = 3
    async with StoreWriter(path, ttl_days=30) as writer:
        await writer.call(lambda repository: repository.save(_session("a", "bath"), created=True))
        # Queued together: the middle one is a second active session for "bath".
        writer.save(_session("b", "hall"), created=True, then=outcomes)
        writer.save(_session("c", "bath"), created=True, then=outcomes)
        writer.save(_session("d", "porch"), created=True, then=outcomes)
        await asyncio.wait_for(outcomes.all_in.wait(), 5)
    assert [(sid, error is None) for sid, _, error in outcomes.reported] == [
        ("b", True),
        ("c", False),
        ("d", True),
    ]
    assert isinstance(outcomes.reported[1][2], ConflictError)
    assert outcomes.committed == [True, False, True]
    assert writer.stats.failures == 1


async def test_a_raising_callback_does_not_stop_the_others(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "hub.db"
    outcomes = Outcomes(path)
    outcomes.expected = 1

    def broken(session: Session, created: bool, error: BaseException | None) -> None:
        raise RuntimeError("bug in a callback")

    async with StoreWriter(path, ttl_days=30) as writer:
        writer.save(_session("a", "bath"), created=True, then=broken)
        writer.save(_session("b", "hall"), created=True, then=outcomes)
        await asyncio.wait_for(outcomes.all_in.wait(), 5)
    assert outcomes.reported == [("b", True, None)]
    assert "a save's callback failed" in caplog.text


async def test_sqlite_errors_reach_callers_as_store_errors(tmp_path: Path) -> None:
    async with StoreWriter(tmp_path / "hub.db", ttl_days=30) as writer:
        with pytest.raises(StoreError, match="database write failed: no such table"):
            await writer.call(lambda repository: repository.db.execute("SELECT * FROM nope"))


def test_a_lone_write_is_never_delayed() -> None:
    assert linger(since_commit=BUSY_WITHIN, last_batch=FLOOD_BATCH * 10) == 0.0
    assert linger(since_commit=60.0, last_batch=1) == 0.0


def test_streaming_writes_wait_a_moment_and_a_flood_waits_longer() -> None:
    streaming = linger(since_commit=BUSY_WITHIN / 2, last_batch=1)
    flood = linger(since_commit=BUSY_WITHIN / 2, last_batch=FLOOD_BATCH)
    assert 0 < streaming < flood
    assert flood <= 0.02  # a motion is still committed well within the latency budget
