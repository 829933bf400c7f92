"""Opening and closing the hub's SQLite file safely.

WAL with synchronous=NORMAL survives crashes (a power cut may roll back the last
commits, never corrupt); foreign keys on; a busy timeout so the nightly sync and the
CLI can work beside the daemon; an optional integrity check; a checkpoint at close.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from sqlite_utils import Database

from hub.errors import StoreError
from hub.store.schema import KNOWN_MIGRATIONS, MIGRATIONS

_LOGGER = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5_000


def open_database(path: Path | None, *, integrity_check: bool = False) -> Database:
    """Open (creating if needed) and migrate the database at `path`; None = in memory.

    A file that is not a database, is corrupt, or was written by a newer hub raises
    StoreError naming the file — and is never written to.
    """
    where = str(path) if path is not None else ":memory:"
    try:
        if path is None:
            db = Database(memory=True, execute_plugins=False)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = Database(path, execute_plugins=False)
    except (sqlite3.Error, OSError) as exc:
        raise StoreError(f"cannot open database {where}: {exc}") from exc
    try:
        _prepare(db, where, integrity_check=integrity_check)
    except BaseException:
        db.close()
        raise
    return db


def _prepare(db: Database, where: str, *, integrity_check: bool) -> None:
    try:
        # A read first: on a file that is not a database this fails before any write.
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        raise StoreError(
            f"{where} is not a readable SpottyPotty database ({exc}); "
            "it was left untouched — restore a backup or move it aside"
        ) from exc
    if integrity_check:
        _check_integrity(db, where)
    try:
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        db.execute("PRAGMA foreign_keys = ON")
        if not db.memory:
            db.enable_wal()
        db.execute("PRAGMA synchronous = NORMAL")
        _refuse_newer_schema(db, where)
        MIGRATIONS.apply(db)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot prepare database {where}: {exc}") from exc


def _check_integrity(db: Database, where: str) -> None:
    rows = db.execute("PRAGMA quick_check").fetchall()
    problems = [str(row[0]) for row in rows if row[0] != "ok"]
    if problems:
        raise StoreError(
            f"{where} failed its integrity check: {'; '.join(problems[:5])}; "
            "it was left untouched — restore a backup (spottypotty backup) or move it aside"
        )


def _refuse_newer_schema(db: Database, where: str) -> None:
    known = set(KNOWN_MIGRATIONS)
    applied = {migration.name for migration in MIGRATIONS.applied(db)}
    unknown = sorted(applied - known)
    if unknown:
        raise StoreError(
            f"{where} was written by a newer hub (migrations {', '.join(unknown)}); "
            "upgrade the hub instead of downgrading it"
        )


def close_database(db: Database) -> None:
    """Checkpoint the WAL into the main file, then close."""
    try:
        if not db.memory:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.Error as exc:  # a busy reader may hold the WAL; the next open copes
        _LOGGER.warning("WAL checkpoint at close failed: %s", exc)
    finally:
        db.close()
