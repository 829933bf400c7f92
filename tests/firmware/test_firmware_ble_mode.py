"""BLE mode: the persistent counter (deep sleep, reset, power loss) and one wake's work."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest

ble_mode = importlib.import_module("ble_mode")
bthome = importlib.import_module("bthome")
config = importlib.import_module("config")
counter_mod = importlib.import_module("counter")

KEY_HEX = "231d39c1d7cc1ab1aee224cd096db932"
MAC = bytes.fromhex("5448e68f80a5")
ADDRESS = "54:48:E6:8F:80:A5"


class Rtc:
    """RTC slow memory: kept across deep sleep, lost when the power goes."""

    def __init__(self) -> None:
        self.data = b""

    def read(self) -> bytes:
        return self.data

    def write(self, data: bytes) -> None:
        self.data = bytes(data)

    def power_loss(self) -> None:
        self.data = b""


def test_the_counter_keeps_increasing_across_deep_sleep_reset_and_power_loss(
    tmp_path: Path,
) -> None:
    rtc = Rtc()
    path = str(tmp_path / "counter.bin")
    seen: list[int] = []
    writes = 0
    for boot in range(40):
        counter = counter_mod.PersistentCounter(rtc, counter_mod.FileSlot(path), block=16)
        seen.extend(counter.next() for _ in range(boot % 5))  # a few events per wake
        writes += counter.flash_writes
        if boot % 7 == 6:
            rtc.power_loss()  # battery swap: only the file is left
    assert seen == sorted(set(seen)), "a counter value was reused or went down"
    assert len(seen) == sum(b % 5 for b in range(40))
    assert writes <= len(seen) // 16 + 6  # one flash write per block (+ one per power loss)


def test_a_corrupt_rtc_memory_falls_back_to_the_file(tmp_path: Path) -> None:
    rtc = Rtc()
    slot = counter_mod.FileSlot(str(tmp_path / "counter.bin"))
    first = counter_mod.PersistentCounter(rtc, slot, block=8)
    assert [first.next() for _ in range(3)] == [0, 1, 2]
    rtc.write(b"garbage-garbage-garbage")
    again = counter_mod.PersistentCounter(rtc, slot, block=8)
    assert again.next() == 8  # the reserved ceiling: values 3..7 skipped, none reused


def test_the_counter_stops_rather_than_wrap(tmp_path: Path) -> None:
    rtc = Rtc()
    slot = counter_mod.FileSlot(str(tmp_path / "counter.bin"))
    slot.write((0xFFFFFFFE).to_bytes(4, "little"))
    counter = counter_mod.PersistentCounter(rtc, slot)
    assert counter.next() == 0xFFFFFFFE
    with pytest.raises(OverflowError):
        counter.next()


@pytest.mark.parametrize(
    ("wake", "pir_high", "report_clear", "expected"),
    [
        ("pir", True, False, (True, True)),
        ("pir", False, False, (True, True)),  # a short pulse already over: still motion
        ("timer", True, False, (True, True)),  # still someone there: keep the session
        ("timer", False, False, (False, False)),
        ("timer", False, True, (True, False)),  # the owed "clear"
        ("cold", True, False, (True, True)),
        ("cold", False, False, (True, None)),  # hello for pairing: packet id + battery
    ],
)
def test_what_each_wake_advertises(
    wake: str, pir_high: bool, report_clear: bool, expected: tuple[bool, bool | None]
) -> None:
    assert ble_mode.plan(wake, pir_high, report_clear) == expected


def test_how_the_next_deep_sleep_is_armed() -> None:
    # PIR still high: a timer only (ext0 on a high level would wake at once)
    assert ble_mode.sleep_after(
        pir_high=True, advertised_motion=True, report_clear=False, recheck_ms=30000
    ) == (30000, False)
    assert ble_mode.sleep_after(
        pir_high=False, advertised_motion=True, report_clear=False, recheck_ms=30000
    ) == (None, True)
    assert ble_mode.sleep_after(
        pir_high=False, advertised_motion=True, report_clear=True, recheck_ms=30000
    ) == (30000, True)
    assert ble_mode.sleep_after(
        pir_high=False, advertised_motion=False, report_clear=True, recheck_ms=30000
    ) == (None, True)


class Radio:
    def __init__(self) -> None:
        self.adverts: list[tuple[bytes, int]] = []
        self.stopped = 0

    def advertise(self, adv: bytes, interval_us: int) -> None:
        self.adverts.append((adv, interval_us))

    def stop(self) -> None:
        self.stopped += 1

    def mac(self) -> bytes:
        return MAC


class Device:
    """A simulated ESP32 in BLE mode: RTC memory, flash, the PIR, the radio, a clock."""

    def __init__(self, tmp_path: Path, bindkey: str) -> None:
        self.rtc = Rtc()
        self.flash = str(tmp_path / "counter.bin")
        self.radio = Radio()
        self.pir = 0
        self.slept_ms = 0
        self.light_ms = 0
        self.cfg = config.validate(
            {"sensorId": "hall", "mode": "ble", "ble": {"bindkey": bindkey, "name": "SPS"}}
        )

    def wake(self, reason: str, pir_drops_after_ms: int | None = 0) -> Any:
        """One boot: build everything anew (as after deep sleep) and handle the wake."""
        start = self.slept_ms + self.light_ms

        def level() -> int:
            if pir_drops_after_ms is None:
                return self.pir
            elapsed = self.slept_ms + self.light_ms - start
            return self.pir if elapsed < pir_drops_after_ms else 0

        def sleep(ms: int) -> None:
            self.slept_ms += ms

        def light(ms: int) -> None:
            self.light_ms += ms

        counter = counter_mod.PersistentCounter(self.rtc, counter_mod.FileSlot(self.flash))
        sensor = ble_mode.BleSensor(self.cfg, counter, self.radio, level, lambda: 77, sleep, light)
        return sensor.handle(reason)


def hub_decode(data: bytes, key: bytes | None) -> Any:
    ble_decode = pytest.importorskip(
        "hub.ingest.ble_decode", reason="the hub's BLE decoder is not in this tree yet"
    )
    return ble_decode.decode_service_data(ADDRESS, data, key)


def service_data(adv: bytes) -> bytes:
    assert adv[3 + 1 : 3 + 4] == b"\x16\xd2\xfc"
    return adv[3 + 4 : 3 + 1 + adv[3]]


def test_every_wake_bumps_the_packet_id_and_counter_across_reboots(tmp_path: Path) -> None:
    device = Device(tmp_path, KEY_HEX)
    device.pir = 1
    assert device.wake("cold", pir_drops_after_ms=1500) == (None, True)
    assert device.wake("pir", pir_drops_after_ms=None) == (30000, False)  # still high
    assert device.wake("timer", pir_drops_after_ms=500) == (None, True)
    device.rtc.power_loss()
    assert device.wake("pir") == (None, True)
    assert device.radio.stopped == 4
    assert all(interval == 100_000 for _, interval in device.radio.adverts)
    key = bytes.fromhex(KEY_HEX)
    frames = [service_data(adv) for adv, _ in device.radio.adverts]
    opened = [bthome.open_service_data(frame, key, MAC) for frame in frames]
    counters = [counter for _, _, counter in opened]
    assert counters[:3] == [0, 1, 2]
    assert counters[3] == 256  # after the power loss: the reserved ceiling, never reused
    assert [objects for _, objects, _ in opened] == [
        bytes((0x00, c & 0xFF, 0x01, 77, 0x21, 1)) for c in counters
    ]
    assert len(set(frames)) == 4  # BlueZ would drop an identical advert
    for frame, expected_counter in zip(frames, counters, strict=True):
        advert = hub_decode(frame, key)
        assert advert.readable
        assert advert.counter == expected_counter
        assert advert.motion is True
        assert advert.battery == 77


def test_a_plain_sensor_says_hello_then_motion_then_clear(tmp_path: Path) -> None:
    device = Device(tmp_path, "")
    device.cfg.ble["reportClear"] = True
    device.wake("cold")
    device.pir = 1
    assert device.wake("pir") == (30000, True)  # ext0 for new motion, a timer for "clear"
    device.pir = 0
    assert device.wake("timer") == (None, True)
    frames = [service_data(adv) for adv, _ in device.radio.adverts]
    assert [frame.hex() for frame in frames] == [
        "440000014d",  # packet id 0, battery 77: no motion object
        "440001014d2101",
        "440002014d2100",
    ]
    assert [hub_decode(frame, None).motion for frame in frames] == [None, True, False]
    assert device.light_ms == 0  # the PIR was low each time: no waiting with the radio off


def test_a_wake_that_does_not_advertise_never_starts_bluetooth(tmp_path: Path) -> None:
    made: list[Radio] = []

    def make() -> Radio:
        made.append(Radio())
        return made[-1]

    cfg = config.validate({"sensorId": "hall", "ble": {}})
    counter = counter_mod.PersistentCounter(Rtc(), counter_mod.FileSlot(str(tmp_path / "c")))
    radio = ble_mode._LazyRadio(make)
    sensor = ble_mode.BleSensor(cfg, counter, radio, lambda: 0, lambda: None, lambda _ms: None)
    assert sensor.handle("timer") == (None, True)
    assert made == []
    sensor.handle("pir")
    assert len(made) == 1
    assert made[0].stopped == 1
