"""The `Player` port: what the session runner needs from a music player."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from hub.config import SensorConfig
from hub.model import Session


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
