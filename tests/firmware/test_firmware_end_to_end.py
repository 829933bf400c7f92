"""End to end: the firmware's MQTT logic (CPython, a real paho client in umqtt's place)
→ a real mosquitto → the hub daemon (in-process) → a session on
`spottypotty/sessions/{sensorId}`.

The sensor first finds the broker unreachable (a real refused connection), so its motion
waits in the offline queue and reaches the hub marked late; live motion follows."""

from __future__ import annotations

import asyncio
import importlib
import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

import aiomqtt
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from hub.config import load_config
from hub.daemon import Daemon
from hub.systemd import Notifier
from tests.broker import Broker

config = importlib.import_module("config")
mqtt_mode = importlib.import_module("mqtt_mode")

pytestmark = pytest.mark.integration

SENSOR = "bathroom_main"
TIMEOUT = 10.0


class PahoUmqtt:
    """paho-mqtt behind the umqtt.simple-shaped interface `mqtt_mode` uses (hw.mqtt_client
    on the device): synchronous connect and QoS-1 publish, every failure an OSError."""

    def __init__(
        self, client_id: str, host: str, port: int, user: str | None, pw: str | None, ka: int
    ) -> None:
        self._address = (host, port, ka)
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        if user:
            self._client.username_pw_set(user, pw)
        self._connected = threading.Event()
        self._refused: int | None = None
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect

    def _on_connect(self, _c: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self._refused = reason.value
        else:
            self._connected.set()

    def _on_disconnect(self, _c: paho.Client, _u: Any, _f: Any, _r: Any, _p: Any) -> None:
        self._connected.clear()

    def set_last_will(self, topic: str, msg: bytes, retain: bool = False, qos: int = 0) -> None:
        self._client.will_set(topic, msg, qos=qos, retain=retain)

    def connect(self) -> None:
        host, port, keepalive = self._address
        self._client.connect(host, port, keepalive)  # OSError when nobody listens
        self._client.loop_start()
        if not self._connected.wait(TIMEOUT) or self._refused is not None:
            self.close()
            raise mqtt_mode.RefusedError(f"CONNACK {self._refused}")

    def publish(self, topic: str, msg: bytes, retain: bool = False, qos: int = 0) -> None:
        info = self._client.publish(topic, msg, qos=qos, retain=retain)
        info.wait_for_publish(TIMEOUT)  # waits for the PUBACK at QoS 1
        if not info.is_published():
            raise OSError("no PUBACK")

    def ping(self) -> None:
        """paho's network thread keeps the connection alive itself."""

    def check_msg(self) -> None:
        if not self._connected.is_set():
            raise OSError("connection lost")

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def run_sensor(broker_port: int, prefix: str, sleeps: list[float]) -> Any:
    """The firmware side, in a thread: as mqtt_mode.main would, minus the hardware."""
    cfg = config.validate(
        {
            "sensorId": SENSOR,
            "wifi": {"ssid": "lan"},
            "mqtt": {"host": "127.0.0.1", "port": broker_port, "topicPrefix": prefix},
        }
    )
    ports = [closed_port()]  # the first attempt finds nobody listening

    def client(cid: str, host: str, port: int, user: str | None, pw: str | None, ka: int) -> Any:
        return PahoUmqtt(cid, host, ports.pop() if ports else port, user, pw, ka)

    sensor = mqtt_mode.MqttSensor(
        cfg,
        client,
        wall_clock=lambda: time.time_ns() // 1_000_000,
        ticks=lambda: int(time.monotonic() * 1000),
        metadata=lambda: (None, -48),
        log=lambda _line: None,
    )
    sensor.motion()  # before any connection: queued
    assert sensor.connect_forever(sleeps.append) == 1
    return sensor


async def test_firmware_motion_becomes_a_hub_session(tmp_path: Path) -> None:
    broker = Broker(tmp_path / "mosquitto")
    broker.start()
    prefix = f"fw-{tmp_path.name}"
    config_file = tmp_path / "hub.toml"
    config_file.write_text(
        f'[hub]\ndatabase = "hub.db"\n[mqtt]\nport = {broker.port}\ntopic_prefix = "{prefix}"\n'
        "[sessions]\ndebounce_seconds = 0\n[spotify]\ndry_run = true\n"
        f'[[sensors]]\nid = "{SENSOR}"\nuser_id = "u1"\ncontext_uri = "spotify:playlist:x"\n'
    )
    daemon = Daemon(
        load_config(config_file), notifier=Notifier.from_environment({}), client_id="fw-e2e"
    )
    task = asyncio.create_task(daemon.run())
    sensor: Any = None
    try:
        async with asyncio.timeout(TIMEOUT):
            await daemon.ready.wait()
        async with aiomqtt.Client("127.0.0.1", broker.port) as watcher:
            await watcher.subscribe(f"spottypotty/sessions/{SENSOR}", qos=1)
            await watcher.subscribe(f"{prefix}/{SENSOR}/#", qos=1)
            sleeps: list[float] = []
            sensor = await asyncio.to_thread(run_sensor, broker.port, prefix, sleeps)
            assert sleeps == [5]  # one refused attempt, then the backoff's first step
            sent = await asyncio.to_thread(sensor.motion)  # live motion
            assert sent is True
            seen: dict[str, Any] = {}
            async with asyncio.timeout(TIMEOUT):
                async for message in watcher.messages:
                    assert isinstance(message.payload, bytes)
                    seen.setdefault(str(message.topic), []).append(json.loads(message.payload))
                    sessions = seen.get(f"spottypotty/sessions/{SENSOR}", [])
                    if sessions and sessions[-1]["motionEventsCount"] == 2:
                        break
        motions = seen[f"{prefix}/{SENSOR}/motion"]
        assert [(m["seq"], m.get("late", False)) for m in motions] == [(1, True), (2, False)]
        assert all(
            m["metadata"] == {"signalStrength": -48, "firmwareVersion": "1.0.0"} for m in motions
        )
        assert seen[f"{prefix}/{SENSOR}/status"][0]["status"] == "online"
        session = seen[f"spottypotty/sessions/{SENSOR}"][-1]
        assert session["status"] == "active"
        assert session["sensorId"] == SENSOR
        assert daemon.runner is not None
        assert daemon.link is not None
        assert daemon.link.counters.get(f"parse_error:{SENSOR}", 0) == 0
    finally:
        if sensor is not None and sensor.client is not None:
            await asyncio.to_thread(sensor.client.close)
        daemon.stop()
        await task
        broker.stop()
