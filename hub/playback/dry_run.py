"""A player that only logs what it would do (`spotify.dry_run`, the demo, no credentials)."""

from __future__ import annotations

import logging

from hub.config import SensorConfig
from hub.model import Session
from hub.playback.port import PlaybackResult

_LOGGER = logging.getLogger(__name__)


class DryRunPlayer:
    async def start(self, session: Session, sensor: SensorConfig) -> PlaybackResult:
        _LOGGER.info(
            "dry run: would play %s on %r for session %s",
            sensor.context_uri or "(no context_uri)",
            sensor.spotify_device or "(no spotify_device)",
            session.session_id,
            extra={"SENSOR_ID": session.sensor_id, "SESSION_ID": session.session_id},
        )
        return PlaybackResult(started=False, note="dry_run")

    async def stop(self, session: Session, sensor: SensorConfig | None) -> bool:
        _LOGGER.info(
            "dry run: would pause %r for session %s",
            sensor.spotify_device if sensor else "(sensor no longer configured)",
            session.session_id,
        )
        return False

    async def transfer(
        self, session: Session, source: Session, sensor: SensorConfig
    ) -> PlaybackResult:
        _LOGGER.info(
            "dry run: would move the music of session %s to %r for session %s",
            source.session_id,
            sensor.spotify_device or "(no spotify_device)",
            session.session_id,
        )
        return PlaybackResult(started=False, note="dry_run")
