"""BLE in the daemon: no adapter never hurts MQTT ingest, encryption counters kept in the
database come back after a restart, and `sensors retrust` reaches the running daemon."""

from __future__ import annotations

import asyncio
import functools
import json
from pathlib import Path
from typing import TYPE_CHECKING

import aiomqtt
import pytest

from hub import control
from hub.config import load_config
from hub.daemon import Daemon
from hub.ingest.ble_decode import CounterState
from hub.ingest.ble_state import RETRUST_ACTION, load_states, save_states
from hub.store import close_database, open_database
from hub.systemd import Notifier

if TYPE_CHECKING:
    from tests.broker import Broker

pytestmark = pytest.mark.integration

ADDRESS = "54:48:E6:8F:80:A5"


async def test_no_adapter_mqtt_still_works_and_counters_come_back(
    tmp_path: Path, broker: Broker, unique_prefix: str
) -> None:
    config_file = tmp_path / "hub.toml"
    config_file.write_text(
        f'[hub]\ndatabase = "hub.db"\n[mqtt]\nport = {broker.port}\n'
        f'topic_prefix = "{unique_prefix}"\n[ble]\nenabled = true\nadapter = "hci99"\n'
        '[[sensors]]\nid = "shelly"\nuser_id = "u"\n'
        f'ble_address = "{ADDRESS}"\nble_bindkey = "231d39c1d7cc1ab1aee224cd096db932"\n'
        '[[sensors]]\nid = "bath"\nuser_id = "u"\n'
    )
    db = open_database(tmp_path / "hub.db")
    save_states(db, {ADDRESS: CounterState(123_456)})
    close_database(db)

    daemon = Daemon(load_config(config_file), notifier=Notifier.from_environment({}))
    task = asyncio.create_task(daemon.run())
    try:
        async with asyncio.timeout(10):
            await daemon.ready.wait()
        assert daemon.ble is not None
        assert daemon.ble.encryption_counters() == {ADDRESS: CounterState(123_456)}
        async with aiomqtt.Client("127.0.0.1", broker.port) as sensor:
            await sensor.subscribe("spottypotty/sessions/bath", qos=1)
            motion = json.dumps({"event": "motion_detected", "seq": 1})
            await sensor.publish(f"{unique_prefix}/bath/motion", motion, qos=1)
            async with asyncio.timeout(10):
                message = await anext(aiter(sensor.messages))
        assert isinstance(message.payload, bytes)
        assert json.loads(message.payload)["status"] == "active"
        assert "unavailable" in daemon.ble.status or "retrying" in daemon.ble.status
        # `sensors retrust` reaches the running daemon over its control socket.
        ask = functools.partial(control.ask_daemon, tmp_path / "hub.db")
        answer = await asyncio.to_thread(ask, {"action": RETRUST_ACTION, "sensorId": "shelly"})
        assert answer == {
            "statusCode": 200,
            "action": RETRUST_ACTION,
            "sensorId": "shelly",
            "address": ADDRESS,
            "lastCounter": 123_456,
        }
        refused = await asyncio.to_thread(ask, {"action": RETRUST_ACTION, "sensorId": "bath"})
        assert refused["statusCode"] == 404
    finally:
        daemon.stop()
        await task
    db = open_database(tmp_path / "hub.db")
    try:
        assert load_states(db) == {ADDRESS: CounterState(123_456, trust_next=True)}
    finally:
        close_database(db)
