"""Small facts the hub keeps about itself in `hub_meta` (key → text)."""

from __future__ import annotations

import json

from sqlite_utils import Database

BLE_COUNTERS_KEY = "bleCounters"
LAST_SYNC_AT_KEY = "lastSyncAt"  # written by `spottypotty sync`, shown by /health
LAST_SYNC_RESULT_KEY = "lastSyncResult"
WRITER_STARTED_KEY = "writerStartedAt"  # the daemon's write probe at start (hub.store.writer)
HA_ANNOUNCED_KEY = "haDiscoverySensors"  # sensors announced to Home Assistant (JSON list)
# Sensors' learnt clock offsets (hub/sessions/sensor_clocks.py), kept across a restart.
SENSOR_CLOCKS_KEY = "sensorClockOffsets"


def get_meta(db: Database, key: str) -> str | None:
    row = db.execute("SELECT value FROM hub_meta WHERE key = ?", [key]).fetchone()
    return None if row is None else str(row[0])


def set_meta(db: Database, values: dict[str, str]) -> None:
    """Write `values` in one transaction; unchanged values are not rewritten."""
    with db.atomic():
        for key, value in values.items():
            db.execute(
                "INSERT INTO hub_meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value "
                "WHERE hub_meta.value IS NOT excluded.value",
                [key, value],
            )


def load_ble_counters(db: Database) -> dict[str, object]:
    """Keyed BLE sensors' replay-guard state by address, as saved (the guard reads it:
    `ble_decode.CounterState.from_json`); {} when there is none or it is unreadable."""
    text = get_meta(db, BLE_COUNTERS_KEY)
    if not text:
        return {}
    try:
        saved = json.loads(text)
    except ValueError:
        return {}  # unreadable: start from nothing, as a new hub would
    if not isinstance(saved, dict):
        return {}
    return {str(address): state for address, state in saved.items()}


def save_ble_counters(db: Database, counters: dict[str, object]) -> None:
    set_meta(db, {BLE_COUNTERS_KEY: json.dumps(counters, sort_keys=True)})


def load_sensor_clocks(db: Database) -> dict[str, tuple[float, float]]:
    """sensor id -> (clock offset, the sensor's time it was last seen at)."""
    text = get_meta(db, SENSOR_CLOCKS_KEY)
    if not text:
        return {}
    try:
        saved = json.loads(text)
        return {str(sensor): (float(pair[0]), float(pair[1])) for sensor, pair in saved.items()}
    except (ValueError, TypeError, AttributeError, IndexError, KeyError):
        return {}  # unreadable: learn them again from live motion


def save_sensor_clocks(db: Database, offsets: dict[str, tuple[float, float]]) -> None:
    set_meta(db, {SENSOR_CLOCKS_KEY: json.dumps({s: list(o) for s, o in sorted(offsets.items())})})
