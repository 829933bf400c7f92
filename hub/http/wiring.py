"""What the daemon starts for the local API and Home Assistant: two long-running tasks.

- `serve(config, daemon)`: the HTTP API and dashboard, until cancelled. It never takes the
  daemon down: a missing token is logged and the API stays off; a port in use is retried.
  aiohttp is imported only here, so `spottypotty invoke` never loads it.
- `home_assistant(config, daemon)`: MQTT discovery (`hub.ha_discovery`), published when the
  broker connection (re)starts and when Home Assistant says `online` on
  `homeassistant/status`; entities of sensors removed from the config are deleted (empty
  retained configs); and each sensor's `spottypotty/sensors/{id}/stats` (sessions today,
  last session duration), retained, refreshed when a session starts or ends and at midnight.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from hub.config import HubConfig
from hub.errors import ConfigError, HubError
from hub.ha_discovery import (
    SENSOR_STATS_TOPIC,
    DiscoveryMessage,
    removal_messages,
)
from hub.ha_discovery import (
    discovery_messages as sensor_discovery_messages,
)
from hub.store.meta import HA_ANNOUNCED_KEY, get_meta, set_meta
from hub.timeutil import local_zone

if TYPE_CHECKING:
    from hub.daemon import Daemon
    from hub.store.sensors import SensorState

_LOGGER = logging.getLogger(__name__)

RETRY_SECONDS: Final = 30.0  # between attempts to bind a port that is in use
TICK_SECONDS: Final = 1.0  # how often the Home Assistant task looks for changes


async def serve(config: HubConfig, daemon: Daemon) -> None:
    """Run the HTTP API and dashboard until cancelled (start it when `config.http.enabled`)."""
    from hub.http.server import run_server  # noqa: PLC0415 - aiohttp only when serving

    while True:
        try:
            await run_server(config, daemon)
        except ConfigError as exc:
            _LOGGER.error("HTTP API not started: %s", exc)  # noqa: TRY400 - no traceback needed
            return
        except OSError as exc:
            _LOGGER.error(  # noqa: TRY400
                "HTTP API cannot listen on %s:%d (%s); retrying in %.0f s",
                config.http.host,
                config.http.port,
                exc.strerror or exc,
                RETRY_SECONDS,
            )
            await asyncio.sleep(RETRY_SECONDS)
        else:
            return


def discovery_messages(
    config: HubConfig, states: Mapping[str, SensorState] | None = None
) -> list[DiscoveryMessage]:
    """Every configured sensor's discovery configs; battery/RSSI where `states` knows them."""
    messages: list[DiscoveryMessage] = []
    room_of = {sensor_id: room.id for room in config.all_rooms() for sensor_id in room.sensor_ids}
    for sensor in config.sensors:
        state = (states or {}).get(sensor.id)
        messages.extend(
            sensor_discovery_messages(
                sensor,
                room_id=room_of.get(sensor.id, sensor.id),
                topic_prefix=config.mqtt.topic_prefix,
                battery_known=state is not None and state.battery_level is not None,
                rssi_known=state is not None and state.signal_strength is not None,
                firmware_version=state.firmware_version if state is not None else None,
            )
        )
    return messages


@dataclass(frozen=True, slots=True)
class _Snapshot:
    states: dict[str, SensorState]
    stats: dict[str, dict[str, Any]]
    removed: list[str]


def _read(
    config: HubConfig, *, announce: bool, today: dt.date, only: frozenset[str] | None = None
) -> _Snapshot:
    """One short database visit: sensor states and today's stats (of the sensors in `only`,
    or all), and when announcing the sensors no longer configured (remembering the
    configured ones for next time)."""
    from hub.store import open_database  # noqa: PLC0415
    from hub.store.sensors import SensorRepository  # noqa: PLC0415

    tz = local_zone(config.hub.timezone)
    midnight = dt.datetime.combine(today, dt.time(), tz).timestamp()
    db = open_database(config.hub.database)
    try:
        repository = SensorRepository(db)
        states: dict[str, SensorState] = {}
        stats: dict[str, dict[str, Any]] = {}
        for sensor in config.sensors:
            if only is not None and sensor.id not in only:
                continue
            states[sensor.id] = repository.state(sensor.id)
            (count,) = db.execute(
                "SELECT count(*) FROM sessions WHERE sensorId = ? AND startTime >= ?",
                [sensor.id, int(midnight)],
            ).fetchone()
            last = db.execute(
                "SELECT durationMinutes FROM sessions WHERE sensorId = ? AND status = 'completed'"
                " ORDER BY startTime DESC LIMIT 1",
                [sensor.id],
            ).fetchone()
            stats[sensor.id] = {
                "date": today.isoformat(),
                "sessionsToday": count,
                "lastSessionDurationMinutes": last[0] if last else None,
            }
        removed: list[str] = []
        if announce:
            announced = get_meta(db, HA_ANNOUNCED_KEY)
            before = set(json.loads(announced)) if announced else set()
            current = sorted(s.id for s in config.sensors)
            removed = sorted(before - set(current))
            set_meta(db, {HA_ANNOUNCED_KEY: json.dumps(current)})
        return _Snapshot(states, stats, removed)
    finally:
        db.close()  # the daemon's writer checkpoints the WAL


async def home_assistant(config: HubConfig, daemon: Daemon, *, tick: float = TICK_SECONDS) -> None:
    """Discovery and per-sensor stats on MQTT, until cancelled (start it always)."""
    tz = local_zone(config.hub.timezone)
    was_connected = False
    stats_day: dt.date | None = None
    stats_active: dict[str, str] = {}
    while True:
        await asyncio.sleep(tick)
        link, runner = daemon.link, daemon.runner
        if link is None or runner is None:
            continue
        connected = link.connected
        birth: asyncio.Event | None = getattr(link, "ha_online", None)
        announce = connected and (not was_connected or (birth is not None and birth.is_set()))
        was_connected = connected
        today = dt.datetime.now(tz).date()
        active = {sensor: session.session_id for sensor, session in runner.engine.active.items()}
        changed = {
            s for s in active.keys() | stats_active.keys() if active.get(s) != stats_active.get(s)
        }
        if not connected or not (announce or changed or today != stats_day):
            continue
        if birth is not None:
            birth.clear()
        only = None if announce or today != stats_day else frozenset(changed)
        try:
            snapshot = await asyncio.to_thread(
                _read, config, announce=announce, today=today, only=only
            )
        except (HubError, OSError, ValueError, sqlite3.Error) as exc:
            _LOGGER.warning("Home Assistant: cannot read the database: %s", exc)
            was_connected = was_connected and not announce  # announce again next time
            continue
        stats_day, stats_active = today, active
        if announce:
            for sensor_id in snapshot.removed:
                for message in removal_messages(sensor_id):
                    link.publish(message.topic, message.payload, retain=True)
            for message in discovery_messages(config, snapshot.states):
                link.publish(message.topic, message.payload, retain=True)
            _LOGGER.info(
                "Home Assistant discovery sent for %d sensor(s)%s",
                len(config.sensors),
                f", removed {', '.join(snapshot.removed)}" if snapshot.removed else "",
            )
        for sensor_id, values in snapshot.stats.items():
            payload = json.dumps(values, separators=(",", ":"))
            link.publish(SENSOR_STATS_TOPIC.format(sensor_id=sensor_id), payload, retain=True)
