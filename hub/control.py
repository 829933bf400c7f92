"""The hub's lock file and control socket, beside the database in the state directory.

One program at a time changes sessions. The daemon holds `hub.lock` (an exclusive `flock`)
for as long as it runs and answers Session Manager events on `hub.sock` (a unix socket,
mode 0660: the hub's user and group). `spottypotty invoke` takes the lock itself when it is
free — no daemon runs — and does the work in-process with the same engine and writer;
when the lock is held it sends the event to the daemon over the socket. Never both.

The protocol is one JSON event in (the client then shuts down its sending side), one JSON
response out, then the connection closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, Final

from hub.errors import HubError, StorageUnavailableError, TransientError

_LOGGER = logging.getLogger(__name__)

LOCK_NAME: Final = "hub.lock"
SOCKET_NAME: Final = "hub.sock"
MAX_REQUEST: Final = 64 * 1024  # bytes, as the HTTP API's body limit
SOCKET_MODE: Final = 0o660
READ_TIMEOUT: Final = 5.0  # seconds a client has to send its event
ANSWER_TIMEOUT: Final = 30.0  # seconds `invoke` waits for the daemon's answer
FIND_TIMEOUT: Final = 10.0  # seconds `invoke` waits for a starting or stopping daemon
_MAX_SOCKET_PATH: Final = 107  # sun_path holds 108 bytes with its terminating NUL

Answer = Callable[[object], Awaitable[dict[str, Any]]]


class HubRunningError(HubError):
    """Another daemon holds the lock."""


def lock_path(database: Path) -> Path:
    return database.parent / LOCK_NAME


def socket_path(database: Path) -> Path:
    return database.parent / SOCKET_NAME


@contextlib.contextmanager
def hub_lock(database: Path) -> Iterator[bool]:
    """Try to take the lock without waiting: yields True when taken (released on exit),
    False when another program holds it."""
    path = lock_path(database)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o660)
    except PermissionError as exc:
        raise HubError(
            f"cannot open the lock file {path} ({exc.strerror}): run this as the hub's user "
            "or a member of its group (sudo -u spottypotty …)"
        ) from exc
    except OSError as exc:  # a read-only or full file system, an I/O error
        raise StorageUnavailableError(
            f"the database's folder is not writable: cannot open the lock file {path} "
            f"({exc.strerror}); check its disk (mount, free space, dmesg)"
        ) from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True  # closing the descriptor releases the lock
    finally:
        os.close(fd)


def _bad_request(message: str) -> dict[str, Any]:
    return {
        "statusCode": 400,
        "action": None,
        "error": "ValidationError",
        "message": message,
        "field": "event",
    }


async def serve(database: Path, answer: Answer) -> None:
    """Answer events on the control socket until cancelled; the socket file goes with it.

    A socket that cannot be made is logged, not fatal: motion and music go on, and
    `spottypotty invoke` says it cannot reach the hub.
    """
    path = socket_path(database)
    if len(os.fsencode(path)) > _MAX_SOCKET_PATH:
        _LOGGER.error("no control socket: %s is too long for a unix socket", path)
        return
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # left by a killed daemon; we hold the lock, so it is not in use

    async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            response = await _answer_one(reader, answer)
            writer.write(json.dumps(response, ensure_ascii=False).encode("utf-8"))
            await writer.drain()
        except (ConnectionError, TimeoutError):
            pass  # the client went away or never spoke: nothing to answer
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    old_umask = os.umask(0o117)  # the socket is born 0660: no window with wider access
    try:
        server = await asyncio.start_unix_server(connected, path=str(path))
    except OSError as exc:
        _LOGGER.error("no control socket at %s: %s", path, exc.strerror or exc)  # noqa: TRY400 - one line says it
        return
    finally:
        os.umask(old_umask)
    try:
        path.chmod(SOCKET_MODE)
        async with server:
            await server.serve_forever()
    finally:
        # Gone already, or its disk went read-only: the next daemon replaces it anyway.
        with contextlib.suppress(OSError):
            path.unlink()


async def _answer_one(reader: asyncio.StreamReader, answer: Answer) -> dict[str, Any]:
    async with asyncio.timeout(READ_TIMEOUT):
        raw = await reader.read(MAX_REQUEST + 1)
        while raw and len(raw) <= MAX_REQUEST and not reader.at_eof():
            more = await reader.read(MAX_REQUEST + 1 - len(raw))
            if not more:
                break
            raw += more
    if len(raw) > MAX_REQUEST:
        return _bad_request(f"the event is over {MAX_REQUEST} bytes")
    try:
        event = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        return _bad_request(f"the event is not JSON: {exc}")
    return await answer(event)


class NotListeningError(ConnectionError):
    """Nobody accepts on the control socket: nothing was sent, so trying again is safe."""


def ask_daemon(database: Path, event: object, *, timeout: float = ANSWER_TIMEOUT) -> dict[str, Any]:
    """Send one event to the running daemon and return its response.

    Raises NotListeningError when no daemon accepts on the socket (nothing was sent), and
    TransientError when the daemon took the event but gave no answer: then the change may
    or may not have been made, and it must not be replayed.
    """
    path = socket_path(database)
    payload = json.dumps(event, ensure_ascii=False).encode("utf-8")
    if len(payload) > MAX_REQUEST:
        return _bad_request(f"the event is over {MAX_REQUEST} bytes")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise NotListeningError(exc.errno, exc.strerror, str(path)) from exc
        chunks: list[bytes] = []
        try:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except TimeoutError as exc:
            raise TransientError(
                f"the hub did not answer on {path} within {timeout:.0f} s; the change may "
                "or may not have been made (look with get_active_session or query_sessions)"
            ) from exc
        except OSError as exc:
            raise TransientError(f"the hub closed {path} without an answer: {exc}") from exc
    if not chunks:
        raise TransientError(
            f"the hub closed {path} without an answer (it may be stopping); the change may "
            "or may not have been made (look with get_active_session or query_sessions)"
        )
    answer = json.loads(b"".join(chunks))
    if not isinstance(answer, dict):
        raise TransientError(f"the hub answered {type(answer).__name__} on {path}")
    return answer


def route(
    database: Path,
    event: object,
    in_process: Callable[[], dict[str, Any]],
    *,
    find_timeout: float = FIND_TIMEOUT,
    clock: Callable[[], float] = time.monotonic,
    pause: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """The event's response from whoever owns the sessions: the running daemon over its
    socket, or — when no daemon holds the lock — `in_process()`, run while holding it.

    A daemon that is starting (lock held, socket not yet open) or stopping (socket closed,
    lock not yet released) is waited for, at most `find_timeout` seconds.
    """
    give_up = clock() + find_timeout
    while True:
        with hub_lock(database) as taken:
            if taken:
                return in_process()
        try:
            return ask_daemon(database, event)
        except NotListeningError as exc:  # nothing was sent: asking again cannot repeat it
            if clock() >= give_up:
                raise TransientError(
                    f"a hub holds {lock_path(database)} but does not answer on "
                    f"{socket_path(database)} ({exc.strerror or exc}); is it starting or stuck? "
                    "See `systemctl status spottypotty`"
                ) from exc
        pause(0.05)
