"""Encrypted BLE sensors' counters survive a hub restart: an old advert replayed at a
freshly restarted hub is still refused."""

from __future__ import annotations

from sqlite_utils import Database

from hub.ingest.ble_decode import BleGuard, BleSensor, Reason
from hub.model import MotionEvent
from hub.store.meta import BLE_COUNTERS_KEY, load_ble_counters, save_ble_counters, set_meta
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
    assert isinstance(before.feed(ADDRESS, advert(200_001), NOW + 1).event, MotionEvent)
    save_ble_counters(db, before.counters())

    forgetful = guard()  # a restarted hub that kept nothing believes the recording once
    assert isinstance(forgetful.feed(ADDRESS, recorded, NOW + 60).event, MotionEvent)

    restarted = guard()
    restarted.restore(load_ble_counters(db))
    verdict = restarted.feed(ADDRESS, recorded, NOW + 60)
    assert (verdict.event, verdict.reason) == (None, Reason.REPLAY)
    assert isinstance(restarted.feed(ADDRESS, advert(200_002), NOW + 61).event, MotionEvent)


def test_counters_round_trip_and_unreadable_ones_are_ignored(db: Database) -> None:
    assert load_ble_counters(db) == {}
    save_ble_counters(db, {ADDRESS: (7, None), "AA:BB:CC:DD:EE:FF": (3, 99)})
    assert load_ble_counters(db) == {ADDRESS: (7, None), "AA:BB:CC:DD:EE:FF": (3, 99)}
    set_meta(db, {BLE_COUNTERS_KEY: "{not json"})
    assert load_ble_counters(db) == {}
