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
import sqlite3
import threading
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from hub import control
from hub.clock import HubClock, system_clock_synchronised
from hub.config import HubConfig
from hub.controls import (
    CONTROL_ACTION,
    ControlCommand,
    Controls,
    command_from_event,
    control_answer,
    control_failure,
)
from hub.errors import HubError
from hub.ingest.mqtt import MqttLink
from hub.ingest.mqtt_decode import DEDUP_WINDOW
from hub.model import Session
from hub.playback.port import Player, trial_session
from hub.playback.spotify import SpotifyPlayer, make_player
from hub.sessions.engine import SessionEngine
from hub.sessions.runner import SessionRunner
from hub.store.meta import CONTROLS_KEY, get_meta, load_sensor_clocks, save_sensor_clocks
from hub.store.playback import StoreMemory
from hub.store.pool import DatabasePool
from hub.store.sensors import SensorRepository
from hub.store.sessions import SessionRepository
from hub.store.writer import StoreWriter
from hub.systemd import Notifier, watchdog_interval, watchdog_loop

if TYPE_CHECKING:
    from hub.ingest.ble import BleScanner
    from hub.ingest.ble_decode import CounterState

_LOGGER = logging.getLogger(__name__)

SESSION_TOPIC = "spottypotty/sessions/{sensor_id}"
# Counters (messages, parse errors, unknown sensors, …) for people and Home Assistant.
STATS_TOPIC = "spottypotty/hub/stats"
# "ok", or why the database is not being written (disk full, read-only, …), retained.
STORAGE_TOPIC = "spottypotty/hub/storage"
STORAGE_OK = "ok"
# "Spotify ready" / "Spotify login needed" / …, retained, latest wins.
SPOTIFY_TOPIC = "spottypotty/hub/spotify"
STATUS_EVERY_SECONDS = 10.0
# SIGTERM must end the hub within 5 s (systemd's stop timeout is 10 s). The runner's
# finish (queued decisions, the start in flight, pausing) gets RUNNER_STOP_SECONDS of it,
# the MQTT link's goodbye its own SHUTDOWN_TIMEOUT (1.5 s), the rest is slack.
RUNNER_STOP_SECONDS = 2.5
LEARN_EVERY_SECONDS = 86_400.0  # learned timeouts are recomputed daily
HARD_STOP_SECONDS = 4.8  # SIGTERM → exit, whatever hangs (systemd kills at 10 s)
EXIT_STOP_TIMEOUT = 1
LOCK_WAIT_SECONDS = 10.0  # an in-process `invoke` holds the lock for a moment
# The runner must have decided something (or be idle-waiting) this recently to be healthy.
STALL_SECONDS = 60.0
EXIT_WRITER_FAILED = 1  # systemd restarts the hub (Restart=on-failure)
# Seqs of each sensor's motion looked back on at start (hub.store.sensors.recent_seqs):
# a QoS-1 redelivery comes within moments of the connection it was meant for.
SEQ_MEMORY_SECONDS = 600.0
TEST_PLAY_SECONDS = 5.0  # "test playback" (a control): play this long, then pause


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
        self._saved_ble_counters: dict[str, CounterState] = {}
        self._saved_sensor_clocks: dict[str, tuple[int, int]] = {}
        self._writer: StoreWriter | None = None
        self.reads = DatabasePool(config.hub.database)  # the API's and the socket's reads
        self._health_logged: str | None = None
        self.sessions_shown: set[str] = set()  # sensors whose session MQTT just showed
        self._tests: set[asyncio.Task[None]] = set()  # "test playback" in progress

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
            saved = await writer.call(lambda repository: get_meta(repository.db, CONTROLS_KEY))
            controls = Controls.from_json(saved)
            engine.set_controls(controls)  # before restore: a room's timeout applies to its session
            if isinstance(self._player, SpotifyPlayer):
                # Learned device ids and resume points, before the first motion can need them.
                await self._player.load_memory(StoreMemory(writer, clock=self._clock))
            recovered, sensor_clocks = await writer.call(self._recover)
            engine.restore(recovered)
            engine.remember_sensor_clocks(sensor_clocks)
            if recovered:
                _LOGGER.info("recovered %d session(s) left active", len(recovered))
            runner = SessionRunner(
                engine,
                writer,
                self._player,
                clock=self._clock,
                on_session=self._publish_session,
                on_control=self._controlled,
                controls=controls,
            )
            link = MqttLink(config, runner.inbox, client_id=self._client_id, clock=self._clock)
            link.remember_seqs(await writer.call(partial(_committed_seqs, config)))
            self.runner, self.link = runner, link
            if config.ble.enabled:
                from hub.ingest.ble import BleScanner  # noqa: PLC0415 - bleak only when BLE is on
                from hub.ingest.ble_state import load_states  # noqa: PLC0415

                counters = await writer.call(lambda repository: load_states(repository.db))
                self._saved_ble_counters = counters
                self.ble = BleScanner(config, runner.inbox, clock=self._clock, counters=counters)
            try:
                async with asyncio.TaskGroup() as group:
                    await self._run_tasks(group, runner, link)
            finally:
                await self.reads.close()
        if writer.failure is not None:
            _LOGGER.error("stopped; the store writer had failed: %r", writer.failure)
            return EXIT_WRITER_FAILED
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
                control.serve(config.hub.database, self.control), name="control-socket"
            )
        ]
        helpers = [group.create_task(self._announce(), name="status")]
        if config.learned_bounds():
            helpers.append(group.create_task(self._learn_daily(runner), name="learn-timeouts"))
        from hub.http.wiring import home_assistant, serve  # noqa: PLC0415 - aiohttp only if asked

        helpers.append(group.create_task(home_assistant(config, self), name="home-assistant"))
        if config.http.enabled:
            intake.append(group.create_task(serve(config, self), name="http"))
        if self.ble is not None:  # its failures never reach MQTT ingest
            intake.append(group.create_task(self.ble.run(), name="ble-scanner"))
        if isinstance(self._player, SpotifyPlayer):
            # Fills the device cache so the first session's play is one call sooner, and
            # keeps the token fresh so no play waits for a refresh.
            helpers.append(group.create_task(self._player.warm_up(), name="spotify-warm-up"))
            helpers.append(group.create_task(self._player.keep_token_fresh(), name="spotify-token"))
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
        if isinstance(self._player, SpotifyPlayer):
            await self._player.close()  # fade-ins of sessions left playing
        await link.publish_offline()
        link_task.cancel()
        for task in [*helpers, *self._tests]:
            task.cancel()
        await self._keep_ble_counters()
        await self._keep_sensor_clocks()

    async def _learn_daily(self, runner: SessionRunner) -> None:
        """Timeouts learned from each room's history (`timeout_minutes = "auto"`): at the
        start, then once a day."""
        from hub.store.timeouts import learn_timeouts  # noqa: PLC0415 - only with "auto"

        bounds = self._config.learned_bounds()
        while True:
            try:
                # On a read connection: a long history never holds up the writer.
                learned = await self.reads.run(partial(learn_timeouts, bounds=bounds))
                await runner.use_timeouts(learned)
            except (HubError, sqlite3.Error):
                _LOGGER.exception("could not learn the rooms' timeouts; trying again tomorrow")
            await asyncio.sleep(LEARN_EVERY_SECONDS)

    async def invoke(self, event: object) -> dict[str, Any]:
        """One Session Manager event (the control socket, `POST /invoke`): changes go to the
        runner in order with motion, reads to the read pool."""
        from hub.sessions.operations import invoke  # noqa: PLC0415 - sqlite-utils queries

        runner = self.runner
        if runner is None:
            raise RuntimeError("invoke() before the daemon runs")
        return await invoke(event, self._config, change=runner.change, read=self.reads.run)

    async def control(self, event: object) -> dict[str, Any]:
        """The control socket: Session Manager events, and `sensors retrust` (which is the
        owner's alone: HTTP never offers it)."""
        from hub.ingest.ble_state import RETRUST_ACTION  # noqa: PLC0415

        if isinstance(event, dict) and event.get("action") == RETRUST_ACTION:
            return await self._retrust(str(event.get("sensorId", "")))
        if isinstance(event, dict) and event.get("action") == CONTROL_ACTION:
            return await self.control_event(event, source="cli")
        return await self.invoke(event)

    async def _retrust(self, sensor_id: str) -> dict[str, Any]:
        from hub.ingest.ble_state import RETRUST_ACTION, retrust_saved  # noqa: PLC0415

        sensor = next((s for s in self._config.sensors if s.id == sensor_id), None)
        if sensor is None or not sensor.ble_bindkey or self._writer is None:
            return {
                "statusCode": 404,
                "action": RETRUST_ACTION,
                "error": "ResourceNotFoundError",
                "message": f"{sensor_id!r} is not a BLE sensor with a ble_bindkey in the hub's "
                "config",
            }
        address = sensor.ble_address.upper()
        if self.ble is not None and self.ble.retrust(sensor_id) is not None:
            last = self.ble.guard.last_counter(address)
            await self._keep_ble_counters()  # a retrust survives a hub restart
        else:  # BLE is off: the next guard to start will believe it
            last = await self._writer.call(lambda repository: retrust_saved(repository.db, address))
            _LOGGER.warning("BLE sensor %s (%s) retrusted by its owner", sensor_id, address)
        return {
            "statusCode": 200,
            "action": RETRUST_ACTION,
            "sensorId": sensor_id,
            "address": address,
            "lastCounter": last,
        }

    async def _announce(self) -> None:
        """READY=1 once the store is open and the broker connected; then STATUS= lines."""
        assert self.link is not None  # noqa: S101 - set before this task starts
        await self.link.connected_event.wait()
        self._notifier.ready(self._status_line())
        self.ready.set()
        _LOGGER.info("ready: %s", self._status_line())
        published: dict[str, str] = {}
        while True:
            await self._until_status_due()
            self._notifier.status(self._status_line())
            await self._keep_ble_counters()
            await self._keep_sensor_clocks()
            retained = {
                STATS_TOPIC: json.dumps(self.stats(), sort_keys=True),
                STORAGE_TOPIC: self.storage_problem() or STORAGE_OK,
            }
            if isinstance(self._player, SpotifyPlayer):
                retained[SPOTIFY_TOPIC] = self._player.status()
            for topic, payload in retained.items():
                if published.get(topic) != payload:  # only changes go on the wire
                    self.link.publish(topic, payload)
                    published[topic] = payload

    async def _until_status_due(self) -> None:
        """The next status interval, or sooner when the database stops or starts taking
        writes: people must hear that at once."""
        changed = self.runner.storage_changed if self.runner is not None else asyncio.Event()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._status_interval):
                await changed.wait()
        changed.clear()

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
        from hub.ingest.ble_state import save_states  # noqa: PLC0415 - only with BLE on

        counters = self.ble.encryption_counters()
        if counters != self._saved_ble_counters:
            await self._writer.call(lambda repository: save_states(repository.db, counters))
            self._saved_ble_counters = counters

    def spotify_status(self) -> str | None:
        """The Spotify player's status phrase (None without a Spotify player)."""
        return self._player.status() if isinstance(self._player, SpotifyPlayer) else None

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

    def storage_problem(self) -> str | None:
        """Why the database is not being written, for people (None: it is)."""
        if self._writer is not None and self._writer.failure is not None:
            return f"the store writer failed: {self._writer.failure!r}"
        runner = self.runner
        if runner is not None and runner.unwritable is not None:
            return f"{runner.unwritable} ({runner.held_rows} row(s) held, retrying)"
        return None

    def _status_line(self) -> str:
        sensors = len(self._config.sensors)
        active = len(self.runner.engine.active) if self.runner else 0
        broker = "broker connected" if self.link and self.link.connected else "broker unreachable"
        line = f"{sensors} sensor(s), {active} active session(s), {broker}"
        storage = self.storage_problem()
        if storage is not None:
            line = f"{storage}, {line}"
        if self.ble is not None:
            line = f"{line}, BLE {self.ble.status}"
        if isinstance(self._player, SpotifyPlayer):
            line = f"{line}, {self._player.status()}"
        if isinstance(self._clock, HubClock) and not self._clock.confirmed:
            line = f"{line}, clock not synchronised yet (times recorded unconfirmed)"
        dropped = self.dropped_messages()
        return f"{line}, {dropped} motion message(s) dropped" if dropped else line

    def _healthy(self) -> bool:
        """The watchdog's check; when it fails, the journal says why (once per problem)."""
        problem = self.health_problem()
        if problem is not None and problem != self._health_logged:
            _LOGGER.critical("unhealthy, the watchdog will restart the hub: %s", problem)
        self._health_logged = problem
        return problem is None

    def health_problem(self) -> str | None:
        runner, writer = self.runner, self._writer
        if runner is None or writer is None:
            return "not running"
        if not writer.alive:
            return f"the store writer failed: {writer.failure!r}"
        grace = self._config.hub.unwritable_grace_minutes * 60
        if runner.unwritable is not None and runner.unwritable_for() >= grace:
            return f"nothing written for {runner.unwritable_for():.0f} s: {runner.unwritable}"
        if not runner.inbox.empty() and self._clock() - runner.last_decision >= STALL_SECONDS:
            return f"no decision for {STALL_SECONDS:.0f} s with work queued"
        return None

    # --- people's controls ---------------------------------------------------------------

    async def control_event(self, event: object, *, source: str) -> dict[str, Any]:
        """A control event (`hub.controls.command_from_event`) from `spottypotty dnd`, the
        dashboard or the API, carried out by the runner; the answer names the controls."""
        runner = self.runner
        if runner is None:
            raise RuntimeError("control_event() before the daemon runs")
        try:
            controls = await runner.control(command_from_event(event, source=source))
        except HubError as exc:
            return control_failure(exc)
        return control_answer(self._config, controls, self._clock())

    def _controlled(self, command: ControlCommand, controls: Controls) -> None:  # noqa: ARG002 - the runner's callback
        """The runner carried out a control (Home Assistant's task shows the new state on
        its next tick); a test playback starts here."""
        if command.control == "test_playback" and command.room_id is not None:
            task = asyncio.get_running_loop().create_task(
                self._test_playback(command.room_id), name="test-playback"
            )
            self._tests.add(task)
            task.add_done_callback(self._tests.discard)

    async def _test_playback(self, room_id: str) -> None:
        """Play on the room's device as a session would, then pause: a check from Home
        Assistant that music will come. It records no session."""
        sensor = self._config.sensor(room_id)
        if sensor is None or not sensor.spotify_device:
            _LOGGER.warning("test playback in %s: no spotify_device configured", room_id)
            return
        session = trial_session(sensor, self._clock())
        result = await self._player.start(session, sensor)
        _LOGGER.info("test playback in %s: %s", room_id, result.note or result.started)
        if result.started:
            await asyncio.sleep(TEST_PLAY_SECONDS)
            playing = session.with_changes(
                playback_started=True, spotify_device_id=result.device_id
            )
            await self._player.stop(playing, sensor)

    def now(self) -> float:
        """The hub's wall clock (a test's, in tests)."""
        return self._clock()

    def dropped_messages(self) -> int:
        """Motion messages dropped: unknown or disabled sensors, out of order."""
        return sum(
            count
            for key, count in (self.runner.counters.items() if self.runner else [])
            if key.startswith(("unknown_sensor:", "disabled_sensor:", "out_of_order:"))
        )

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
        self.sessions_shown.add(session.sensor_id)
        if session.is_active:
            self._shown[session.session_id] = shown
        else:
            self._shown.pop(session.session_id, None)
        topic = SESSION_TOPIC.format(sensor_id=session.sensor_id)
        self.link.publish(topic, json.dumps(session.to_record(), separators=(",", ":")))


def _committed_seqs(config: HubConfig, repository: SessionRepository) -> dict[str, list[int]]:
    return SensorRepository(repository.db).recent_seqs(
        (sensor.id for sensor in config.sensors),
        limit=DEDUP_WINDOW,
        span=SEQ_MEMORY_SECONDS,
    )


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
