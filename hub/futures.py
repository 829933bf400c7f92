"""Answering a future from a callback: the one rule every worker (the store writer, the
read pool, the session runner, detached Spotify calls) follows."""

from __future__ import annotations

import asyncio
from typing import Any


def settle(
    future: asyncio.Future[Any], result: object = None, error: BaseException | None = None
) -> None:
    """Give `future` its result, or `error`, unless its waiter gave up (it was cancelled)."""
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
