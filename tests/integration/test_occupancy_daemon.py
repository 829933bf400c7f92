"""Occupancy in the daemon, through a real mosquitto with the payloads real sensors send:
the firmware's seed motion, a Zigbee2MQTT mmWave (`presence`) and door (`contact`), an
ESPHome presence binary sensor (`ON`/`OFF`). The clock is injected: simulated minutes
pass without sleeping (the runner is poked after each move)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import aiomqtt
import pytest

from hub.config import (
    HubConfig,
    HubSection,
    MqttSection,
    RoomConfig,
    SensorConfig,
    SessionsSection,
)
from hub.ingest.mqtt_decode import encode_seed_motion
from hub.store import close_database, open_database
from tests.integration.test_daemon_faults import (
    FakePlayer,
    FixedClock,
    RunningDaemon,
    SessionStates,
    mqtt_client,
    running_daemon,
    session_states,
)
from tests.unit.test_timeouts import history

if TYPE_CHECKING:
    from tests.broker import Broker

pytestmark = pytest.mark.integration

T0 = 1_718_190_000.0
TIMEOUT = 300.0


def _config(tmp_path: Path, broker: Broker, prefix: str) -> HubConfig:
    return HubConfig(
        hub=HubSection(database=tmp_path / "hub.db"),
        mqtt=MqttSection(host=broker.host, port=broker.port, topic_prefix=prefix),
        sessions=SessionsSection(timeout_minutes=TIMEOUT / 60, door_timeout_seconds=60),
        sensors=(
            SensorConfig(id="bath_pir", user_id="u1"),
            SensorConfig(
                id="bath_radar",
                user_id="u1",
                mqtt_topic=f"{prefix}-z2m/bath_radar",
                mqtt_format="zigbee2mqtt",
            ),
            SensorConfig(
                id="bath_door",
                user_id="u1",
                mqtt_topic=f"{prefix}-z2m/bath_door",
                mqtt_format="zigbee2mqtt",
            ),
            SensorConfig(
                id="study",
                user_id="u1",
                mqtt_topic=f"{prefix}-esp/binary_sensor/presence/state",
                mqtt_format="esphome",
            ),
        ),
        rooms=(
            RoomConfig(
                "bathroom",
                "Bathroom",
                ("bath_pir", "bath_radar", "bath_door"),
                SensorConfig(id="bathroom", user_id="u1", context_uri="spotify:playlist:x"),
            ),
        ),
    )


@dataclasses.dataclass
class _Rig:
    running: RunningDaemon
    clock: FixedClock
    player: FakePlayer
    states: SessionStates
    sensors: aiomqtt.Client

    async def advance(self, seconds: float) -> None:
        """Simulated time passes: the clock moves, the runner looks at it."""
        self.clock.now += seconds
        assert self.running.daemon.runner is not None
        self.running.daemon.runner.poke()
        await asyncio.sleep(0.01)  # let the runner take the poke


@contextlib.asynccontextmanager
async def _rig(tmp_path: Path, broker: Broker, prefix: str) -> AsyncIterator[_Rig]:
    """The daemon on an injected clock, what it publishes, and a client to be the sensors."""
    player, clock = FakePlayer(), FixedClock(T0)
    async with (
        running_daemon(_config(tmp_path, broker, prefix), player, clock=clock) as running,
        session_states(broker) as states,
        mqtt_client(broker, "sensors") as sensors,
    ):
        yield _Rig(running, clock, player, states, sensors)


async def test_a_room_of_three_sensors_is_one_session_and_one_play(
    tmp_path: Path, broker: Broker, unique_prefix: str
) -> None:
    async with _rig(tmp_path, broker, unique_prefix) as rig:
        radar = f"{unique_prefix}-z2m/bath_radar"
        door = f"{unique_prefix}-z2m/bath_door"
        await rig.sensors.publish(door, json.dumps({"contact": False, "battery": 90}), qos=1)
        await rig.sensors.publish(
            f"{unique_prefix}/bath_pir/motion", encode_seed_motion("bath_pir", seq=1), qos=1
        )
        await rig.sensors.publish(radar, json.dumps({"presence": True, "linkquality": 80}), qos=1)
        await rig.sensors.publish(door, json.dumps({"contact": True}), qos=1)  # closed
        await asyncio.sleep(0.1)
        await rig.advance(15)  # past the debounce: counted, and seen inside
        await rig.sensors.publish(
            f"{unique_prefix}/bath_pir/motion", encode_seed_motion("bath_pir", seq=2), qos=1
        )
        _, record = await rig.states.next("bathroom", lambda r: r["status"] == "active")
        assert record["sensorId"] == "bathroom"
        # Sitting still for 30 simulated minutes: the radar holds the room.
        for _ in range(30):
            await rig.advance(60)
        cleared_at = rig.clock.now
        await rig.sensors.publish(radar, json.dumps({"presence": False}), qos=1)
        await rig.sensors.publish(door, json.dumps({"contact": False}), qos=1)  # out they go
        await asyncio.sleep(0.2)
        assert [r["status"] for r in rig.states.history] == ["active"] * len(rig.states.history)
        await rig.advance(60)
        _, ended = await rig.states.next("bathroom", lambda r: r["status"] == "completed")
    assert ended["endReason"] == "door_opened"
    assert ended["endTime"].startswith(_iso_minute(cleared_at + 60))
    assert len(rig.player.starts) == 1  # one play for the room, however many sensors fired
    assert rig.player.stops == rig.player.starts


async def test_esphome_presence_holds_and_its_clear_ends_one_timeout_later(
    tmp_path: Path, broker: Broker, unique_prefix: str
) -> None:
    topic = f"{unique_prefix}-esp/binary_sensor/presence/state"
    async with _rig(tmp_path, broker, unique_prefix) as rig:
        await rig.sensors.publish(topic, "ON", qos=1, retain=True)
        await rig.states.next("study", lambda r: r["status"] == "active")
        for _ in range(30):
            await rig.advance(60)
        assert rig.player.stops == []  # the music plays on
        cleared_at = rig.clock.now
        await rig.sensors.publish(topic, "OFF", qos=1, retain=True)
        await asyncio.sleep(0.2)
        await rig.advance(TIMEOUT)
        _, ended = await rig.states.next("study", lambda r: r["status"] == "completed")
        await rig.sensors.publish(topic, b"", qos=1, retain=True)  # tidy the broker
    assert ended["endReason"] == "presence_cleared"
    assert ended["endTime"].startswith(_iso_minute(cleared_at + TIMEOUT))


async def test_a_retained_occupied_state_plays_no_music_at_start_up(
    tmp_path: Path, broker: Broker, unique_prefix: str
) -> None:
    topic = f"{unique_prefix}-esp/binary_sensor/presence/state"
    async with mqtt_client(broker, "esphome") as esphome:
        await esphome.publish(topic, "ON", qos=1, retain=True)
    player = FakePlayer()
    config = _config(tmp_path, broker, unique_prefix)
    async with (
        running_daemon(config, player, clock=FixedClock(T0)) as running,
        mqtt_client(broker, "esphome") as esphome,
    ):
        await asyncio.sleep(0.5)  # the broker replays the retained "ON" on subscribe
        assert running.daemon.runner is not None
        assert running.daemon.runner.counters["state"] == 1
        assert running.daemon.runner.engine.active == {}
        await esphome.publish(topic, b"", qos=1, retain=True)
    assert player.starts == []


def _iso_minute(instant: float) -> str:
    """An instant's ISO-8601 text up to the second (the records keep microseconds)."""
    return dt.datetime.fromtimestamp(instant, dt.UTC).isoformat(timespec="seconds")[:19]


async def test_the_daemon_learns_a_rooms_timeout_at_start(
    tmp_path: Path, broker: Broker, unique_prefix: str
) -> None:
    db = open_database(tmp_path / "hub.db")
    try:
        history(db, [3600.0] * 29, room="study")  # 30 sessions, no false ends
    finally:
        close_database(db)
    base = _config(tmp_path, broker, unique_prefix)
    sensors = tuple(
        dataclasses.replace(s, timeout_minutes="auto", timeout_bounds=(2.0, 15.0))
        if s.id == "study"
        else s
        for s in base.sensors
    )
    config = dataclasses.replace(base, sensors=sensors)
    async with running_daemon(config, FakePlayer(), clock=FixedClock(T0)) as running:
        runner = running.daemon.runner
        assert runner is not None
        async with asyncio.timeout(5):
            while runner.engine.timeout("study") != 120.0:  # noqa: ASYNC110 - the daemon's state
                await asyncio.sleep(0.02)
        assert runner.engine.timeout("bathroom") == TIMEOUT  # not learned: as configured
