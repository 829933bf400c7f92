"""`spottypotty backup PATH`: a consistent copy of the live database.

SQLite's online backup API copies the database as one read transaction sees it: with WAL
the daemon keeps writing meanwhile, and the copy holds exactly what was committed when the
backup began. Copying the file itself would not do: it can catch a half-written page and
misses what is still in `-wal`. The copy is written to a temporary file beside PATH,
checked (`PRAGMA quick_check`), made durable and only then given its name, so PATH is
either a complete backup or absent. An existing PATH is never replaced unless asked.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from hub.errors import ConflictError, NotFoundError, StoreError

BUSY_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class BackupResult:
    source: Path
    path: Path
    size_bytes: int
    sessions: int
    seconds: float


def backup_database(source: Path, destination: Path, *, force: bool = False) -> BackupResult:
    """Copy the database at `source` to `destination` (0600) while it may be in use.

    Raises NotFoundError when `source` does not exist (it is never created),
    ConflictError when `destination` exists and not `force`, StoreError when SQLite fails
    or the copy does not pass its check. On any failure `destination` is untouched.
    """
    started = time.monotonic()
    if not source.is_file():
        raise NotFoundError(f"no database at {source}")
    if destination.exists() and not force:
        raise ConflictError(f"{destination} exists; pass --force to replace it")
    if destination.resolve() == source.resolve():
        raise ConflictError(f"{destination} is the database itself")
    destination.parent.mkdir(parents=True, exist_ok=True)
    descriptor, name = tempfile.mkstemp(
        dir=destination.parent, prefix=f".{destination.name}.", suffix=".tmp"
    )
    os.close(descriptor)  # mkstemp made it 0600; SQLite writes it by name
    temporary = Path(name)
    try:
        sessions = _copy(source, temporary)
        _fsync(temporary)
        if force:
            temporary.replace(destination)
        else:
            # link() refuses an existing name: a file that appeared meanwhile is kept.
            try:
                os.link(temporary, destination)
            except FileExistsError:
                raise ConflictError(f"{destination} exists; pass --force to replace it") from None
            temporary.unlink()
        _fsync(destination.parent)
    finally:
        temporary.unlink(missing_ok=True)
    return BackupResult(
        source=source,
        path=destination,
        size_bytes=destination.stat().st_size,
        sessions=sessions,
        seconds=time.monotonic() - started,
    )


def _copy(source: Path, target_file: Path) -> int:
    """The backup itself; returns the number of sessions in the copy."""
    try:
        # mode=rw: never create a database where none was.
        with (
            contextlib.closing(
                sqlite3.connect(
                    f"{source.resolve().as_uri()}?mode=rw", uri=True, timeout=BUSY_TIMEOUT_SECONDS
                )
            ) as src,
            contextlib.closing(sqlite3.connect(target_file)) as dst,
        ):
            # pages=-1: the whole database in one step, i.e. one read transaction — a
            # consistent snapshot that the writer (WAL) never has to wait for. Stepwise
            # copies restart whenever another connection writes, so they may never end.
            src.backup(dst, pages=-1)
            problems = [row[0] for row in dst.execute("PRAGMA quick_check") if row[0] != "ok"]
            if problems:
                raise StoreError(f"the backup failed its check: {'; '.join(problems[:5])}")
            # A backup is one self-contained file: no -wal beside it to lose.
            dst.execute("PRAGMA journal_mode = DELETE")
            has_sessions = dst.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sessions'"
            ).fetchone()
            return (
                int(dst.execute("SELECT count(*) FROM sessions").fetchone()[0])
                if has_sessions
                else 0
            )
    except sqlite3.Error as exc:
        raise StoreError(f"cannot back up {source}: {exc}") from exc


def _fsync(path: Path) -> None:
    flags = os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0)
    descriptor = os.open(path, flags)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
