"""The lock file and the control socket: who answers a Session Manager event."""

from __future__ import annotations

import asyncio
import itertools
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

import pytest

from hub import control
from hub.errors import TransientError


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "hub.db"


def test_the_lock_is_taken_once(database: Path) -> None:
    with control.hub_lock(database) as first, control.hub_lock(database) as second:
        assert (first, second) == (True, False)
    with control.hub_lock(database) as again:
        assert again  # released on exit


def test_with_no_daemon_the_event_runs_here(database: Path) -> None:
    ran: list[bool] = []

    def here() -> dict[str, Any]:
        with control.hub_lock(database) as taken:
            ran.append(taken)  # held by route() meanwhile: nobody else may take it
        return {"statusCode": 200}

    assert control.route(database, {"action": "x"}, here) == {"statusCode": 200}
    assert ran == [False]


class Daemon:
    """The daemon's side: the lock held and `control.serve` answering on its own loop."""

    def __init__(self, database: Path) -> None:
        self.database = database
        self.seen: list[object] = []
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),))

    async def _answer(self, event: object) -> dict[str, Any]:
        self.seen.append(event)
        return {"statusCode": 200, "from": "daemon"}

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(control.serve(self.database, self._answer))
        while not control.socket_path(self.database).exists():  # noqa: ASYNC110 - no event
            await asyncio.sleep(0.001)
        self._ready.set()
        await asyncio.gather(self._task, return_exceptions=True)

    def __enter__(self) -> Self:
        self._thread.start()
        assert self._ready.wait(5)
        return self

    def __exit__(self, *_: object) -> None:
        assert self._loop is not None
        assert self._task is not None
        self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(5)


@pytest.fixture
def held(database: Path) -> Iterator[None]:
    with control.hub_lock(database) as taken:
        assert taken
        yield


@pytest.mark.usefixtures("held")
def test_a_running_daemon_answers_over_its_socket(database: Path) -> None:
    with Daemon(database) as daemon:
        answer = control.route(database, {"action": "end_session"}, pytest.fail)
        assert (control.socket_path(database).stat().st_mode & 0o777) == 0o660
    assert answer == {"statusCode": 200, "from": "daemon"}
    assert daemon.seen == [{"action": "end_session"}]
    assert not control.socket_path(database).exists()  # removed with the server


@pytest.mark.usefixtures("held")
def test_bad_bytes_on_the_socket_are_a_400(database: Path) -> None:
    with Daemon(database) as daemon:
        answer = control.ask_daemon(database, "not an event")  # valid JSON, passed on
        assert answer["from"] == "daemon"
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(control.socket_path(database)))
            sock.sendall(b"{not json")
            sock.shutdown(socket.SHUT_WR)
            raw = sock.recv(65536)
    assert b'"statusCode": 400' in raw
    assert daemon.seen == ["not an event"]


@pytest.mark.usefixtures("held")
def test_a_held_lock_without_a_socket_is_a_clear_error_in_bounded_time(database: Path) -> None:
    ticks = itertools.count()
    with pytest.raises(TransientError, match="does not answer"):
        control.route(
            database,
            {"action": "x"},
            pytest.fail,
            find_timeout=5,
            clock=lambda: float(next(ticks)),
            pause=lambda _seconds: None,
        )


async def test_a_socket_path_too_long_is_logged_not_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    deep = tmp_path / ("d" * 120) / "hub.db"

    async def never(_event: object) -> dict[str, Any]:
        raise AssertionError

    await asyncio.wait_for(control.serve(deep, never), 5)  # returns at once
    assert "too long" in caplog.text


@pytest.mark.usefixtures("held")
def test_an_event_over_the_limit_is_a_400_without_asking_the_daemon(database: Path) -> None:
    event = {"action": "create_session", "sensorId": "x" * control.MAX_REQUEST}
    answer = control.route(database, event, pytest.fail)  # no socket either: not needed
    assert (answer["statusCode"], answer["field"]) == (400, "event")


@pytest.mark.usefixtures("held")
def test_a_daemon_that_took_the_event_but_did_not_answer_is_never_replayed(
    database: Path,
) -> None:
    # The daemon stopped while it carried the change out: it may have been made, so the
    # client must not run it again in-process once the lock is free.
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(control.socket_path(database)))
        server.listen()

        def take_and_hang_up() -> None:
            connection, _ = server.accept()
            with connection:
                connection.recv(65536)

        taker = threading.Thread(target=take_and_hang_up)
        taker.start()
        with pytest.raises(TransientError, match="may or may not have been made"):
            control.route(database, {"action": "end_session"}, pytest.fail)
        taker.join(5)
