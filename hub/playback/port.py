"""The `Player` port: what the session runner needs from a music player, and what a
player keeps between runs (`PlayerMemory`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from hub.config import SensorConfig
from hub.model import Session, open_session


@dataclass(frozen=True, slots=True)
class PlaybackResult:
    """The player's answer to a start: did music start, where, and if not, why."""

    started: bool
    device_id: str | None = None
    note: str | None = None


class Player(Protocol):
    """Starts and pauses music for sessions. Implementations never raise for a
    playback failure: they answer `started=False` with a note (or False from stop)."""

    async def start(self, session: Session, sensor: SensorConfig) -> PlaybackResult: ...

    async def stop(self, session: Session, sensor: SensorConfig | None) -> bool: ...


@runtime_checkable
class Follower(Protocol):
    """A player that can move music from one session's speaker to another's (music that
    follows you). Players without it (test doubles) never move music: the runner answers
    for them that it did not move."""

    async def transfer(
        self, session: Session, source: Session, sensor: SensorConfig
    ) -> PlaybackResult:
        """Move what the hub started for `source` to `sensor`'s speaker, for `session`,
        only if it still plays where the hub started it; `started` says whether it moved."""
        ...


def trial_session(sensor: SensorConfig, now: float) -> Session:
    """A session for a play test (`spottypotty spotify test`, Home Assistant's "Test
    playback"): played and paused as a real one would be, never stored."""
    return open_session(
        session_id=f"test-{sensor.id}-{int(now)}",
        sensor_id=sensor.id,
        user_id=sensor.user_id,
        start=now,
        now=now,
        ttl_days=1,
        spotify_context_uri=sensor.context_uri or None,
    )


@dataclass(frozen=True, slots=True)
class ResumePoint:
    """Where a room's music in `context_uri` was paused: resume `item_uri` at `position_ms`."""

    context_uri: str
    item_uri: str
    position_ms: int


@dataclass(frozen=True, slots=True)
class Remembered:
    """What a player kept from earlier runs: device ids by casefolded name, and resume
    points by (sensor id, context uri)."""

    device_ids: dict[str, str] = field(default_factory=dict)
    resume_points: dict[tuple[str, str], ResumePoint] = field(default_factory=dict)


class PlayerMemory(Protocol):
    """Where a player keeps what must survive a restart (SQLite, through the one writer)."""

    async def load(self) -> Remembered: ...

    async def keep_device(self, name: str, device_id: str) -> None: ...

    async def keep_resume(
        self, sensor_id: str, context_uri: str, point: ResumePoint | None
    ) -> None:
        """Keep `point` for the sensor's `context_uri`; None forgets it."""
        ...
