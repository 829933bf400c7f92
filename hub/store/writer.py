"""The one thread that writes SQLite for the daemon.

sqlite3 connections belong to the thread that made them, and writes must never block the
event loop. Everything queued while a transaction commits is written together in the
next one (group commit): under a flood, many coalesced updates of one session become a
single row write, and every motion event still gets its row.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self, TypeVar

from hub.errors import StoreError
from hub.model import MotionEvent, Session
from hub.store.database import close_database, open_database
from hub.store.sessions import SessionRepository

_LOGGER = logging.getLogger(__name__)
_T = TypeVar("_T")

MAX_BATCH = 1_000
BUSY_WITHIN = 0.005  # a commit this recent means writes are streaming in …
LINGER = 0.001  # … so wait this long for more before the next transaction;
FLOOD_BATCH = 32  # a batch this big means a flood …
FLOOD_LINGER = 0.010  # … so gather for longer: fewer, larger commits, each session's
# repeated updates written once, less WAL written per motion (flash wear). A lone motion
# is never delayed: it finds no recent commit.


def linger(since_commit: float, last_batch: int) -> float:
    """Seconds to wait for more writes before starting a transaction."""
    if since_commit >= BUSY_WITHIN:
        return 0.0
    return FLOOD_LINGER if last_batch >= FLOOD_BATCH else LINGER


# Told, on the event loop, how one save ended: (session, created, None or the error).
Persisted = Callable[[Session, bool, BaseException | None], None]


@dataclass(slots=True)
class _Save:
    session: Session
    created: bool
    event: MotionEvent | None
    then: Persisted


@dataclass(slots=True)
class _Call:
    function: Callable[[SessionRepository], Any]
    done: asyncio.Future[Any]


@dataclass(slots=True)
class WriterStats:
    transactions: int = 0
    rows: int = 0
    failures: int = 0


class StoreWriter:
    """`async with StoreWriter(path) as writer: await writer.save(...)`."""

    def __init__(self, path: Path | None, *, ttl_days: float, integrity_check: bool = True) -> None:
        self._path = path
        self._ttl_days = ttl_days
        self._integrity_check = integrity_check
        self._queue: queue.SimpleQueue[_Save | _Call | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.stats = WriterStats()

    async def __aenter__(self) -> Self:
        self._loop = asyncio.get_running_loop()
        opened: asyncio.Future[None] = self._loop.create_future()
        self._thread = threading.Thread(target=self._work, args=(opened,), name="store-writer")
        self._thread.start()
        try:
            await opened
        except BaseException:
            # Refused, or cancelled while opening: once open, the thread waits on its queue
            # for the stop sentinel, so send it, and wait for the thread off the loop.
            self._queue.put(None)
            await _join(self._thread)
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._queue.put(None)  # drains what is queued, then checkpoints and closes
        if self._thread is not None:
            await _join(self._thread)

    def save(
        self,
        session: Session,
        *,
        created: bool,
        event: MotionEvent | None = None,
        then: Persisted,
    ) -> None:
        """Queue a write; `then` is called on the event loop once it is committed (or
        failed), in the order saves were queued: one wake-up per batch, not per save."""
        self._queue.put(_Save(session, created, event, then))

    async def call(self, function: Callable[[SessionRepository], _T]) -> _T:
        """Run `function(repository)` on the writer thread (reads that must see our writes)."""
        return await self.submit(function)

    def submit(self, function: Callable[[SessionRepository], _T]) -> asyncio.Future[_T]:
        """Queue `function(repository)` for the writer thread; the future has its result."""
        done: asyncio.Future[_T] = asyncio.get_running_loop().create_future()
        self._queue.put(_Call(function, done))
        return done

    # -- the writer thread ----------------------------------------------------------------

    def _to_loop(self, callback: Callable[..., object], *args: object) -> None:
        """Run `callback(*args)` on the event loop that entered the writer."""
        assert self._loop is not None  # noqa: S101 - set before the thread starts
        self._loop.call_soon_threadsafe(callback, *args)

    def _work(self, opened: asyncio.Future[None]) -> None:
        try:
            db = open_database(self._path, integrity_check=self._integrity_check)
        except BaseException as exc:  # noqa: BLE001 - whatever it is, the opener must hear it
            # Unsettled, `opened` would leave the daemon waiting forever (no READY=1).
            self._to_loop(_settle, opened, None, exc)
            return
        self._to_loop(_settle, opened, None, None)
        repository = SessionRepository(db, ttl_days=self._ttl_days)
        last_commit, last_batch = 0.0, 0
        try:
            while True:
                item = self._queue.get()
                wait = linger(time.monotonic() - last_commit, last_batch)
                if wait:
                    time.sleep(wait)  # under load: many small commits become one
                batch: list[_Save] = []
                while item is not None:
                    if isinstance(item, _Call):
                        self._flush(repository, batch)
                        batch = []
                        self._run_call(repository, item)
                    else:
                        batch.append(item)
                    if len(batch) >= MAX_BATCH or self._queue.empty():
                        break
                    item = self._queue.get()
                self._flush(repository, batch)
                last_commit, last_batch = time.monotonic(), len(batch)
                if item is None:
                    return
        finally:
            close_database(db)

    def _run_call(self, repository: SessionRepository, call: _Call) -> None:
        try:
            result = call.function(repository)
        except Exception as exc:  # noqa: BLE001 - handed to the awaiting caller
            self._to_loop(_settle, call.done, None, exc)
        else:
            self._to_loop(_settle, call.done, result, None)

    def _flush(self, repository: SessionRepository, batch: list[_Save]) -> None:
        if not batch:
            return
        try:
            repository.save_many([(s.session, s.created, s.event) for s in batch])
        except Exception:  # noqa: BLE001 - one bad item must not fail its neighbours
            outcomes = self._save_one_by_one(repository, batch)
        else:
            self.stats.transactions += 1
            self.stats.rows += len(batch)
            outcomes = [(item, None) for item in batch]
        self._to_loop(_report, outcomes)

    def _save_one_by_one(
        self, repository: SessionRepository, batch: list[_Save]
    ) -> list[tuple[_Save, BaseException | None]]:
        outcomes: list[tuple[_Save, BaseException | None]] = []
        for item in batch:
            try:
                repository.save(item.session, created=item.created, event=item.event)
            except Exception as exc:  # noqa: BLE001 - handed to the caller's `then`
                self.stats.failures += 1
                outcomes.append((item, _as_store_error(exc)))
            else:
                self.stats.transactions += 1
                self.stats.rows += 1
                outcomes.append((item, None))
        return outcomes


def _report(outcomes: list[tuple[_Save, BaseException | None]]) -> None:
    for item, error in outcomes:
        try:
            item.then(item.session, item.created, error)
        except Exception:
            _LOGGER.exception("a save's callback failed")


def _as_store_error(error: BaseException) -> BaseException:
    """sqlite3 errors (disk full, I/O error, …) as StoreError: callers catch HubError."""
    if isinstance(error, sqlite3.Error):
        wrapped = StoreError(f"database write failed: {error}")
        wrapped.__cause__ = error
        return wrapped
    return error


async def _join(thread: threading.Thread) -> None:
    """Wait for `thread` to end without blocking the event loop, through cancellation too:
    the thread reports to the loop until it ends, so it must not outlive the loop. A cancel
    that comes meanwhile is raised once the thread has ended."""
    joined = asyncio.ensure_future(asyncio.to_thread(thread.join))
    cancelled = False
    while not joined.done():
        try:
            await asyncio.shield(joined)
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError


def _settle(future: asyncio.Future[Any], result: object, error: BaseException | None) -> None:
    if future.done():  # the awaiting task was cancelled
        return
    if error is not None:
        future.set_exception(_as_store_error(error))
    else:
        future.set_result(result)
