"""sd_notify, the watchdog loop and journald logging, against real sockets, no sleeping."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hub import systemd as sd
from hub.cli.common import EXIT_CONFIG, EXIT_DATA

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "spottypotty-hub.service"


# -- helpers --------------------------------------------------------------------------


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A bound AF_UNIX datagram socket and the NOTIFY_SOCKET value naming it."""
    path = tmp_path / "notify"
    assert len(str(path)) < 108, "AF_UNIX paths are limited to 107 bytes"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(2)
        yield sock, str(path)


@pytest.fixture
def abstract_receiver() -> Iterator[tuple[socket.socket, str]]:
    name = f"spottypotty-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        yield sock, "@" + name


def _pending(sock: socket.socket) -> list[bytes]:
    messages = []
    sock.settimeout(0)
    try:
        while True:
            messages.append(sock.recv(4096))
    except BlockingIOError:
        pass
    return messages


class RecordingSend:
    def __init__(self) -> None:
        self.messages: list[str] = []

    def __call__(self, message: str) -> bool:
        self.messages.append(message)
        return True


# -- Notifier -------------------------------------------------------------------------

MESSAGES: list[tuple[Callable[[sd.Notifier], bool], bytes]] = [
    (lambda n: n.ready(), b"READY=1"),
    (lambda n: n.status("3 sensors, 1 session"), b"STATUS=3 sensors, 1 session"),
    (lambda n: n.watchdog(), b"WATCHDOG=1"),
    (lambda n: n.stopping(), b"STOPPING=1"),
    (lambda n: n.ready("listening"), b"READY=1\nSTATUS=listening"),
    (lambda n: n.status("two\nlines"), b"STATUS=two lines"),
]


@pytest.mark.parametrize(("call", "expected"), MESSAGES)
def test_fallback_sends_exact_datagram(
    receiver: tuple[socket.socket, str], call: Callable[[sd.Notifier], bool], expected: bytes
) -> None:
    sock, address = receiver
    notifier = sd.Notifier.from_environment({"NOTIFY_SOCKET": address})
    assert notifier.enabled
    assert call(notifier) is True
    assert sock.recv(4096) == expected
    assert _pending(sock) == []


@pytest.mark.parametrize(("call", "expected"), MESSAGES)
def test_fallback_abstract_socket(
    abstract_receiver: tuple[socket.socket, str],
    call: Callable[[sd.Notifier], bool],
    expected: bytes,
) -> None:
    sock, address = abstract_receiver
    notifier = sd.Notifier.from_environment({"NOTIFY_SOCKET": address})
    assert call(notifier) is True
    assert sock.recv(4096) == expected


def test_reloading_carries_monotonic_usec(receiver: tuple[socket.socket, str]) -> None:
    sock, address = receiver
    sd.Notifier.from_environment({"NOTIFY_SOCKET": address}).reloading()
    state, usec = sock.recv(4096).decode().split("\n")
    assert state == "RELOADING=1"
    assert usec.startswith("MONOTONIC_USEC=")
    assert int(usec.removeprefix("MONOTONIC_USEC=")) > 0


def test_sequence_in_order(receiver: tuple[socket.socket, str]) -> None:
    sock, address = receiver
    notifier = sd.Notifier.from_environment({"NOTIFY_SOCKET": address})
    notifier.ready()
    notifier.status("up")
    notifier.watchdog()
    notifier.stopping()
    assert _pending(sock) == [b"READY=1", b"STATUS=up", b"WATCHDOG=1", b"STOPPING=1"]


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"NOTIFY_SOCKET": ""},
        {"NOTIFY_SOCKET": "vsock:2:1234"},  # not a unix socket: ignored, not crashed on
    ],
)
def test_no_socket_is_a_silent_no_op(environ: dict[str, str]) -> None:
    notifier = sd.Notifier.from_environment(environ)
    assert not notifier.enabled
    assert notifier.ready() is False
    assert notifier.status("x") is False
    assert notifier.watchdog() is False
    assert notifier.stopping() is False
    assert notifier.reloading() is False


def test_socket_gone_does_not_raise(tmp_path: Path) -> None:
    notifier = sd.Notifier.from_environment({"NOTIFY_SOCKET": str(tmp_path / "missing")})
    assert notifier.enabled
    assert notifier.ready() is False


def test_library_path_uses_process_environment(
    receiver: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("systemd.daemon")
    sock, address = receiver
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    notifier = sd.Notifier.from_environment(use_library=True)
    assert not isinstance(notifier._send, sd._SocketSend)  # systemd-python's sd_notify
    assert notifier.ready("up") is True
    assert sock.recv(4096) == b"READY=1\nSTATUS=up"


def test_library_failure_does_not_raise(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("systemd.daemon")
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "missing"))
    assert sd.Notifier.from_environment(use_library=True).watchdog() is False


def test_a_receiver_that_stops_reading_never_blocks_the_hub(
    receiver: tuple[socket.socket, str],
) -> None:
    # The receiver's queue fills (a few datagrams); every send after that is dropped at
    # once instead of blocking the event loop until someone reads.
    _, address = receiver
    notifier = sd.Notifier.from_environment({"NOTIFY_SOCKET": address})
    sent = [notifier.status(f"status {n}") for n in range(2_000)]
    assert sent[0] is True
    assert sent[-1] is False


# -- watchdog_interval ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
        ({"WATCHDOG_USEC": "1000"}, 0.0005),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "not-a-pid"}, None),
        ({"WATCHDOG_PID": str(os.getpid())}, None),
        ({}, None),
        ({"WATCHDOG_USEC": ""}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "30s"}, None),
    ],
)
def test_watchdog_interval(environ: dict[str, str], expected: float | None) -> None:
    assert sd.watchdog_interval(environ) == expected


# -- watchdog_loop --------------------------------------------------------------------


class FakeSleep:
    """Returns at once; cancels the loop on the `stop_after`-th call."""

    def __init__(self, stop_after: int) -> None:
        self.stop_after = stop_after
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        if len(self.calls) >= self.stop_after:
            raise asyncio.CancelledError


def _scripted(answers: list[bool]) -> Callable[[], bool]:
    it = iter(answers)
    return lambda: next(it)


async def test_watchdog_pings_only_while_healthy(caplog: pytest.LogCaptureFixture) -> None:
    send = RecordingSend()
    sleep = FakeSleep(stop_after=5)
    with pytest.raises(asyncio.CancelledError):
        await sd.watchdog_loop(
            sd.Notifier(send), 15.0, _scripted([True, False, False, True, True]), sleep=sleep
        )
    assert send.messages == ["WATCHDOG=1"] * 3
    assert sleep.calls == [15.0] * 5
    # One line per change of health, not one per tick.
    assert [r.levelno for r in caplog.records if r.name == "hub.systemd"] == [
        logging.ERROR,
        logging.WARNING,
    ]


async def test_watchdog_accepts_async_health_check() -> None:
    send = RecordingSend()
    answers = iter([False, True, True])

    async def healthy() -> bool:
        return next(answers)

    with pytest.raises(asyncio.CancelledError):
        await sd.watchdog_loop(sd.Notifier(send), 1.0, healthy, sleep=FakeSleep(3))
    assert send.messages == ["WATCHDOG=1", "WATCHDOG=1"]


async def test_watchdog_failing_health_check_counts_as_unhealthy() -> None:
    send = RecordingSend()

    def healthy() -> bool:
        raise RuntimeError("runner wedged")

    with pytest.raises(asyncio.CancelledError):
        await sd.watchdog_loop(sd.Notifier(send), 1.0, healthy, sleep=FakeSleep(2))
    assert send.messages == []


async def test_watchdog_loop_cancels_cleanly() -> None:
    """As a task in the daemon's TaskGroup: cancelled while waiting, it just ends."""
    send = RecordingSend()
    waiting = asyncio.Event()

    async def sleep_forever(_: float) -> None:
        waiting.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(
        sd.watchdog_loop(sd.Notifier(send), 15.0, lambda: True, sleep=sleep_forever),
        name="watchdog",
    )
    await waiting.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()
    assert send.messages == ["WATCHDOG=1"]


async def test_watchdog_loop_with_no_systemd_is_harmless() -> None:
    with pytest.raises(asyncio.CancelledError):
        await sd.watchdog_loop(
            sd.Notifier.from_environment({}), 1.0, lambda: True, sleep=FakeSleep(2)
        )


# -- configure_logging ----------------------------------------------------------------


@pytest.fixture
def restore_root_logger(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    monkeypatch.setattr(sd, "_installed", None)
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
        if handler not in handlers:
            handler.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


@pytest.mark.usefixtures("restore_root_logger")
@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"JOURNAL_STREAM": "8:12345"},  # set, but not our stderr (redirected)
        {"JOURNAL_STREAM": "garbage"},
    ],
)
def test_plain_logging_without_journal(environ: dict[str, str]) -> None:
    stream = io.StringIO()
    handler = sd.configure_logging(verbose=False, environ=environ, stream=stream)
    assert type(handler) is logging.StreamHandler
    root = logging.getLogger()
    assert root.handlers == [handler]
    assert root.level == logging.INFO
    logging.getLogger("hub.test").info("motion on %s", "bathroom", extra={"SENSOR_ID": "x"})
    logging.getLogger("hub.test").debug("hidden")
    line = stream.getvalue()
    assert line.endswith(" INFO hub.test: motion on bathroom\n")
    assert "hidden" not in line
    assert handler.formatter is not None
    assert handler.formatter._fmt == sd.PLAIN_FORMAT


@pytest.mark.usefixtures("restore_root_logger")
def test_verbose_and_reconfigure_replaces_handler() -> None:
    first = sd.configure_logging(verbose=False, environ={}, stream=io.StringIO())
    second = sd.configure_logging(verbose=True, environ={}, stream=io.StringIO())
    assert logging.getLogger().handlers == [second]
    assert first is not second
    assert logging.getLogger().level == logging.DEBUG


@pytest.mark.usefixtures("restore_root_logger")
def test_journal_handler_when_stderr_is_the_journal_stream(tmp_path: Path) -> None:
    journal = pytest.importorskip("systemd.journal")
    with (tmp_path / "stderr").open("w", encoding="utf-8") as stream:
        info = os.fstat(stream.fileno())
        environ = {"JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"}
        handler = sd.configure_logging(verbose=False, environ=environ, stream=stream)
    assert isinstance(handler, journal.JournalHandler)

    sent: list[tuple[str, dict[str, Any]]] = []

    def send(message: str, /, **fields: Any) -> None:
        sent.append((message, fields))

    handler.send = send
    logging.getLogger("hub.sessions").info(
        "session %s started",
        "s-1",
        extra={"SENSOR_ID": "bathroom", "session_id": "s-1", "USER_ID": None},
    )
    [(message, fields)] = sent
    assert message == "session s-1 started"
    assert fields["SYSLOG_IDENTIFIER"] == "spottypotty"
    assert fields["SENSOR_ID"] == "bathroom"
    assert fields["SESSION_ID"] == "s-1"
    assert "session_id" not in fields
    assert "USER_ID" not in fields
    assert fields["LOGGER"] == "hub.sessions"


def test_journal_fields_filter() -> None:
    record = logging.LogRecord("hub", logging.INFO, __file__, 1, "m", None, None)
    record.sensor_id = "kitchen"
    record.SESSION_ID = "abc"
    record.DEVICE_ID = None
    assert sd.JournalFieldsFilter().filter(record) is True
    fields = vars(record)
    assert fields["SENSOR_ID"] == "kitchen"
    assert "sensor_id" not in fields
    assert fields["SESSION_ID"] == "abc"
    assert "DEVICE_ID" not in fields


# -- the unit file (systemd-analyze checks live in tests/integration/test_units.py) ---


def _unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for raw in UNIT.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def test_unit_matches_the_daemon() -> None:
    settings = _unit_settings()
    assert settings["Type"] == ["notify"]
    assert settings["NotifyAccess"] == ["main"]
    # The watchdog must be fed at half WatchdogSec; watchdog_interval() derives it.
    assert settings["WatchdogSec"] == ["30"]
    assert settings["RestartPreventExitStatus"] == [f"{EXIT_CONFIG} {EXIT_DATA}"]
    # exec'd directly: a wrapper shell would be the main PID and swallow notifications.
    [exec_start] = settings["ExecStart"]
    assert exec_start.split()[0] == "/opt/spottypotty/venv/bin/spottypotty"
    assert Path(exec_start.split()[0]).name not in {"sh", "bash", "env"}
