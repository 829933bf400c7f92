"""Sessions and their motion events in SQLite.

Writes are plain parameterised SQL on the hot path (one transaction per event, no
rewrite of unchanged rows); sqlite-utils does the opening and the migrations.
"""

from __future__ import annotations

import functools
import math
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from hub.clock import STEP_THRESHOLD, ClockState
from hub.errors import ConflictError, StoreError
from hub.model import (
    RECORD_FIELDS,
    SECONDS_PER_DAY,
    MotionEvent,
    Session,
    SessionStatus,
    decisions_json,
    new_event_id,
)

# The record's columns plus the bookkeeping ones a `Session` carries.
_SESSION_COLUMNS = (*RECORD_FIELDS, "playbackNote", "decisions")
_SELECT = "SELECT " + ", ".join(_SESSION_COLUMNS) + " FROM sessions"
# Times made before the system clock was synchronised: the boot and base they were made
# with (hub/clock.py), NULL once confirmed.
_CLOCK_COLUMNS = ("clockBoot", "clockBase")


def _insert_sql(table: str, columns: Sequence[str]) -> str:
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(':' + c for c in columns)})"
    )


_INSERT = _insert_sql("sessions", _SESSION_COLUMNS)
_INSERT_CLOCKED = _insert_sql("sessions", (*_SESSION_COLUMNS, *_CLOCK_COLUMNS))
# Every column but the key; an update sets the ones that changed.
_UPDATABLE = tuple(column for column in _SESSION_COLUMNS if column != "sessionId")
_REMEMBERED_ROWS = 4_096


@functools.lru_cache(maxsize=256)
def _update_sql(columns: tuple[str, ...]) -> str:
    assignments = ", ".join(f"{column} = :{column}" for column in columns)
    return f"UPDATE sessions SET {assignments}, version = version + 1 WHERE sessionId = :sessionId"


_EVENT_COLUMNS = (
    "eventId",
    "sensorId",
    "sessionId",
    "timestamp",
    "receivedAt",
    "source",
    "sensorTimestamp",
    "seq",
    "batteryLevel",
    "signalStrength",
    "firmwareVersion",
    "late",
    "ttl",
)
_INSERT_EVENT = _insert_sql("motion_events", _EVENT_COLUMNS)
_INSERT_EVENT_CLOCKED = _insert_sql("motion_events", (*_EVENT_COLUMNS, *_CLOCK_COLUMNS))

MAX_PAGE = 1_000


def session_row(session: Session) -> dict[str, Any]:
    """The SQLite row: the contract's record with every column present (NULL when absent)."""
    return _columns(session, _SESSION_COLUMNS)


def _columns(session: Session, columns: Sequence[str]) -> dict[str, Any]:
    """Some columns of the session's row."""
    row = session.record_values(column for column in columns if column not in _BOOKKEEPING)
    if "playbackNote" in columns:
        row["playbackNote"] = session.playback_note
    if "decisions" in columns:
        row["decisions"] = decisions_json(session.decisions)
    return row


_BOOKKEEPING = frozenset({"playbackNote", "decisions"})


def _changed_columns(before: Session, after: Session) -> tuple[str, ...]:
    """The updatable columns whose values differ, in one fixed order (one SQL text each)."""
    if before == after and before.decisions == after.decisions:
        return ()
    changed = after.changed_fields(before)
    if after.playback_note != before.playback_note:
        changed.add("playbackNote")
    if after.decisions != before.decisions:
        changed.add("decisions")
    return tuple(column for column in _UPDATABLE if column in changed)


_ANY_UNCONFIRMED = (
    "SELECT EXISTS (SELECT 1 FROM sessions WHERE clockBoot = :boot) "
    "OR EXISTS (SELECT 1 FROM motion_events WHERE clockBoot = :boot)"
)
_SELECT_CLOCKED = "SELECT " + ", ".join((*_SESSION_COLUMNS, "clockBase")) + " FROM sessions"
_SELECT_RECORD = "SELECT " + ", ".join(RECORD_FIELDS) + " FROM sessions"


def record_from_row(row: dict[str, Any]) -> dict[str, Any]:
    """The contract's record straight from a row (the inverse of `session_row`)."""
    return _record(RECORD_FIELDS, tuple(row[field] for field in RECORD_FIELDS))


def _record(names: Sequence[str], values: Sequence[Any]) -> dict[str, Any]:
    # Listing a month of sessions is mostly this: no round trip through `Session`.
    record = {name: value for name, value in zip(names, values, strict=True) if value is not None}
    record["playbackStarted"] = bool(record["playbackStarted"])
    if "playbackStopped" in record:
        record["playbackStopped"] = bool(record["playbackStopped"])
    return record


@dataclass(frozen=True, slots=True)
class SessionQuery:
    """Sessions of one sensor or one user (or everyone), newest first, keyset-paginated."""

    sensor_id: str | None = None
    user_id: str | None = None
    start: float | None = None  # inclusive, epoch seconds
    end: float | None = None  # inclusive
    status: SessionStatus | None = None
    limit: int = 100
    after: tuple[int, str] | None = None  # (startTime, sessionId) of the last row seen


class SessionRepository:
    def __init__(self, db: Database, *, ttl_days: float = 30.0) -> None:
        self.db = db
        self._event_ttl_seconds = int(ttl_days * SECONDS_PER_DAY)
        # The sessions this repository last committed, by session id, so an update writes
        # only the columns that changed (flash wear). Sound because the daemon's runner is
        # the one writer of sessions: no other program changes a row behind it.
        self._written: dict[str, Session] = {}
        # {clockBoot, clockBase} for what is written while the clock is unconfirmed.
        self._clock_mark: dict[str, Any] = {}

    # -- writes -------------------------------------------------------------------------

    def save(self, session: Session, *, created: bool, event: MotionEvent | None = None) -> None:
        """Insert or update `session` and record `event` against it, in one transaction.

        A second active session for a sensor raises ConflictError naming the first.
        """
        self.save_many([(session, created, event)])

    def save_many(self, items: Sequence[tuple[Session | None, bool, MotionEvent | None]]) -> None:
        """Several saves in one transaction; repeated updates of a session write it once.
        An item with no session keeps its event alone (motion that is part of no session).

        Raises like `save`; then nothing of the batch is written.
        """
        latest: dict[str, tuple[Session, bool]] = {}
        for session, created, _ in items:
            if session is None:
                continue
            previous = latest.get(session.session_id)
            latest[session.session_id] = (
                session,
                created or (previous is not None and previous[1]),
            )
        try:
            with self.db.atomic():
                for session, created in latest.values():
                    self._write(session, created=created)
                for session, _, event in items:
                    if event is not None:
                        session_id = session.session_id if session is not None else None
                        self._insert_event(event, session_id)
        except sqlite3.IntegrityError as exc:
            for session_id in latest:  # rolled back: what we last wrote is unknown now
                self._written.pop(session_id, None)
            raise self._conflict([session for session, _ in latest.values()], exc) from exc
        except BaseException:
            for session_id in latest:
                self._written.pop(session_id, None)
            raise
        for session, _ in latest.values():
            self._remember(session)

    def _write(self, session: Session, *, created: bool) -> None:
        """One row; an update sets only the columns that changed since we last wrote it,
        so an extended session rewrites one table page, not every index (flash wear)."""
        if created:
            if self._clock_mark:
                self.db.execute(_INSERT_CLOCKED, session_row(session) | self._clock_mark)
            else:
                self.db.execute(_INSERT, session_row(session))
            return
        before = self._written.get(session.session_id)
        changed = _UPDATABLE if before is None else _changed_columns(before, session)
        if not changed:
            return
        values = _columns(session, changed)
        if self._clock_mark:
            changed = (*changed, *_CLOCK_COLUMNS)
            values |= self._clock_mark
        values["sessionId"] = session.session_id
        if self.db.execute(_update_sql(changed), values).rowcount != 1:
            raise StoreError(f"session {session.session_id} is not in the database")

    def _remember(self, session: Session) -> None:
        self._written.pop(session.session_id, None)
        self._written[session.session_id] = session
        if len(self._written) > _REMEMBERED_ROWS:
            del self._written[next(iter(self._written))]  # the least recently written

    def record_event(self, event: MotionEvent, session_id: str | None = None) -> None:
        """Keep a motion event that belongs to no session we track (e.g. out of order)."""
        with self.db.atomic():
            self._insert_event(event, session_id)

    def _insert_event(self, event: MotionEvent, session_id: str | None) -> None:
        row = self._event_row(event, session_id)
        if self._clock_mark:
            self.db.execute(_INSERT_EVENT_CLOCKED, row | self._clock_mark)
        else:
            self.db.execute(_INSERT_EVENT, row)

    def _event_row(self, event: MotionEvent, session_id: str | None) -> dict[str, Any]:
        return {
            "eventId": new_event_id(event.sensor_id, event.occurred_at),
            "sensorId": event.sensor_id,
            "sessionId": session_id,
            "timestamp": event.occurred_at,
            "receivedAt": event.received_at,
            "source": event.source,
            "sensorTimestamp": event.sensor_timestamp,
            "seq": event.seq,
            "batteryLevel": event.battery_level,
            "signalStrength": event.signal_strength,
            "firmwareVersion": event.firmware_version,
            "late": int(event.late),
            "ttl": int(event.occurred_at) + self._event_ttl_seconds,
        }

    def set_clock(self, state: ClockState) -> int:
        """Mark (or not) what is written from now on as `state` says, put this boot's
        unconfirmed rows on `state`'s timeline, and confirm them when the clock is
        synchronised. Returns how many rows were corrected or confirmed.

        A row's times are moved by the difference between `state.base` and the base they
        were made with: the step the system clock took since (measured, never guessed).
        The mark changes first, so should the correction fail (a full disk) the rows keep
        the base they were made with and a later call still corrects them. Rows of another
        boot cannot be corrected (their monotonic clock is gone): they stay unconfirmed, and
        the sync leaves them alone.
        """
        self._clock_mark = (
            {} if state.confirmed else {"clockBoot": state.boot_id, "clockBase": state.base}
        )
        boot = {"boot": state.boot_id, "base": state.base, "limit": STEP_THRESHOLD}
        if not self.db.execute(_ANY_UNCONFIRMED, boot).fetchone()[0]:
            return 0  # the usual case: nothing to write (nor a write lock to take)
        touched = 0
        moved: list[Session] = []
        stale = "clockBoot = :boot AND abs(clockBase - :base) > :limit"
        try:
            with self.db.atomic():
                cursor = self.db.execute(f"{_SELECT_CLOCKED} WHERE {stale}", boot)
                names = [d[0] for d in cursor.description]
                for values in cursor.fetchall():
                    row = dict(zip(names, values, strict=True))
                    session = Session.from_record(row).shifted(state.base - row["clockBase"])
                    update = session_row(session) | {"clockBase": state.base}
                    self.db.execute(_update_sql((*_UPDATABLE, "clockBase")), update)
                    moved.append(session)
                touched += len(moved) + self._move_events(stale, boot)
                if state.confirmed:
                    for table in ("sessions", "motion_events"):
                        touched += self.db.execute(
                            f"UPDATE {table} SET clockBoot = NULL, clockBase = NULL "
                            "WHERE clockBoot = :boot",
                            boot,
                        ).rowcount
        except BaseException:
            for session in moved:  # rolled back: what we last wrote is unknown now
                self._written.pop(session.session_id, None)
            raise
        for session in moved:
            self._remember(session)
        return touched

    def _move_events(self, where: str, params: dict[str, Any]) -> int:
        cursor = self.db.execute(
            "UPDATE motion_events SET timestamp = timestamp + (:base - clockBase), "
            "receivedAt = receivedAt + (:base - clockBase), "
            "ttl = CAST(timestamp + (:base - clockBase) AS INTEGER) + :ttl, "
            f"clockBase = :base WHERE {where}",
            params | {"ttl": self._event_ttl_seconds},
        )
        return int(cursor.rowcount)

    def _conflict(self, sessions: list[Session], exc: sqlite3.IntegrityError) -> Exception:
        for session in sessions:
            if not session.is_active:
                continue
            active = self.active_for(session.sensor_id)
            if active is not None and active.session_id != session.session_id:
                return ConflictError(
                    f"sensor {session.sensor_id} already has an active session {active.session_id}",
                    session_id=active.session_id,
                )
        ids = ", ".join(session.session_id for session in sessions)
        return StoreError(f"cannot save session(s) {ids}: {exc}")

    # -- reads --------------------------------------------------------------------------

    def get(self, session_id: str) -> Session | None:
        return self._one(f"{_SELECT} WHERE sessionId = ?", [session_id])

    def active_for(self, sensor_id: str) -> Session | None:
        return self._one(f"{_SELECT} WHERE sensorId = ? AND status = 'active'", [sensor_id])

    def all_active(self) -> list[Session]:
        # Sorted here, not in SQL: ORDER BY startTime makes SQLite walk the time index over
        # every session (0.85 s for a year of 100 sensors) instead of the small partial
        # index of active ones (0.5 ms).
        active = self._many(f"{_SELECT} WHERE status = 'active'", [])
        return sorted(active, key=lambda session: (session.start, session.session_id))

    def query(self, query: SessionQuery) -> tuple[list[Session], bool]:
        """One page of sessions, newest first, and whether more follow."""
        records, more = self.query_records(query)
        return [Session.from_record(r) for r in records], more

    def query_records(self, query: SessionQuery) -> tuple[list[dict[str, Any]], bool]:
        """One page as contract records (`Session.to_record()` shape), and whether more follow."""
        where, params = range_filter(query.sensor_id, query.user_id, query.start, query.end)
        if query.status is not None:
            where.append("status = ?")
            params.append(query.status.value)
        if query.after is not None:
            where.append("(startTime, sessionId) < (?, ?)")
            params.extend(query.after)
        limit = max(1, min(query.limit, MAX_PAGE))
        sql = (
            f"{_SELECT_RECORD} {_where_clause(where)} "
            f"ORDER BY startTime DESC, sessionId DESC LIMIT {limit + 1}"
        )
        page = [_record(RECORD_FIELDS, row) for row in self.db.execute(sql, params)]
        return page[:limit], len(page) > limit

    def _one(self, sql: str, params: list[Any]) -> Session | None:
        rows = self._many(sql, params)
        return rows[0] if rows else None

    def _many(self, sql: str, params: list[Any]) -> list[Session]:
        cursor = self.db.execute(sql, params)
        names = [d[0] for d in cursor.description]
        return [Session.from_record(dict(zip(names, row, strict=True))) for row in cursor]


def range_filter(
    sensor_id: str | None,
    user_id: str | None,
    start: float | None,
    end: float | None,
) -> tuple[list[str], list[Any]]:
    """WHERE terms for "sessions of X between two instants" that an index can range-scan."""
    where: list[str] = []
    params: list[Any] = []
    if sensor_id is not None:
        where.append("sensorId = ?")
        params.append(sensor_id)
    if user_id is not None:
        where.append("userId = ?")
        params.append(user_id)
    # startTime is whole epoch seconds (the seed's GSI range key): compare on that grain.
    if start is not None:
        where.append("startTime >= ?")
        params.append(math.floor(start))
    if end is not None:
        where.append("startTime <= ?")
        params.append(math.floor(end))
    return where, params


def _where_clause(where: list[str]) -> str:
    return ("WHERE " + " AND ".join(where)) if where else ""
