"""`spottypotty demo`: a simulated sensor driving real sessions, then the analytics.

Runs on embedded defaults only — SQLite under the demo folder, Spotify in dry-run,
3-second timeouts — so a newcomer sees sessions start, extend, end, and what the
hub makes of them, in about twenty seconds and without any setup.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from hub.cli.reports import analytics_report, sessions_report
from hub.config import load_config
from hub.model import MotionEvent, Session
from hub.sessions.engine import (
    Command,
    DropEvent,
    PersistSession,
    SessionEngine,
    StartPlayback,
    StopPlayback,
)
from hub.sessions.operations import OperationContext, handle
from hub.store import SessionRepository, close_database, open_database
from hub.timeutil import local_zone

DEMO_CONFIG = """\
# Written by `spottypotty demo`: embedded defaults, safe to delete.
[hub]
database = "hub.db"

[sessions]
timeout_minutes = 0.05        # 3 seconds, so the demo does not take all day
debounce_seconds = 1

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
name = "En-suite (quiet hours all day)"
spotify_device = "En-suite speaker"
context_uri = "spotify:playlist:37i9dQZF1DX4sWSpwq3LiO"
quiet_hours = {{ start = "{quiet_start}", end = "{quiet_end}" }}
"""

# (seconds after the start, sensor) — what the simulated sensors report.
SCRIPT: tuple[tuple[float, str], ...] = (
    (0.0, "bathroom_main"),  # walks in: a session starts, music is asked for
    (0.5, "bathroom_main"),  # same burst: coalesced, but it still extends the session
    (2.0, "bathroom_main"),  # still there: counted, extends again
    (2.5, "garden_shed"),  # nobody configured this one: dropped, never plays
    (3.0, "ensuite"),  # quiet hours: the session is recorded, no music
    (9.0, "bathroom_main"),  # back again later: a second session
)


@dataclass(slots=True)
class _Printer:
    started: float

    def __call__(self, now: float, text: str) -> None:
        print(f"  [{now - self.started:5.1f}s] {text}", flush=True)


def run_demo(
    folder: Path,
    *,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    config_file = folder / "hub.toml"
    # Quiet hours for the en-suite that always include "now", whenever the demo runs.
    hour = dt.datetime.fromtimestamp(clock(), local_zone("")).hour
    config_file.write_text(
        DEMO_CONFIG.format(quiet_start=f"{hour:02d}:00", quiet_end=f"{(hour + 2) % 24:02d}:00"),
        encoding="utf-8",
    )
    config = load_config(config_file)
    (folder / "hub.db").unlink(missing_ok=True)
    for suffix in ("-wal", "-shm"):
        (folder / f"hub.db{suffix}").unlink(missing_ok=True)

    db = open_database(config.hub.database)
    try:
        print(f"SpottyPottySense demo — config {config_file}, database {config.hub.database}")
        print("Simulated motion; timeouts of 3 s; Spotify in dry-run.\n")
        engine = SessionEngine(config)
        repository = SessionRepository(db, ttl_days=config.sessions.ttl_days)
        say = _Printer(clock())
        pending = list(SCRIPT)
        while pending or engine.active:
            now = clock()
            due_motion = say.started + pending[0][0] if pending else None
            wake = min(t for t in (due_motion, engine.next_deadline()) if t is not None)
            if wake > now:
                sleep(wake - now)
                now = clock()
            if due_motion is not None and due_motion <= now:
                _, sensor_id = pending.pop(0)
                say(now, f"motion from {sensor_id}")
                event = MotionEvent(sensor_id, occurred_at=now, received_at=now, source="demo")
                commands = engine.on_motion(event, now)
            else:
                commands = engine.on_tick(now)
            _apply(commands, engine, repository, say, now)

        context = OperationContext(config=config, db=db)
        print("\nSessions recorded (spottypotty sessions):\n")
        listed = handle({"action": "query_sessions", "userId": "demo-user"}, context)
        print(sessions_report(listed))
        print("\nAnalytics (spottypotty analytics):\n")
        print(analytics_report(handle({"action": "get_session_analytics"}, context)["analytics"]))
        print(
            f"\nTry: spottypotty --config {config_file} sessions --json\n"
            f'     echo \'{{"action": "get_session_analytics", "sensorId": "bathroom_main"}}\''
            f" | spottypotty --config {config_file} invoke"
        )
    finally:
        close_database(db)
    return 0


def _apply(
    commands: Iterable[Command],
    engine: SessionEngine,
    repository: SessionRepository,
    say: Callable[[float, str], None],
    now: float,
) -> None:
    """What the daemon's runner does, inline: persist, and a dry-run player that logs."""
    for command in commands:
        match command:
            case PersistSession(session=session, event=event, created=created):
                repository.save(session, created=created, event=event)
                say(now, _describe(session, created=created, counted=event is not None))
            case StartPlayback(session=session, sensor=sensor):
                say(
                    now, f"♪ would play {sensor.context_uri} on {sensor.spotify_device!r} (dry run)"
                )
                answer = engine.on_playback_started(
                    session.session_id, started=False, device_id=None, note="dry_run", now=now
                )
                _persist_quietly(answer, repository)
            case StopPlayback(session=session):
                say(now, f"♪ would pause {session.sensor_id}'s music (dry run)")
                answer = engine.on_playback_stopped(session.session_id, stopped=False, now=now)
                _persist_quietly(answer, repository)
            case DropEvent(event=event, reason=reason):
                say(now, f"dropped motion from {event.sensor_id}: {reason.replace('_', ' ')}")


def _persist_quietly(commands: Iterable[Command], repository: SessionRepository) -> None:
    """The player's answers only update the playback fields: nothing to narrate."""
    for command in commands:
        if isinstance(command, PersistSession):
            repository.save(command.session, created=command.created, event=command.event)


def _describe(session: Session, *, created: bool, counted: bool) -> str:
    if created:
        quiet = session.playback_note == "quiet_hours"
        return f"session {session.session_id} started" + (
            " — quiet hours, no music" if quiet else ""
        )
    if not session.is_active:
        return (
            f"session {session.session_id} ended after {session.duration_minutes} min, "
            f"{session.motion_events_count} motion event(s)"
        )
    if counted:
        return f"  extended: {session.motion_events_count} motion events"
    return "  same burst: coalesced, but the deadline moves"
