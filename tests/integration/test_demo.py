"""`make demo`: the real daemon, a throwaway mosquitto, simulated sensors — sped up tenfold."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.demo import SCRIPT, run_demo
from hub.store import close_database, open_database

pytestmark = pytest.mark.integration


def test_demo_runs_the_real_daemon_end_to_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_demo(tmp_path, scale=0.1) == 0
    out = capsys.readouterr().out
    assert "dropped 1 motion event(s) from garden_shed: unknown sensor" in out
    assert "no music (quiet hours)" in out
    # The main bathroom twice, the bathroom room once (three sensors, one play); never the
    # en-suite in quiet hours.
    assert out.count("would play") == 3
    assert out.count(" started") == 4
    assert out.count(" ended after ") == 4
    # The sitter kept the music past the timeout; the door ended it.
    assert "motion event(s) (door_opened)" in out
    assert "Analytics" in out

    db = open_database(tmp_path / "hub.db")
    try:
        rows = db.execute(
            "SELECT sensorId, status, motionEventsCount, playbackNote FROM sessions "
            "ORDER BY startTime, sessionId"
        ).fetchall()
        events = db.execute("SELECT count(*), min(source) FROM motion_events").fetchone()
    finally:
        close_database(db)
    assert sorted(rows) == sorted(
        [
            ("bathroom_main", "completed", 2, "dry_run"),
            ("ensuite", "completed", 1, "quiet_hours"),
            ("bathroom_main", "completed", 1, "dry_run"),
            ("bathroom", "completed", 2, "dry_run"),
        ]
    )
    # Every counted motion went through MQTT: 5 of the script's 7 motions (one coalesced,
    # one unknown) and the mmWave's "occupied"; the door's states are not motion.
    assert events == (6, "mqtt")
    assert len(SCRIPT) == 12


def test_demo_starts_afresh_each_time(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_demo(tmp_path, scale=0.05)
    run_demo(tmp_path, scale=0.05)
    capsys.readouterr()
    db = open_database(tmp_path / "hub.db")
    try:
        assert db.execute("SELECT count(*) FROM sessions").fetchone()[0] == 4
    finally:
        close_database(db)
