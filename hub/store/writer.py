"""The one thread that writes SQLite for the daemon.

sqlite3 connections belong to the thread that made them, and writes must never block the
event loop. The session runner hands over each batch of decisions as one `write()`: one
transaction, in which repeated updates of a session become a single row write and every
motion event still gets its row. Batches form by themselves: while one commits, the
runner's inbox fills with the next.

When the disk refuses a write (full, read-only, I/O error, the file deleted or replaced
under us — checked by inode before each transaction), the batch fails as a whole with
StorageUnavailableError, which the runner holds and retries; trying its rows one by one
would only fail each of them. Should the thread itself ever fail, it answers every call
from then on with that failure and `failure` says why: nothing waits for an answer that
never comes, and the daemon's health check sees it.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self, TypeVar

from hub.errors import StorageUnavailableError, StoreError
from hub.futures import settle
from hub.model import MotionEvent, Session
from hub.store.database import close_database, file_identity, is_unwritable, open_database
from hub.store.meta import WRITER_STARTED_KEY, set_meta
from hub.store.sessions import SessionRepository
from hub.timeutil import iso

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
        self._identity: tuple[int, int] | None = None  # the file we opened: (device, inode)
        self.stats = WriterStats()
        self.failure: BaseException | None = None  # set if the thread itself failed
        self._current: _Batch | _Call | None = None  # what the thread works on

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
        self._check_alive()
        done: asyncio.Future[list[BaseException | None]] = (
            asyncio.get_running_loop().create_future()
        )
        self._queue.put(_Batch(saves, done))
        return await done

    async def call(self, function: Callable[[SessionRepository], _T]) -> _T:
        """Run `function(repository)` on the writer thread (reads that must see our writes)."""
        self._check_alive()
        done: asyncio.Future[_T] = asyncio.get_running_loop().create_future()
        self._queue.put(_Call(function, done))
        return await done

    @property
    def alive(self) -> bool:
        """The writer thread runs and has not failed."""
        return self.failure is None and self._thread is not None and self._thread.is_alive()

    def _check_alive(self) -> None:
        if self.failure is not None:
            raise StoreError(f"the store writer failed: {self.failure!r}")
        if self._thread is None or not self._thread.is_alive():
            raise StoreError("the store writer is not running")

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
        if self._path is not None:
            try:
                # A real write: a read-only file system (or file) opens and reads fine, and
                # a hub that cannot write must say so at start, not accept and lose motion.
                set_meta(db, {WRITER_STARTED_KEY: iso(time.time())})
            except sqlite3.Error as exc:
                close_database(db)
                refused = StorageUnavailableError(f"database {self._path} is not writable: {exc}")
                self._to_loop(settle, opened, None, refused)
                return
            self._identity = file_identity(self._path)
        self._to_loop(settle, opened)
        repository = SessionRepository(db, ttl_days=self._ttl_days)
        try:
            self._serve(repository)
        except BaseException as exc:
            self.failure = exc
            _LOGGER.critical("the store writer failed; nothing more is written", exc_info=True)
            self._refuse_all(exc)
        finally:
            close_database(db)

    def _serve(self, repository: SessionRepository) -> None:
        while (item := self._queue.get()) is not None:
            self._current = item
            if isinstance(item, _Call):
                self._run_call(repository, item)
            else:
                self._to_loop(settle, item.done, self._commit(repository, item.saves))
            self._current = None

    def _refuse_all(self, failure: BaseException) -> None:
        """Answer the item that failed, then everything queued until the stop sentinel,
        with the failure."""
        error = StoreError(f"the store writer failed: {failure!r}")
        item = self._current
        while item is not None:
            self._to_loop(settle, item.done, None, error)
            item = self._queue.get()

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
        moved = self._file_moved()
        if moved is not None:
            return [moved] * len(saves)
        try:
            repository.save_many([(s.session, s.created, s.event) for s in saves])
        except Exception as exc:  # noqa: BLE001 - one bad item must not fail its neighbours
            if is_unwritable(exc):
                self.stats.failures += 1
                return [_as_store_error(exc)] * len(saves)
            return [self._commit_one(repository, save) for save in saves]
        self.stats.transactions += 1
        self.stats.rows += len(saves)
        return [None] * len(saves)

    def _file_moved(self) -> StorageUnavailableError | None:
        """An error when the database file is no longer the one we opened (one stat)."""
        if self._path is None or file_identity(self._path) == self._identity:
            return None
        self.stats.failures += 1
        return StorageUnavailableError(
            f"database file {self._path} was deleted or replaced while the hub had it open"
        )

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
    """sqlite3 errors as StoreError (callers catch HubError); a disk that cannot be written
    now (full, read-only, I/O error) as StorageUnavailableError."""
    if is_unwritable(error) and isinstance(error, sqlite3.Error | OSError):
        wrapped: StoreError = StorageUnavailableError(f"database not writable: {error}")
        wrapped.__cause__ = error
        return wrapped
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
