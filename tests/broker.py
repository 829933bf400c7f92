"""A real mosquitto on a free loopback port, for the tests and the benchmarks.

`Broker(directory).start()` / `.stop()` (restartable on the same port, persistence kept
in `directory`), or `with Broker(directory) as broker:`. It is set up like the shipped
`deploy/mosquitto/spottypotty.conf` where it matters (`set_tcp_nodelay true`), anonymous
on loopback; `extra_config` adds lines (authentication, queue limits, …).
"""

from __future__ import annotations

import getpass
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Self

MOSQUITTO_FALLBACK = Path("/usr/sbin/mosquitto")  # Debian installs it outside a user's PATH
STARTUP_LIMIT = 5.0  # seconds for mosquitto to accept connections
STOP_LIMIT = 5.0  # seconds for mosquitto to exit after SIGTERM
HOST = "127.0.0.1"


class BrokerError(RuntimeError):
    """mosquitto is missing or would not start: the message says what to do."""


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto")
    if found:
        return found
    if MOSQUITTO_FALLBACK.is_file() and os.access(MOSQUITTO_FALLBACK, os.X_OK):
        return str(MOSQUITTO_FALLBACK)
    raise BrokerError(
        "the mosquitto broker is not installed: run `make test` (it installs it), "
        "or `sudo apt-get install mosquitto mosquitto-clients`"
    )


def free_port() -> int:
    """A loopback port nothing listens on, below the ephemeral range: a port from bind(0)
    can be handed to some outgoing connection before our server binds it."""
    low = _ephemeral_start()
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(max(1024, low - 12_000), low)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((HOST, port))
            except OSError:
                continue
            return port
    raise BrokerError("no free loopback port below the ephemeral range")


def _ephemeral_start() -> int:
    try:
        first = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0]
        return int(first)
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default


def accepts(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.2):
            return True
    except OSError:
        return False


class Broker:
    def __init__(self, directory: Path, extra_config: str = "", *, logging: bool = True) -> None:
        self.binary = mosquitto_binary()
        self.host = HOST
        self.port = free_port()
        self.directory = directory
        self.log_file = directory / "mosquitto.log"
        self.config_file = directory / "mosquitto.conf"
        data = directory / "data"
        data.mkdir(parents=True, exist_ok=True)
        # Every packet in the log helps a failing test; a benchmark turns it off.
        log = (
            f"log_dest file {self.log_file}\nlog_type all\nconnection_messages true\n"
            if logging
            else "log_dest none\n"
        )
        self.config_file.write_text(
            f"listener {self.port} {self.host}\n"
            "allow_anonymous true\n"
            "set_tcp_nodelay true\n"
            "persistence true\n"
            f"persistence_location {data}/\n"
            + log
            # mosquitto started as root drops to the `mosquitto` user, which cannot write to
            # a temporary directory of ours: stay the user running the tests.
            + f"user {getpass.getuser()}\n"
            + extra_config,
            encoding="utf-8",
        )
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int:
        if self._process is None:
            raise BrokerError("the broker is not running")
        return self._process.pid

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
        while not accepts(self.port):
            if self._process.poll() is not None:
                _, stderr = self._process.communicate()
                self._process = None
                raise BrokerError(f"mosquitto exited at startup: {stderr.decode(errors='replace')}")
            if time.monotonic() > deadline:
                self.stop()
                raise BrokerError(f"mosquitto did not accept connections within {STARTUP_LIMIT} s")
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

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
