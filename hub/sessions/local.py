"""Session Manager events with no daemon running: the daemon's own runner, engine and
writer, in this process, for one event.

The caller holds the lock file (`hub.control.route`), so no daemon starts meanwhile and
the runner is the one owner of session state, as it is inside the daemon. Sessions a
crashed daemon left active are taken over as the daemon would (`SessionEngine.restore`),
so a deadline that passed ends its session first, exactly where the daemon would have.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from hub.config import HubConfig, SensorConfig
from hub.controls import Controls, command_from_event, control_answer, control_failure
from hub.errors import HubError
from hub.model import Session
from hub.playback.port import PlaybackResult, Player
from hub.sessions.engine import SessionEngine
from hub.sessions.operations import failure, invoke
from hub.sessions.runner import SessionRunner
from hub.store.meta import CONTROLS_KEY, get_meta
from hub.store.sessions import SessionRepository
from hub.store.writer import StoreWriter

ONE_OFF_PLAYBACK_WAIT = 15.0  # seconds: two Spotify calls of 5 s each, and a margin


class _PlayerOnFirstUse:
    """The configured player, built only if the event needs it (an end pausing music):
    most events never touch Spotify, and building its client costs start-up time."""

    def __init__(self, config: HubConfig) -> None:
        self._config = config
        self._player: Player | None = None

    def _built(self) -> Player:
        if self._player is None:
            from hub.playback.spotify import make_player  # noqa: PLC0415 - spotipy on first use

            self._player = make_player(self._config)
        return self._player

    async def start(self, session: Session, sensor: SensorConfig) -> PlaybackResult:
        return await self._built().start(session, sensor)

    async def stop(self, session: Session, sensor: SensorConfig | None) -> bool:
        return await self._built().stop(session, sensor)


def invoke_owned(config: HubConfig, event: object) -> dict[str, Any]:
    """A change answered by the owner of session state: the running daemon over its
    control socket, or — with none — this process, holding the lock file meanwhile."""
    from hub.control import route  # noqa: PLC0415 - only a change needs it

    return route(config.hub.database, event, lambda: asyncio.run(invoke_here(config, event)))


def control_owned(config: HubConfig, event: object) -> dict[str, Any]:
    """A control event (`spottypotty dnd`) answered by the owner of session state: the
    running daemon over its control socket, or — with none — this process."""
    from hub.control import route  # noqa: PLC0415

    return route(config.hub.database, event, lambda: asyncio.run(control_here(config, event)))


async def control_here(
    config: HubConfig, event: object, *, clock: Callable[[], float] = time.time
) -> dict[str, Any]:
    """One control event, carried out as the daemon's runner would (the caller holds the
    lock): saved, so the daemon starts with it."""
    try:
        command = command_from_event(event, source="cli")
        async with StoreWriter(
            config.hub.database, ttl_days=config.sessions.ttl_days, integrity_check=False
        ) as writer:
            saved = await writer.call(lambda repository: get_meta(repository.db, CONTROLS_KEY))
            engine = SessionEngine(config)
            controls = Controls.from_json(saved)
            engine.set_controls(controls)
            engine.restore(await writer.call(SessionRepository.all_active))
            runner = SessionRunner(
                engine, writer, _PlayerOnFirstUse(config), clock=clock, controls=controls
            )
            refused: HubError | None = None
            async with asyncio.TaskGroup() as group:
                group.create_task(runner.run(), name="session-runner")
                try:
                    controls = await runner.control(command)
                except HubError as exc:  # answered, not raised: the runner goes on
                    refused = exc
                finally:
                    runner.finish(pause_active=False, playback_wait=ONE_OFF_PLAYBACK_WAIT)
    except HubError as exc:
        return control_failure(exc)
    if refused is not None:
        return control_failure(refused)
    return control_answer(config, controls, clock())


async def invoke_here(
    config: HubConfig,
    event: object,
    *,
    player: Player | None = None,
    clock: Callable[[], float] = time.time,
    new_id: Callable[[str, float], str] | None = None,
) -> dict[str, Any]:
    """One event, answered as the daemon would answer it (the caller holds the lock)."""
    try:
        return await _invoke_here(config, event, player=player, clock=clock, new_id=new_id)
    except HubError as exc:  # the store cannot be opened (locked, damaged): still JSON
        return failure(event, exc)


async def _invoke_here(
    config: HubConfig,
    event: object,
    *,
    player: Player | None,
    clock: Callable[[], float],
    new_id: Callable[[str, float], str] | None,
) -> dict[str, Any]:
    # No integrity check per event (a year of sessions takes seconds to scan): the
    # daemon checks at its start, and a damaged page still fails the write as a StoreError.
    async with StoreWriter(
        config.hub.database, ttl_days=config.sessions.ttl_days, integrity_check=False
    ) as writer:
        engine = SessionEngine(config) if new_id is None else SessionEngine(config, new_id=new_id)
        engine.restore(await writer.call(SessionRepository.all_active))
        runner = SessionRunner(
            engine, writer, player if player is not None else _PlayerOnFirstUse(config), clock=clock
        )
        async with asyncio.TaskGroup() as group:
            group.create_task(runner.run(), name="session-runner")
            try:
                return await invoke(
                    event,
                    config,
                    change=runner.change,
                    read=lambda function: writer.call(lambda repository: function(repository.db)),
                )
            finally:
                # The music of sessions still active plays on; a pause this event asked for
                # (end_session) gets the time Spotify's own timeouts allow: no SIGTERM here.
                runner.finish(pause_active=False, playback_wait=ONE_OFF_PLAYBACK_WAIT)
