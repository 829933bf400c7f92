"""Home Assistant MQTT discovery for the hub's sensors: pure, no I/O (contracts §3).

For each configured sensor, `discovery_messages` answers the retained config messages
(`homeassistant/<component>/spottypotty_<sensorId>/<entity>/config`) that make one HA device
with these entities:

| entity | component | state from |
|---|---|---|
| `motion` | binary_sensor (motion) | the sensor's own motion topic (BLE: the session topic) |
| `session` | binary_sensor (occupancy) | `spottypotty/sessions/{sensorId}`: `status == "active"` |
| `sessions_today` | sensor | `spottypotty/sensors/{sensorId}/stats`: `sessionsToday` |
| `last_session_duration` | sensor (duration, min) | the stats topic: `lastSessionDurationMinutes` |
| `battery` / `rssi` | sensor | the firmware's motion metadata, only where known |

Every entity is available only while the hub is (`spottypotty/hub/status` = `online`).
Removing a sensor is an empty retained payload on each of its config topics
(`removal_messages`), which makes Home Assistant delete the entities and the device.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from hub.config import SensorConfig

DISCOVERY_PREFIX: Final = "homeassistant"
HA_STATUS_TOPIC: Final = "homeassistant/status"  # HA's birth ("online") and last will
HUB_STATUS_TOPIC: Final = "spottypotty/hub/status"
SESSION_TOPIC: Final = "spottypotty/sessions/{sensor_id}"
SENSOR_STATS_TOPIC: Final = "spottypotty/sensors/{sensor_id}/stats"
MANUFACTURER: Final = "SpottyPottySense"
MOTION_OFF_DELAY: Final = 30  # seconds: motion reports are events, not on/off states

# (component, object id) of every entity a sensor may have, in publishing order.
ENTITIES: Final[tuple[tuple[str, str], ...]] = (
    ("binary_sensor", "motion"),
    ("binary_sensor", "session"),
    ("sensor", "sessions_today"),
    ("sensor", "last_session_duration"),
    ("sensor", "battery"),
    ("sensor", "rssi"),
)

_AVAILABILITY: Final = (
    {"topic": HUB_STATUS_TOPIC, "payload_available": "online", "payload_not_available": "offline"},
)
# A metadata value when the message carries it, else the entity keeps its state.
_METADATA_TEMPLATE: Final = (
    "{{% set m = value_json.get('metadata', {{}}) if value_json is mapping else {{}} %}}"
    "{{{{ m.get('{key}', this.state) }}}}"
)


@dataclass(frozen=True, slots=True)
class DiscoveryMessage:
    """One retained MQTT message: an entity's config, or b"" to remove it."""

    topic: str
    payload: bytes


def node_id(sensor_id: str) -> str:
    return f"spottypotty_{sensor_id}"


def config_topic(component: str, sensor_id: str, object_id: str) -> str:
    return f"{DISCOVERY_PREFIX}/{component}/{node_id(sensor_id)}/{object_id}/config"


def entity_topics(sensor_id: str) -> list[str]:
    """Every config topic a sensor's entities may use (what removal clears)."""
    return [config_topic(component, sensor_id, obj) for component, obj in ENTITIES]


def removal_messages(sensor_id: str) -> list[DiscoveryMessage]:
    """Empty retained payloads that delete a removed sensor's entities (and its device)."""
    return [DiscoveryMessage(topic, b"") for topic in entity_topics(sensor_id)]


def discovery_messages(
    sensor: SensorConfig,
    *,
    room_id: str | None = None,
    topic_prefix: str = "sensors",
    battery_known: bool = False,
    rssi_known: bool = False,
    firmware_version: str | None = None,
) -> list[DiscoveryMessage]:
    """The retained discovery configs for one sensor; battery/RSSI only where known.

    `room_id`: the room the sensor is in (its sessions are the room's; default: its own
    id, as without `[[rooms]]`). `topic_prefix` is `[mqtt].topic_prefix`;
    `battery_known`/`rssi_known` say whether the sensor ever reported them in its motion
    metadata (SpottyPottySense firmware only).
    """
    payloads = _entity_payloads(
        sensor,
        session_topic=SESSION_TOPIC.format(sensor_id=room_id or sensor.id),
        topic_prefix=topic_prefix,
        battery_known=battery_known,
        rssi_known=rssi_known,
        firmware_version=firmware_version,
    )
    return [
        DiscoveryMessage(
            config_topic(component, sensor.id, obj),
            json.dumps(payload, sort_keys=True, separators=(",", ":")).encode("utf-8"),
        )
        for (component, obj), payload in payloads.items()
    ]


def _device(sensor: SensorConfig, firmware_version: str | None) -> dict[str, Any]:
    device: dict[str, Any] = {
        "identifiers": [node_id(sensor.id)],
        "name": sensor.name or sensor.id,
        "manufacturer": MANUFACTURER,
        "model": _model(sensor),
    }
    if firmware_version:
        device["sw_version"] = firmware_version
    return device


def _model(sensor: SensorConfig) -> str:
    if sensor.ble_address:
        return "BTHome motion sensor"
    if sensor.mqtt_topic:
        return {"esphome": "ESPHome", "zigbee2mqtt": "Zigbee2MQTT"}.get(
            sensor.mqtt_format, "MQTT"
        ) + " motion sensor"
    return "SpottyPottySense motion sensor"


def _motion_state(sensor: SensorConfig, topic_prefix: str, session_topic: str) -> dict[str, Any]:
    """Where motion shows: the sensor's own topic when it talks MQTT, else the hub's."""
    if sensor.mqtt_topic and sensor.mqtt_format == "esphome":
        return {"state_topic": sensor.mqtt_topic, "payload_on": "ON", "payload_off": "OFF"}
    if sensor.mqtt_topic and sensor.mqtt_format == "zigbee2mqtt":
        return {
            "state_topic": sensor.mqtt_topic,
            # occupancy or presence (mmWave); a door's contact is true when closed.
            "value_template": (
                "{{ 'ON' if value_json.occupancy or value_json.presence"
                " or value_json.contact == false else 'OFF' }}"
            ),
            "payload_on": "ON",
            "payload_off": "OFF",
        }
    if sensor.ble_address and not sensor.mqtt_topic:
        # BLE motion never crosses MQTT; every session update follows motion (or its end).
        return {
            "state_topic": session_topic,
            "value_template": "{{ 'ON' if value_json.status == 'active' else 'OFF' }}",
            "payload_on": "ON",
            "payload_off": "OFF",
            "off_delay": MOTION_OFF_DELAY,
        }
    topic = sensor.mqtt_topic or f"{topic_prefix}/{sensor.id}/motion"
    return {
        "state_topic": topic,
        "value_template": (
            "{{ 'ON' if value_json is mapping and value_json.get('event') == "
            "'motion_detected' else 'OFF' }}"
        ),
        "payload_on": "ON",
        "payload_off": "OFF",
        "off_delay": MOTION_OFF_DELAY,
    }


def _entity_payloads(
    sensor: SensorConfig,
    *,
    session_topic: str,
    topic_prefix: str,
    battery_known: bool,
    rssi_known: bool,
    firmware_version: str | None,
) -> dict[tuple[str, str], dict[str, Any]]:
    device = _device(sensor, firmware_version)
    stats_topic = SENSOR_STATS_TOPIC.format(sensor_id=sensor.id)

    def entity(obj: str, name: str, **fields: Any) -> dict[str, Any]:
        return {
            "name": name,
            "unique_id": f"{node_id(sensor.id)}_{obj}",
            "device": device,
            "availability": list(_AVAILABILITY),
            **fields,
        }

    payloads: dict[tuple[str, str], dict[str, Any]] = {
        ("binary_sensor", "motion"): entity(
            "motion",
            "Motion",
            device_class="motion",
            **_motion_state(sensor, topic_prefix, session_topic),
        ),
        ("binary_sensor", "session"): entity(
            "session",
            "Session active",
            device_class="occupancy",
            icon="mdi:music",
            state_topic=session_topic,
            value_template="{{ 'ON' if value_json.status == 'active' else 'OFF' }}",
            payload_on="ON",
            payload_off="OFF",
            json_attributes_topic=session_topic,
        ),
        ("sensor", "sessions_today"): entity(
            "sessions_today",
            "Sessions today",
            icon="mdi:counter",
            state_class="total",
            state_topic=stats_topic,
            value_template="{{ value_json.sessionsToday }}",
        ),
        ("sensor", "last_session_duration"): entity(
            "last_session_duration",
            "Last session duration",
            device_class="duration",
            unit_of_measurement="min",
            state_class="measurement",
            state_topic=stats_topic,
            value_template="{{ value_json.lastSessionDurationMinutes }}",
        ),
    }
    firmware_topic = not sensor.mqtt_topic and not sensor.ble_address
    motion_topic = f"{topic_prefix}/{sensor.id}/motion"
    if battery_known and firmware_topic:
        payloads["sensor", "battery"] = entity(
            "battery",
            "Battery",
            device_class="battery",
            entity_category="diagnostic",
            unit_of_measurement="%",
            state_class="measurement",
            state_topic=motion_topic,
            value_template=_METADATA_TEMPLATE.format(key="batteryLevel"),
        )
    if rssi_known and firmware_topic:
        payloads["sensor", "rssi"] = entity(
            "rssi",
            "Signal strength",
            device_class="signal_strength",
            entity_category="diagnostic",
            unit_of_measurement="dBm",
            state_class="measurement",
            state_topic=motion_topic,
            value_template=_METADATA_TEMPLATE.format(key="signalStrength"),
        )
    return payloads
