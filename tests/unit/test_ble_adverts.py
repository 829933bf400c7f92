"""The decoder and the guard against adverts nobody on this project wrote: the test suites
of bthome-ble and ble_monitor (tests/fixtures/bthome-adverts.json, sources in its `about`)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hub.errors import ParseError
from hub.ingest.ble_decode import BleGuard, BleSensor, Reason, decode_service_data
from tests.conftest import FIXTURES

ADVERTS: list[dict[str, Any]] = json.loads((FIXTURES / "bthome-adverts.json").read_text("utf-8"))[
    "adverts"
]
NOW = 1_704_412_800.0


def key(entry: dict[str, Any]) -> bytes | None:
    return bytes.fromhex(entry["bindkey"]) if "bindkey" in entry else None


def by_name(suffix: str) -> dict[str, Any]:
    return next(entry for entry in ADVERTS if entry["name"].endswith(suffix))


def test_the_fixture_holds_both_suites() -> None:
    sources = [entry["source"] for entry in ADVERTS]
    assert (sources.count("ble_monitor"), sources.count("bthome-ble")) == (26, 33)


@pytest.mark.parametrize("entry", ADVERTS, ids=[entry["name"] for entry in ADVERTS])
def test_every_advert_decodes_as_its_suite_says(entry: dict[str, Any]) -> None:
    data = bytes.fromhex(entry["service_data"])
    if "error" in entry:
        with pytest.raises(ParseError, match=entry["error"]):
            decode_service_data(entry["address"], data, key(entry))
        return
    advert = decode_service_data(entry["address"], data, key(entry))
    shown = advert.to_json()
    if "values" in entry:
        assert shown["values"] == entry["values"]
    for field in ("encryption", "counter", "mac", "trigger_based"):
        if field in entry:
            assert shown[field] == entry[field], field
    for field in ("unknown_object", "truncated_object"):
        assert shown.get(field) == entry.get(field), field


def test_bthome_ble_counter_sequences_through_the_guard() -> None:
    """bthome-ble's own counter tests: 1122867 then 1122868 are believed, 1122866 after them
    is not, nor is 1122867 again; the wrap 0xFFFFFFFF -> 0 is newer, and not back."""
    first = by_name("encryption counter 1122867 (spec example)")
    guard = BleGuard({first["address"]: BleSensor("s", key(first))})

    def feed(suffix: str, at: float) -> Reason | None:
        entry = by_name(suffix)
        return guard.feed(entry["address"], bytes.fromhex(entry["service_data"]), at).reason

    assert feed("encryption counter 1122867 (spec example)", NOW) is Reason.NO_MOTION
    assert feed("encryption counter 1122868", NOW + 60) is Reason.NO_MOTION
    assert feed("encryption counter 1122866", NOW + 120) is Reason.REPLAY
    assert feed("encryption counter 1122867 (spec example)", NOW + 180) is Reason.REPLAY
    assert feed("encryption counter 1122868", NOW + 240) is Reason.REPEAT
    # 0xFFFFFFFF is 2**32 - 1122869 ahead of 1122868: more than half the circle, so behind.
    assert feed("encryption counter 0xffffffff", NOW + 270) is Reason.REPLAY
    guard = BleGuard({first["address"]: BleSensor("s", key(first))})
    assert feed("encryption counter 0xffffffff", NOW + 300) is Reason.NO_MOTION
    assert feed("encryption counter 0 after the wrap", NOW + 360) is Reason.NO_MOTION
    assert feed("encryption counter 0xffffffff", NOW + 420) is Reason.REPLAY


def test_motion_from_a_foreign_advert_is_an_event() -> None:
    entry = by_name("ble_monitor: motion")
    guard = BleGuard({entry["address"]: BleSensor("hall")})
    verdict = guard.feed(entry["address"], bytes.fromhex(entry["service_data"]), NOW)
    assert verdict.event is not None
    assert verdict.event.sensor_id == "hall"
