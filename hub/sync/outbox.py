"""The SQLite side of the cloud sync: what is due, and marking it done (no boto3 here).

A session is due while `version > syncedVersion` (every update bumps `version`); a motion
event while `synced = 0`. Rows whose times wait for the system clock to be synchronised
(`clockBoot` set, see hub/clock.py) are not due: their times would be wrong in the cloud
(a `ttl` already past deletes them at once), and they become due once corrected.

Due rows are streamed in keyset chunks through the partial indexes `sessions_unsynced` /
`motion_events_unsynced`, each chunk its own short read, so memory stays flat and the
daemon's writes and WAL checkpoints are never held up.

Marking happens only after DynamoDB accepted the rows, one committed transaction per
batch, with the version that was uploaded: a row that changed meanwhile stays due, and a
run killed halfway resumes where it stopped.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlite_utils import Database

from hub.store.meta import LAST_SYNC_AT_KEY, LAST_SYNC_RESULT_KEY, get_meta, set_meta
from hub.sync.mapping import EVENT_FIELDS, SESSION_FIELDS

_T = TypeVar("_T")

DEFAULT_CHUNK = 500
HUB_ID_KEY = "hubId"

_SESSION_COLUMNS = ", ".join(name for name, _, _ in SESSION_FIELDS)
_EVENT_COLUMNS = ", ".join(name for name, _, _ in EVENT_FIELDS)
# (The SQL below is assembled from those fixed column names only.)
_DUE_SESSIONS = (
    f"SELECT {_SESSION_COLUMNS}, version FROM sessions INDEXED BY sessions_unsynced "  # noqa: S608
    "WHERE version > syncedVersion AND clockBoot IS NULL AND sessionId > ? "
    "ORDER BY sessionId LIMIT ?"
)
_DUE_EVENTS = (
    f"SELECT {_EVENT_COLUMNS} FROM motion_events INDEXED BY motion_events_unsynced "  # noqa: S608
    "WHERE synced = 0 AND clockBoot IS NULL AND eventId > ? ORDER BY eventId LIMIT ?"
)
_MARK_SESSION = "UPDATE sessions SET syncedVersion = ? WHERE sessionId = ? AND syncedVersion < ?"
_MARK_EVENT = "UPDATE motion_events SET synced = 1 WHERE eventId = ? AND synced = 0"


@dataclass(frozen=True, slots=True)
class DueSession:
    """A session row as it was read, and the version that row is."""

    session_id: str
    version: int
    row: dict[str, Any]


@dataclass(frozen=True, slots=True)
class DueEvent:
    event_id: str
    row: dict[str, Any]


class Outbox:
    """Due rows of one database, and their acknowledgements."""

    def __init__(self, db: Database, *, chunk_size: int = DEFAULT_CHUNK) -> None:
        if chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        self.db = db
        self.chunk_size = chunk_size

    # -- identity ---------------------------------------------------------------------

    def hub_id(self) -> str:
        """This hub's stable id, made on first use and kept in `hub_meta`."""
        found = self._meta(HUB_ID_KEY)
        if found is not None:
            return found
        with self.db.atomic():
            self.db.execute(
                "INSERT OR IGNORE INTO hub_meta (key, value) VALUES (?, ?)",
                [HUB_ID_KEY, f"hub-{secrets.token_hex(8)}"],
            )
        made = self._meta(HUB_ID_KEY)
        if made is None:  # pragma: no cover - the insert above guarantees a row
            raise RuntimeError("hub_meta lost the hub id it was just given")
        return made

    def record_run(self, *, at: str, result: str) -> None:
        """Remember the last sync's time and one-line result (the dashboard and /health
        show them)."""
        set_meta(self.db, {LAST_SYNC_AT_KEY: at, LAST_SYNC_RESULT_KEY: result})

    def _meta(self, key: str) -> str | None:
        return get_meta(self.db, key)

    # -- what is due ------------------------------------------------------------------

    def count_due_sessions(self) -> int:
        row = self.db.execute(
            "SELECT count(*) FROM sessions INDEXED BY sessions_unsynced "
            "WHERE version > syncedVersion AND clockBoot IS NULL"
        ).fetchone()
        return int(row[0])

    def count_unconfirmed(self) -> int:
        """Sessions held back because their times wait for the system clock (hub/clock.py)."""
        row = self.db.execute(
            "SELECT count(*) FROM sessions INDEXED BY sessions_unconfirmed "
            "WHERE clockBoot IS NOT NULL"
        ).fetchone()
        return int(row[0])

    def count_due_events(self) -> int:
        row = self.db.execute(
            "SELECT count(*) FROM motion_events INDEXED BY motion_events_unsynced "
            "WHERE synced = 0 AND clockBoot IS NULL"
        ).fetchone()
        return int(row[0])

    def due_sessions(self) -> Iterator[list[DueSession]]:
        """Due sessions in chunks, by sessionId; each row is seen at most once per pass."""

        def due(row: dict[str, Any]) -> DueSession:
            session_id = str(row["sessionId"])
            return DueSession(session_id, int(row.pop("version")), row)

        return self._chunks(_DUE_SESSIONS, due, lambda chunk: chunk[-1].session_id)

    def due_events(self) -> Iterator[list[DueEvent]]:
        """Unsynced motion events in chunks, by eventId."""
        return self._chunks(
            _DUE_EVENTS,
            lambda row: DueEvent(str(row["eventId"]), row),
            lambda chunk: chunk[-1].event_id,
        )

    def _chunks(
        self,
        sql: str,
        make: Callable[[dict[str, Any]], _T],
        last_key: Callable[[list[_T]], str],
    ) -> Iterator[list[_T]]:
        """`sql` (WHERE key > ? … ORDER BY key LIMIT ?) page by page, each a short read."""
        after = ""
        while True:
            cursor = self.db.execute(sql, [after, self.chunk_size])
            names = [d[0] for d in cursor.description]
            chunk = [make(dict(zip(names, values, strict=True))) for values in cursor.fetchall()]
            if not chunk:
                return
            after = last_key(chunk)
            yield chunk
            if len(chunk) < self.chunk_size:
                return

    # -- acknowledgements -------------------------------------------------------------

    def mark_sessions_synced(self, uploaded: Iterable[tuple[str, int]]) -> int:
        """Record that DynamoDB accepted each (sessionId, version): one transaction.

        A row whose syncedVersion is already that high is left alone; a row changed
        since it was read keeps `version > syncedVersion`, so it is due again.
        Returns how many rows changed.
        """
        params = [(version, session_id, version) for session_id, version in uploaded]
        if not params:
            return 0
        with self.db.atomic():
            cursor = self.db.conn.executemany(_MARK_SESSION, params)
        return int(cursor.rowcount)

    def mark_events_synced(self, event_ids: Iterable[str]) -> int:
        params = [(event_id,) for event_id in event_ids]
        if not params:
            return 0
        with self.db.atomic():
            cursor = self.db.conn.executemany(_MARK_EVENT, params)
        return int(cursor.rowcount)
