"""Replay attacks and honest sensors, through the daemon's BLE path: real bleak
`BLEDevice` / `AdvertisementData` into `BleScanner`'s detection callback, the guard, the
inbox. The sequences of issue 16: a recording replayed after each real advert, two
recordings alternated, a restart, a wrap, a random restart then `retrust`; and what an
honest sensor must never lose (quiet-interval repeats, two messages at one counter, a
truncated last object)."""

from __future__ import annotations

import asyncio
import logging
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.ingest.ble import BleScanner
from hub.ingest.ble_decode import (
    LOCKOUT_REFUSALS,
    REPEAT_SECONDS,
    RESTART_LIMIT,
    BleGuard,
    BleSensor,
    Reason,
)
from hub.ingest.mqtt_decode import Inbound
from hub.model import MotionEvent, SensorState
from tests import bthome_encode as enc
from tests.unit.test_ble_scanner import (
    ADDRESS,
    KEY,
    PLAIN_ADDRESS,
    FakeFactory,
    advertisement,
    config,
    device,
)

START = 1_704_412_800.0
GAP = 60.0  # seconds between real adverts: beyond the repeat window


class Radio:
    """A BleScanner fed as bleak would, with a wall clock the test moves."""

    def __init__(self) -> None:
        self.now = START
        self.inbox: asyncio.Queue[Inbound] = asyncio.Queue()
        self.scanner = BleScanner(
            config(),
            self.inbox,
            clock=lambda: self.now,
            scanner_factory=FakeFactory(),
            rng=random.Random(1),
        )

    def hear(self, data: bytes, address: str = ADDRESS, *, after: float = GAP) -> Inbound | None:
        """One advert, `after` seconds after the last: the event it put on the inbox."""
        self.now += after
        self.scanner._on_advert(device(address), advertisement(data))
        return None if self.inbox.empty() else self.inbox.get_nowait()

    def count(self, name: str) -> int:
        return self.scanner.counters.get(f"{name}:bathroom", 0)


def motion(counter: int, packet_id: int | None = None) -> bytes:
    packet = counter & 0xFF if packet_id is None else packet_id
    payload = enc.objects(packet_id=packet, motion=True)
    return enc.encrypted(payload, address=ADDRESS, bindkey=KEY, counter=counter)


def test_a_recording_replayed_after_each_real_advert_is_never_believed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    radio = Radio()
    recording = motion(4000)
    assert isinstance(radio.hear(recording), MotionEvent)  # heard once, live, in the past
    with caplog.at_level(logging.WARNING, logger="hub.ingest.ble"):
        for counter in range(5000, 5010):
            assert isinstance(radio.hear(motion(counter)), MotionEvent)
            assert radio.hear(recording, after=1) is None
    assert radio.count("replay") == 10
    assert radio.count("locked_out") == 0  # real adverts in between: not a reset sensor
    replay_lines = [r for r in caplog.records if "replay" in r.getMessage()]
    assert len(replay_lines) == 1  # reported once


@pytest.mark.parametrize(("first", "second"), [(4000, 4001), (5, 7)])
def test_two_recordings_alternated_make_at_most_one_event_each(first: int, second: int) -> None:
    radio = Radio()
    assert radio.hear(motion(5000)) is not None
    believed = 0
    for _ in range(10):
        for recording in (motion(first), motion(second)):
            believed += radio.hear(recording) is not None
        assert radio.hear(motion(radio.scanner.guard.last_counter(ADDRESS) or 0)) is None
    # Counters >= 100 behind the last: never. Low ones: each believed once as a restart at
    # most (bthome-ble's rule), never again however often they come back.
    assert believed <= (2 if first < RESTART_LIMIT else 0)


def test_a_restart_is_believed_and_the_old_counters_stay_refused() -> None:
    radio = Radio()
    for counter in range(4000, 4005):
        assert radio.hear(motion(counter)) is not None
    for counter in range(3):  # re-flashed: counting again from 0
        assert isinstance(radio.hear(motion(counter)), MotionEvent)
    assert radio.count("counter_reset") == 1
    assert radio.hear(motion(4003)) is None  # recorded before the restart: a leap back
    assert radio.hear(motion(0)) is None  # the restart itself, replayed
    assert isinstance(radio.hear(motion(3)), MotionEvent)  # the climb goes on


def test_a_wrap_is_newer_and_what_came_before_it_is_not() -> None:
    radio = Radio()
    for counter in (0xFFFF_FFFE, 0xFFFF_FFFF, 0, 1):
        assert isinstance(radio.hear(motion(counter)), MotionEvent)
    assert radio.count("counter_reset") == 0
    assert radio.hear(motion(0xFFFF_FFFF)) is None
    assert radio.hear(motion(0)) is None


def test_a_random_restart_locks_out_until_retrust(caplog: pytest.LogCaptureFixture) -> None:
    radio = Radio()
    assert radio.hear(motion(50_000)) is not None
    with caplog.at_level(logging.WARNING, logger="hub.ingest.ble"):
        for counter in range(20_000, 20_010):  # reset to some lower, random counter
            assert radio.hear(motion(counter)) is None
    assert radio.count("locked_out") == 1
    locked = [r.getMessage() for r in caplog.records if "locked out" in r.getMessage()]
    assert len(locked) == 1
    assert "spottypotty sensors retrust bathroom" in locked[0]
    assert radio.scanner.retrust("bathroom") == ADDRESS
    assert radio.scanner.retrust("hall") is None  # plaintext: no counter to trust
    assert isinstance(radio.hear(motion(20_010)), MotionEvent)
    assert radio.count("retrusted") == 1
    assert isinstance(radio.hear(motion(20_011)), MotionEvent)
    assert radio.hear(motion(20_005)) is None  # trusted from 20_010 on, not before
    assert radio.hear(motion(50_000)) is None  # ... and not the old counters either


def test_lock_out_needs_replays_in_a_row() -> None:
    radio = Radio()
    assert radio.hear(motion(1000)) is not None
    for _ in range(5):
        for _ in range(LOCKOUT_REFUSALS - 1):
            assert radio.hear(motion(500)) is None
        assert radio.hear(motion((radio.scanner.guard.last_counter(ADDRESS) or 0) + 1))
    assert radio.count("locked_out") == 0


def test_plaintext_motion_again_after_a_quiet_interval_is_new_motion() -> None:
    radio = Radio()
    bare = enc.plain(enc.objects(motion=True))  # no packet id, no clear in between
    assert isinstance(radio.hear(bare, PLAIN_ADDRESS), MotionEvent)
    assert radio.hear(bare, PLAIN_ADDRESS, after=0.5) is None  # the same burst
    assert radio.hear(bare, PLAIN_ADDRESS, after=REPEAT_SECONDS - 1) is None  # still heard
    assert isinstance(radio.hear(bare, PLAIN_ADDRESS, after=300), MotionEvent)
    assert isinstance(radio.hear(bare, PLAIN_ADDRESS, after=REPEAT_SECONDS), MotionEvent)
    cleared = enc.plain(enc.objects(motion=False))
    assert isinstance(radio.hear(cleared, PLAIN_ADDRESS, after=1), SensorState)
    assert isinstance(radio.hear(bare, PLAIN_ADDRESS, after=1), MotionEvent)  # changed: new


def test_two_messages_at_one_counter_are_both_processed_once() -> None:
    radio = Radio()
    battery = enc.encrypted(enc.objects(battery=80), address=ADDRESS, bindkey=KEY, counter=10)
    moved = enc.encrypted(
        enc.objects(battery=80, motion=True), address=ADDRESS, bindkey=KEY, counter=10
    )
    assert radio.hear(battery) is None  # believed, no motion in it
    assert radio.count("no_motion") == 1
    assert isinstance(radio.hear(moved, after=0.1), MotionEvent)  # same counter: processed
    assert radio.hear(battery, after=GAP) is None
    assert radio.hear(moved, after=GAP) is None
    assert radio.count("repeat") == 2


def test_a_truncated_last_object_keeps_the_motion_before_it_and_is_counted() -> None:
    radio = Radio()
    cut = enc.objects(packet_id=1, motion=True) + bytes([0x02, 0x10])  # temperature: 1 of 2
    data = enc.encrypted(cut, address=ADDRESS, bindkey=KEY, counter=77)
    assert isinstance(radio.hear(data), MotionEvent)
    assert radio.count("truncated") == 1


# --- properties -----------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(st.integers(1, 3000), min_size=1, max_size=25),
    start=st.integers(RESTART_LIMIT, 2**32 - 1),
    replays=st.lists(st.tuples(st.integers(0, 30), st.integers(0, 30)), max_size=40),
)
def test_honest_adverts_are_all_believed_and_no_recording_twice(
    steps: list[int], start: int, replays: list[tuple[int, int]]
) -> None:
    """An honest counter climbing in random steps (across a wrap too), with recordings of
    anything it sent replayed at random moments: every honest advert makes its event, and
    no (counter, content) is ever believed twice."""
    guard = BleGuard({ADDRESS: BleSensor("bathroom", KEY)})
    counters = [start]
    for step in steps:
        counters.append((counters[-1] + step) % 2**32)
    sent: list[bytes] = []
    believed: list[bytes] = []
    now = START
    for position, counter in enumerate(counters):
        data = motion(counter, packet_id=position & 0xFF)
        now += GAP
        verdict = guard.feed(ADDRESS, data, now)
        assert isinstance(verdict.event, MotionEvent), (position, counter, verdict.reason)
        sent.append(data)
        believed.append(data)
        for when, which in replays:
            if when == position:
                now += 0.01
                replayed = guard.feed(ADDRESS, sent[which % len(sent)], now)
                if replayed.reason not in {Reason.REPLAY, Reason.REPEAT}:
                    believed.append(sent[which % len(sent)])
    assert len(believed) == len(set(believed))
