"""Encrypted BLE sensors' counters survive a hub restart: an old advert replayed at a
freshly restarted hub is still refused."""

from __future__ import annotations

from sqlite_utils import Database

from hub.ingest.ble_decode import BleGuard, BleSensor, CounterState, Reason
from hub.ingest.ble_state import load_states, retrust_saved, save_states
from hub.model import MotionEvent
from hub.store.meta import BLE_COUNTERS_KEY, set_meta
from tests import bthome_encode as enc

ADDRESS = "54:48:E6:8F:80:A5"
KEY = bytes.fromhex("231d39c1d7cc1ab1aee224cd096db932")
MOTION = bytes.fromhex("2101")  # BTHome motion: detected
NOW = 1_704_412_800.0


def guard() -> BleGuard:
    return BleGuard({ADDRESS: BleSensor("bathroom", KEY)})


def advert(counter: int) -> bytes:
    return enc.encrypted(MOTION, address=ADDRESS, bindkey=KEY, counter=counter)


def test_a_replayed_advert_is_refused_after_a_restart_too(db: Database) -> None:
    before = guard()
    recorded = advert(200_000)
    assert isinstance(before.feed(ADDRESS, recorded, NOW).event, MotionEvent)
    assert isinstance(before.feed(ADDRESS, advert(200_001), NOW + 30).event, MotionEvent)
    save_states(db, before.counters())

    forgetful = guard()  # a restarted hub that kept nothing believes the recording once
    assert isinstance(forgetful.feed(ADDRESS, recorded, NOW + 60).event, MotionEvent)

    restarted = guard()
    restarted.restore(load_states(db))
    verdict = restarted.feed(ADDRESS, recorded, NOW + 60)
    assert (verdict.event, verdict.reason) == (None, Reason.REPLAY)
    assert isinstance(restarted.feed(ADDRESS, advert(200_002), NOW + 90).event, MotionEvent)


def test_counters_round_trip_and_unreadable_ones_are_ignored(db: Database) -> None:
    assert load_states(db) == {}
    saved = {
        ADDRESS: CounterState(7, None, 1 << 7, trust_next=False),
        "AA:BB:CC:DD:EE:FF": CounterState(3, 99, (1 << 3) | 1, trust_next=True),
    }
    save_states(db, saved)
    assert load_states(db) == saved
    set_meta(db, {BLE_COUNTERS_KEY: "{not json"})
    assert load_states(db) == {}
    # The format before lowSeen/trustNext, and one entry nobody can read (skipped alone).
    set_meta(db, {BLE_COUNTERS_KEY: f'{{"{ADDRESS}": [7, null], "X": {{"counter": -1}}}}'})
    assert load_states(db) == {ADDRESS: CounterState(7, None)}


def test_the_same_counter_is_refused_after_a_restart(db: Database) -> None:
    """A restored last counter counts as fully seen: the last advert replayed at a restarted
    hub is a repeat, not a second message at that counter."""
    before = guard()
    assert isinstance(before.feed(ADDRESS, advert(500), NOW).event, MotionEvent)
    save_states(db, before.counters())
    restarted = guard()
    restarted.restore(load_states(db))
    assert restarted.feed(ADDRESS, advert(500), NOW + 60).reason is Reason.REPEAT


def test_a_retrust_saved_without_a_daemon_is_honoured_by_the_next_guard(db: Database) -> None:
    before = guard()
    assert isinstance(before.feed(ADDRESS, advert(90_000), NOW).event, MotionEvent)
    save_states(db, before.counters())
    assert retrust_saved(db, ADDRESS.lower()) == 90_000
    restarted = guard()
    restarted.restore(load_states(db))
    reset = restarted.feed(ADDRESS, advert(5_000), NOW + 60)  # reset to some lower counter
    assert isinstance(reset.event, MotionEvent)
    assert reset.retrusted
    assert restarted.feed(ADDRESS, advert(4_999), NOW + 120).reason is Reason.REPLAY
