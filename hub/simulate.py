"""`spottypotty simulate motion SENSOR`: publish motion exactly as the firmware does.

On boot the firmware publishes its retained `online` status (which also tells the hub
its per-boot `seq` counter restarted), then one QoS-1 motion message per event with an
increasing `seq` and its metadata.
"""

from __future__ import annotations

import asyncio
import json
import time

from hub.config import HubConfig
from hub.ingest.mqtt import publish_messages
from hub.ingest.mqtt_decode import encode_seed_motion

SIMULATED_FIRMWARE = "simulated"


def motion_messages(
    config: HubConfig, sensor_id: str, *, count: int, now: float
) -> list[tuple[str, bytes, bool]]:
    prefix = config.mqtt.topic_prefix
    status = json.dumps({"status": "online", "firmwareVersion": SIMULATED_FIRMWARE}).encode()
    messages = [(f"{prefix}/{sensor_id}/status", status, True)]
    messages += [
        (
            f"{prefix}/{sensor_id}/motion",
            encode_seed_motion(
                sensor_id,
                seq=seq,
                timestamp=now,
                battery_level=100,
                signal_strength=-50,
                firmware_version=SIMULATED_FIRMWARE,
            ),
            False,
        )
        for seq in range(1, count + 1)
    ]
    return messages


def simulate_motion(
    config: HubConfig, sensor_id: str, *, count: int = 1, interval: float = 0.0
) -> None:
    messages = motion_messages(config, sensor_id, count=count, now=time.time())
    asyncio.run(publish_messages(config, messages, interval=interval))
