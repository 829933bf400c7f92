"""What the daemon starts for the local API and Home Assistant: two long-running tasks.

- `serve(config, daemon)`: the HTTP API and dashboard, until cancelled. It never takes the
  daemon down: a missing token is logged and the API stays off; a port in use is retried.
  aiohttp is imported only here, so `spottypotty invoke` never loads it.
- `home_assistant(config, daemon)`: MQTT discovery (`hub.ha_discovery`), published when the
  broker connection (re)starts and when Home Assistant says `online` on
  `homeassistant/status`; a sensor removed from the config loses its entities and its
  retained topics (empty retained payloads). And the retained state those entities read,
  each published when it changes:
  - `spottypotty/sensors/{id}/stats`: sessions today, last session duration, battery,
    signal, firmware, last motion, last session start and the latest session (small) —
    read from the database at start, when MQTT showed a change of the sensor's session, and
    at midnight; a sensor whose battery or signal becomes known is announced again;
  - `spottypotty/rooms/{id}/state`: the room's controls (enabled, do-not-disturb and when it
    ends, the timeout in force), from the runner's state, every tick (auto-off shows);
  - `spottypotty/hub/state`: Spotify, active sessions, dropped messages, the last cloud
    sync (read every SYNC_READ_SECONDS: `spottypotty sync` writes it) and do-not-disturb.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import socket
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from hub import __version__
from hub.config import HubConfig, Room
from hub.controls import ROOM_STATE_TOPIC, Controls, room_view
from hub.errors import ConfigError, HubError
from hub.ha_discovery import (
    HUB_LAST_SYNC_TOPIC,
    HUB_STATE_TOPIC,
    LAST_MOTION_TOPIC,
    LAST_SESSION_START_TOPIC,
    SENSOR_STATS_TOPIC,
    DiscoveryMessage,
    hub_messages,
    removal_messages,
    retained_topics,
)
from hub.ha_discovery import (
    discovery_messages as sensor_discovery_messages,
)
from hub.store.meta import (
    HA_ANNOUNCED_KEY,
    LAST_SYNC_AT_KEY,
    LAST_SYNC_RESULT_KEY,
    get_meta,
    set_meta,
)
from hub.timeutil import iso, local_zone

if TYPE_CHECKING:
    from sqlite_utils import Database

    from hub.daemon import Daemon
    from hub.ingest.mqtt import MqttLink
    from hub.store.sensors import SensorState

_LOGGER = logging.getLogger(__name__)

RETRY_SECONDS: Final = 30.0  # between attempts to bind a port that is in use
TICK_SECONDS: Final = 1.0  # how often the Home Assistant task looks for changes
SYNC_READ_SECONDS: Final = 60.0  # how often it reads the last cloud sync (another process's)
# A removed sensor's retained state is cleared this long after its entities: HA must have
# dropped them first, or the empty payloads reach them as (invalid) states.
CLEAR_AFTER_SECONDS: Final = 5.0


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
    """The hub's and every configured sensor's (and room's) discovery configs; battery and
    signal where `states` knows them."""
    messages = hub_messages(version=__version__, configuration_url=dashboard_url(config))
    rooms = {room.id: room for room in config.all_rooms()}
    for sensor in config.sensors:
        messages.extend(_sensor_messages(config, sensor.id, (states or {}).get(sensor.id), rooms))
    return messages


def _sensor_messages(
    config: HubConfig, sensor_id: str, state: SensorState | None, rooms: Mapping[str, Room]
) -> list[DiscoveryMessage]:
    sensor = config.sensor(sensor_id)
    if sensor is None:
        return []
    room_id = next((room.id for room in rooms.values() if sensor_id in room.sensor_ids), sensor_id)
    return sensor_discovery_messages(
        sensor,
        room_id=room_id,
        topic_prefix=config.mqtt.topic_prefix,
        battery_known=state is not None and state.battery_level is not None,
        rssi_known=state is not None and state.signal_strength is not None,
        firmware_version=state.firmware_version if state is not None else None,
        room=rooms.get(sensor_id),
    )


def dashboard_url(config: HubConfig) -> str | None:
    """Where people open the dashboard, when the local API is on."""
    if not config.http.enabled:
        return None
    host = config.http.host
    if host in {"", "0.0.0.0", "::"}:  # noqa: S104 - naming the wildcard, not binding it
        host = socket.gethostname()
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{config.http.port}/"


def spotify_state(status: str | None, *, dry_run: bool) -> str:
    """The player's phrase (`SpotifyPlayer.status`) as one word for Home Assistant."""
    if status is None:
        return "dry_run" if dry_run else "not_used"
    words = status.lower()
    for needle, state in (
        ("ready", "ready"),
        ("login", "login_needed"),
        ("premium", "premium_required"),
        ("rate-limited", "rate_limited"),
        ("quota", "rate_limited"),  # a development-mode app's quota: also waits it out
        ("secret", "not_configured"),
    ):
        if needle in words:
            return state
    return "unreachable"


@dataclass(frozen=True, slots=True)
class _Snapshot:
    states: dict[str, SensorState]
    stats: dict[str, dict[str, Any]]
    removed: list[str]
    sync: tuple[str | None, str | None]  # the last cloud sync: when, and its result


def _read(
    config: HubConfig, *, announce: bool, today: dt.date, only: frozenset[str] | None = None
) -> _Snapshot:
    """One short database visit: sensor states and today's stats (of the sensors in `only`,
    or all), the last cloud sync, and when announcing the sensors no longer configured
    (remembering the configured ones for next time)."""
    from hub.store import open_database  # noqa: PLC0415
    from hub.store.sensors import SensorRepository  # noqa: PLC0415

    tz = local_zone(config.hub.timezone)
    midnight = dt.datetime.combine(today, dt.time(), tz).timestamp()
    db = open_database(config.hub.database)
    try:
        repository = SensorRepository(db)
        states: dict[str, SensorState] = {}
        stats: dict[str, dict[str, Any]] = {}
        room_of = {sensor: room.id for room in config.all_rooms() for sensor in room.sensor_ids}
        for sensor in config.sensors:
            room_id = room_of.get(sensor.id, sensor.id)  # its sessions are its room's
            if only is not None and sensor.id not in only and room_id not in only:
                continue
            state = states[sensor.id] = repository.state(sensor.id)
            stats[sensor.id] = _stats(db, room_id, state, today, midnight)
        removed: list[str] = []
        if announce:
            announced = get_meta(db, HA_ANNOUNCED_KEY)
            before = set(json.loads(announced)) if announced else set()
            current = sorted(s.id for s in config.sensors)
            removed = sorted(before - set(current))
            set_meta(db, {HA_ANNOUNCED_KEY: json.dumps(current)})
        sync = (get_meta(db, LAST_SYNC_AT_KEY), get_meta(db, LAST_SYNC_RESULT_KEY))
        return _Snapshot(states, stats, removed, sync)
    finally:
        db.close()  # the daemon's writer checkpoints the WAL


def _stats(
    db: Database, room_id: str, state: SensorState, today: dt.date, midnight: float
) -> dict[str, Any]:
    """A sensor's retained figures (what its Home Assistant entities read): its own state,
    and the sessions of its room (`room_id`: its own id for a sensor in no room)."""
    (count,) = db.execute(
        "SELECT count(*) FROM sessions WHERE sensorId = ? AND startTime >= ?",
        [room_id, int(midnight)],
    ).fetchone()
    last = db.execute(
        "SELECT durationMinutes FROM sessions WHERE sensorId = ? AND status = 'completed'"
        " ORDER BY startTime DESC LIMIT 1",
        [room_id],
    ).fetchone()
    latest = db.execute(
        "SELECT sessionId, status, startTimeISO, motionEventsCount, playbackStarted,"
        " playbackStopped, playbackNote FROM sessions WHERE sensorId = ?"
        " ORDER BY startTime DESC LIMIT 1",
        [room_id],
    ).fetchone()
    session = None
    if latest is not None:
        session_id, status, start, motions, started, stopped, note = latest
        session = {
            "sessionId": session_id,
            "status": status,
            "start": start,
            "motionEvents": motions,
            "playing": bool(started) and not stopped and status == "active",
            "note": note,
        }
    return {
        "date": today.isoformat(),
        "sessionsToday": count,
        "lastSessionDurationMinutes": last[0] if last else None,
        "batteryLevel": state.battery_level,
        "signalStrength": state.signal_strength,
        "firmwareVersion": state.firmware_version,
        "lastMotion": None if state.last_motion_at is None else iso(state.last_motion_at),
        "lastSessionStart": None if session is None else session["start"],
        "sessionActive": session is not None and session["status"] == "active",
        "session": session,
    }


def _known(state: SensorState | None) -> tuple[bool, bool, str | None]:
    """What a sensor's discovery depends on: battery known, signal known, firmware."""
    if state is None:
        return False, False, None
    return (
        state.battery_level is not None,
        state.signal_strength is not None,
        state.firmware_version,
    )


class _Published:
    """The payload last published per topic: only changes go on the wire."""

    def __init__(self, link: MqttLink) -> None:
        self._link = link
        self._last: dict[str, bytes] = {}

    def put(self, topic: str, payload: bytes | str | dict[str, Any]) -> None:
        if isinstance(payload, dict):
            payload = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        data = payload.encode("utf-8") if isinstance(payload, str) else payload
        if self._last.get(topic) != data:
            self._link.publish(topic, data, retain=True)
            self._last[topic] = data

    def forget(self) -> None:
        """Publish everything again (a new broker connection, or Home Assistant restarted)."""
        self._last.clear()


async def home_assistant(config: HubConfig, daemon: Daemon, *, tick: float = TICK_SECONDS) -> None:
    """Discovery and the retained state it reads, on MQTT, until cancelled (start it always)."""
    tz = local_zone(config.hub.timezone)
    loop = asyncio.get_running_loop()
    was_connected = False
    stats_day: dt.date | None = None
    known: dict[str, tuple[bool, bool, str | None]] = {}  # what each announce said
    sync: tuple[str | None, str | None] = (None, None)
    sync_read_at = -SYNC_READ_SECONDS
    published: _Published | None = None
    rooms = config.all_rooms()
    clears: list[tuple[float, list[str]]] = []  # (when, retained topics of removed sensors)
    while True:
        await asyncio.sleep(tick)
        link, runner = daemon.link, daemon.runner
        if link is None or runner is None:
            continue
        if published is None:
            published = _Published(link)
        connected = link.connected
        birth: asyncio.Event | None = getattr(link, "ha_online", None)
        announce = connected and (not was_connected or (birth is not None and birth.is_set()))
        was_connected = connected
        if not connected:
            continue
        if announce:
            published.forget()
        today = dt.datetime.now(tz).date()
        changed = frozenset(daemon.sessions_shown)
        read_sync = loop.time() - sync_read_at >= SYNC_READ_SECONDS
        if announce or changed or today != stats_day or read_sync:
            if birth is not None:
                birth.clear()
            daemon.sessions_shown.clear()
            only = None if announce or today != stats_day else changed
            try:
                snapshot = await asyncio.to_thread(
                    _read, config, announce=announce, today=today, only=only
                )
            except (HubError, OSError, ValueError, sqlite3.Error) as exc:
                _LOGGER.warning("Home Assistant: cannot read the database: %s", exc)
                was_connected = was_connected and not announce  # announce again next time
                daemon.sessions_shown.update(changed)
                continue
            stats_day, sync, sync_read_at = today, snapshot.sync, loop.time()
            _announce(config, link, snapshot, known, announce=announce)
            if snapshot.removed:
                topics = [t for sensor_id in snapshot.removed for t in retained_topics(sensor_id)]
                clears.append((loop.time() + CLEAR_AFTER_SECONDS, topics))
            for sensor_id, values in snapshot.stats.items():
                _publish_stats(published, sensor_id, values)
        while clears and clears[0][0] <= loop.time():
            for topic in clears.pop(0)[1]:
                link.publish(topic, b"", retain=True)
        now = daemon.now()
        controls = runner.controls
        for room in rooms:
            published.put(
                ROOM_STATE_TOPIC.format(room_id=room.id), room_view(config, controls, room.id, now)
            )
        published.put(HUB_STATE_TOPIC, _hub_state(config, daemon, controls, sync, now))
        if sync[0]:
            published.put(HUB_LAST_SYNC_TOPIC, sync[0])


def _publish_stats(published: _Published, sensor_id: str, values: dict[str, Any]) -> None:
    """A sensor's stats; its timestamps on topics of their own, once known."""
    published.put(SENSOR_STATS_TOPIC.format(sensor_id=sensor_id), values)
    for key, topic in (
        ("lastMotion", LAST_MOTION_TOPIC),
        ("lastSessionStart", LAST_SESSION_START_TOPIC),
    ):
        if values[key]:
            published.put(topic.format(sensor_id=sensor_id), values[key])


def _announce(
    config: HubConfig,
    link: MqttLink,
    snapshot: _Snapshot,
    known: dict[str, tuple[bool, bool, str | None]],
    *,
    announce: bool,
) -> None:
    """Discovery for everything (`announce`), else for what of a sensor became known: its
    battery or signal entity (they appear when first reported), and a new firmware version
    on one entity (HA updates the device from any of its configs). Only those: every other
    config would queue ahead of the sessions' own MQTT updates."""
    rooms = {room.id: room for room in config.all_rooms()}
    if announce:
        for sensor_id in snapshot.removed:
            for message in removal_messages(sensor_id):
                link.publish(message.topic, message.payload, retain=True)
        messages = discovery_messages(config, snapshot.states)
        known.clear()
        known.update({s: _known(state) for s, state in snapshot.states.items()})
        _LOGGER.info(
            "Home Assistant discovery sent for %d sensor(s)%s",
            len(config.sensors),
            f", removed {', '.join(snapshot.removed)}" if snapshot.removed else "",
        )
    else:
        messages = []
        for sensor_id, state in snapshot.states.items():
            now_known, before = _known(state), known.get(sensor_id, (False, False, None))
            if now_known == before:
                continue
            known[sensor_id] = now_known
            wanted = {
                obj
                for obj, changed in (
                    ("/battery/", now_known[0] != before[0]),
                    ("/rssi/", now_known[1] != before[1]),
                    ("/motion/", now_known[2] != before[2]),
                )
                if changed
            }
            messages.extend(
                message
                for message in _sensor_messages(config, sensor_id, state, rooms)
                if any(obj in message.topic for obj in wanted)
            )
    for message in messages:
        link.publish(message.topic, message.payload, retain=True)


def _hub_state(
    config: HubConfig,
    daemon: Daemon,
    controls: Controls,
    sync: tuple[str | None, str | None],
    now: float,
) -> dict[str, Any]:
    status = daemon.spotify_status()
    until = controls.dnd_until(None, now)
    runner = daemon.runner
    return {
        "spotify": spotify_state(status, dry_run=config.spotify.dry_run),
        "spotifyDetail": status,
        "activeSessions": len(runner.engine.active) if runner is not None else 0,
        "droppedMessages": daemon.dropped_messages(),
        "lastSyncResult": sync[1],
        "dnd": controls.own_dnd(None, now),
        "dndUntil": None if until is None else iso(until),
    }
