"""The daemon as systemd runs it: `python -m hub run` as a process, restartable, with what
it tells $NOTIFY_SOCKET (READY=1, STATUS=, WATCHDOG=1) read through the event loop."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parents[1]
WAIT = 10.0  # seconds: an upper bound for something that normally takes milliseconds
STOP_LIMIT = 5.0  # seconds from SIGTERM to exit: the hub's bound


class NotifySocket:
    """$NOTIFY_SOCKET for daemon subprocesses, read without blocking the event loop."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.0)  # non-blocking: read through the event loop

    async def wait_for(self, needle: str, limit: float = WAIT) -> str:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(limit):
            while True:
                message = (await loop.sock_recv(self.sock, 4096)).decode()
                if needle in message:
                    return message

    async def wait_for_silence(self, needle: str, seconds: float, limit: float = WAIT) -> None:
        """Until `seconds` pass with no message containing `needle` (e.g. the watchdog's
        pings stopping)."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(limit):
            while True:
                try:
                    async with asyncio.timeout(seconds):
                        while needle not in (await loop.sock_recv(self.sock, 4096)).decode():
                            pass
                except TimeoutError:
                    return


class HubProcess:
    """`python -m hub run` as systemd would run it (minus systemd), restartable."""

    def __init__(
        self,
        config: Path,
        notify: NotifySocket,
        log: Path,
        *,
        watchdog_seconds: float | None = None,
    ) -> None:
        self.config = config
        self.notify = notify
        self.log = log
        self.watchdog_seconds = watchdog_seconds  # WatchdogSec=, or None: not watched
        self.process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    async def start(self) -> float:
        """Start and wait for READY=1; returns how long that took (seconds)."""
        started = time.monotonic()
        self._spawn()
        await self.notify.wait_for("READY=1")
        return time.monotonic() - started

    def command(self) -> list[str]:
        return [sys.executable, "-m", "hub", "run", "--config", str(self.config)]

    def _spawn(self) -> None:
        env = {**os.environ, "NOTIFY_SOCKET": str(self.notify.path)}
        env.pop("JOURNAL_STREAM", None)
        env.pop("WATCHDOG_USEC", None)
        env.pop("WATCHDOG_PID", None)
        if self.watchdog_seconds is not None:
            env["WATCHDOG_USEC"] = str(int(self.watchdog_seconds * 1_000_000))
        self._log_file = self.log.open("ab")
        self.process = subprocess.Popen(
            self.command(),
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """kill -9, and reap it."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self._close()

    async def terminate(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(self.process.wait, STOP_LIMIT)
        self._close()
        return code

    def cleanup(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._close()

    def _close(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
