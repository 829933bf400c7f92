from __future__ import annotations

from pathlib import Path

import pytest

from hub.demo import SCRIPT, run_demo
from hub.store import SessionRepository, close_database, open_database


class FakeTime:
    """A clock that only moves when the demo sleeps: the demo runs instantly."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0
        self.slept = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.now += seconds
        self.slept += seconds


def test_demo_runs_sessions_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeTime()
    assert run_demo(tmp_path, clock=fake.clock, sleep=fake.sleep) == 0
    out = capsys.readouterr().out
    assert "dropped motion from garden_shed: unknown sensor" in out
    assert "quiet hours, no music" in out
    assert out.count("would play") == 2  # bathroom twice; never the en-suite in quiet hours
    assert "Analytics" in out
    # The last session ends 3 s (the demo's timeout) after the last scripted motion.
    assert fake.slept == pytest.approx(SCRIPT[-1][0] + 3.0)

    db = open_database(tmp_path / "hub.db")
    try:
        sessions = SessionRepository(db).all_active()
        assert sessions == []
        rows = db.execute(
            "SELECT sensorId, motionEventsCount, durationMinutes, playbackNote "
            "FROM sessions ORDER BY startTime"
        ).fetchall()
        assert rows == [
            ("bathroom_main", 2, 0.08, "dry_run"),  # 0 s .. 2 s + 3 s timeout = 5 s
            ("ensuite", 1, 0.05, "quiet_hours"),
            ("bathroom_main", 1, 0.05, "dry_run"),
        ]
    finally:
        close_database(db)


def test_demo_starts_afresh_each_time(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for _ in range(2):
        fake = FakeTime()
        run_demo(tmp_path, clock=fake.clock, sleep=fake.sleep)
    capsys.readouterr()
    db = open_database(tmp_path / "hub.db")
    try:
        assert db.execute("SELECT count(*) FROM sessions").fetchone()[0] == 3
    finally:
        close_database(db)
