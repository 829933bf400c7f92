"""Home Assistant discovery messages, compared as whole payloads."""

from __future__ import annotations

import json
from typing import Any

from hub.config import HubConfig, MqttSection, RoomConfig, SensorConfig
from hub.ha_discovery import (
    DiscoveryMessage,
    discovery_messages,
    entity_topics,
    removal_messages,
)
from hub.http.wiring import discovery_messages as config_discovery_messages
from hub.store.sensors import SensorState

AVAILABILITY = [
    {
        "topic": "spottypotty/hub/status",
        "payload_available": "online",
        "payload_not_available": "offline",
    }
]


def device(
    name: str = "Main bathroom", model: str = "SpottyPottySense motion sensor"
) -> dict[str, Any]:
    return {
        "identifiers": ["spottypotty_bath"],
        "name": name,
        "manufacturer": "SpottyPottySense",
        "model": model,
    }


def decoded(messages: list[DiscoveryMessage]) -> dict[str, Any]:
    return {m.topic: json.loads(m.payload) for m in messages}


def test_firmware_sensor_with_battery_and_rssi() -> None:
    sensor = SensorConfig(id="bath", user_id="u1", name="Main bathroom")
    messages = discovery_messages(
        sensor,
        topic_prefix="sensors",
        battery_known=True,
        rssi_known=True,
        firmware_version="1.0.0",
    )
    dev = device() | {"sw_version": "1.0.0"}
    common = {"device": dev, "availability": AVAILABILITY}
    battery_template = (
        "{% set m = value_json.get('metadata', {}) if value_json is mapping else {} %}"
        "{{ m.get('batteryLevel', this.state) }}"
    )
    assert decoded(messages) == {
        "homeassistant/binary_sensor/spottypotty_bath/motion/config": {
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
            **common,
        },
        "homeassistant/binary_sensor/spottypotty_bath/session/config": {
            "name": "Session active",
            "unique_id": "spottypotty_bath_session",
            "device_class": "occupancy",
            "icon": "mdi:music",
            "state_topic": "spottypotty/sessions/bath",
            "json_attributes_topic": "spottypotty/sessions/bath",
            "value_template": "{{ 'ON' if value_json.status == 'active' else 'OFF' }}",
            "payload_on": "ON",
            "payload_off": "OFF",
            **common,
        },
        "homeassistant/sensor/spottypotty_bath/sessions_today/config": {
            "name": "Sessions today",
            "unique_id": "spottypotty_bath_sessions_today",
            "icon": "mdi:counter",
            "state_class": "total",
            "state_topic": "spottypotty/sensors/bath/stats",
            "value_template": "{{ value_json.sessionsToday }}",
            **common,
        },
        "homeassistant/sensor/spottypotty_bath/last_session_duration/config": {
            "name": "Last session duration",
            "unique_id": "spottypotty_bath_last_session_duration",
            "device_class": "duration",
            "unit_of_measurement": "min",
            "state_class": "measurement",
            "state_topic": "spottypotty/sensors/bath/stats",
            "value_template": "{{ value_json.lastSessionDurationMinutes }}",
            **common,
        },
        "homeassistant/sensor/spottypotty_bath/battery/config": {
            "name": "Battery",
            "unique_id": "spottypotty_bath_battery",
            "device_class": "battery",
            "entity_category": "diagnostic",
            "unit_of_measurement": "%",
            "state_class": "measurement",
            "state_topic": "sensors/bath/motion",
            "value_template": battery_template,
            **common,
        },
        "homeassistant/sensor/spottypotty_bath/rssi/config": {
            "name": "Signal strength",
            "unique_id": "spottypotty_bath_rssi",
            "device_class": "signal_strength",
            "entity_category": "diagnostic",
            "unit_of_measurement": "dBm",
            "state_class": "measurement",
            "state_topic": "sensors/bath/motion",
            "value_template": battery_template.replace("batteryLevel", "signalStrength"),
            **common,
        },
    }


def test_payloads_are_compact_sorted_json() -> None:
    sensor = SensorConfig(id="bath", user_id="u1")
    for message in discovery_messages(sensor):
        text = message.payload.decode()
        assert text == json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))


def test_unknown_battery_and_rssi_are_left_out() -> None:
    sensor = SensorConfig(id="bath", user_id="u1")
    topics = [m.topic for m in discovery_messages(sensor)]
    assert topics == entity_topics("bath")[:4]
    names = {json.loads(m.payload)["device"]["name"] for m in discovery_messages(sensor)}
    assert names == {"bath"}  # no name: the id


def test_esphome_sensor_motion_uses_its_own_topic() -> None:
    sensor = SensorConfig(
        id="bath",
        user_id="u1",
        name="Main bathroom",
        mqtt_topic="bathroom-pir/binary_sensor/motion/state",
        mqtt_format="esphome",
    )
    motion = decoded(discovery_messages(sensor, battery_known=True))[
        "homeassistant/binary_sensor/spottypotty_bath/motion/config"
    ]
    assert motion == {
        "name": "Motion",
        "unique_id": "spottypotty_bath_motion",
        "device_class": "motion",
        "state_topic": "bathroom-pir/binary_sensor/motion/state",
        "payload_on": "ON",
        "payload_off": "OFF",
        "device": device(model="ESPHome motion sensor"),
        "availability": AVAILABILITY,
    }
    # Battery on a foreign topic is not ours to template.
    assert len(discovery_messages(sensor, battery_known=True)) == 4


def test_zigbee_and_ble_motion() -> None:
    zigbee = SensorConfig(
        id="bath", user_id="u", mqtt_topic="zigbee2mqtt/pir", mqtt_format="zigbee2mqtt"
    )
    motion = decoded(discovery_messages(zigbee))[
        "homeassistant/binary_sensor/spottypotty_bath/motion/config"
    ]
    assert motion["state_topic"] == "zigbee2mqtt/pir"
    assert motion["value_template"] == (
        "{{ 'ON' if value_json.occupancy or value_json.presence"
        " or value_json.contact == false else 'OFF' }}"
    )
    assert "off_delay" not in motion
    ble = SensorConfig(id="bath", user_id="u", ble_address="54:48:E6:8F:80:A5")
    motion = decoded(discovery_messages(ble))[
        "homeassistant/binary_sensor/spottypotty_bath/motion/config"
    ]
    assert motion["state_topic"] == "spottypotty/sessions/bath"
    assert motion["off_delay"] == 30
    assert motion["device"]["model"] == "BTHome motion sensor"


def test_removal_clears_every_entity_topic() -> None:
    assert removal_messages("bath") == [
        DiscoveryMessage(f"homeassistant/{component}/spottypotty_bath/{entity}/config", b"")
        for component, entity in [
            ("binary_sensor", "motion"),
            ("binary_sensor", "session"),
            ("sensor", "sessions_today"),
            ("sensor", "last_session_duration"),
            ("sensor", "battery"),
            ("sensor", "rssi"),
        ]
    ]


def test_config_level_messages_use_known_state() -> None:
    config = HubConfig(
        mqtt=MqttSection(topic_prefix="home"),
        sensors=(SensorConfig(id="bath", user_id="u"), SensorConfig(id="hall", user_id="u")),
    )
    states = {"bath": SensorState("bath", battery_level=80, firmware_version="2.0")}
    topics = [m.topic for m in config_discovery_messages(config, states)]
    assert topics == [*entity_topics("bath")[:5], *entity_topics("hall")[:4]]
    battery = decoded(config_discovery_messages(config, states))[entity_topics("bath")[4]]
    assert battery["state_topic"] == "home/bath/motion"
    assert battery["device"]["sw_version"] == "2.0"


def test_a_sensor_in_a_room_shows_the_rooms_session() -> None:
    config = HubConfig(
        sensors=(SensorConfig(id="bath", user_id="u"), SensorConfig(id="radar", user_id="u")),
        rooms=(
            RoomConfig("bathroom", "", ("bath", "radar"), SensorConfig(id="bathroom", user_id="u")),
        ),
    )
    session = decoded(config_discovery_messages(config))[
        "homeassistant/binary_sensor/spottypotty_bath/session/config"
    ]
    assert session["state_topic"] == "spottypotty/sessions/bathroom"
    assert session["json_attributes_topic"] == "spottypotty/sessions/bathroom"
