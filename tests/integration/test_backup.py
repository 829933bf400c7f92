"""`spottypotty backup`: a consistent copy while a writer keeps committing (WAL)."""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path

import pytest

from hub.backup import backup_database
from hub.cli import backup as backup_cli
from hub.errors import ConflictError, NotFoundError
from hub.model import SessionStatus, new_session_id, open_session
from hub.store import SessionRepository, close_database, open_database

pytestmark = pytest.mark.integration

START = 1_704_412_800.0


def _save_completed(repository: SessionRepository, index: int) -> str:
    start = START + index * 600
    session = open_session(
        session_id=new_session_id(f"sensor{index % 7}", start),
        sensor_id=f"sensor{index % 7}",
        user_id="u",
        start=start,
        now=start,
        ttl_days=30,
    ).with_changes(status=SessionStatus.COMPLETED, end=start + 120, playback_stopped=False)
    repository.save(session, created=True)
    return session.session_id


def _ids(path: Path) -> set[str]:
    db = open_database(path, integrity_check=True)
    try:
        return {row[0] for row in db.execute("SELECT sessionId FROM sessions").fetchall()}
    finally:
        close_database(db)


def test_backup_while_a_writer_keeps_inserting(tmp_path: Path) -> None:
    source = tmp_path / "hub.db"
    db = open_database(source)
    repository = SessionRepository(db)
    committed = {_save_completed(repository, index) for index in range(500)}
    close_database(db)

    stop = threading.Event()
    written: list[str] = []

    def writer() -> None:
        # Its own connection on its own thread, as the daemon's writer is.
        own = open_database(source)
        try:
            own_repository = SessionRepository(own)
            index = 10_000
            while not stop.is_set():
                written.append(_save_completed(own_repository, index))
                index += 1
        finally:
            close_database(own)

    thread = threading.Thread(target=writer, name="writer")
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while len(written) < 50 and time.monotonic() < deadline:
            time.sleep(0.01)
        before_backup = set(written)
        result = backup_database(source, tmp_path / "backup.db")
        after_backup = len(written)
    finally:
        stop.set()
        thread.join(10)
    assert len(written) > after_backup or after_backup > len(before_backup)  # it kept writing

    copied = _ids(tmp_path / "backup.db")
    assert committed | before_backup <= copied  # all committed before the backup began
    assert copied <= committed | set(written)  # and nothing invented
    assert result.sessions == len(copied)
    assert result.size_bytes == (tmp_path / "backup.db").stat().st_size
    assert (tmp_path / "backup.db").stat().st_mode & 0o777 == 0o600
    assert not list(tmp_path.glob(".backup.db.*"))  # no temporary file left
    assert not (tmp_path / "backup.db-wal").exists()  # one self-contained file


def test_refuses_to_overwrite_unless_forced(tmp_path: Path) -> None:
    source = tmp_path / "hub.db"
    close_database(open_database(source))
    target = tmp_path / "backup.db"
    target.write_bytes(b"an older backup")
    with pytest.raises(ConflictError, match="--force"):
        backup_database(source, target)
    assert target.read_bytes() == b"an older backup"
    result = backup_database(source, target, force=True)
    assert result.sessions == 0
    assert _ids(target) == set()


def test_a_missing_database_is_not_created(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        backup_database(tmp_path / "nope.db", tmp_path / "backup.db")
    assert not (tmp_path / "nope.db").exists()
    assert not (tmp_path / "backup.db").exists()


def test_the_command_prints_size_and_sessions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "hub.db"
    db = open_database(source)
    for index in range(3):
        _save_completed(SessionRepository(db), index)
    close_database(db)
    config = tmp_path / "hub.toml"
    config.write_text('[hub]\ndatabase = "hub.db"\n')
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config")
    parser = argparse.ArgumentParser()
    backup_cli.add_parser(parser.add_subparsers(required=True), common)

    args = parser.parse_args(["backup", str(tmp_path / "out.db"), "--config", str(config)])
    assert args.command(args) == 0
    out = capsys.readouterr().out
    assert "3 session(s)" in out
    assert "KiB" in out
    args = parser.parse_args(["backup", str(tmp_path / "out.db"), "--config", str(config)])
    with pytest.raises(ConflictError):
        args.command(args)
