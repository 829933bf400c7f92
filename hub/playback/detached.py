"""Blocking Spotify calls on threads that never hold the process open.

`asyncio.to_thread` runs on the loop's default executor, and `asyncio.run` waits for its
threads at exit (with no limit on Python 3.11): one request to a hung Spotify would then
hold SIGTERM for the whole request timeout. A daemon thread per call is abandoned at exit
instead; the call's own timeouts still end it if the process lives on.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import TypeVar

from hub.futures import settle

_T = TypeVar("_T")


async def run_detached(function: Callable[[], _T], *, name: str = "spotify-call") -> _T:
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[_T] = loop.create_future()

    def work() -> None:
        try:
            result = function()
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting caller
            outcome: tuple[_T | None, BaseException | None] = (None, exc)
        else:
            outcome = (result, None)
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits any more
            loop.call_soon_threadsafe(settle, answer, *outcome)

    threading.Thread(target=work, name=name, daemon=True).start()
    return await answer
