"""`spottypotty run`: the composition root.

Start-up: config → the lock file (one daemon, and no `invoke` working in-process beside
it) → store (integrity check, migrations) → recover sessions left active by a crash →
runner, MQTT link, control socket (and API, BLE, …) in one TaskGroup → READY=1 once the
broker is connected → STATUS= lines and the watchdog.

SIGTERM/SIGINT, within 5 s however hung the broker or Spotify are: stop taking events
(MQTT, BLE, socket, API) → the runner decides what is queued and settles the player's work
within its own deadline (`SessionRunner.finish`), all within RUNNER_STOP_SECONDS → the MQTT
link sends the sessions' last states and `offline` (bounded) → the writer finishes and
checkpoints → exit 0. A backstop forces the exit HARD_STOP_SECONDS after the signal.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hub import control
from hub.clock import HubClock, system_clock_synchronised
from hub.config import HubConfig
from hub.ingest.mqtt import MqttLink
from hub.model import Session
from hub.playback.port import Player
from hub.playback.spotify import SpotifyPlayer, make_player
from hub.sessions.engine import SessionEngine
from hub.sessions.runner import SessionRunner
from hub.store.meta import (
    load_ble_counters,
    load_sensor_clocks,
    save_ble_counters,
    save_sensor_clocks,
)
from hub.store.pool import DatabasePool
from hub.store.sessions import SessionRepository
from hub.store.writer import StoreWriter
from hub.systemd import Notifier, watchdog_interval, watchdog_loop

if TYPE_CHECKING:
    from hub.ingest.ble import BleScanner

_LOGGER = logging.getLogger(__name__)

SESSION_TOPIC = "spottypotty/sessions/{sensor_id}"
# Counters (messages, parse errors, unknown sensors, …) for people and Home Assistant.
STATS_TOPIC = "spottypotty/hub/stats"
# "Spotify ready" / "Spotify login needed" / …, retained, latest wins.
SPOTIFY_TOPIC = "spottypotty/hub/spotify"
STATUS_EVERY_SECONDS = 10.0
# SIGTERM must end the hub within 5 s (systemd's stop timeout is 10 s). The runner's
# finish (queued decisions, the start in flight, pausing) gets RUNNER_STOP_SECONDS of it,
# the MQTT link's goodbye its own SHUTDOWN_TIMEOUT (1.5 s), the rest is slack.
RUNNER_STOP_SECONDS = 2.5
HARD_STOP_SECONDS = 4.8  # SIGTERM → exit, whatever hangs (systemd kills at 10 s)
EXIT_STOP_TIMEOUT = 1
LOCK_WAIT_SECONDS = 10.0  # an in-process `invoke` holds the lock for a moment
# The runner must have decided something (or be idle-waiting) this recently to be healthy.
STALL_SECONDS = 60.0


class Daemon:
    def __init__(
        self,
        config: HubConfig,
        *,
        notifier: Notifier,
        player: Player | None = None,
        clock: Callable[[], float] | None = None,
        client_id: str = "spottypotty-hub",
        status_interval: float = STATUS_EVERY_SECONDS,
        hard_stop: float | None = None,
    ) -> None:
        self._config = config
        self._status_interval = status_interval
        self._notifier = notifier
        self._player = player if player is not None else make_player(config)
        # The hub's clock (hub/clock.py: steps detected, unconfirmed times corrected); a
        # test's plain callable is used as it is.
        if clock is None:
            trusted = config.hub.trust_clock
            clock = HubClock(synchronised=(lambda: True) if trusted else system_clock_synchronised)
        self._clock = clock
        self._client_id = client_id
        self._stop = asyncio.Event()
        self._hard_stop = hard_stop  # seconds from stop() to a forced exit (None: never)
        self.ready = asyncio.Event()
        self.runner: SessionRunner | None = None
        self.link: MqttLink | None = None
        self.ble: BleScanner | None = None
        self._shown: dict[str, tuple[object, ...]] = {}  # session id -> what MQTT last showed
        self._saved_ble_counters: dict[str, tuple[int | None, int | None]] = {}
        self._saved_sensor_clocks: dict[str, tuple[int, int]] = {}
        self._writer: StoreWriter | None = None
        self.reads = DatabasePool(config.hub.database)  # the API's and the socket's reads

    def stop(self) -> None:
        if not self._stop.is_set() and self._hard_stop is not None:
            # The ordered stop is bounded at every step; this is the backstop should any
            # of it ever not end (a library that swallows a cancellation): SIGTERM always
            # ends the hub (SQLite's WAL keeps the database consistent either way).
            timer = threading.Timer(self._hard_stop, _exit_now, args=(self._hard_stop,))
            timer.daemon = True
            timer.start()
        self._stop.set()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, self.stop)
        database = self._config.hub.database
        give_up = loop.time() + LOCK_WAIT_SECONDS
        while True:  # an in-process `invoke` holds the lock for a moment; a daemon for good
            with control.hub_lock(database) as taken:
                if taken:
                    return await self._run_locked()
            if loop.time() >= give_up:
                raise control.HubRunningError(
                    f"another hub holds {control.lock_path(database)}: one daemon per database"
                )
            await asyncio.sleep(0.05)

    async def _run_locked(self) -> int:
        config = self._config
        async with StoreWriter(config.hub.database, ttl_days=config.sessions.ttl_days) as writer:
            self._writer = writer
            engine = SessionEngine(config)
            recovered, sensor_clocks = await writer.call(self._recover)
            engine.restore(recovered)
            engine.remember_sensor_clocks(sensor_clocks)
            if recovered:
                _LOGGER.info("recovered %d session(s) left active", len(recovered))
            runner = SessionRunner(
                engine, writer, self._player, clock=self._clock, on_session=self._publish_session
            )
            link = MqttLink(config, runner.inbox, client_id=self._client_id, clock=self._clock)
            self.runner, self.link = runner, link
            if config.ble.enabled:
                from hub.ingest.ble import BleScanner  # noqa: PLC0415 - bleak only when BLE is on

                saved = await writer.call(lambda repository: load_ble_counters(repository.db))
                self.ble = BleScanner(config, runner.inbox, clock=self._clock, counters=saved)
            try:
                async with asyncio.TaskGroup() as group:
                    await self._run_tasks(group, runner, link)
            finally:
                await self.reads.close()
        _LOGGER.info("stopped cleanly")
        return 0

    def _recover(
        self, repository: SessionRepository
    ) -> tuple[list[Session], dict[str, tuple[float, float]]]:
        """The sessions left active, after this boot's unconfirmed times are put on the
        clock's current timeline (a restart may follow a step of the system clock); and
        the sensors' clock offsets, when the clock they were learnt on is confirmed."""
        if not isinstance(self._clock, HubClock):
            return repository.all_active(), {}
        repository.set_clock(self._clock.state)
        offsets = load_sensor_clocks(repository.db) if self._clock.confirmed else {}
        self._saved_sensor_clocks = _kept(offsets)
        return repository.all_active(), offsets

    async def _run_tasks(
        self, group: asyncio.TaskGroup, runner: SessionRunner, link: MqttLink
    ) -> None:
        """Start every task, wait for SIGTERM, then stop them in order (module docstring)."""
        config = self._config
        runner_task = group.create_task(runner.run(), name="session-runner")
        link_task = group.create_task(link.run(), name="mqtt-link")
        intake = [  # what hands the runner new work, stopped first
            group.create_task(
                control.serve(config.hub.database, self.invoke), name="control-socket"
            )
        ]
        helpers = [group.create_task(self._announce(), name="status")]
        from hub.http.wiring import home_assistant, serve  # noqa: PLC0415 - aiohttp only if asked

        helpers.append(group.create_task(home_assistant(config, self), name="home-assistant"))
        if config.http.enabled:
            intake.append(group.create_task(serve(config, self), name="http"))
        if self.ble is not None:  # its failures never reach MQTT ingest
            intake.append(group.create_task(self.ble.run(), name="ble-scanner"))
        if isinstance(self._player, SpotifyPlayer):
            # Fills the device cache so the first session's play is one call sooner.
            helpers.append(group.create_task(self._player.warm_up(), name="spotify-warm-up"))
        interval = watchdog_interval()
        if interval is not None:
            helpers.append(
                group.create_task(
                    watchdog_loop(self._notifier, interval, self._healthy), name="watchdog"
                )
            )
        await self._stop.wait()
        self._notifier.stopping("stopping: no new events")
        link.stop_reading()
        for task in intake:
            task.cancel()
        runner.finish()
        done, _ = await asyncio.wait([runner_task], timeout=RUNNER_STOP_SECONDS)
        if not done:
            _LOGGER.warning(
                "sessions not finished within %.1f s of stopping; stopping anyway",
                RUNNER_STOP_SECONDS,
            )
            runner_task.cancel()
        await link.publish_offline()
        link_task.cancel()
        for task in helpers:
            task.cancel()
        await self._keep_ble_counters()
        await self._keep_sensor_clocks()

    async def invoke(self, event: object) -> dict[str, Any]:
        """One Session Manager event (the control socket, `POST /invoke`): changes go to the
        runner in order with motion, reads to the read pool."""
        from hub.sessions.operations import invoke  # noqa: PLC0415 - sqlite-utils queries

        runner = self.runner
        if runner is None:
            raise RuntimeError("invoke() before the daemon runs")
        return await invoke(event, self._config, change=runner.change, read=self.reads.run)

    async def _announce(self) -> None:
        """READY=1 once the store is open and the broker connected; then STATUS= lines."""
        assert self.link is not None  # noqa: S101 - set before this task starts
        await self.link.connected_event.wait()
        self._notifier.ready(self._status_line())
        self.ready.set()
        _LOGGER.info("ready: %s", self._status_line())
        published: dict[str, str] = {}
        while True:
            await asyncio.sleep(self._status_interval)
            self._notifier.status(self._status_line())
            await self._keep_ble_counters()
            await self._keep_sensor_clocks()
            retained = {STATS_TOPIC: json.dumps(self.stats(), sort_keys=True)}
            if isinstance(self._player, SpotifyPlayer):
                retained[SPOTIFY_TOPIC] = self._player.status()
            for topic, payload in retained.items():
                if published.get(topic) != payload:  # only changes go on the wire
                    self.link.publish(topic, payload)
                    published[topic] = payload

    async def _keep_sensor_clocks(self) -> None:
        """The sensors' learnt clock offsets, saved when they moved (a second or more, or
        an hour newer) and only on a confirmed clock: after a restart the backlog in the
        broker is dated by them (hub/sessions/sensor_clocks.py)."""
        clock = self._clock
        if self._writer is None or self.runner is None or not isinstance(clock, HubClock):
            return
        offsets = self.runner.engine.sensor_clock_offsets()
        if not clock.confirmed or _kept(offsets) == self._saved_sensor_clocks:
            return
        await self._writer.call(lambda repository: save_sensor_clocks(repository.db, offsets))
        self._saved_sensor_clocks = _kept(offsets)

    async def _keep_ble_counters(self) -> None:
        """Encrypted BLE sensors' counters, saved when they moved: after a restart the hub
        still refuses an old advert replayed at it (one write per interval at most)."""
        if self.ble is None or self._writer is None:
            return
        counters = self.ble.encryption_counters()
        if counters != self._saved_ble_counters:
            await self._writer.call(lambda repository: save_ble_counters(repository.db, counters))
            self._saved_ble_counters = counters

    def stats(self) -> dict[str, int]:
        """The runner's and the MQTT link's counters, e.g. `unknown_sensor:garden_shed`."""
        counters: dict[str, int] = {}
        if self.link is not None:
            counters.update({f"mqtt.{k}": v for k, v in self.link.counters.items()})
        if self.runner is not None:
            counters.update({f"sessions.{k}": v for k, v in self.runner.counters.items()})
        if self.ble is not None:
            counters.update({f"ble.{k}": v for k, v in self.ble.counters.items()})
        return counters

    def _status_line(self) -> str:
        sensors = len(self._config.sensors)
        active = len(self.runner.engine.active) if self.runner else 0
        broker = "broker connected" if self.link and self.link.connected else "broker unreachable"
        line = f"{sensors} sensor(s), {active} active session(s), {broker}"
        if self.ble is not None:
            line = f"{line}, BLE {self.ble.status}"
        if isinstance(self._player, SpotifyPlayer):
            line = f"{line}, {self._player.status()}"
        if isinstance(self._clock, HubClock) and not self._clock.confirmed:
            line = f"{line}, clock not synchronised yet (times recorded unconfirmed)"
        dropped = sum(
            count
            for key, count in (self.runner.counters.items() if self.runner else [])
            if key.startswith(("unknown_sensor:", "disabled_sensor:", "out_of_order:"))
        )
        return f"{line}, {dropped} motion message(s) dropped" if dropped else line

    def _healthy(self) -> bool:
        runner = self.runner
        if runner is None:
            return False
        idle = runner.inbox.empty()
        return idle or self._clock() - runner.last_decision < STALL_SECONDS

    def _publish_session(self, session: Session) -> None:
        """The sensor's session, retained — on changes people see (start, counted motion,
        music, end), not on every coalesced extension: a flood must not become one
        QoS-1 round trip per message."""
        if self.link is None:
            return
        shown = (
            session.status,
            session.motion_events_count,
            session.playback_started,
            session.playback_stopped,
            session.spotify_device_id,
        )
        if self._shown.get(session.session_id) == shown:
            return
        if session.is_active:
            self._shown[session.session_id] = shown
        else:
            self._shown.pop(session.session_id, None)
        topic = SESSION_TOPIC.format(sensor_id=session.sensor_id)
        self.link.publish(topic, json.dumps(session.to_record(), separators=(",", ":")))


def serve(config: HubConfig) -> int:
    """Run the daemon in the foreground until SIGTERM/SIGINT."""
    notifier = Notifier.from_environment()
    return asyncio.run(Daemon(config, notifier=notifier, hard_stop=HARD_STOP_SECONDS).run())


def _kept(offsets: dict[str, tuple[float, float]]) -> dict[str, tuple[int, int]]:
    """What makes sensor clock offsets worth saving again: whole seconds, whole hours."""
    return {
        sensor: (round(offset), int(seen // 3600)) for sensor, (offset, seen) in offsets.items()
    }


def _exit_now(after: float) -> None:
    _LOGGER.critical("stopping took over %.1f s; exiting now", after)
    logging.shutdown()
    os._exit(EXIT_STOP_TIMEOUT)
