"""Opening and closing the hub's SQLite file safely.

WAL with synchronous=NORMAL survives crashes (a power cut may roll back the last
commits, never corrupt); foreign keys on; a busy timeout so the nightly sync and the
CLI can work beside the daemon; an optional integrity check; a checkpoint at close.
"""

from __future__ import annotations

import logging
import sqlite3
import textwrap
from pathlib import Path

from sqlite_utils import Database

from hub.errors import DamagedDatabaseError, StoreError
from hub.store.schema import KNOWN_MIGRATIONS, MIGRATIONS

_LOGGER = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5_000
_DAMAGE_CODES = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})
# The disk, not the data: full, read-only (remounted), failing, gone, or held by another
# process past the busy timeout. A later retry may well succeed.
_UNWRITABLE_CODES = frozenset(
    {
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_PROTOCOL,
    }
)
_DETAIL_CHARS = 200  # of the first integrity problem: enough to recognise it, one line


def open_database(
    path: Path | None, *, integrity_check: bool = False, create: bool = True
) -> Database:
    """Open (creating if needed, unless not `create`) and migrate the database at `path`;
    None = in memory. Read-only commands pass `create=False`: a wrong path must be an
    error, not a new empty database that answers "no sessions".

    A file that is not a database or is corrupt raises DamagedDatabaseError, one written
    by a newer hub StoreError, each naming the file. With `integrity_check` (the daemon)
    a corrupt file is found before anything is written to it.
    """
    where = str(path) if path is not None else ":memory:"
    try:
        if path is None:
            db = Database(memory=True, execute_plugins=False)
        elif not create and not path.exists():
            raise StoreError(
                f"no database at {path}: the hub makes it when it first runs "
                "(`spottypotty run`); check `database` in the [hub] section of the config"
            )
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
    except sqlite3.Error as exc:
        raise _store_error(f"cannot read database {where}", where, exc) from exc
    if integrity_check:
        # Before any pragma that writes (journal mode, migrations): a damaged file stays
        # byte for byte as it was, for a backup to be restored or the file to be rescued.
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
        raise _store_error(f"cannot prepare database {where}", where, exc) from exc


def _check_integrity(db: Database, where: str) -> None:
    try:
        rows = db.execute("PRAGMA quick_check").fetchall()
    except sqlite3.Error as exc:  # a page too broken to even report on
        raise _store_error(f"cannot check database {where}", where, exc) from exc
    problems = [_without_banner(str(row[0])) for row in rows if row[0] != "ok"]
    if problems:
        more = f", and {len(problems) - 1} more problem(s)" if len(problems) > 1 else ""
        first = textwrap.shorten(problems[0], _DETAIL_CHARS, placeholder=" …")
        raise DamagedDatabaseError(where, f"integrity check: {first}{more}")


def is_damage(error: sqlite3.Error) -> bool:
    """SQLITE_CORRUPT or SQLITE_NOTADB (extended codes too): the file's bytes are wrong,
    unlike a locked, read-only or full database, which a retry or a person at the disk fixes."""
    code = getattr(error, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in _DAMAGE_CODES


def is_unwritable(error: BaseException) -> bool:
    """The database cannot be written now for a reason outside it (see _UNWRITABLE_CODES)."""
    if isinstance(error, OSError):
        return True
    code = getattr(error, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in _UNWRITABLE_CODES


def file_identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the file at `path`, or None when there is none: a database
    deleted or replaced under an open connection is written to a file nobody will read."""
    try:
        status = path.stat()
    except OSError:  # gone, or its folder is (or cannot be searched any more)
        return None
    return (status.st_dev, status.st_ino)


def _store_error(doing: str, where: str, error: sqlite3.Error) -> StoreError:
    if is_damage(error):
        return DamagedDatabaseError(where, str(error))
    return StoreError(f"{doing}: {error}")


def _without_banner(problem: str) -> str:
    """quick_check prefixes its first problem with `*** in database main ***`."""
    return problem.removeprefix("*** in database main ***").strip()


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
