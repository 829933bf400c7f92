"""Reads off the event loop: a few threads, each with its own connection to the hub's
database (sqlite3 connections belong to their thread; WAL readers never block the writer).

The threads share the interpreter (the GIL) with the event loop, so each rests as long as
its last job took (at most `MAX_REST`): reads get at most about half a core and motion
handling always gets its turn.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

from sqlite_utils import Database

from hub.futures import settle
from hub.store.database import open_database

_T = TypeVar("_T")

MAX_REST: Final = 0.05  # seconds a database thread rests after a job (as long as the job took)
POOL_SIZE: Final = 2


@dataclass(slots=True)
class _Job:
    function: Callable[[Database], Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


class DatabasePool:
    """A few threads, each owning one connection to the hub's database (sqlite3 connections
    belong to their thread). `await pool.run(fn)` runs `fn(db)` on one of them."""

    def __init__(self, path: Path | None, size: int = POOL_SIZE) -> None:
        self._path = path
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._opening = threading.Lock()
        self._size = size
        self._threads: list[threading.Thread] = []  # started by the first job

    async def run(self, function: Callable[[Database], _T]) -> _T:
        if not self._threads:
            self._threads = [
                threading.Thread(target=self._work, name=f"db-read-{n}", daemon=True)
                for n in range(self._size)
            ]
            for thread in self._threads:
                thread.start()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_T] = loop.create_future()
        self._jobs.put(_Job(function, future, loop))
        return await future

    async def close(self) -> None:
        threads, self._threads = self._threads, []
        for _ in threads:
            self._jobs.put(None)
        for thread in threads:
            await asyncio.to_thread(thread.join)

    def _work(self) -> None:
        db: Database | None = None
        try:
            while (job := self._jobs.get()) is not None:
                started = time.perf_counter()
                try:
                    if db is None:
                        with self._opening:  # one at a time: a new file is migrated once
                            db = open_database(self._path)
                    result: Any = job.function(db)
                except Exception as exc:  # noqa: BLE001 - handed to the awaiting request
                    job.loop.call_soon_threadsafe(settle, job.future, None, exc)
                else:
                    job.loop.call_soon_threadsafe(settle, job.future, result)
                time.sleep(min(MAX_REST, time.perf_counter() - started))  # yield the GIL
        finally:
            if db is not None:
                db.close()  # the daemon's writer checkpoints the WAL; readers just close
