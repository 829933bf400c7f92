"""The hub against a real Home Assistant (tests/home_assistant.py), over a real mosquitto.

One Home Assistant and one broker serve the whole module (HA takes seconds to start); each
test runs its own in-process Daemon with sensors of its own. Checked from HA's side (REST and
websocket API): the devices and entities discovery makes, states following motion,
availability per sensor and of the hub, controls changing what the hub does, state kept
across a hub restart, a removed sensor's entities gone — and no ERROR or WARNING in HA's
log about any of it.

Skipped only when `.venv-ha` is missing (`scripts/install-home-assistant.sh`, which
`make test` runs, installs it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from hub.config import HubConfig, load_config
from hub.daemon import Daemon
from hub.sessions.local import control_owned
from hub.sessions.runner import SessionRunner
from hub.store import close_database, open_database
from hub.systemd import Notifier
from tests.broker import Broker, free_port
from tests.home_assistant import HASS, HomeAssistant

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not HASS.exists(), reason="Home Assistant is not installed in .venv-ha: run make test"
    ),
]

PREFIX = "sensors"
WAIT = 30.0  # seconds for HA to show what the hub published (well under 1 s when idle)


@pytest.fixture(scope="module")
def broker_for_ha(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    broker = Broker(tmp_path_factory.mktemp("ha-broker"))
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="module")
def home_assistant(
    tmp_path_factory: pytest.TempPathFactory, broker_for_ha: Broker
) -> Iterator[HomeAssistant]:
    ha = HomeAssistant(tmp_path_factory.mktemp("home-assistant"), broker_for_ha.port)
    ha.start()
    yield ha
    ha.stop()


@dataclass
class Hub:
    config: HubConfig
    daemon: Daemon
    task: asyncio.Task[int]

    async def stop(self) -> None:
        self.daemon.stop()
        await self.task


HubStarter = Callable[..., Awaitable[Hub]]


@pytest.fixture
async def start_hub(tmp_path: Path, broker_for_ha: Broker) -> AsyncIterator[HubStarter]:
    hubs: list[Hub] = []

    async def start(sensors: list[str], *, http: bool = False) -> Hub:
        tables = "".join(
            f'[[sensors]]\nid = "{sid}"\nuser_id = "u1"\nname = "{sid.title()}"\n'
            f'spotify_device = "Speaker"\n'
            for sid in sensors
        )
        path = tmp_path / "hub.toml"
        path.write_text(
            f"""
[hub]
database = "hub.db"
timezone = "UTC"
[mqtt]
port = {broker_for_ha.port}
topic_prefix = "{PREFIX}"
[sessions]
timeout_minutes = 5
[spotify]
dry_run = true
[http]
enabled = {"true" if http else "false"}
port = {free_port()}
{tables}""",
            encoding="utf-8",
        )
        config = load_config(path)
        daemon = Daemon(config, notifier=Notifier.from_environment({}), client_id="ha-test-hub")
        hub = Hub(config, daemon, asyncio.create_task(daemon.run(), name="daemon"))
        hubs.append(hub)
        async with asyncio.timeout(10):
            await daemon.ready.wait()
        return hub

    yield start
    for hub in hubs:
        if not hub.task.done():
            await hub.stop()


async def publish(
    broker: Broker, topic: str, payload: bytes | str, *, retain: bool = False
) -> None:
    async with aiomqtt.Client("127.0.0.1", broker.port) as client:
        await client.publish(topic, payload, qos=1, retain=retain)


def motion(sensor: str, seq: int, *, metadata: bool = True) -> bytes:
    event: dict[str, Any] = {
        "event": "motion_detected",
        "sensorId": sensor,
        "timestamp": int(time.time()),
        "seq": seq,
    }
    if metadata:
        event["metadata"] = {"batteryLevel": 82, "signalStrength": -61, "firmwareVersion": "1.2.3"}
    return json.dumps(event).encode()


async def entity_ids(ha: HomeAssistant, node: str) -> dict[str, str]:
    """object id (what follows `{node}_` in the unique id) → HA's entity id."""
    _, entities = await ha.registry()
    head = f"{node}_"
    return {
        e["unique_id"][len(head) :]: e["entity_id"]
        for e in entities
        if e["platform"] == "mqtt" and str(e["unique_id"]).startswith(head)
    }


async def eventually(check: Callable[[], Any], what: str) -> Any:
    """Poll `check` (run in a thread: it calls HA's REST API) until it answers truthy."""
    deadline = time.monotonic() + WAIT
    while True:
        answer = await asyncio.to_thread(check)
        if answer:
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"Home Assistant never showed {what}")
        await asyncio.sleep(0.2)


def has_state(ha: HomeAssistant, entity_id: str, value: str) -> bool:
    return state_of(ha, entity_id) == value


def state_of(ha: HomeAssistant, entity_id: str) -> str | None:
    found = ha.state(entity_id)
    return None if found is None else str(found["state"])


def no_problems(ha: HomeAssistant, *sensors: str) -> None:
    problems = ha.problems("spottypotty", *(f"{PREFIX}/{s}/" for s in sensors), *sensors)
    assert not problems, "\n\n".join(problems)


async def test_devices_entities_states_and_availability(
    home_assistant: HomeAssistant, broker_for_ha: Broker, start_hub: HubStarter
) -> None:
    ha, broker = home_assistant, broker_for_ha
    await publish(broker, f"{PREFIX}/bath/status", '{"status":"online"}', retain=True)
    hub = await start_hub(["bath"], http=True)

    sensor_entities = {
        "motion",
        "session",
        "sessions_today",
        "last_session_duration",
        "last_motion",
        "last_session_start",
        "enabled",
        "dnd",
        "end_session",
        "test_playback",
        "timeout",
    }
    ids = await eventually_entities(ha, "spottypotty_bath", sensor_entities)
    hub_ids = await eventually_entities(
        ha,
        "spottypotty_hub",
        {
            "connectivity",
            "spotify",
            "last_sync",
            "last_sync_result",
            "active_sessions",
            "dropped_messages",
            "dnd",
        },
    )

    # Devices: the sensor hangs off the hub, which links to the dashboard.
    devices, _ = await ha.registry()
    by_node = {
        ident[1]: device
        for device in devices
        for ident in device["identifiers"]
        if ident[0] == "mqtt"
    }
    hub_device, bath_device = by_node["spottypotty_hub"], by_node["spottypotty_bath"]
    assert bath_device["via_device_id"] == hub_device["id"]
    assert hub_device["configuration_url"] == f"http://127.0.0.1:{hub.config.http.port}/"
    assert bath_device["name"] == "Bath"

    # Before any motion: known states, not "unknown".
    expected = {
        ids["session"]: "off",
        ids["enabled"]: "on",
        ids["dnd"]: "off",
        ids["timeout"]: "5.0",
        ids["sessions_today"]: "0",
        hub_ids["connectivity"]: "on",
        hub_ids["spotify"]: "dry_run",
        hub_ids["active_sessions"]: "0",
        hub_ids["dnd"]: "off",
    }
    for entity_id, value in expected.items():
        await eventually(partial(has_state, ha, entity_id, value), f"{entity_id} = {value}")

    # Motion: the session starts; battery and signal appear at once, as first reported.
    await publish(broker, f"{PREFIX}/bath/motion", motion("bath", 1))
    await eventually(lambda: state_of(ha, ids["session"]) == "on", "the session active")
    await eventually(lambda: state_of(ha, ids["motion"]) == "on", "motion")
    ids = await eventually_entities(ha, "spottypotty_bath", {"battery", "rssi"})
    await eventually(lambda: state_of(ha, ids["battery"]) == "82", "the battery level")
    await eventually(lambda: state_of(ha, hub_ids["active_sessions"]) == "1", "one active")
    session = ha.state(ids["session"])
    assert session is not None
    assert set(session["attributes"]) >= {"sessionId", "start", "motionEvents", "playing"}
    assert ha.state(ids["last_motion"])["state"] not in {"unknown", "unavailable"}  # type: ignore[index]

    # Motion without metadata: battery, signal and firmware stay as they were.
    await publish(broker, f"{PREFIX}/bath/motion", motion("bath", 2, metadata=False))
    await asyncio.sleep(1.5)
    assert state_of(ha, ids["battery"]) == "82"
    assert state_of(ha, ids["rssi"]) == "-61"
    devices, _ = await ha.registry()
    bath = next(d for d in devices if ["mqtt", "spottypotty_bath"] in d["identifiers"])
    assert bath["sw_version"] == "1.2.3"

    # The sensor goes offline: its entities are unavailable, the hub's are not.
    await publish(broker, f"{PREFIX}/bath/status", '{"status":"offline"}', retain=True)
    await eventually(lambda: state_of(ha, ids["motion"]) == "unavailable", "the sensor offline")
    assert state_of(ha, hub_ids["active_sessions"]) == "1"
    await publish(broker, f"{PREFIX}/bath/status", '{"status":"online"}', retain=True)
    await eventually(lambda: state_of(ha, ids["motion"]) != "unavailable", "the sensor back")

    # The hub stops: everything of it is unavailable, and "Connected" is off.
    await hub.stop()
    await eventually(lambda: state_of(ha, hub_ids["connectivity"]) == "off", "the hub offline")
    assert state_of(ha, ids["session"]) == "unavailable"
    assert state_of(ha, hub_ids["active_sessions"]) == "unavailable"

    # Started again without the sensor: its entities, device and retained state go.
    await start_hub(["other"])
    await eventually(lambda: ha.state(ids["motion"]) is None, "the removed sensor's entities gone")
    devices, _ = await ha.registry()
    assert not [d for d in devices if ["mqtt", "spottypotty_bath"] in d["identifiers"]]
    deadline = time.monotonic() + WAIT
    while left := await retained(broker, "spottypotty/+/bath/#", "spottypotty/sessions/bath"):
        assert time.monotonic() < deadline, f"retained {left} left behind"
    no_problems(ha, "bath", "other")


async def retained(broker: Broker, *filters: str) -> list[str]:
    """Topics of the retained messages the broker holds under `filters`."""
    topics: list[str] = []
    async with aiomqtt.Client("127.0.0.1", broker.port) as client:
        for topic_filter in filters:
            await client.subscribe(topic_filter, qos=1)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.5):
                async for message in client.messages:
                    topics.append(str(message.topic))  # noqa: PERF401 - kept when the timeout ends the loop
    return topics


async def eventually_entities(ha: HomeAssistant, node: str, wanted: set[str]) -> dict[str, str]:
    async def found() -> dict[str, str]:
        deadline = time.monotonic() + WAIT
        while True:
            ids = await entity_ids(ha, node)
            if wanted <= ids.keys():
                return ids
            if time.monotonic() > deadline:
                raise AssertionError(f"{node}: missing {sorted(wanted - ids.keys())}")
            await asyncio.sleep(0.2)

    return await found()


async def test_controls_from_home_assistant(
    home_assistant: HomeAssistant,
    broker_for_ha: Broker,
    start_hub: HubStarter,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ha, broker = home_assistant, broker_for_ha
    await publish(broker, f"{PREFIX}/den/status", '{"status":"online"}', retain=True)
    hub = await start_hub(["den"])
    ids = await eventually_entities(
        ha,
        "spottypotty_den",
        {"dnd", "enabled", "end_session", "test_playback", "timeout", "session"},
    )
    hub_ids = await eventually_entities(ha, "spottypotty_hub", {"dnd"})
    assert hub.daemon.runner is not None
    runner: SessionRunner = hub.daemon.runner

    # (HA skips a service call for an entity it does not yet see available.)
    for entity_id in (ids["dnd"], hub_ids["dnd"]):
        await eventually(partial(has_state, ha, entity_id, "off"), f"{entity_id} off")

    # Do-not-disturb, switched on in HA, holds against motion: recorded, silent.
    await asyncio.to_thread(ha.call, "switch", "turn_on", entity_id=ids["dnd"])
    await eventually(lambda: runner.controls.dnd("den", time.time()), "the hub in do-not-disturb")
    await eventually(lambda: state_of(ha, ids["dnd"]) == "on", "the switch on")
    await publish(broker, f"{PREFIX}/den/motion", motion("den", 1))
    await eventually(lambda: state_of(ha, ids["session"]) == "on", "a session")
    session = ha.state(ids["session"])
    assert session is not None
    assert session["attributes"]["note"] == "do_not_disturb"
    assert session["attributes"]["playing"] is False

    # The timeout number, and "end session now".
    await asyncio.to_thread(ha.call, "number", "set_value", entity_id=ids["timeout"], value=7)
    await eventually(lambda: state_of(ha, ids["timeout"]) == "7.0", "the timeout 7")
    assert runner.controls.timeout_minutes("den") == 7
    await asyncio.to_thread(ha.call, "button", "press", entity_id=ids["end_session"])
    await eventually(lambda: state_of(ha, ids["session"]) == "off", "the session ended")

    # Disabled: motion makes no session.
    await asyncio.to_thread(ha.call, "switch", "turn_off", entity_id=ids["enabled"])
    await eventually(lambda: state_of(ha, ids["enabled"]) == "off", "the room disabled")
    await publish(broker, f"{PREFIX}/den/motion", motion("den", 2))
    await eventually(lambda: runner.counters["disabled_sensor:den"] == 1, "the motion dropped")
    assert state_of(ha, ids["session"]) == "off"

    # "Test playback" plays on the room's device (the dry-run player logs it).
    await asyncio.to_thread(ha.call, "button", "press", entity_id=ids["test_playback"])
    await eventually(lambda: "test playback in den" in caplog.text, "a test playback")

    # Hub-wide do-not-disturb.
    await asyncio.to_thread(ha.call, "switch", "turn_on", entity_id=hub_ids["dnd"])
    await eventually(lambda: state_of(ha, hub_ids["dnd"]) == "on", "the hub's switch on")

    # The controls survive a hub restart.
    await hub.stop()
    hub = await start_hub(["den"])
    assert hub.daemon.runner is not None
    runner = hub.daemon.runner
    assert runner.controls.own_dnd("den", time.time())
    assert runner.controls.own_dnd(None, time.time())
    assert runner.controls.enabled("den", configured=True) is False
    await eventually(lambda: state_of(ha, ids["dnd"]) == "on", "do-not-disturb still on")
    await eventually(lambda: state_of(ha, ids["timeout"]) == "7.0", "the timeout still 7")
    await asyncio.to_thread(ha.call, "switch", "turn_off", entity_id=hub_ids["dnd"])
    await eventually(lambda: state_of(ha, hub_ids["dnd"]) == "off", "the hub's switch off")
    # `spottypotty dnd off den` goes through the running hub's control socket.
    event = {"action": "control", "control": "dnd", "room": "den", "value": False}
    answer = await asyncio.to_thread(control_owned, hub.config, event)
    assert answer["controls"]["rooms"]["den"]["dnd"] is False
    await eventually(lambda: state_of(ha, ids["dnd"]) == "off", "the room's switch off")

    db = open_database(tmp_path / "hub.db")
    try:
        notes = [row[0] for row in db.execute("SELECT playbackNote FROM sessions").fetchall()]
    finally:
        close_database(db)
    assert notes == ["do_not_disturb"]
    no_problems(ha, "den")


async def test_home_assistant_restarting_finds_everything_again(
    home_assistant: HomeAssistant, broker_for_ha: Broker, start_hub: HubStarter
) -> None:
    ha, broker = home_assistant, broker_for_ha
    await publish(broker, f"{PREFIX}/porch/status", '{"status":"online"}', retain=True)
    await start_hub(["porch"])
    ids = await eventually_entities(ha, "spottypotty_porch", {"session", "dnd"})
    await eventually(partial(has_state, ha, ids["session"], "off"), "the session off")
    await asyncio.to_thread(ha.stop)
    await asyncio.to_thread(ha.start)  # logs in again; MQTT is kept in HA's storage
    # The hub re-announces on HA's birth message; the state comes back from retained topics.
    await eventually(partial(has_state, ha, ids["session"], "off"), "the session off again")
    await eventually(partial(has_state, ha, ids["dnd"], "off"), "the switch off again")
    await publish(broker, f"{PREFIX}/porch/motion", motion("porch", 1))
    await eventually(partial(has_state, ha, ids["session"], "on"), "a session after the restart")
    no_problems(ha, "porch")
