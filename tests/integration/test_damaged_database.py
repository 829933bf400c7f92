"""40 seeded page-level corruptions of a real hub database, each given to the real daemon
(`spottypotty run` as its own process, as systemd runs it): 0 hangs, 0 tracebacks,
0 writes to the bad file.

A refused start is one line on stderr naming the file and exit status 65, which the unit
does not restart on; the file is byte for byte as it was, with no -wal/-shm left beside it.
Damage that `PRAGMA quick_check` cannot see would let the hub start (READY=1 through the
real broker): it must then still stop within 5 s of SIGTERM. Waits end on events (the
process closing its output, READY=1 on the notify socket), bounded by the limits below.
"""

from __future__ import annotations

import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from hub.cli.common import EXIT_DATA
from tests.damage import build_hub_database, damage

if TYPE_CHECKING:
    from tests.broker import Broker

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SEEDS = range(40)
MIN_REFUSED = 35  # quick_check may miss damage to a page it does not read; not 6 in 40
EXIT_LIMIT = 10.0  # seconds for a refused start to end (it takes well under one)
STOP_LIMIT = 5.0  # seconds from SIGTERM to exit, for a start the damage got through
WORKERS = 4  # processes at once: most of each one's time is Python starting up


@dataclass
class Attempt:
    """One damaged copy and what the daemon did with it."""

    seed: int
    pages: list[int]
    path: Path
    damaged: bytes
    output: str = ""  # stdout and stderr together: every line the daemon printed
    status: int | None = None  # None: it had to be killed
    ready: bool = False  # READY=1: the damage got past quick_check
    left: list[str] = field(default_factory=list)  # files beside the config afterwards

    @property
    def refused(self) -> bool:
        return self.status == EXIT_DATA

    def problems(self) -> list[str]:
        where = f"seed {self.seed} (pages {self.pages})"
        found = []
        if self.status is None:
            found.append(f"{where}: still running after its limit, killed")
        found.extend(
            f"{where}: {needle!r} in its output:\n{self.output}"
            for needle in ("Traceback", "Exception in thread", "exception was never retrieved")
            if needle in self.output
        )
        if self.refused:
            lines = self.output.splitlines()
            if len(lines) != 1 or not lines[0].startswith("spottypotty: "):
                found.append(f"{where}: not one 'spottypotty: ' line:\n{self.output}")
            if str(self.path) not in self.output:
                found.append(f"{where}: the message does not name {self.path}")
            if self.path.read_bytes() != self.damaged:
                found.append(f"{where}: the refused file was written to")
            # hub.lock is the daemon's lock file (hub.control), never the database's.
            if self.left != ["hub.db", "hub.lock", "hub.toml", "notify.sock"]:
                found.append(f"{where}: left {self.left}")
        elif self.status is not None and not self.ready:
            found.append(f"{where}: exit status {self.status} without READY=1:\n{self.output}")
        return found


def _follow(
    process: subprocess.Popen[bytes],
    notify: socket.socket | None,
    limit: float,
    output: bytearray,
) -> str:
    """Read the daemon's output into `output` until it closes it ("closed": it is
    exiting), READY=1 arrives on `notify` ("ready"), or `limit` seconds pass ("running")."""
    assert process.stdout is not None
    deadline = time.monotonic() + limit
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if notify is not None:
            selector.register(notify, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0:
            for key, _ in selector.select(left):
                if key.fileobj is notify:
                    if b"READY=1" in notify.recv(4096):
                        return "ready"
                    continue
                chunk = os.read(process.stdout.fileno(), 65_536)
                if not chunk:
                    return "closed"
                output += chunk
    return "running"


def _config(directory: Path, database: Path, broker: Broker, prefix: str) -> Path:
    path = directory / "hub.toml"
    path.write_text(
        f'[hub]\ndatabase = "{database}"\n'
        f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\ntopic_prefix = "{prefix}"\n'
        "[spotify]\ndry_run = true\n"
        '[[sensors]]\nid = "bath"\nuser_id = "u1"\ncontext_uri = "spotify:playlist:x"\n',
        encoding="utf-8",
    )
    return path


def _environment(notify: Path) -> dict[str, str]:
    """As systemd would set it (minus the journal and the watchdog); this checkout's `hub`
    first on the path, whatever the venv has installed."""
    env = {**os.environ, "NOTIFY_SOCKET": str(notify)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    for name in ("JOURNAL_STREAM", "WATCHDOG_USEC", "WATCHDOG_PID"):
        env.pop(name, None)
    return env


def _attempt(seed: int, original: bytes, workdir: Path, broker: Broker, prefix: str) -> Attempt:
    directory = workdir / f"seed-{seed:02d}"
    directory.mkdir()
    damaged, pages = damage(original, seed)
    attempt = Attempt(seed, pages, directory / "hub.db", damaged)
    attempt.path.write_bytes(damaged)
    config = _config(directory, attempt.path, broker, f"{prefix}-{seed}")
    output = bytearray()
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(directory / "notify.sock"))
        process = subprocess.Popen(
            [sys.executable, "-m", "hub", "run", "--config", str(config)],
            cwd=REPO,
            env=_environment(directory / "notify.sock"),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            state = _follow(process, notify, EXIT_LIMIT, output)
            if state != "closed":  # started (or hung): it must stop on SIGTERM
                attempt.ready = state == "ready"
                process.send_signal(signal.SIGTERM)
                state = _follow(process, None, STOP_LIMIT, output)
            if state == "closed":
                attempt.status = process.wait(STOP_LIMIT)
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()
            assert process.stdout is not None
            process.stdout.close()
    attempt.output = output.decode(errors="replace")
    attempt.left = sorted(p.name for p in directory.iterdir())
    return attempt


def test_forty_damaged_databases_no_hang_no_traceback_no_write(
    tmp_path: Path,
    broker: Broker,
    unique_prefix: str,
    record_property: Callable[[str, object], None],
) -> None:
    healthy = tmp_path / "healthy" / "hub.db"
    build_hub_database(healthy)
    original = healthy.read_bytes()
    assert [p.name for p in healthy.parent.iterdir()] == ["hub.db"]  # closed: no -wal
    runs = tmp_path / "runs"
    runs.mkdir()

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        attempts = list(
            pool.map(lambda seed: _attempt(seed, original, runs, broker, unique_prefix), SEEDS)
        )
    seconds = time.monotonic() - started

    refused = sum(attempt.refused for attempt in attempts)
    record_property("refused", f"{refused}/{len(attempts)}")
    record_property("seconds", f"{seconds:.1f}")
    print(f"refused {refused} of {len(attempts)} damaged databases in {seconds:.1f} s")
    problems = [problem for attempt in attempts for problem in attempt.problems()]
    assert problems == []
    assert refused >= MIN_REFUSED
