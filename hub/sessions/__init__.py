"""Session lifecycle: the pure engine and its playback policy."""

from hub.sessions.engine import (
    Command,
    DropEvent,
    PersistSession,
    SessionEngine,
    StartPlayback,
    StopPlayback,
)
from hub.sessions.policy import in_quiet_hours

__all__ = [
    "Command",
    "DropEvent",
    "PersistSession",
    "SessionEngine",
    "StartPlayback",
    "StopPlayback",
    "in_quiet_hours",
]
