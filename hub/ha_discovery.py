"""Home Assistant MQTT discovery: pure, no I/O (contracts §3).

The retained config messages (`homeassistant/<component>/<node>/<entity>/config`) make

- a **hub device** (`spottypotty_hub`): connected, Spotify state, last cloud sync and its
  result, active sessions, dropped messages, and a hub-wide do-not-disturb switch; it links
  to the dashboard (`configuration_url`) when the local API is on;
- a **device per sensor** (`spottypotty_<sensorId>`, `via_device` the hub): motion,
  session active (small attributes), sessions today, last session duration, last motion and
  last session start (timestamps), battery and signal (once the sensor reported them);
- per **room** (`HubConfig.all_rooms`; a room that is one sensor of the same id shares its
  device): switches `enabled` and `do not disturb`, buttons `end session now` and
  `test playback`, and a `session timeout` number, on command topics only Home Assistant's
  account and the hub may write (deploy/mosquitto/acl).

State comes from retained topics the hub publishes (`hub.http.wiring.home_assistant`):
`spottypotty/hub/status`, `spottypotty/hub/state` and `spottypotty/hub/last_sync` (the hub),
`spottypotty/sensors/{id}/stats` (a sensor's figures, battery, signal and its latest
session), `spottypotty/sensors/{id}/last_motion` and `…/last_session_start` (timestamps,
once known) and `spottypotty/rooms/{id}/state` (a room's controls). Every number is
rendered through a template that yields a number or `None` (unknown), never a stale
`this.state`: HA logs an ERROR for a non-number in a numeric sensor.

Availability: every entity needs the hub online; a SpottyPottySense firmware sensor's
entities also need the sensor's own retained `status` online (`availability_mode: all`), so
a dead sensor shows unavailable, not "Clear". Removing a sensor is an empty retained
payload on each of its config topics (`removal_messages`), which makes Home Assistant
delete the entities and the device, and on its retained state topics (`retained_topics`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from hub.config import Room, SensorConfig
from hub.controls import ROOM_STATE_TOPIC, command_topic

DISCOVERY_PREFIX: Final = "homeassistant"
HA_STATUS_TOPIC: Final = "homeassistant/status"  # HA's birth ("online") and last will
HUB_STATUS_TOPIC: Final = "spottypotty/hub/status"
HUB_STATE_TOPIC: Final = "spottypotty/hub/state"
SESSION_TOPIC: Final = "spottypotty/sessions/{sensor_id}"
SENSOR_STATS_TOPIC: Final = "spottypotty/sensors/{sensor_id}/stats"
# Timestamps each on a topic of their own, published once known: HA 2024.3 has no payload
# that leaves a timestamp sensor unknown without a WARNING, so "never" is no message at all.
LAST_MOTION_TOPIC: Final = "spottypotty/sensors/{sensor_id}/last_motion"
LAST_SESSION_START_TOPIC: Final = "spottypotty/sensors/{sensor_id}/last_session_start"
HUB_LAST_SYNC_TOPIC: Final = "spottypotty/hub/last_sync"
MANUFACTURER: Final = "SpottyPottySense"
HUB_NODE: Final = "spottypotty_hub"
MOTION_OFF_DELAY: Final = 30  # seconds: motion reports are events, not on/off states
TIMEOUT_RANGE: Final = (0.5, 240.0)  # minutes the timeout number offers

# (component, object id) of every entity a sensor (and its room) may have: what removal clears.
SENSOR_ENTITIES: Final[tuple[tuple[str, str], ...]] = (
    ("binary_sensor", "motion"),
    ("binary_sensor", "session"),
    ("sensor", "sessions_today"),
    ("sensor", "last_session_duration"),
    ("sensor", "battery"),
    ("sensor", "rssi"),
    ("sensor", "last_motion"),
    ("sensor", "last_session_start"),
)
ROOM_ENTITIES: Final[tuple[tuple[str, str], ...]] = (
    ("switch", "enabled"),
    ("switch", "dnd"),
    ("button", "end_session"),
    ("button", "test_playback"),
    ("number", "timeout"),
)
ENTITIES: Final = SENSOR_ENTITIES + ROOM_ENTITIES

_HUB_AVAILABILITY: Final = {
    "topic": HUB_STATUS_TOPIC,
    "payload_available": "online",
    "payload_not_available": "offline",
}
# The firmware's status is JSON (`{"status": "online", …}`); a bare word works too.
_SENSOR_STATUS_TEMPLATE: Final = "{{ value_json.status if value_json is mapping else value }}"


def _number(key: str) -> str:
    """A numeric field of a JSON payload, or None (unknown) when absent or not a number."""
    return (
        f"{{% set v = value_json.get('{key}') if value_json is mapping else none %}}"
        "{{ v if v is number else 'None' }}"
    )


def _text(key: str, absent: str) -> str:
    """A text field, or `absent` when it is missing or empty."""
    return (
        f"{{% set v = value_json.get('{key}') if value_json is mapping else none %}}"
        f"{{{{ v if v is string and v else '{absent}' }}}}"
    )


def _attributes(key: str) -> str:
    """A JSON object field as the entity's attributes ({} when absent)."""
    return (
        f"{{% set v = value_json.get('{key}') if value_json is mapping else none %}}"
        "{{ (v if v is mapping else {}) | tojson }}"
    )


_DND_ATTRIBUTES: Final = (
    "{% set v = value_json.get('dndUntil') if value_json is mapping else none %}"
    "{{ {'until': v} | tojson }}"
)


def _switch(key: str) -> str:
    return f"{{{{ 'ON' if value_json is mapping and value_json.get('{key}') else 'OFF' }}}}"


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
    """Every config topic a sensor's (and its room's) entities may use (what removal clears)."""
    return [config_topic(component, sensor_id, obj) for component, obj in ENTITIES]


def retained_topics(sensor_id: str) -> list[str]:
    """The hub's retained state topics of a sensor (and its room), cleared on removal."""
    return [
        SESSION_TOPIC.format(sensor_id=sensor_id),
        SENSOR_STATS_TOPIC.format(sensor_id=sensor_id),
        LAST_MOTION_TOPIC.format(sensor_id=sensor_id),
        LAST_SESSION_START_TOPIC.format(sensor_id=sensor_id),
        ROOM_STATE_TOPIC.format(room_id=sensor_id),
    ]


def removal_messages(sensor_id: str) -> list[DiscoveryMessage]:
    """Empty retained payloads that delete a removed sensor's entities (and its device).
    Its retained state (`retained_topics`) is cleared a moment later: an empty payload is
    not a valid state for the entities still subscribed."""
    return [DiscoveryMessage(topic, b"") for topic in entity_topics(sensor_id)]


def _message(topic: str, payload: dict[str, Any]) -> DiscoveryMessage:
    return DiscoveryMessage(
        topic, json.dumps(payload, sort_keys=True, separators=(",", ":")).encode("utf-8")
    )


# --- the hub -------------------------------------------------------------------------------


def hub_messages(*, version: str, configuration_url: str | None = None) -> list[DiscoveryMessage]:
    """The hub device's entities; `configuration_url` is the dashboard's (when the API is on)."""
    device: dict[str, Any] = {
        "identifiers": [HUB_NODE],
        "name": "SpottyPottySense hub",
        "manufacturer": MANUFACTURER,
        "model": "Hub",
        "sw_version": version,
    }
    if configuration_url:
        device["configuration_url"] = configuration_url

    def entity(obj: str, name: str, *, available: bool = True, **fields: Any) -> dict[str, Any]:
        payload = {"name": name, "unique_id": f"{HUB_NODE}_{obj}", "device": device, **fields}
        if available:
            payload["availability"] = [_HUB_AVAILABILITY]
        return payload

    state: dict[str, Any] = {"state_topic": HUB_STATE_TOPIC}
    entities = {
        ("binary_sensor", "connectivity"): entity(
            "connectivity",
            "Connected",
            available=False,  # it says itself whether the hub is there
            device_class="connectivity",
            entity_category="diagnostic",
            state_topic=HUB_STATUS_TOPIC,
            payload_on="online",
            payload_off="offline",
        ),
        ("sensor", "spotify"): entity(
            "spotify",
            "Spotify",
            icon="mdi:spotify",
            value_template=_text("spotify", "unknown"),
            **state,
        ),
        ("sensor", "last_sync"): entity(
            "last_sync",
            "Last cloud sync",
            device_class="timestamp",
            entity_category="diagnostic",
            state_topic=HUB_LAST_SYNC_TOPIC,
        ),
        ("sensor", "last_sync_result"): entity(
            "last_sync_result",
            "Last cloud sync result",
            icon="mdi:cloud-upload",
            entity_category="diagnostic",
            value_template=_text("lastSyncResult", "never"),
            **state,
        ),
        ("sensor", "active_sessions"): entity(
            "active_sessions",
            "Active sessions",
            icon="mdi:music",
            state_class="measurement",
            value_template=_number("activeSessions"),
            **state,
        ),
        ("sensor", "dropped_messages"): entity(
            "dropped_messages",
            "Dropped messages",
            icon="mdi:email-remove",
            entity_category="diagnostic",
            state_class="total_increasing",
            value_template=_number("droppedMessages"),
            **state,
        ),
        ("switch", "dnd"): entity(
            "dnd",
            "Do not disturb",
            icon="mdi:music-off",
            command_topic=command_topic(None, "dnd"),
            value_template=_switch("dnd"),
            json_attributes_topic=HUB_STATE_TOPIC,
            json_attributes_template=_DND_ATTRIBUTES,
            **state,
        ),
    }
    return [
        _message(f"{DISCOVERY_PREFIX}/{component}/{HUB_NODE}/{obj}/config", payload)
        for (component, obj), payload in entities.items()
    ]


# --- a sensor ------------------------------------------------------------------------------


def discovery_messages(
    sensor: SensorConfig,
    *,
    room_id: str | None = None,
    topic_prefix: str = "sensors",
    battery_known: bool = False,
    rssi_known: bool = False,
    firmware_version: str | None = None,
    room: Room | None = None,
) -> list[DiscoveryMessage]:
    """The retained discovery configs for one sensor, battery/signal only where known, and
    the controls of `room` when it is this sensor's own room (same id, this sensor alone).

    `room_id`: the room the sensor is in (its sessions are the room's; default: its own
    id, as without `[[rooms]]`). `topic_prefix` is `[mqtt].topic_prefix`;
    `battery_known`/`rssi_known` say whether the sensor ever reported them.
    """
    device = _device(sensor, firmware_version)
    availability = [_HUB_AVAILABILITY]
    if not sensor.mqtt_topic and not sensor.ble_address:  # the firmware's own status topic
        availability.append(
            {
                "topic": f"{topic_prefix}/{sensor.id}/status",
                "value_template": _SENSOR_STATUS_TEMPLATE,
                "payload_available": "online",
                "payload_not_available": "offline",
            }
        )
    entity = _entity_maker(node_id(sensor.id), device, availability)
    payloads = _sensor_payloads(
        sensor,
        entity,
        session_topic=SESSION_TOPIC.format(sensor_id=room_id or sensor.id),
        topic_prefix=topic_prefix,
        battery_known=battery_known,
        rssi_known=rssi_known,
    )
    if room is not None and room.sensor_ids == (sensor.id,) and room.id == sensor.id:
        payloads.update(_room_payloads(room, _entity_maker(node_id(room.id), device)))
    return [
        _message(config_topic(component, sensor.id, obj), payload)
        for (component, obj), payload in payloads.items()
    ]


_Entity = Callable[..., dict[str, Any]]


def _entity_maker(
    node: str, device: dict[str, Any], availability: list[dict[str, Any]] | None = None
) -> _Entity:
    def entity(obj: str, name: str, **fields: Any) -> dict[str, Any]:
        return {
            "name": name,
            "unique_id": f"{node}_{obj}",
            "device": device,
            "availability": availability or [_HUB_AVAILABILITY],
            "availability_mode": "all",
            **fields,
        }

    return entity


def _device(sensor: SensorConfig, firmware_version: str | None) -> dict[str, Any]:
    device: dict[str, Any] = {
        "identifiers": [node_id(sensor.id)],
        "name": sensor.name or sensor.id,
        "manufacturer": MANUFACTURER,
        "model": _model(sensor),
        "via_device": HUB_NODE,
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
            "value_template": (
                # occupancy or presence (mmWave); a door's contact is true when closed
                "{{ 'ON' if value_json is mapping and (value_json.get('occupancy')"
                " or value_json.get('presence') or value_json.get('contact') == false)"
                " else 'OFF' }}"
            ),
            "payload_on": "ON",
            "payload_off": "OFF",
        }
    if sensor.ble_address and not sensor.mqtt_topic:
        # BLE motion never crosses MQTT; every session update follows motion (or its end).
        # (its room's session: `session_topic`)
        return {
            "state_topic": session_topic,
            "value_template": (
                "{{ 'ON' if value_json is mapping and value_json.get('status') == 'active' "
                "else 'OFF' }}"
            ),
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


def _sensor_payloads(
    sensor: SensorConfig,
    entity: _Entity,
    *,
    session_topic: str,
    topic_prefix: str,
    battery_known: bool,
    rssi_known: bool,
) -> dict[tuple[str, str], dict[str, Any]]:
    stats = {"state_topic": SENSOR_STATS_TOPIC.format(sensor_id=sensor.id)}
    payloads: dict[tuple[str, str], dict[str, Any]] = {
        ("binary_sensor", "motion"): entity(
            "motion",
            "Motion",
            device_class="motion",
            **_motion_state(sensor, topic_prefix, session_topic),
        ),
        # Off from the start (the stats topic is published for every sensor), and a few
        # attributes that change only with the session, not the whole record: HA's recorder
        # keeps a row per distinct set of attributes.
        ("binary_sensor", "session"): entity(
            "session",
            "Session active",
            device_class="occupancy",
            icon="mdi:music",
            value_template=(
                "{{ 'ON' if value_json is mapping and value_json.get('sessionActive') else 'OFF' }}"
            ),
            payload_on="ON",
            payload_off="OFF",
            json_attributes_topic=stats["state_topic"],
            json_attributes_template=_attributes("session"),
            **stats,
        ),
        ("sensor", "sessions_today"): entity(
            "sessions_today",
            "Sessions today",
            icon="mdi:counter",
            state_class="total",
            value_template=_number("sessionsToday"),
            **stats,
        ),
        ("sensor", "last_session_duration"): entity(
            "last_session_duration",
            "Last session duration",
            device_class="duration",
            unit_of_measurement="min",
            state_class="measurement",
            value_template=_number("lastSessionDurationMinutes"),
            **stats,
        ),
        ("sensor", "last_motion"): entity(
            "last_motion",
            "Last motion",
            device_class="timestamp",
            state_topic=LAST_MOTION_TOPIC.format(sensor_id=sensor.id),
        ),
        ("sensor", "last_session_start"): entity(
            "last_session_start",
            "Last session start",
            device_class="timestamp",
            state_topic=LAST_SESSION_START_TOPIC.format(sensor_id=sensor.id),
        ),
    }
    if battery_known:
        payloads["sensor", "battery"] = entity(
            "battery",
            "Battery",
            device_class="battery",
            entity_category="diagnostic",
            unit_of_measurement="%",
            state_class="measurement",
            value_template=_number("batteryLevel"),
            **stats,
        )
    if rssi_known:
        payloads["sensor", "rssi"] = entity(
            "rssi",
            "Signal strength",
            device_class="signal_strength",
            entity_category="diagnostic",
            unit_of_measurement="dBm",
            state_class="measurement",
            value_template=_number("signalStrength"),
            **stats,
        )
    return payloads


def _room_payloads(room: Room, entity: _Entity) -> dict[tuple[str, str], dict[str, Any]]:
    """A room's controls: commands on `spottypotty/rooms/{id}/{control}/set`, state on the
    room's retained state topic."""
    state = {"state_topic": ROOM_STATE_TOPIC.format(room_id=room.id)}
    low, high = TIMEOUT_RANGE
    return {
        ("switch", "enabled"): entity(
            "enabled",
            "Enabled",
            icon="mdi:motion-sensor",
            entity_category="config",
            command_topic=command_topic(room.id, "enabled"),
            value_template=_switch("enabled"),
            **state,
        ),
        ("switch", "dnd"): entity(
            "dnd",
            "Do not disturb",
            icon="mdi:music-off",
            command_topic=command_topic(room.id, "dnd"),
            value_template=_switch("dnd"),
            json_attributes_topic=state["state_topic"],
            json_attributes_template=_DND_ATTRIBUTES,
            **state,
        ),
        ("button", "end_session"): entity(
            "end_session",
            "End session now",
            icon="mdi:stop-circle",
            command_topic=command_topic(room.id, "end_session"),
        ),
        ("button", "test_playback"): entity(
            "test_playback",
            "Test playback",
            icon="mdi:play-circle",
            entity_category="diagnostic",
            command_topic=command_topic(room.id, "test_playback"),
        ),
        ("number", "timeout"): entity(
            "timeout",
            "Session timeout",
            icon="mdi:timer-outline",
            entity_category="config",
            command_topic=command_topic(room.id, "timeout"),
            value_template=_number("timeoutMinutes"),
            min=low,
            max=high,
            step=0.5,
            mode="box",
            unit_of_measurement="min",
            **state,
        ),
    }
