"""Sensor availability from `{prefix}/{sensor}/status` is kept and shown by `sensors list`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING

import aiomqtt
import pytest

from hub.config import load_config
from hub.daemon import Daemon
from hub.systemd import Notifier
from tests.cli import spottypotty

if TYPE_CHECKING:
    from tests.broker import Broker

pytestmark = pytest.mark.integration


def sensors_list(config_file: Path) -> list[dict[str, object]]:
    done = spottypotty("sensors", "list", "--json", "--config", str(config_file))
    assert done.returncode == 0, done.stderr
    rows: list[dict[str, object]] = json.loads(done.stdout)
    return rows


async def test_status_messages_become_availability(
    tmp_path: Path, broker: Broker, unique_prefix: str
) -> None:
    config_file = tmp_path / "hub.toml"
    config_file.write_text(
        f'[hub]\ndatabase = "hub.db"\n[mqtt]\nport = {broker.port}\n'
        f'topic_prefix = "{unique_prefix}"\n'
        '[[sensors]]\nid = "bath"\nuser_id = "u"\nname = "Bathroom"\n'
        '[[sensors]]\nid = "hall"\nuser_id = "u"\n'
    )
    config = load_config(config_file)
    daemon = Daemon(config, notifier=Notifier.from_environment({}), client_id="test-sensors")
    task = asyncio.create_task(daemon.run())
    try:
        async with asyncio.timeout(10):
            await daemon.ready.wait()
        assert daemon.runner is not None
        runner = daemon.runner
        async with aiomqtt.Client("127.0.0.1", broker.port) as sensor:
            for state in ("online", "offline", "online"):
                await sensor.publish(
                    f"{unique_prefix}/bath/status", json.dumps({"status": state}), qos=1
                )
        async with asyncio.timeout(10):
            while runner.counters["status"] < 3:  # noqa: ASYNC110 - the runner's own count
                await asyncio.sleep(0.01)
    finally:
        daemon.stop()
        await task
    rows = {row["sensorId"]: row for row in await asyncio.to_thread(sensors_list, config_file)}
    assert rows["bath"]["availability"] == "online"
    assert rows["bath"]["name"] == "Bathroom"
    assert rows["hall"]["availability"] is None
    assert rows["hall"]["lastMotionTime"] is None


async def test_unknown_sensors_are_counted_and_published(
    tmp_path: Path, broker: Broker, unique_prefix: str
) -> None:
    config_file = tmp_path / "hub.toml"
    config_file.write_text(
        f'[hub]\ndatabase = "hub.db"\n[mqtt]\nport = {broker.port}\n'
        f'topic_prefix = "{unique_prefix}"\n[[sensors]]\nid = "bath"\nuser_id = "u"\n'
    )
    daemon = Daemon(
        load_config(config_file),
        notifier=Notifier.from_environment({}),
        client_id="test-stats",
        status_interval=0.05,
    )
    task = asyncio.create_task(daemon.run())
    try:
        async with asyncio.timeout(10):
            await daemon.ready.wait()
        async with aiomqtt.Client("127.0.0.1", broker.port) as client:
            await client.subscribe("spottypotty/hub/stats", qos=1)
            for seq in (1, 2, 3):
                motion = json.dumps({"event": "motion_detected", "seq": seq})
                await client.publish(f"{unique_prefix}/garden_shed/motion", motion, qos=1)
            async with asyncio.timeout(10):
                async for message in client.messages:
                    assert isinstance(message.payload, bytes)
                    stats = json.loads(message.payload)
                    if stats.get("sessions.unknown_sensor:garden_shed") == 3:
                        break
    finally:
        daemon.stop()
        await task
    assert stats["mqtt.messages"] >= 3
