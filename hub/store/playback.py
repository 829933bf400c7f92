"""The player's memory in SQLite: learned Spotify device ids and resume points."""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlite_utils import Database

from hub.playback.port import Remembered, ResumePoint
from hub.store.writer import StoreWriter


def load(db: Database) -> Remembered:
    devices = db.execute("SELECT name, deviceId FROM spotify_devices").fetchall()
    points = db.execute(
        "SELECT sensorId, contextUri, itemUri, positionMs FROM resume_points"
    ).fetchall()
    return Remembered(
        device_ids={str(name): str(device_id) for name, device_id in devices},
        resume_points={
            (str(sensor), str(context)): ResumePoint(str(context), str(item), int(position))
            for sensor, context, item, position in points
        },
    )


def keep_device(db: Database, name: str, device_id: str, at: float) -> None:
    """Remember `device_id` for `name`; an unchanged id is not rewritten (flash wear)."""
    with db.atomic():
        db.execute(
            "INSERT INTO spotify_devices (name, deviceId, seenAt) VALUES (?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET "
            "deviceId = excluded.deviceId, seenAt = excluded.seenAt "
            "WHERE spotify_devices.deviceId IS NOT excluded.deviceId",
            [name, device_id, at],
        )


def keep_resume(
    db: Database, sensor_id: str, context_uri: str, point: ResumePoint | None, at: float
) -> None:
    with db.atomic():
        if point is None:
            db.execute(
                "DELETE FROM resume_points WHERE sensorId = ? AND contextUri = ?",
                [sensor_id, context_uri],
            )
            return
        db.execute(
            "INSERT INTO resume_points (sensorId, contextUri, itemUri, positionMs, keptAt) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (sensorId, contextUri) DO UPDATE SET "
            "itemUri = excluded.itemUri, positionMs = excluded.positionMs, "
            "keptAt = excluded.keptAt",
            [sensor_id, context_uri, point.item_uri, point.position_ms, at],
        )


class StoreMemory:
    """The `PlayerMemory` of the daemon: reads and writes go through the one store writer."""

    def __init__(self, writer: StoreWriter, clock: Callable[[], float] = time.time) -> None:
        self._writer = writer
        self._clock = clock

    async def load(self) -> Remembered:
        return await self._writer.call(lambda repository: load(repository.db))

    async def keep_device(self, name: str, device_id: str) -> None:
        at = self._clock()
        await self._writer.call(lambda repository: keep_device(repository.db, name, device_id, at))

    async def keep_resume(
        self, sensor_id: str, context_uri: str, point: ResumePoint | None
    ) -> None:
        at = self._clock()
        await self._writer.call(
            lambda repository: keep_resume(repository.db, sensor_id, context_uri, point, at)
        )
