"""The one thread that writes SQLite for the daemon.

sqlite3 connections belong to the thread that made them, and writes must never block the
event loop. The session runner hands over each batch of decisions as one `write()`: one
transaction, in which repeated updates of a session become a single row write and every
motion event still gets its row. Batches form by themselves: while one commits, the
runner's inbox fills with the next.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self, TypeVar

from hub.errors import StoreError
from hub.futures import settle
from hub.model import MotionEvent, Session
from hub.store.database import close_database, open_database
from hub.store.sessions import SessionRepository

_LOGGER = logging.getLogger(__name__)
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Save:
    """Write `session` (insert when `created`, else the columns that changed) and `event`
    linked to it; with no session, `event` is kept on its own (motion of no session)."""

    session: Session | None
    created: bool = False
    event: MotionEvent | None = None


@dataclass(slots=True)
class _Batch:
    saves: Sequence[Save]
    done: asyncio.Future[list[BaseException | None]]


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
        self._queue: queue.SimpleQueue[_Batch | _Call | None] = queue.SimpleQueue()
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

    async def write(self, saves: Sequence[Save]) -> list[BaseException | None]:
        """Commit `saves` in one transaction; each one's outcome (None or its StoreError),
        in order. When the transaction fails, each save is tried alone, so one bad item
        does not fail its neighbours."""
        if not saves:
            return []
        done: asyncio.Future[list[BaseException | None]] = (
            asyncio.get_running_loop().create_future()
        )
        self._queue.put(_Batch(saves, done))
        return await done

    async def call(self, function: Callable[[SessionRepository], _T]) -> _T:
        """Run `function(repository)` on the writer thread (reads that must see our writes)."""
        done: asyncio.Future[_T] = asyncio.get_running_loop().create_future()
        self._queue.put(_Call(function, done))
        return await done

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
            self._to_loop(settle, opened, None, _as_store_error(exc))
            return
        self._to_loop(settle, opened)
        repository = SessionRepository(db, ttl_days=self._ttl_days)
        try:
            while (item := self._queue.get()) is not None:
                if isinstance(item, _Call):
                    self._run_call(repository, item)
                else:
                    self._to_loop(settle, item.done, self._commit(repository, item.saves))
        finally:
            close_database(db)

    def _run_call(self, repository: SessionRepository, call: _Call) -> None:
        try:
            result = call.function(repository)
        except Exception as exc:  # noqa: BLE001 - handed to the awaiting caller
            self._to_loop(settle, call.done, None, _as_store_error(exc))
        else:
            self._to_loop(settle, call.done, result)

    def _commit(
        self, repository: SessionRepository, saves: Sequence[Save]
    ) -> list[BaseException | None]:
        try:
            repository.save_many([(s.session, s.created, s.event) for s in saves])
        except Exception:  # noqa: BLE001 - one bad item must not fail its neighbours
            return [self._commit_one(repository, save) for save in saves]
        self.stats.transactions += 1
        self.stats.rows += len(saves)
        return [None] * len(saves)

    def _commit_one(self, repository: SessionRepository, save: Save) -> BaseException | None:
        try:
            repository.save_many([(save.session, save.created, save.event)])
        except Exception as exc:  # noqa: BLE001 - handed to the caller
            self.stats.failures += 1
            return _as_store_error(exc)
        self.stats.transactions += 1
        self.stats.rows += 1
        return None


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
