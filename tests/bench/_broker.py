"""A real mosquitto on a free loopback port for the benchmarks (the integration tests'
broker idea, without pytest): `with Broker(directory) as broker: ... broker.port`.

Like Debian's packaged config it persists (to its own directory, saved only at exit with
the default autosave interval) and keeps mosquitto's defaults (`max_inflight_messages`
20, Nagle on its sockets). One change: `max_queued_messages 0` (no limit), so a flood
that a subscriber has not read yet is queued, never dropped at the default 1,000 — a
dropped message would end a throughput run early instead of measuring it.
"""

from __future__ import annotations

import getpass
import os
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


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto")
    if found:
        return found
    if MOSQUITTO_FALLBACK.is_file() and os.access(MOSQUITTO_FALLBACK, os.X_OK):
        return str(MOSQUITTO_FALLBACK)
    raise SystemExit(
        "the daemon benchmark needs the mosquitto broker: `make test` installs it, or "
        "`sudo apt-get install mosquitto`"
    )


def free_port() -> int:
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
    """mosquitto on 127.0.0.1:<free port>, started on enter, SIGTERMed on exit."""

    def __init__(self, directory: Path) -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        self.directory = directory
        data = directory / "data"
        data.mkdir(parents=True, exist_ok=True)
        self.config_file = directory / "mosquitto.conf"
        self.config_file.write_text(
            f"listener {self.port} {self.host}\n"
            "allow_anonymous true\n"
            "set_tcp_nodelay true\n"  # as deploy/mosquitto/spottypotty.conf ships it
            "persistence true\n"
            f"persistence_location {data}/\n"
            "max_queued_messages 0\n"
            "log_dest none\n"
            # started as root, mosquitto would drop to a user that cannot write here
            f"user {getpass.getuser()}\n",
            encoding="utf-8",
        )
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("the broker is not running")
        return self._process.pid

    def __enter__(self) -> Self:
        self._process = subprocess.Popen(
            [mosquitto_binary(), "-c", str(self.config_file)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + STARTUP_LIMIT
        while not _accepts(self.port):
            if self._process.poll() is not None:
                _, stderr = self._process.communicate()
                self._process = None
                raise SystemExit(f"mosquitto exited at startup: {stderr.decode(errors='replace')}")
            if time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise SystemExit(f"mosquitto did not accept connections within {STARTUP_LIMIT} s")
            time.sleep(0.01)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
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
