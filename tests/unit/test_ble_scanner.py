"""The bleak adapter: real BLEDevice / AdvertisementData into the callback, a fake scanner
factory, an injected clock and sleep (watchdog, InProgress, adapter missing, full inbox)."""

from __future__ import annotations

import argparse
import asyncio
import functools
import io
import json
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from bleak import BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import (
    BleakBluetoothNotAvailableError,
    BleakBluetoothNotAvailableReason,
    BleakDBusError,
    BleakError,
)

from hub.cli import ble as ble_cli
from hub.config import HubConfig, parse_config
from hub.ingest.ble import (
    BTHOME_PATTERN,
    BleScanner,
    BleUnavailableError,
    DetectionCallback,
    ScanMode,
    Sighting,
    bleak_scanner_factory,
    scan,
)
from hub.ingest.ble_decode import BTHOME_UUID
from hub.ingest.mqtt_decode import Inbound
from hub.model import MotionEvent, SensorState, StateKind
from hub.sessions.engine import SessionEngine, StartPlayback
from tests import bthome_encode as enc

ADDRESS = "54:48:E6:8F:80:A5"
KEY = bytes.fromhex("231d39c1d7cc1ab1aee224cd096db932")
PLAIN_ADDRESS = "A4:C1:38:8D:18:B2"
STRANGER = "11:22:33:44:55:66"
WALL = 1_704_412_800.0

CONFIG_TEXT = f"""
[ble]
enabled = true
adapter = "hci1"

[[sensors]]
id = "bathroom"
user_id = "u"
ble_address = "{ADDRESS}"
ble_bindkey = "{KEY.hex()}"

[[sensors]]
id = "hall"
user_id = "u"
ble_address = "{PLAIN_ADDRESS}"
"""


def config() -> HubConfig:
    return parse_config(CONFIG_TEXT)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


class FakeScanner:
    def __init__(
        self, callback: DetectionCallback, mode: ScanMode, failure: BaseException | None
    ) -> None:
        self.callback = callback
        self.mode = mode
        self.failure = failure
        self.started = False
        self.stopped = False

    async def start(self) -> None:
        if self.failure is not None:
            raise self.failure
        self.started = True

    async def stop(self) -> None:
        self.stopped = True


class FakeFactory:
    """Each scanner made takes the next failure (None: starts fine)."""

    def __init__(self, *failures: BaseException | None) -> None:
        self.failures: deque[BaseException | None] = deque(failures)
        self.made: list[FakeScanner] = []

    def __call__(self, callback: DetectionCallback, mode: ScanMode) -> FakeScanner:
        failure = self.failures.popleft() if self.failures else None
        scanner = FakeScanner(callback, mode, failure)
        self.made.append(scanner)
        return scanner

    @property
    def live(self) -> FakeScanner:
        return self.made[-1]


def device(address: str = ADDRESS, name: str | None = "SBMO-003Z") -> BLEDevice:
    return BLEDevice(address, name, details={"path": "/org/bluez/hci1/dev_x"})


def advertisement(
    service_data: bytes | None, *, rssi: int = -60, name: str | None = "SBMO-003Z"
) -> AdvertisementData:
    data = {BTHOME_UUID: service_data} if service_data is not None else {}
    return AdvertisementData(
        local_name=name,
        manufacturer_data={},
        service_data=data,
        service_uuids=[BTHOME_UUID] if service_data is not None else [],
        tx_power=None,
        rssi=rssi,
        platform_data=(),
    )


def make_scanner(
    factory: FakeFactory,
    clock: FakeClock,
    *,
    inbox: asyncio.Queue[Inbound] | None = None,
    cfg: HubConfig | None = None,
    **kwargs: Any,
) -> tuple[BleScanner, asyncio.Queue[Inbound]]:
    queue: asyncio.Queue[Inbound] = inbox if inbox is not None else asyncio.Queue()
    scanner = BleScanner(
        cfg if cfg is not None else config(),
        queue,
        clock=lambda: WALL,
        monotonic=clock.monotonic,
        sleep=clock.sleep,
        scanner_factory=factory,
        rng=random.Random(7),
        **kwargs,
    )
    return scanner, queue


async def until(predicate: Callable[[], bool], *, steps: int = 10_000) -> None:
    for _ in range(steps):
        if predicate():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never became true")


def past(clock: FakeClock, target: float) -> bool:
    return clock.now >= target


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def sealed(payload: bytes, counter: int) -> bytes:
    return enc.encrypted(payload, address=ADDRESS, bindkey=KEY, counter=counter)


# --- the callback ---------------------------------------------------------------------------


def test_occupancy_and_door_adverts_through_the_callback_make_one_held_session() -> None:
    """An encrypted BTHome occupancy sensor and a plain BTHome door in one room, through
    bleak's own objects and the scanner's callback, into the engine."""
    cfg = parse_config(
        CONFIG_TEXT.replace(
            'id = "hall"\nuser_id = "u"', 'id = "hall"\nuser_id = "u"\nkind = "door"'
        )
        + '[[rooms]]\nid = "bath"\nsensors = ["bathroom", "hall"]\n'
    )
    scanner, inbox = make_scanner(FakeFactory(), FakeClock(), cfg=cfg)
    engine = SessionEngine(cfg)
    door = device(PLAIN_ADDRESS, "SBDW-002C")
    adverts = [
        (door, advertisement(enc.plain(enc.objects(packet_id=1, door=False)), name="SBDW-002C")),
        (device(), advertisement(sealed(enc.objects(packet_id=1, occupancy=True), 1))),
        (door, advertisement(enc.plain(enc.objects(packet_id=2, door=True)), name="SBDW-002C")),
    ]
    commands = []
    for ble_device, data in adverts:
        scanner._on_advert(ble_device, data)
        item = inbox.get_nowait()
        assert isinstance(item, SensorState)
        commands += engine.on_state(item, WALL)
    [session] = engine.active.values()
    assert session.sensor_id == "bath"
    assert sum(isinstance(c, StartPlayback) for c in commands) == 1
    # Held by the occupancy sensor (the door opened, but presence says someone is there).
    assert engine.next_deadline() == WALL + 240 * 60
    scanner._on_advert(
        device(), advertisement(sealed(enc.objects(packet_id=2, occupancy=False), 2))
    )
    clear = inbox.get_nowait()
    assert clear == SensorState(
        "bathroom", StateKind.OCCUPANCY, on=False, received_at=WALL, source="ble"
    )
    engine.on_state(clear, WALL + 60)
    assert engine.next_deadline() == WALL + 60 + 300


def test_shelly_vector_through_the_callback(bthome_vectors: list[dict[str, Any]]) -> None:
    shelly = next(v for v in bthome_vectors if v["name"].startswith("Shelly"))
    scanner, inbox = make_scanner(FakeFactory(), FakeClock())
    scanner._on_advert(
        device(shelly["address"]),
        advertisement(bytes.fromhex(shelly["service_data"]), rssi=-71),
    )
    assert inbox.get_nowait() == MotionEvent(
        sensor_id="bathroom",
        occurred_at=WALL,
        received_at=WALL,
        source="ble",
        seq=857870592,  # no packet id in this advert: the counter
        signal_strength=-71,
    )
    # BlueZ repeats adverts: the same one again makes nothing.
    scanner._on_advert(
        device(shelly["address"]), advertisement(bytes.fromhex(shelly["service_data"]))
    )
    assert inbox.empty()
    assert scanner.counters["events"] == 1
    assert scanner.counters["repeat:bathroom"] == 1
    assert scanner.key_statuses() == {"bathroom": "verified"}


def test_firmware_encoder_adverts_through_the_callback() -> None:
    scanner, inbox = make_scanner(FakeFactory(), FakeClock())
    on = sealed(enc.objects(packet_id=1, battery=90, motion=True), 100)
    off = sealed(enc.objects(packet_id=2, battery=90, motion=False), 101)
    scanner._on_advert(device(), advertisement(on, rssi=-50))
    scanner._on_advert(device(), advertisement(off, rssi=-50))
    first, second = inbox.get_nowait(), inbox.get_nowait()
    assert isinstance(first, MotionEvent)
    assert (first.seq, first.battery_level, first.signal_strength) == (1, 90, -50)
    assert second == SensorState(
        "bathroom", StateKind.OCCUPANCY, on=False, received_at=WALL, source="ble", battery_level=90
    )
    assert scanner.counters["states"] == 1


def test_strangers_other_adverts_and_downgrades_make_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    scanner, inbox = make_scanner(FakeFactory(), FakeClock())
    motion = enc.plain(enc.objects(packet_id=3, motion=True))
    scanner._on_advert(device(STRANGER), advertisement(motion))
    scanner._on_advert(device(STRANGER, None), advertisement(None))  # not BTHome at all
    with caplog.at_level(logging.WARNING, logger="hub.ingest.ble"):
        for _ in range(3):
            scanner._on_advert(device(), advertisement(motion))  # plaintext from a keyed sensor
    assert inbox.empty()
    counters = scanner.counters
    assert (counters["adverts"], counters["bthome"], counters["stranger"]) == (5, 4, 1)
    assert counters["downgrade:bathroom"] == 3
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "downgrade" in warnings[0].getMessage()
    # The unkeyed sensor's plaintext is believed.
    scanner._on_advert(device(PLAIN_ADDRESS), advertisement(motion))
    assert isinstance(inbox.get_nowait(), MotionEvent)


def test_wrong_key_is_logged_once_and_never_the_key(caplog: pytest.LogCaptureFixture) -> None:
    scanner, inbox = make_scanner(FakeFactory(), FakeClock())
    other = bytes(range(16))
    with caplog.at_level(logging.DEBUG):
        for n in range(1, 5):
            data = enc.encrypted(
                enc.objects(packet_id=n, motion=True), address=ADDRESS, bindkey=other, counter=n
            )
            scanner._on_advert(device(), advertisement(data))
    assert inbox.empty()
    assert scanner.counters["wrong_key:bathroom"] == 4
    wrong = [r for r in caplog.records if "ble_bindkey" in r.getMessage()]
    assert len(wrong) == 1
    assert wrong[0].levelno == logging.WARNING
    assert all(
        KEY.hex() not in r.getMessage() and other.hex() not in r.getMessage()
        for r in caplog.records
    )
    assert scanner.key_statuses() == {"bathroom": "wrong_key"}


async def test_full_inbox_drops_and_counts_without_blocking() -> None:
    inbox: asyncio.Queue[Inbound] = asyncio.Queue(maxsize=1)
    scanner, _ = make_scanner(FakeFactory(), FakeClock(), inbox=inbox)
    for n in range(1, 4):
        scanner._on_advert(
            device(), advertisement(sealed(enc.objects(packet_id=n, motion=True), n))
        )
    assert inbox.qsize() == 1
    assert scanner.counters["dropped_inbox_full"] == 2
    assert scanner.counters["events"] == 1


def test_a_failing_callback_is_counted(caplog: pytest.LogCaptureFixture) -> None:
    scanner, _ = make_scanner(FakeFactory(), FakeClock())
    bad = advertisement(b"\x40")
    bad.service_data[BTHOME_UUID] = object()  # type: ignore[assignment]  # bytes() refuses it
    with caplog.at_level(logging.ERROR):
        scanner._on_advert(device(), bad)
    assert scanner.counters["callback_errors"] == 1
    assert any(r.levelno == logging.ERROR for r in caplog.records)


# --- the scan loop --------------------------------------------------------------------------


async def test_starts_passive_with_the_bthome_pattern_and_stops_on_cancel() -> None:
    factory, clock = FakeFactory(), FakeClock()
    scanner, _ = make_scanner(factory, clock)
    assert scanner.status == "stopped"
    task = asyncio.create_task(scanner.run())
    await until(lambda: scanner.scanning)
    assert factory.live.mode == "passive"
    assert scanner.status == "scanning (passive) on hci1"
    await stop(task)
    assert factory.live.stopped
    assert scanner.status == "stopped"


async def test_dead_scanner_watchdog_rebuilds() -> None:
    factory, clock = FakeFactory(), FakeClock()
    scanner, _ = make_scanner(factory, clock, silence_seconds=300, check_interval=10)
    task = asyncio.create_task(scanner.run())
    await until(lambda: scanner.scanning)
    first = factory.live
    # Adverts keep it alive: one every 60 s for 20 minutes.
    start = silent_from = clock.now
    while clock.now - start < 1200:
        first.callback(device(STRANGER), advertisement(None))
        silent_from = clock.now
        await until(functools.partial(past, clock, clock.now + 60))
    assert len(factory.made) == 1
    assert first.mode == "passive"
    # Then silence (bluetoothd restarted under us): rebuilt once 300 s have passed.
    await until(lambda: len(factory.made) == 2)
    assert clock.now - silent_from >= 300
    assert clock.now - silent_from <= 300 + 10
    assert first.stopped
    assert scanner.counters["rebuilds"] == 1
    assert factory.live.mode == "passive"  # passive had delivered: it stays passive
    await until(lambda: scanner.scanning)
    await stop(task)


async def test_passive_scanner_that_never_delivers_becomes_active() -> None:
    factory, clock = FakeFactory(), FakeClock()
    scanner, _ = make_scanner(factory, clock, silence_seconds=30, check_interval=5)
    task = asyncio.create_task(scanner.run())
    await until(lambda: len(factory.made) == 2)
    assert [s.mode for s in factory.made] == ["passive", "active"]
    await stop(task)


async def test_no_ble_sensors_no_watchdog() -> None:
    factory, clock = FakeFactory(), FakeClock()
    cfg = parse_config('[ble]\nenabled = true\n[[sensors]]\nid = "k"\nuser_id = "u"\n')
    scanner, _ = make_scanner(factory, clock, cfg=cfg, silence_seconds=30, check_interval=5)
    task = asyncio.create_task(scanner.run())
    await until(lambda: clock.now >= 1000 + 600)
    assert len(factory.made) == 1
    await stop(task)


async def test_passive_unsupported_falls_back_to_active_at_once() -> None:
    unsupported = BleakError(
        "passive scanning on Linux requires BlueZ >= 5.56 with --experimental enabled "
        "and Linux kernel >= 5.10"
    )
    factory, clock = FakeFactory(unsupported), FakeClock()
    scanner, _ = make_scanner(factory, clock, check_interval=1000)
    task = asyncio.create_task(scanner.run())
    await until(lambda: scanner.scanning)
    assert [s.mode for s in factory.made] == ["passive", "active"]
    assert all(s == 1000 for s in clock.sleeps)  # only the watchdog slept: no backoff
    assert scanner.status == "scanning (active) on hci1"
    await stop(task)


async def test_in_progress_is_transient(caplog: pytest.LogCaptureFixture) -> None:
    busy = BleakDBusError("org.bluez.Error.InProgress", ["Operation already in progress"])
    factory, clock = FakeFactory(busy, busy), FakeClock()
    scanner, _ = make_scanner(factory, clock, check_interval=1000)
    with caplog.at_level(logging.INFO, logger="hub.ingest.ble"):
        task = asyncio.create_task(scanner.run())
        await until(lambda: scanner.scanning)
    assert scanner.counters["in_progress"] == 2
    assert "start_failures" not in scanner.counters
    assert [s.mode for s in factory.made] == ["passive"] * 3  # not mistaken for "no passive"
    assert all(delay <= 5.0 for delay in clock.sleeps[:2])
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    await stop(task)


async def test_adapter_missing_retries_with_capped_backoff(
    caplog: pytest.LogCaptureFixture,
) -> None:
    missing = BleakError("adapter 'hci1' not found")
    no_bt = BleakBluetoothNotAvailableError(
        "No Bluetooth adapters found.", BleakBluetoothNotAvailableReason.NO_BLUETOOTH
    )
    no_bus = FileNotFoundError(2, "No such file or directory")
    failures = [missing, no_bt, no_bus, *([missing] * 7)]
    factory, clock = FakeFactory(*failures), FakeClock()
    statuses: list[str] = []
    original_sleep = clock.sleep

    async def recording_sleep(seconds: float) -> None:
        statuses.append(scanner.status)
        await original_sleep(seconds)

    scanner, _ = make_scanner(factory, clock, backoff_base=1.0, backoff_cap=60.0)
    scanner._sleep = recording_sleep
    with caplog.at_level(logging.DEBUG, logger="hub.ingest.ble"):
        task = asyncio.create_task(scanner.run())
        await until(lambda: scanner.scanning)
    delays = clock.sleeps[: len(failures)]
    assert len(delays) == len(failures)
    for attempt, delay in enumerate(delays):
        assert 0 <= delay <= min(60.0, 2.0**attempt)
    assert statuses[0] == "adapter hci1 unavailable: adapter 'hci1' not found; retrying"
    assert "system D-Bus" in statuses[2]
    assert scanner.counters["start_failures"] == len(failures)
    assert all(s.mode == "passive" for s in factory.made)  # a missing adapter is not "no passive"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # once per outage
    assert scanner.status == "scanning (passive) on hci1"
    await stop(task)


async def test_unexpected_errors_never_escape_run() -> None:
    factory, clock = FakeFactory(RuntimeError("dbus-fast hiccup"), ValueError("odd")), FakeClock()
    scanner, _ = make_scanner(factory, clock)
    task = asyncio.create_task(scanner.run())
    await until(lambda: scanner.scanning)
    assert not task.done()
    assert scanner.counters["start_failures"] == 2
    await stop(task)


async def test_a_scanner_that_will_not_stop_does_not_hang_the_rebuild() -> None:
    class Stubborn(FakeScanner):
        async def stop(self) -> None:
            raise BleakError("org.bluez.Error.NotReady")

    made: list[FakeScanner] = []

    def factory(callback: DetectionCallback, mode: ScanMode) -> FakeScanner:
        scanner = Stubborn(callback, mode, None)
        made.append(scanner)
        return scanner

    clock = FakeClock()
    scanner = BleScanner(
        config(),
        asyncio.Queue(),
        monotonic=clock.monotonic,
        sleep=clock.sleep,
        scanner_factory=factory,
        silence_seconds=10,
        check_interval=5,
    )
    task = asyncio.create_task(scanner.run())
    await until(lambda: len(made) >= 3)
    await stop(task)


def test_constructor_checks() -> None:
    with pytest.raises(ValueError, match="positive"):
        BleScanner(config(), asyncio.Queue(), silence_seconds=0)
    with pytest.raises(ValueError, match="positive"):
        BleScanner(config(), asyncio.Queue(), backoff_cap=0)


def ignore_advert(device: BLEDevice, advertisement: AdvertisementData) -> None:
    del device, advertisement


def ignore_sighting(sighting: Sighting) -> None:
    del sighting


def test_bleak_factory_builds_real_scanners() -> None:
    make = bleak_scanner_factory("hci1")
    passive = make(ignore_advert, "passive")
    active = make(ignore_advert, "active")
    assert isinstance(passive, BleakScanner)
    assert isinstance(active, BleakScanner)
    assert BTHOME_PATTERN.content_of_pattern == b"\xd2\xfc"
    assert int(BTHOME_PATTERN.ad_data_type) == 0x16


# --- one-shot scan (the CLI) ----------------------------------------------------------------


async def test_scan_delivers_sightings() -> None:
    factory = FakeFactory()
    seen: list[Sighting] = []

    async def feed() -> None:
        await until(lambda: bool(factory.made) and factory.live.started)
        live = factory.live
        live.callback(device(), advertisement(sealed(enc.objects(motion=True), 5), rssi=-40))
        live.callback(device(STRANGER, "ATC"), advertisement(b"\x20\x02", name=None))
        live.callback(device(STRANGER), advertisement(None))

    feeder = asyncio.create_task(feed())
    await scan(config(), seen.append, seconds=0.05, scanner_factory=factory)
    await feeder
    assert factory.live.mode == "active"
    assert factory.live.stopped
    assert len(seen) == 2
    assert seen[0].sensor_id == "bathroom"
    assert seen[0].advert is not None
    assert seen[0].advert.values == {"motion": True}
    assert (seen[0].rssi, seen[0].name) == (-40, "SBMO-003Z")
    assert seen[1].sensor_id is None
    assert seen[1].advert is None
    assert seen[1].error is not None
    assert seen[1].name == "ATC"  # from the device when the advert has no name


async def test_scan_without_an_adapter_raises_a_clear_error() -> None:
    factory = FakeFactory(BleakError("adapter 'hci1' not found"))
    with pytest.raises(BleUnavailableError, match="adapter hci1: adapter 'hci1' not found"):
        await scan(config(), ignore_sighting, seconds=1, scanner_factory=factory)


async def test_scan_retries_in_progress() -> None:
    busy = BleakDBusError("org.bluez.Error.InProgress", [])
    factory = FakeFactory(busy)
    await scan(config(), ignore_sighting, seconds=0, scanner_factory=factory, retry_delay=0)
    assert len(factory.made) == 2
    assert factory.live.stopped


# --- the CLI (hub/cli/ble.py) ---------------------------------------------------------------


def cli(*argv: str) -> int:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config")
    common.add_argument("-v", "--verbose", action="store_true")
    parser = argparse.ArgumentParser(prog="spottypotty", parents=[common])
    ble_cli.add_parser(parser.add_subparsers(required=True), common)
    args = parser.parse_args(argv)
    result: int = args.command(args)
    return result


def decoded(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines()]


def test_cli_decode_encrypted_vector(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli(
        "ble",
        "decode",
        "--json",
        "--address",
        ADDRESS.lower(),
        "--bindkey",
        KEY.hex(),
        "d2fc 4187b90011223372b0231f",
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert decoded(out) == [
        {
            "payload": 1,
            "accepted": True,
            "event": "motion",
            "motion": True,
            "occupancy": None,
            "battery": None,
            "packet_id": None,
            "counter": 857870592,
            "encryption": "decrypted",
            "encrypted": True,
            "trigger_based": False,
            "values": {"motion": True},
        }
    ]
    assert KEY.hex() not in out + err


def test_cli_decode_plain_and_no_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("ble", "decode", "--json", "--address", PLAIN_ADDRESS, "40:00:09:01:5d") == 0
    [plain] = decoded(capsys.readouterr().out)
    assert (plain["accepted"], plain["event"], plain.get("reason")) == (
        True,
        None,
        None,
    )
    assert (plain["packet_id"], plain["battery"]) == (9, 93)
    assert cli("ble", "decode", "--json", "--address", ADDRESS, "4187b90011223372b0231f") == 1
    out, err = capsys.readouterr()
    [encrypted] = decoded(out)
    assert (encrypted["accepted"], encrypted["reason"]) == (False, "no_key")
    assert "--bindkey" in err


def test_cli_decode_people_lines(capsys: pytest.CaptureFixture[str]) -> None:
    motion = "4187b90011223372b0231f"
    assert cli("ble", "decode", "--address", ADDRESS, "--bindkey", KEY.hex(), motion, motion) == 1
    assert capsys.readouterr().out.splitlines() == [
        "1: accepted  event=motion  counter=857870592  motion=on",
        "2: refused (repeat)  event=-  counter=857870592  motion=on",
    ]


def test_cli_decode_key_from_the_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ble_cli.BINDKEY_ENV, KEY.hex())
    assert (
        cli("ble", "decode", "--json", "--address", ADDRESS, "41e445f3c9962b332211006c7c4519") == 0
    )
    assert decoded(capsys.readouterr().out)[0]["values"] == {
        "temperature": 25.06,
        "humidity": 50.55,
    }


def test_cli_decode_wrong_key_is_a_refusal_with_a_hint(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ("--json", "--bindkey", "00" * 16, "4187b90011223372b0231f")
    assert cli("ble", "decode", "--address", ADDRESS, *argv) == 1
    out, err = capsys.readouterr()
    assert decoded(out)[0]["reason"] == "wrong_key"
    assert "MIC check failed" in err


def test_cli_decode_malformed_is_a_refusal_with_the_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli("ble", "decode", "--json", "--address", ADDRESS, "20", "4021") == 1
    malformed, truncated = decoded(capsys.readouterr().out)
    assert (malformed["accepted"], malformed["reason"]) == (False, "malformed")
    assert "version 1" in malformed["error"]
    assert (truncated["accepted"], truncated["truncated_object"]) == (True, "0x21")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--bindkey", "secretsecret", "4187b90011223372b0231f"], "32 hex"),
        (["zz11"], "not hex"),
        ([""], "no hex"),
        (["4021", "zz"], "not hex"),
    ],
)
def test_cli_decode_errors_are_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert cli("ble", "decode", "--address", ADDRESS, *argv) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert message in err
    assert "secretsecret" not in err


def test_cli_decode_bad_address(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("ble", "decode", "--address", "bathroom", "4021") == 1
    assert "MAC" in capsys.readouterr().err


def test_cli_scan_without_an_adapter(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    async def no_adapter(config: HubConfig, deliver: object, **kwargs: object) -> None:
        assert config.ble.adapter == "hci7"
        raise BleUnavailableError("cannot scan on Bluetooth adapter hci7: adapter 'hci7' not found")

    monkeypatch.setattr("hub.ingest.ble.scan", no_adapter)
    monkeypatch.setenv("SPOTTYPOTTY_CONFIG", str(tmp_path / "missing.toml"))
    assert cli("ble", "scan", "--seconds", "1", "--adapter", "hci7") == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        "spottypotty ble scan: cannot scan on Bluetooth adapter hci7: adapter 'hci7' not found\n"
    )


def fake_scan(sightings: list[Sighting]) -> Callable[..., Awaitable[None]]:
    async def run(config: HubConfig, deliver: Callable[[Sighting], None], **kwargs: object) -> None:
        for sighting in sightings:
            deliver(sighting)

    return run


def sightings() -> list[Sighting]:
    from hub.ingest.ble_decode import decode_service_data  # noqa: PLC0415

    motion = sealed(enc.objects(packet_id=1, motion=True), 5)
    return [
        Sighting(ADDRESS, "SBMO-003Z", -50, "bathroom", decode_service_data(ADDRESS, motion, KEY)),
        Sighting(ADDRESS, None, -52, "bathroom", decode_service_data(ADDRESS, motion, KEY)),
        Sighting(STRANGER, "ATC_1", -80, None, decode_service_data(STRANGER, motion, None)),
        Sighting(PLAIN_ADDRESS, None, -70, "hall", None, "empty BTHome service data"),
    ]


def test_cli_scan_plain_lines_when_not_a_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "hub.toml"
    path.write_text(CONFIG_TEXT)
    monkeypatch.setattr("hub.ingest.ble.scan", fake_scan(sightings()))
    assert cli("ble", "scan", "--config", str(path)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        (
            f"{ADDRESS}  SBMO-003Z  -50 dBm  encrypted: yes, key ok  sensor bathroom  "
            "packet_id=1 motion=on"
        ),
        f"{STRANGER}  ATC_1  -80 dBm  encrypted: yes  not configured  counter 5",
        (
            f"{PLAIN_ADDRESS}  -  -70 dBm  encrypted: ?  sensor hall  "
            "malformed: empty BTHome service data"
        ),
        "3 BTHome device(s) seen",
    ]


def test_cli_scan_json_lines(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("hub.ingest.ble.scan", fake_scan(sightings()))
    monkeypatch.setenv("SPOTTYPOTTY_CONFIG", str(tmp_path / "missing.toml"))
    assert cli("ble", "scan", "--json") == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(records) == 4
    assert records[0]["values"] == {"packet_id": 1, "motion": True}
    assert records[3]["error"] == "empty BTHome service data"


def test_board_redraws_in_place_on_a_terminal() -> None:
    out = io.StringIO()
    now = [0.0]
    board = ble_cli.Board(out, live=True, clock=lambda: now[0], width=200)
    first, second, stranger, _ = sightings()
    board.add(first)
    now[0] = 1.0
    board.add(stranger)
    board.add(second)  # inside the redraw interval: drawn at the end
    board.finish()
    text = out.getvalue()
    assert text.count("\x1b[J") == 2  # two redraws after the first table
    final = text.rsplit("\x1b[J", 1)[1]
    assert final.splitlines()[0].split() == [
        "ADDRESS",
        "NAME",
        "RSSI",
        "ENCRYPTED",
        "SENSOR",
        "LAST",
        "VALUES",
        "SEEN",
    ]
    assert "SBMO-003Z" in final  # the name is kept when a later advert has none
    assert final.splitlines()[2].startswith(ADDRESS)  # configured sensors first
    assert final.splitlines()[2].rstrip().endswith("2")  # seen twice
    assert final.endswith("2 BTHome device(s) seen\n")


def test_positive_seconds() -> None:
    with pytest.raises(SystemExit):
        cli("ble", "scan", "--seconds", "0")
    with pytest.raises(SystemExit):
        cli("ble", "scan", "--seconds", "nan")
