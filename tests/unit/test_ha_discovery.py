"""Home Assistant discovery messages: whole payloads where they matter, rules elsewhere.
(What Home Assistant makes of them is tests/integration/test_home_assistant.py.)"""

from __future__ import annotations

import json
from typing import Any

from hub.config import HttpSection, HubConfig, MqttSection, Room, SensorConfig
from hub.ha_discovery import (
    DiscoveryMessage,
    discovery_messages,
    entity_topics,
    hub_messages,
    removal_messages,
    retained_topics,
)
from hub.http.wiring import dashboard_url, spotify_state
from hub.http.wiring import discovery_messages as config_discovery_messages
from hub.store.sensors import SensorState

HUB_ONLINE = {
    "topic": "spottypotty/hub/status",
    "payload_available": "online",
    "payload_not_available": "offline",
}
SENSOR_ONLINE = {
    "topic": "sensors/bath/status",
    "value_template": "{{ value_json.status if value_json is mapping else value }}",
    "payload_available": "online",
    "payload_not_available": "offline",
}


def _room(room_id: str, name: str, sensor_ids: tuple[str, ...]) -> Room:
    return Room(
        id=room_id,
        name=name,
        sensor_ids=sensor_ids,
        settings=SensorConfig(id=room_id, user_id="u"),
        timeout_seconds=300,
        door_timeout_seconds=60,
        max_hold_seconds=14_400,
    )


ROOM = _room("bath", "Main bathroom", ("bath",))


def decoded(messages: list[DiscoveryMessage]) -> dict[str, Any]:
    return {m.topic: json.loads(m.payload) for m in messages}


def by_entity(messages: list[DiscoveryMessage]) -> dict[str, Any]:
    """`component/object` → payload."""
    return {
        "/".join(m.topic.split("/")[1:4:2]): json.loads(m.payload) for m in messages if m.payload
    }


def test_a_firmware_sensor_device_hangs_off_the_hub_and_needs_both_online() -> None:
    sensor = SensorConfig(id="bath", user_id="u1", name="Main bathroom")
    entities = by_entity(
        discovery_messages(sensor, battery_known=True, rssi_known=True, firmware_version="1.0.0")
    )
    assert entities["binary_sensor/motion"] == {
        "name": "Motion",
        "unique_id": "spottypotty_bath_motion",
        "device_class": "motion",
        "state_topic": "sensors/bath/motion",
        "value_template": (
            "{{ 'ON' if value_json is mapping and value_json.get('event') == "
            "'motion_detected' else 'OFF' }}"
        ),
        "payload_on": "ON",
        "payload_off": "OFF",
        "off_delay": 30,
        "device": {
            "identifiers": ["spottypotty_bath"],
            "name": "Main bathroom",
            "manufacturer": "SpottyPottySense",
            "model": "SpottyPottySense motion sensor",
            "sw_version": "1.0.0",
            "via_device": "spottypotty_hub",
        },
        "availability": [HUB_ONLINE, SENSOR_ONLINE],
        "availability_mode": "all",
    }
    assert entities["sensor/battery"]["state_topic"] == "spottypotty/sensors/bath/stats"
    assert entities["sensor/battery"]["value_template"] == (
        "{% set v = value_json.get('batteryLevel') if value_json is mapping else none %}"
        "{{ v if v is number else 'None' }}"
    )
    assert entities["sensor/last_motion"]["state_topic"] == "spottypotty/sensors/bath/last_motion"
    assert entities["sensor/last_motion"]["device_class"] == "timestamp"


def test_numbers_never_render_a_stale_state() -> None:
    sensor = SensorConfig(id="bath", user_id="u1")
    messages = discovery_messages(sensor, battery_known=True, rssi_known=True, room=ROOM)
    messages += hub_messages(version="1")
    for topic, payload in decoded(messages).items():
        template = payload.get("value_template", "")
        assert "this.state" not in template, topic
        if payload.get("unit_of_measurement") or payload.get("state_class"):
            assert "is number else 'None'" in template, topic


def test_session_active_is_off_from_the_start_with_small_attributes() -> None:
    session = by_entity(discovery_messages(SensorConfig(id="bath", user_id="u1")))[
        "binary_sensor/session"
    ]
    assert session["state_topic"] == session["json_attributes_topic"]
    assert session["state_topic"] == "spottypotty/sensors/bath/stats"
    assert "sessionActive" in session["value_template"]
    assert "'session'" in session["json_attributes_template"]


def test_unknown_battery_and_rssi_are_left_out_and_a_foreign_sensor_has_no_status() -> None:
    sensor = SensorConfig(id="bath", user_id="u1")
    entities = by_entity(discovery_messages(sensor))
    assert "sensor/battery" not in entities
    assert "sensor/rssi" not in entities
    assert {json.dumps(e["device"]["name"]) for e in entities.values()} == {'"bath"'}
    esphome = SensorConfig(
        id="bath", user_id="u1", mqtt_topic="pir/binary_sensor/motion/state", mqtt_format="esphome"
    )
    motion = by_entity(discovery_messages(esphome))["binary_sensor/motion"]
    assert motion["state_topic"] == "pir/binary_sensor/motion/state"
    assert motion["availability"] == [HUB_ONLINE]
    assert motion["device"]["model"] == "ESPHome motion sensor"


def test_zigbee_and_ble_motion() -> None:
    zigbee = SensorConfig(
        id="bath", user_id="u", mqtt_topic="zigbee2mqtt/pir", mqtt_format="zigbee2mqtt"
    )
    motion = by_entity(discovery_messages(zigbee))["binary_sensor/motion"]
    assert motion["state_topic"] == "zigbee2mqtt/pir"
    assert "occupancy" in motion["value_template"]
    assert "presence" in motion["value_template"]
    assert "contact" in motion["value_template"]
    assert "off_delay" not in motion
    ble = SensorConfig(id="bath", user_id="u", ble_address="54:48:E6:8F:80:A5")
    motion = by_entity(discovery_messages(ble))["binary_sensor/motion"]
    assert motion["state_topic"] == "spottypotty/sessions/bath"
    assert motion["off_delay"] == 30
    assert motion["device"]["model"] == "BTHome motion sensor"


def test_a_rooms_controls_write_command_topics() -> None:
    sensor = SensorConfig(id="bath", user_id="u1")
    entities = by_entity(discovery_messages(sensor, room=ROOM))
    commands = {
        name: payload["command_topic"]
        for name, payload in entities.items()
        if "command_topic" in payload
    }
    assert commands == {
        "switch/enabled": "spottypotty/rooms/bath/enabled/set",
        "switch/dnd": "spottypotty/rooms/bath/dnd/set",
        "button/end_session": "spottypotty/rooms/bath/end_session/set",
        "button/test_playback": "spottypotty/rooms/bath/test_playback/set",
        "number/timeout": "spottypotty/rooms/bath/timeout/set",
    }
    assert entities["switch/dnd"]["state_topic"] == "spottypotty/rooms/bath/state"
    assert entities["switch/dnd"]["availability"] == [HUB_ONLINE]  # works while the hub does
    # A room of other sensors is not this sensor's to show.
    other = _room("bathroom", "Bathroom", ("bath", "radar"))
    assert "switch/dnd" not in by_entity(discovery_messages(sensor, room=other))


def test_the_hub_device() -> None:
    entities = by_entity(hub_messages(version="0.1.0", configuration_url="http://pi:8080/"))
    assert set(entities) == {
        "binary_sensor/connectivity",
        "sensor/spotify",
        "sensor/last_sync",
        "sensor/last_sync_result",
        "sensor/active_sessions",
        "sensor/dropped_messages",
        "switch/dnd",
    }
    device = entities["sensor/spotify"]["device"]
    assert device["identifiers"] == ["spottypotty_hub"]
    assert device["configuration_url"] == "http://pi:8080/"
    assert "availability" not in entities["binary_sensor/connectivity"]
    assert entities["switch/dnd"]["command_topic"] == "spottypotty/hub/dnd/set"
    without = by_entity(hub_messages(version="0.1.0"))["sensor/spotify"]["device"]
    assert "configuration_url" not in without


def test_payloads_are_compact_sorted_json() -> None:
    sensor = SensorConfig(id="bath", user_id="u1")
    for message in [*discovery_messages(sensor, room=ROOM), *hub_messages(version="1")]:
        text = message.payload.decode()
        assert text == json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))


def test_removal_clears_every_entity_topic_and_the_retained_state() -> None:
    assert removal_messages("bath") == [DiscoveryMessage(t, b"") for t in entity_topics("bath")]
    assert len(entity_topics("bath")) == 13  # 8 sensor + 5 room entities
    assert retained_topics("bath") == [
        "spottypotty/sessions/bath",
        "spottypotty/sensors/bath/stats",
        "spottypotty/sensors/bath/last_motion",
        "spottypotty/sensors/bath/last_session_start",
        "spottypotty/rooms/bath/state",
    ]


def test_config_level_messages_use_known_state() -> None:
    config = HubConfig(
        mqtt=MqttSection(topic_prefix="home"),
        http=HttpSection(enabled=True, host="0.0.0.0", port=8080),  # noqa: S104
        sensors=(SensorConfig(id="bath", user_id="u"), SensorConfig(id="hall", user_id="u")),
    )
    states = {"bath": SensorState("bath", battery_level=80, firmware_version="2.0")}
    entities = decoded(config_discovery_messages(config, states))
    battery = entities["homeassistant/sensor/spottypotty_bath/battery/config"]
    assert battery["device"]["sw_version"] == "2.0"
    assert "homeassistant/sensor/spottypotty_hall/battery/config" not in entities
    assert "homeassistant/switch/spottypotty_hall/dnd/config" in entities
    url = entities["homeassistant/sensor/spottypotty_hub/spotify/config"]["device"]
    assert url["configuration_url"] == dashboard_url(config)
    assert url["configuration_url"].endswith(":8080/")
    assert "0.0.0.0" not in url["configuration_url"]  # noqa: S104 - a host name instead


def test_spotify_states() -> None:
    assert spotify_state("Spotify ready", dry_run=False) == "ready"
    assert spotify_state("Spotify login needed", dry_run=False) == "login_needed"
    assert spotify_state("Spotify Premium required", dry_run=False) == "premium_required"
    assert spotify_state("Spotify rate-limited for 3 min", dry_run=False) == "rate_limited"
    quota = "Spotify app quota exceeded (development mode) for 1 h"
    assert spotify_state(quota, dry_run=False) == "rate_limited"
    assert spotify_state("Spotify unreachable (retry in 20 s)", dry_run=False) == "unreachable"
    assert spotify_state(None, dry_run=True) == "dry_run"
