"""`spottypotty run` as a real process against a real mosquitto: READY=1, live sessions on
MQTT and in SQLite, a clean SIGTERM, and a config error that does not restart-loop."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import aiomqtt
import pytest

from hub.store import SessionRepository, close_database, open_database
from tests.cli import spottypotty

if TYPE_CHECKING:
    from tests.broker import Broker

pytestmark = pytest.mark.integration


def _config(tmp_path: Path, port: int, prefix: str) -> Path:
    path = tmp_path / "hub.toml"
    path.write_text(
        f"""
[hub]
database = "hub.db"
[mqtt]
host = "127.0.0.1"
port = {port}
topic_prefix = "{prefix}"
[spotify]
dry_run = true
[[sensors]]
id = "bath"
user_id = "u1"
context_uri = "spotify:playlist:x"
""",
        encoding="utf-8",
    )
    return path


class NotifySocket:
    """What systemd would see: the datagrams the daemon sends to $NOTIFY_SOCKET."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(10)

    def wait_for(self, needle: str) -> str:
        while True:
            message = self.sock.recv(4096).decode()
            if needle in message:
                return message


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifySocket]:
    listener = NotifySocket(tmp_path / "notify.sock")
    yield listener
    listener.sock.close()


def _start(config: Path, notify: NotifySocket) -> subprocess.Popen[str]:
    env = {**os.environ, "NOTIFY_SOCKET": str(notify.path)}
    env.pop("JOURNAL_STREAM", None)
    return subprocess.Popen(
        [sys.executable, "-m", "hub", "run", "--config", str(config)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


async def test_the_daemon_runs_sessions_and_stops_cleanly(
    tmp_path: Path, broker: Broker, unique_prefix: str, notify: NotifySocket
) -> None:
    port = broker.port
    config = _config(tmp_path, port, unique_prefix)
    started = time.monotonic()
    process = _start(config, notify)
    try:
        ready = notify.wait_for("READY=1")
        ready_seconds = time.monotonic() - started
        assert "broker connected" in ready
        assert ready_seconds < 5  # the target is 1.5 s; the bench measures it properly

        async with aiomqtt.Client("127.0.0.1", port) as client:
            await client.subscribe("spottypotty/#", qos=1)
            payload = {"event": "motion_detected", "sensorId": "bath", "seq": 1}
            await client.publish(f"{unique_prefix}/bath/motion", json.dumps(payload), qos=1)
            async with asyncio.timeout(10):
                async for message in client.messages:
                    if message.topic.matches("spottypotty/sessions/bath"):
                        state = json.loads(bytes(message.payload))
                        break
        assert state["status"] == "active"
        assert state["sensorId"] == "bath"

        process.send_signal(signal.SIGTERM)
        stop_started = time.monotonic()
        assert process.wait(timeout=10) == 0
        assert time.monotonic() - stop_started < 5
        notify.wait_for("STOPPING=1")
    finally:
        if process.poll() is None:
            process.kill()
        output, _ = process.communicate()
    assert "Traceback" not in output

    db = open_database(tmp_path / "hub.db")
    try:
        active = SessionRepository(db).all_active()
    finally:
        close_database(db)
    # The session outlives the hub's restart: it is recovered, not lost or ended early.
    assert [s.session_id for s in active] == [state["sessionId"]]
    async with aiomqtt.Client("127.0.0.1", port) as client:
        await client.subscribe("spottypotty/hub/status", qos=1)
        async with asyncio.timeout(5):
            message = await anext(aiter(client.messages))
        assert bytes(message.payload) == b"offline"


def test_a_config_error_exits_78_so_systemd_does_not_loop(tmp_path: Path) -> None:
    config = tmp_path / "hub.toml"
    config.write_text("[mqtt]\nport = 99999\n")
    done = spottypotty("run", "--config", str(config))
    assert done.returncode == 78
    assert "mqtt.port" in done.stderr
    assert "Traceback" not in done.stderr
