"""`spottypotty demo` (`make demo`): the real daemon, a throwaway broker, simulated sensors.

Everything on embedded defaults — a mosquitto on a free loopback port, SQLite under the
demo folder, Spotify in dry-run, 3-second timeouts — so a newcomer watches sessions
start, extend and end through the real MQTT → runner → SQLite path, then the analytics.
A bathroom room of three sensors (the firmware's PIR, an ESPHome mmWave, a Zigbee2MQTT
door) shows someone sitting still keep the music, and the door end it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import shutil
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hub.cli.reports import analytics_report, sessions_report
from hub.config import HubConfig, load_config
from hub.daemon import Daemon
from hub.errors import HubError
from hub.ingest.mqtt import publish_messages, watch
from hub.sessions.operations import OperationContext, handle
from hub.simulate import motion_messages
from hub.store import close_database, open_database
from hub.systemd import Notifier
from hub.timeutil import local_zone

DEMO_CONFIG = """\
# Written by `spottypotty demo`: embedded defaults, safe to delete.
[hub]
database = "hub.db"

[mqtt]
host = "127.0.0.1"
port = {port}

[sessions]
timeout_minutes = {timeout_minutes}   # 3 seconds, so the demo does not take all day
debounce_seconds = {debounce_seconds}
door_timeout_seconds = {door_timeout_seconds}

[spotify]
dry_run = true                # log what would be played, call nothing

[[sensors]]
id = "bathroom_main"
user_id = "demo-user"
name = "Main bathroom"
spotify_device = "Bathroom speaker"
context_uri = "spotify:playlist:37i9dQZF1DXcBWIGoYBM5M"
volume = 40

[[sensors]]
id = "ensuite"
user_id = "demo-user"
name = "En-suite (in quiet hours right now)"
spotify_device = "En-suite speaker"
context_uri = "spotify:playlist:37i9dQZF1DX4sWSpwq3LiO"
quiet_hours = {{ start = "{quiet_start}", end = "{quiet_end}" }}

# A room of three sensors: one session, one play, however many of them report.
[[sensors]]
id = "bath_pir"
user_id = "demo-user"
[[sensors]]
id = "bath_radar"                  # an mmWave on ESPHome: ON while someone is there
user_id = "demo-user"
mqtt_topic = "demo/bath_radar/binary_sensor/presence/state"
mqtt_format = "esphome"
kind = "presence"
[[sensors]]
id = "bath_door"                   # a Zigbee2MQTT contact: {{"contact": true}} is closed
user_id = "demo-user"
mqtt_topic = "zigbee2mqtt/bath_door"
mqtt_format = "zigbee2mqtt"
kind = "door"

[[rooms]]
id = "bathroom"
name = "Bathroom"
sensors = ["bath_pir", "bath_radar", "bath_door"]
spotify_device = "Bathroom speaker"
context_uri = "spotify:playlist:37i9dQZF1DX4sWSpwq3LiO"
"""

# (seconds after the start, sensor, its payload (None: the firmware's motion), what the hub
# makes of it) — the simulated sensors.
SCRIPT: tuple[tuple[float, str, bytes | None, str], ...] = (
    (0.0, "bathroom_main", None, "someone walks in: a session starts, music is asked for"),
    (0.5, "bathroom_main", None, "same burst: coalesced into the last motion, still extends"),
    (2.0, "bathroom_main", None, "still there: counted, extends the session"),
    (2.5, "garden_shed", None, "nobody configured this sensor: dropped, never plays"),
    (3.0, "ensuite", None, "quiet hours there: recorded, no music"),
    (
        4.0,
        "bath_door",
        b'{"contact": false}',
        "the bathroom door opens: a door alone plays nothing",
    ),
    (4.5, "bath_pir", None, "someone walks into the bathroom: one session for the room"),
    (5.0, "bath_door", b'{"contact": true}', "the door closes behind them"),
    (6.5, "bath_radar", b"ON", "the mmWave sees them sitting still: held, no timeout"),
    (9.0, "bathroom_main", None, "back again later: a second session"),
    (11.0, "bath_radar", b"OFF", "the mmWave lost them, but the door is closed with them inside"),
    (12.0, "bath_door", b'{"contact": false}', "the door opens: they leave, the door timeout runs"),
)
TIMEOUT_SECONDS = 3.0
DOOR_TIMEOUT_SECONDS = 1.0
_DROP_REASONS = ("unknown_sensor", "disabled_sensor", "out_of_order")
DEBOUNCE_SECONDS = 1.0


class ThrowawayBroker:
    """mosquitto on a free 127.0.0.1 port, for as long as the demo runs."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            raise HubError("the demo needs mosquitto: sudo apt-get install -y mosquitto")
        self.port = _free_port()
        config = folder / "mosquitto.conf"
        config.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n"
            f"log_dest file {folder / 'mosquitto.log'}\n",
            encoding="utf-8",
        )
        self._process = subprocess.Popen(  # noqa: S603 - our own binary and config
            [binary, "-c", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 5
        while not _accepts(self.port):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise HubError(f"mosquitto did not start; see {folder / 'mosquitto.log'}")
            time.sleep(0.01)

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            self._process.wait(5)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _accepts(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def _broker(folder: Path) -> Iterator[ThrowawayBroker]:
    # A probed free port can be taken before mosquitto binds it: try another, twice.
    for attempt in range(3):
        try:
            broker = ThrowawayBroker(folder)
            break
        except HubError:
            if attempt == 2:  # noqa: PLR2004 - the last of three
                raise
    try:
        yield broker
    finally:
        broker.stop()


def run_demo(folder: Path, *, scale: float = 1.0) -> int:
    """Run the demo in `folder`; `scale` < 1 speeds every delay up (the tests use it)."""
    folder = folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("hub.db", "hub.db-wal", "hub.db-shm"):
        (folder / name).unlink(missing_ok=True)
    with _broker(folder) as broker:
        config = _write_config(folder, broker.port, scale)
        print(f"SpottyPottySense demo — config {config.source}, database {config.hub.database}")
        print(
            f"A throwaway mosquitto on 127.0.0.1:{broker.port}, simulated sensors, the real "
            f"daemon; timeouts of {TIMEOUT_SECONDS * scale:g} s; Spotify in dry-run.\n"
        )
        counters = asyncio.run(_live(config, scale))
    _report(config, counters)
    return 0


def _write_config(folder: Path, port: int, scale: float) -> HubConfig:
    hour = dt.datetime.now(local_zone("")).hour
    path = folder / "hub.toml"
    path.write_text(
        DEMO_CONFIG.format(
            port=port,
            timeout_minutes=round(TIMEOUT_SECONDS * scale / 60, 6),
            debounce_seconds=DEBOUNCE_SECONDS * scale,
            door_timeout_seconds=DOOR_TIMEOUT_SECONDS * scale,
            quiet_start=f"{hour:02d}:00",
            quiet_end=f"{(hour + 2) % 24:02d}:00",
        ),
        encoding="utf-8",
    )
    return load_config(path)


@dataclass
class _Narrator:
    """Prints what the hub publishes on `spottypotty/sessions/+`, as it happens."""

    started: float = field(default_factory=time.monotonic)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def say(self, text: str) -> None:
        print(f"  [{time.monotonic() - self.started:5.1f}s] {text}", flush=True)

    def on_state(self, _topic: str, payload: bytes) -> None:
        record = json.loads(payload)
        before = self.sessions.get(record["sessionId"])
        self.sessions[record["sessionId"]] = record
        self.changed.set()
        if before is None:
            self.say(f"session {record['sessionId']} started")
        elif record["status"] == "completed" and before["status"] == "active":
            self.say(
                f"session {record['sessionId']} ended after {record['durationMinutes']} min, "
                f"{record['motionEventsCount']} motion event(s) ({record.get('endReason')})"
            )
        elif record["motionEventsCount"] > before["motionEventsCount"]:
            self.say(f"  extended: {record['motionEventsCount']} motion events")

    @property
    def all_ended(self) -> bool:
        return all(r["status"] == "completed" for r in self.sessions.values())


class _LogNarration(logging.Handler):
    """The daemon's own INFO lines about playback, in the demo's voice."""

    def __init__(self, narrator: _Narrator) -> None:
        super().__init__(logging.INFO)
        self._narrator = narrator

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(("hub.playback", "hub.sessions.runner")):
            mark = "♪" if record.name.startswith("hub.playback") else "·"
            self._narrator.say(f"{mark} {record.getMessage()}")


async def _live(config: HubConfig, scale: float) -> dict[str, int]:
    narrator = _Narrator()
    handler = _LogNarration(narrator)
    hub_logger = logging.getLogger("hub")
    hub_logger.addHandler(handler)
    previous = hub_logger.level, hub_logger.propagate
    hub_logger.setLevel(logging.INFO)
    hub_logger.propagate = False  # the demo narrates; no raw log lines in between
    daemon = Daemon(config, notifier=Notifier.from_environment({}), client_id="spottypotty-demo")
    try:
        async with asyncio.TaskGroup() as group:
            running = group.create_task(daemon.run(), name="daemon")
            await daemon.ready.wait()
            watcher = group.create_task(
                watch(config, "spottypotty/sessions/+", narrator.on_state), name="narrator"
            )
            for offset, sensor, payload, meaning in SCRIPT:
                delay = offset * scale - (time.monotonic() - narrator.started)
                if delay > 0:
                    await asyncio.sleep(delay)
                if payload is None:
                    narrator.say(f"motion from {sensor} — {meaning}")
                    messages = motion_messages(config, sensor, count=1, now=time.time())
                else:
                    narrator.say(f"{sensor} says {payload.decode()} — {meaning}")
                    messages = [(_topic_of(config, sensor), payload, False)]
                await publish_messages(config, messages, client_id=f"demo-sensor-{sensor}")
            runner = daemon.runner
            if runner is None:
                raise HubError("the daemon did not start its runner")
            # Every motion decided and every session ended (at its deadline) and published.
            async with asyncio.timeout(TIMEOUT_SECONDS * scale + 10):
                while not _finished(runner.counters, runner.engine.active, narrator):  # noqa: ASYNC110 - watching the daemon's state
                    await asyncio.sleep(0.05)
            watcher.cancel()
            counters = dict(runner.counters)
            daemon.stop()
            await running
    finally:
        hub_logger.removeHandler(handler)
        hub_logger.setLevel(previous[0])
        hub_logger.propagate = previous[1]
    return counters


def _finished(counters: Counter[str], active: object, narrator: _Narrator) -> bool:
    decided = counters["motion"] + counters["state"]
    return decided >= len(SCRIPT) and not active and narrator.all_ended


def _topic_of(config: HubConfig, sensor_id: str) -> str:
    sensor = config.sensor(sensor_id)
    if sensor is None or not sensor.mqtt_topic:
        raise HubError(f"the demo's {sensor_id} has no topic of its own")
    return sensor.mqtt_topic


def _report(config: HubConfig, counters: dict[str, int]) -> None:
    dropped = {k: v for k, v in counters.items() if k.partition(":")[0] in _DROP_REASONS}
    if dropped:
        print()
        for key, value in sorted(dropped.items()):
            reason, sensor = key.split(":", 1)
            print(f"  dropped {value} motion event(s) from {sensor}: {reason.replace('_', ' ')}")
    db = open_database(config.hub.database)
    try:
        context = OperationContext(config=config, db=db)
        print("\nSessions recorded (spottypotty sessions):\n")
        print(sessions_report(handle({"action": "query_sessions", "userId": "demo-user"}, context)))
        print("\nAnalytics (spottypotty analytics):\n")
        print(analytics_report(handle({"action": "get_session_analytics"}, context)["analytics"]))
    finally:
        close_database(db)
    print(
        f"\nTry: spottypotty --config {config.source} sessions --json\n"
        f'     echo \'{{"action": "get_session_analytics", "sensorId": "bathroom_main"}}\''
        f" | spottypotty --config {config.source} invoke"
    )
