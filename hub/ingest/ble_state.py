"""The BLE replay guard's state in SQLite (`hub_meta` key `bleCounters`), and the one
operation on it that comes from outside the guard: `sensors retrust`.

The daemon's guard owns the state while it runs (saved every status interval, at a
retrust and at shutdown); `retrust_saved` is for when no guard runs (no daemon, or the
daemon has BLE off): it marks the address so that the next guard to start believes the
sensor's next advert.
"""

from __future__ import annotations

import dataclasses
from typing import Final

from sqlite_utils import Database

from hub.ingest.ble_decode import CounterState, dump_counter_states, load_counter_states
from hub.store.meta import load_ble_counters, save_ble_counters

RETRUST_ACTION: Final = "retrust_ble_sensor"  # the control socket's event (never HTTP)


def load_states(db: Database) -> dict[str, CounterState]:
    return load_counter_states(load_ble_counters(db))


def save_states(db: Database, states: dict[str, CounterState]) -> None:
    save_ble_counters(db, dump_counter_states(states))


def retrust_saved(db: Database, address: str) -> int | None:
    """Mark `address` to be believed at its next advert; the last counter believed."""
    states = load_states(db)
    address = address.upper()
    state = states.get(address, CounterState())
    states[address] = dataclasses.replace(state, trust_next=True)
    save_states(db, states)
    return state.counter
