"""systemd integration: sd_notify (READY/STATUS/WATCHDOG/STOPPING/RELOADING) and journald.

Notifications go through systemd-python's `systemd.daemon.notify` when it is importable
and the notifier reads the process environment; otherwise a pure-Python fallback sends
the same datagram to `$NOTIFY_SOCKET` (a path, or an abstract socket written `@name`).
Without `$NOTIFY_SOCKET` (not started by systemd) every notification is a no-op. No
method ever raises: a lost notification must not take the hub down.

The watchdog (`WatchdogSec=` in the unit) is fed from the event loop by `watchdog_loop`,
every half `WATCHDOG_USEC`, and only while the caller's health check says yes, so a
wedged session runner gets the service restarted.

Logging (`configure_logging`): under systemd, when stderr is the journal stream
(`$JOURNAL_STREAM`) and systemd-python is installed, records go to the journal with
`SYSLOG_IDENTIFIER=spottypotty` plus these structured fields, passed as `extra=`:

    SENSOR_ID   the sensor a record is about            extra={"SENSOR_ID": "bathroom"}
    SESSION_ID  the session a record is about           extra={"SESSION_ID": "…"}
    USER_ID     the owner of that sensor                extra={"USER_ID": "…"}
    DEVICE_ID   the Spotify Connect device being driven  extra={"DEVICE_ID": "…"}

Lower-case spellings (`extra={"sensor_id": …}`) are accepted and upper-cased. Query them
with e.g. `journalctl -u spottypotty-hub SENSOR_ID=bathroom`. Everywhere else records are
plain text on stderr: `%(asctime)s %(levelname)s %(name)s: %(message)s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import logging
import os
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import IO, Any

_LOGGER = logging.getLogger(__name__)

SYSLOG_IDENTIFIER = "spottypotty"
JOURNAL_FIELDS = ("SENSOR_ID", "SESSION_ID", "USER_ID", "DEVICE_ID")
PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

Send = Callable[[str], bool]
HealthCheck = Callable[[], Awaitable[bool]] | Callable[[], bool]
Sleep = Callable[[float], Awaitable[object]]


# -- sd_notify ------------------------------------------------------------------------


class Notifier:
    """Tells systemd about the daemon's state; a no-op when not run by systemd."""

    def __init__(self, send: Send | None = None) -> None:
        self._send = send

    @classmethod
    def from_environment(
        cls,
        environ: Mapping[str, str] = os.environ,
        *,
        use_library: bool | None = None,
    ) -> Notifier:
        """Build a notifier for `$NOTIFY_SOCKET` in `environ`.

        By default notifications go out on a non-blocking socket of our own: sd_notify in
        libsystemd (systemd-python) blocks when the receiver's queue is full, and that would
        stop the event loop — and with it SIGTERM — until someone reads. `use_library=True`
        sends through systemd-python instead (it reads `os.environ` itself).
        """
        address = environ.get("NOTIFY_SOCKET", "")
        if not address:
            return cls(None)
        if use_library:
            library = _library_send()
            if library is not None:
                return cls(library)
        if not address.startswith(("/", "@")):
            _LOGGER.warning("NOTIFY_SOCKET=%s is not a unix socket; not notifying", address)
            return cls(None)
        return cls(_SocketSend(address))

    @property
    def enabled(self) -> bool:
        """True when notifications go somewhere."""
        return self._send is not None

    def ready(self, status: str | None = None) -> bool:
        """Startup is complete: `Type=notify` units count as started from here."""
        return self._notify("READY=1", status)

    def status(self, text: str) -> bool:
        """A one-line status shown by `systemctl status`."""
        return self._notify(None, text)

    def watchdog(self) -> bool:
        """Feed the watchdog (`WatchdogSec=`)."""
        return self._notify("WATCHDOG=1", None)

    def stopping(self, status: str | None = None) -> bool:
        """Shutdown has begun."""
        return self._notify("STOPPING=1", status)

    def reloading(self, status: str | None = None) -> bool:
        """A configuration reload has begun; send `ready()` when it is done."""
        # MONOTONIC_USEC is required with RELOADING=1 by Type=notify-reload (systemd 253+).
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self._notify(f"RELOADING=1\nMONOTONIC_USEC={usec}", status)

    def _notify(self, state: str | None, status: str | None) -> bool:
        if self._send is None:
            return False
        lines = [state] if state else []
        if status is not None:
            # One notification is newline-separated assignments: keep the status on one line.
            lines.append("STATUS=" + " ".join(status.splitlines()))
        return self._send("\n".join(lines))


def _optional(name: str) -> Any:
    """Import a systemd-python module by name (an optional dependency).

    By name because mypy would otherwise take the repository's `systemd/` unit directory
    for the package (systemd-python ships no type information).
    """
    return importlib.import_module(name)


def _library_send() -> Send | None:
    try:
        daemon = _optional("systemd.daemon")
    except ImportError:
        return None

    def send(message: str) -> bool:
        try:
            return bool(daemon.notify(message))
        except OSError as exc:
            _LOGGER.debug("sd_notify(%r) failed: %s", message, exc)
            return False

    return send


class _SocketSend:
    """sd_notify(3) in Python: one datagram to the AF_UNIX socket named by NOTIFY_SOCKET."""

    def __init__(self, address: str) -> None:
        # "@name" is an abstract socket: the kernel name starts with a NUL byte.
        self.address = "\0" + address[1:] if address.startswith("@") else address

    def __call__(self, message: str) -> bool:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                # Never wait: a full receiver drops this one (BlockingIOError, an OSError).
                sock.settimeout(0)
                sock.sendto(message.encode(), self.address)
        except OSError as exc:
            _LOGGER.debug("sd_notify(%r) to %r failed: %s", message, self.address, exc)
            return False
        return True


# -- watchdog -------------------------------------------------------------------------


def watchdog_interval(environ: Mapping[str, str] = os.environ) -> float | None:
    """Seconds between watchdog pings (half `WATCHDOG_USEC`), or None if not watched.

    None as well when `WATCHDOG_PID` names another process (the watchdog is not ours).
    """
    raw_pid = environ.get("WATCHDOG_PID")
    if raw_pid is not None:
        try:
            pid = int(raw_pid)
        except ValueError:
            return None
        if pid != os.getpid():
            return None
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    return usec / 2 / 1_000_000


async def watchdog_loop(
    notifier: Notifier,
    interval: float,
    healthy: HealthCheck,
    *,
    sleep: Sleep = asyncio.sleep,
) -> None:
    """Ping `WATCHDOG=1` every `interval` seconds while `healthy()` says yes. Runs until
    cancelled.

    An unhealthy (or failing) check skips the ping, so systemd restarts a wedged hub
    after `WatchdogSec=`. A health check that hangs stops the pings too, on purpose.
    """
    was_healthy = True
    while True:
        ok = await _check(healthy)
        if ok:
            notifier.watchdog()
            if not was_healthy:
                _LOGGER.warning("health check passes again; feeding the watchdog")
        elif was_healthy:
            _LOGGER.error("health check fails; not feeding the watchdog")
        was_healthy = ok
        await sleep(interval)


async def _check(healthy: HealthCheck) -> bool:
    try:
        result = healthy()
        if inspect.isawaitable(result):
            result = await result
    except Exception:
        _LOGGER.exception("health check raised")
        return False
    return bool(result)


# -- logging --------------------------------------------------------------------------


class JournalFieldsFilter(logging.Filter):
    """Upper-cases the documented `extra=` fields so journald keeps them.

    journald drops fields whose names are not upper case; `None` values are dropped
    rather than logged as the text "None".
    """

    def filter(self, record: logging.LogRecord) -> bool:
        fields = record.__dict__
        for name in JOURNAL_FIELDS:
            lower = name.lower()
            if name not in fields and lower in fields:
                fields[name] = fields.pop(lower)
            if name in fields and fields[name] is None:
                del fields[name]
        return True


_installed: logging.Handler | None = None


def configure_logging(
    verbose: bool,
    environ: Mapping[str, str] = os.environ,
    *,
    stream: IO[str] | None = None,
) -> logging.Handler:
    """Set up the root logger for the daemon; returns the handler it installed.

    Replaces the root logger's handlers (like `logging.basicConfig(force=True)`), so
    records are not written twice when stderr itself goes to the journal.
    """
    global _installed  # noqa: PLW0603 - one root configuration per process
    stream = sys.stderr if stream is None else stream
    handler = _journal_handler(environ, stream) or _plain_handler(stream)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    if _installed is not None:
        _installed.close()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    _installed = handler
    return handler


def _plain_handler(stream: IO[str]) -> logging.Handler:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(PLAIN_FORMAT))
    return handler


def _journal_handler(environ: Mapping[str, str], stream: IO[str]) -> logging.Handler | None:
    if not _is_journal_stream(environ.get("JOURNAL_STREAM", ""), stream):
        return None
    try:
        journal = _optional("systemd.journal")
    except ImportError:
        return None
    handler: logging.Handler = journal.JournalHandler(SYSLOG_IDENTIFIER=SYSLOG_IDENTIFIER)
    handler.addFilter(JournalFieldsFilter())
    return handler


def _is_journal_stream(value: str, stream: IO[Any]) -> bool:
    """`$JOURNAL_STREAM` is "device:inode" of the journal's stream: it only counts when it
    is still our stderr (systemd.exec(5)), not after a redirect to a file."""
    device, _, inode = value.partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    with contextlib.suppress(OSError, ValueError, AttributeError):
        info = os.fstat(stream.fileno())
        return (info.st_dev, info.st_ino) == (int(device), int(inode))
    return False
