"""`spottypotty simulate motion` publishes exactly what the firmware publishes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

import aiomqtt
import pytest

from hub.config import load_config
from hub.ingest.mqtt_decode import StatusUpdate, TopicRouter
from hub.model import MotionEvent
from tests.cli import spottypotty

if TYPE_CHECKING:
    from tests.broker import Broker

pytestmark = pytest.mark.integration


async def test_simulated_motion_decodes_like_firmware_motion(
    tmp_path: Path, broker: Broker, unique_prefix: str
) -> None:
    config_file = tmp_path / "hub.toml"
    config_file.write_text(
        f'[mqtt]\nport = {broker.port}\ntopic_prefix = "{unique_prefix}"\n'
        '[[sensors]]\nid = "bath"\nuser_id = "u"\n'
    )
    router = TopicRouter.from_config(load_config(config_file))
    received: list[object] = []
    async with aiomqtt.Client("127.0.0.1", broker.port) as client:
        for topic in router.subscriptions():
            await client.subscribe(topic, qos=1)
        done = await asyncio.to_thread(
            spottypotty, "simulate", "motion", "bath", "--count", "3", "--config", str(config_file)
        )
        assert done.returncode == 0, done.stderr
        assert "published 3 motion event(s) for bath" in done.stdout
        async with asyncio.timeout(10):
            async for message in client.messages:
                payload = message.payload
                assert isinstance(payload, bytes)
                received.append(router.decode(str(message.topic), payload, received_at=1.0))
                if len(received) == 4:
                    break
    assert received[0] == StatusUpdate(sensor_id="bath", online=True, received_at=1.0)
    motions = [m for m in received[1:] if isinstance(m, MotionEvent)]
    assert [m.seq for m in motions] == [1, 2, 3]
    assert {(m.sensor_id, m.battery_level, m.firmware_version) for m in motions} == {
        ("bath", 100, "simulated")
    }


def test_simulate_against_a_dead_broker_is_a_clear_error(tmp_path: Path) -> None:
    config_file = tmp_path / "hub.toml"
    config_file.write_text("[mqtt]\nport = 1\n")  # nothing listens on port 1
    done = spottypotty("simulate", "motion", "bath", "--config", str(config_file))
    assert done.returncode == 1
    assert "cannot reach the broker at 127.0.0.1:1" in done.stderr
    assert "Traceback" not in done.stderr
