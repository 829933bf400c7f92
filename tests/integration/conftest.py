"""Integration fixtures: a real mosquitto broker per test, unique topics, no leftover tasks."""

from __future__ import annotations

import asyncio
import getpass
import itertools
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

MOSQUITTO_FALLBACK = Path("/usr/sbin/mosquitto")  # Debian installs it outside a user's PATH
STARTUP_LIMIT = 5.0  # seconds for mosquitto to accept connections
STOP_LIMIT = 5.0  # seconds for mosquitto to exit after SIGTERM


def _mosquitto_binary() -> str:
    found = shutil.which("mosquitto")
    if found:
        return found
    if MOSQUITTO_FALLBACK.is_file() and os.access(MOSQUITTO_FALLBACK, os.X_OK):
        return str(MOSQUITTO_FALLBACK)
    pytest.fail(
        "the integration tests need the mosquitto broker, which is not installed: "
        "run `make test` (it installs it), or `sudo apt-get install mosquitto mosquitto-clients`",
        pytrace=False,
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class Broker:
    """A real mosquitto on a free loopback port, with persistence, restartable on that port."""

    def __init__(self, directory: Path, extra_config: str = "") -> None:
        self.binary = _mosquitto_binary()
        self.host = "127.0.0.1"
        self.port = _free_port()
        self.directory = directory
        self.log_file = directory / "mosquitto.log"
        self.config_file = directory / "mosquitto.conf"
        data = directory / "data"
        data.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(
            f"listener {self.port} {self.host}\n"
            "allow_anonymous true\n"
            "set_tcp_nodelay true\n"  # as deploy/mosquitto/spottypotty.conf ships it
            "persistence true\n"
            f"persistence_location {data}/\n"
            f"log_dest file {self.log_file}\n"
            "log_type all\n"
            "connection_messages true\n"
            # mosquitto started as root drops to the `mosquitto` user, which cannot write to
            # the test's temporary directory: stay the user running the tests.
            f"user {getpass.getuser()}\n" + extra_config
        )
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start mosquitto and return once it accepts connections (within ~5 s)."""
        if self.running:
            return
        self._process = subprocess.Popen(
            [self.binary, "-c", str(self.config_file)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + STARTUP_LIMIT
        while not _accepts(self.port):
            if self._process.poll() is not None:
                _, stderr = self._process.communicate()
                self._process = None
                pytest.fail(f"mosquitto exited at startup: {stderr.decode(errors='replace')}")
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"mosquitto did not accept connections within {STARTUP_LIMIT} s")
            time.sleep(0.01)

    def stop(self) -> None:
        """SIGTERM (mosquitto saves its persistence file) and wait for the exit."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_LIMIT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stderr is not None:
            process.stderr.close()

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A fresh broker per test (mosquitto starts in a few milliseconds): no retained state
    (the hub status topic is fixed) or persistent sessions leak between tests."""
    instance = Broker(tmp_path / "mosquitto")
    instance.start()
    yield instance
    instance.stop()


BrokerFactory = Callable[[str], Broker]


@pytest.fixture
def broker_factory(tmp_path: Path) -> Iterator[BrokerFactory]:
    """Start extra brokers with more config lines (e.g. authentication); all stopped after."""
    started: list[Broker] = []

    def start(extra_config: str) -> Broker:
        instance = Broker(tmp_path / f"mosquitto-{len(started)}", extra_config)
        started.append(instance)
        instance.start()
        return instance

    yield start
    for instance in started:
        instance.stop()


_prefix_numbers = itertools.count()


@pytest.fixture
def unique_prefix() -> str:
    """A topic prefix no other test uses (aiomqtt's conftest `unique_topic` idea)."""
    return f"itest-{os.getpid()}-{next(_prefix_numbers)}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(autouse=True)
async def verify_no_lingering_tasks() -> AsyncIterator[None]:
    """Fail a test that leaves tasks running (aioesphomeapi's fixture of that name)."""
    before = asyncio.all_tasks()
    yield
    current = asyncio.current_task()
    for _ in range(5):  # let tasks that were just cancelled finish
        await asyncio.sleep(0)
    lingering = [
        task for task in asyncio.all_tasks() - before if task is not current and not task.done()
    ]
    for task in lingering:
        task.cancel()
    assert not lingering, f"the test left tasks running: {lingering}"
