"""What the hub knows about each sensor beyond its config: availability (from its retained
`status` topic) and its latest motion event (last seen, battery, signal, firmware)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlite_utils import Database

from hub.timeutil import iso

METADATA_LOOKBACK = 1_000  # motion events searched for a sensor's last battery, signal, firmware


@dataclass(frozen=True, slots=True)
class SensorState:
    sensor_id: str
    availability: str | None = None  # "online" | "offline" | None (never said)
    availability_changed_at: float | None = None
    last_motion_at: float | None = None
    battery_level: int | None = None
    signal_strength: int | None = None
    firmware_version: str | None = None
    active_session_id: str | None = None


class SensorRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def record_availability(self, sensor_id: str, *, online: bool, at: float) -> bool:
        """Store a status change; a repeat of the current state writes nothing (flash wear)."""
        availability = "online" if online else "offline"
        stamp = iso(at)
        with self.db.atomic():
            cursor = self.db.execute(
                """INSERT INTO sensors (sensorId, availability, availabilityChangedAt,
                                        createdAt, updatedAt)
                   VALUES (?, ?, ?, ?, ?)
                   ON CONFLICT (sensorId) DO UPDATE SET
                       availability = excluded.availability,
                       availabilityChangedAt = excluded.availabilityChangedAt,
                       updatedAt = excluded.updatedAt
                   WHERE sensors.availability IS NOT excluded.availability""",
                [sensor_id, availability, at, stamp, stamp],
            )
            return cursor.rowcount > 0

    def recent_seqs(
        self, sensor_ids: Iterable[str], *, limit: int, span: float
    ) -> dict[str, list[int]]:
        """Each sensor's last `limit` committed `seq`s, oldest first: those of its motion in
        the `span` seconds before its latest, and since it last came online (a reboot
        restarts its counter). What a restarted hub needs to know a QoS-1 redelivery of
        motion it committed but never acknowledged."""
        found: dict[str, list[int]] = {}
        for sensor_id in sensor_ids:
            rows = self.db.execute(
                """SELECT seq FROM motion_events
                   WHERE sensorId = :sensor AND seq IS NOT NULL
                     AND timestamp >= (SELECT max(timestamp) FROM motion_events
                                       WHERE sensorId = :sensor) - :span
                     AND receivedAt >= coalesce(
                         (SELECT availabilityChangedAt FROM sensors
                          WHERE sensorId = :sensor AND availability = 'online'), 0)
                   ORDER BY timestamp DESC LIMIT :limit""",
                {"sensor": sensor_id, "span": span, "limit": limit},
            ).fetchall()
            if rows:
                found[sensor_id] = [row[0] for row in reversed(rows)]
        return found

    def state(self, sensor_id: str) -> SensorState:
        availability = self.db.execute(
            "SELECT availability, availabilityChangedAt FROM sensors WHERE sensorId = ?",
            [sensor_id],
        ).fetchone()
        # Each the latest the sensor reported: a motion message without metadata (or a
        # BLE advert without battery) says nothing about them, it does not erase them. Looked
        # for in its last METADATA_LOOKBACK events (a bounded read, however old the sensor).
        last = self.db.execute(
            """WITH recent AS (
                 SELECT timestamp, batteryLevel, signalStrength, firmwareVersion
                 FROM motion_events WHERE sensorId = :sensor
                 ORDER BY timestamp DESC LIMIT :lookback)
               SELECT max(timestamp),
                 (SELECT batteryLevel FROM recent WHERE batteryLevel IS NOT NULL
                  ORDER BY timestamp DESC LIMIT 1),
                 (SELECT signalStrength FROM recent WHERE signalStrength IS NOT NULL
                  ORDER BY timestamp DESC LIMIT 1),
                 (SELECT firmwareVersion FROM recent WHERE firmwareVersion IS NOT NULL
                  ORDER BY timestamp DESC LIMIT 1)
               FROM recent""",
            {"sensor": sensor_id, "lookback": METADATA_LOOKBACK},
        ).fetchone()
        active = self.db.execute(
            "SELECT sessionId FROM sessions WHERE sensorId = ? AND status = 'active'",
            [sensor_id],
        ).fetchone()
        return SensorState(
            sensor_id=sensor_id,
            availability=availability[0] if availability else None,
            availability_changed_at=availability[1] if availability else None,
            last_motion_at=last[0],
            battery_level=last[1],
            signal_strength=last[2],
            firmware_version=last[3],
            active_session_id=active[0] if active else None,
        )
