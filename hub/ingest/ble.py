"""The BLE link: BTHome adverts → motion events. The only module that imports bleak.

`BleScanner.run()` keeps one scanner alive until cancelled, and never raises anything else
(the daemon runs it in its own task beside the MQTT link, which BLE trouble must not touch):

- Passive scanning with a BlueZ advertisement monitor matching AD type 0x16 (service data,
  16-bit UUID) starting `d2 fc` (BTHome); BlueZ without it (< 5.56, or no `--experimental`)
  → active scanning for the rest of the process. A passive scanner that starts but never
  delivers anything is switched to active at the first watchdog rebuild.
- The detection callback takes bleak's `BLEDevice` + `AdvertisementData`, picks the
  service data for UUID `0000fcd2-…`, and hands it to `ble_decode.BleGuard` (decrypt,
  replay/downgrade rules, one event per new packet id / counter). Events go onto the inbox
  with `put_nowait`: a full inbox drops radio data (counted) and never blocks the callback.
- Watchdog: after `systemctl restart bluetooth` a live scanner silently receives nothing,
  forever. No adverts at all for `silence_seconds` while BLE sensors are configured → stop
  and rebuild the scanner.
- `org.bluez.Error.InProgress` (another discovery still winding down) is transient: retry
  soon, quietly. Any other start failure (adapter missing, USB dongle unplugged, bluetoothd
  down) → `status` says so, log once per outage, retry with full-jitter capped backoff.

Counters (`counters`): `adverts` (any advert seen), `bthome`, `events`, `cleared`,
`dropped_inbox_full`, `stranger`, `{reason}:{sensor}` for the guard's reasons (`repeat`,
`replay`, `downgrade`, `wrong_key`, `no_key`, `malformed`, `no_motion`),
`counter_reset:{sensor}`, `locked_out:{sensor}`, `retrusted:{sensor}`, `truncated:{sensor}`
(a believed advert whose last object was cut short: the objects before it were used),
`rebuilds`, `in_progress`, `start_failures`, `callback_errors`.
Strangers are one total, so passers-by cannot grow the map. Bindkeys are never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal, Protocol

from bleak import BleakScanner
from bleak.args.bluez import BlueZScannerArgs, OrPattern
from bleak.assigned_numbers import AdvertisementDataType
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakBluetoothNotAvailableError, BleakDBusError, BleakError

from hub.config import HubConfig
from hub.errors import ParseError, TransientError
from hub.ingest.ble_decode import (
    BTHOME_UUID,
    LOCKOUT_REFUSALS,
    UUID_BYTES,
    Advert,
    BleGuard,
    CounterState,
    Reason,
    Verdict,
    decode_service_data,
)
from hub.ingest.mqtt_decode import Inbound
from hub.model import MotionEvent

_LOGGER = logging.getLogger(__name__)

ScanMode = Literal["passive", "active"]
DetectionCallback = Callable[[BLEDevice, AdvertisementData], None]

SILENCE_SECONDS: Final = 300.0
CHECK_INTERVAL: Final = 5.0  # seconds between watchdog looks
STOP_TIMEOUT: Final = 5.0
IN_PROGRESS: Final = "org.bluez.Error.InProgress"
IN_PROGRESS_CAP: Final = 5.0  # seconds: InProgress retries stay quick
DROP_LOG_INTERVAL: Final = 60.0  # seconds between warnings about a full inbox
BTHOME_PATTERN: Final = OrPattern(0, AdvertisementDataType.SERVICE_DATA_UUID16, UUID_BYTES)
_MAX_EXPONENT: Final = 32
# D-Bus errors that mean "this BlueZ cannot do passive scanning", not "no adapter".
_PASSIVE_UNSUPPORTED: Final = frozenset(
    {"org.freedesktop.DBus.Error.UnknownMethod", "org.bluez.Error.NotSupported"}
)


class Scanner(Protocol):
    """What the adapter needs of a scanner (bleak's `BleakScanner`, or a fake in tests)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


ScannerFactory = Callable[[DetectionCallback, ScanMode], Scanner]


def bleak_scanner_factory(adapter: str) -> ScannerFactory:
    """BleakScanners on `adapter` (e.g. `hci0`); passive ones watch for BTHome only."""

    def make(callback: DetectionCallback, mode: ScanMode) -> Scanner:
        bluez: BlueZScannerArgs = {"adapter": adapter}
        if mode == "passive":
            bluez["or_patterns"] = [BTHOME_PATTERN]
        return BleakScanner(callback, scanning_mode=mode, bluez=bluez)

    return make


class BleStatus(enum.StrEnum):
    STOPPED = "stopped"
    STARTING = "starting"
    SCANNING = "scanning"
    UNAVAILABLE = "adapter unavailable"


class BleUnavailableError(TransientError):
    """No usable Bluetooth adapter (missing, powered off, bluetoothd not running)."""


def _in_progress(exc: BaseException) -> bool:
    if isinstance(exc, BleakDBusError):
        return exc.dbus_error == IN_PROGRESS
    return IN_PROGRESS in str(exc)


def _passive_unsupported(exc: BaseException) -> bool:
    if isinstance(exc, BleakBluetoothNotAvailableError):
        return False
    if isinstance(exc, BleakDBusError):
        return exc.dbus_error in _PASSIVE_UNSUPPORTED
    return isinstance(exc, BleakError) and "passive" in str(exc).lower()


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, OSError):  # no system bus socket, connection refused, ...
        text = f"cannot reach BlueZ on the system D-Bus ({text})"
    return text[:200]


class BleScanner:
    """BTHome adverts in (bleak), motion events out (onto `inbox`)."""

    def __init__(
        self,
        config: HubConfig,
        inbox: asyncio.Queue[Inbound],
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        scanner_factory: ScannerFactory | None = None,
        silence_seconds: float = SILENCE_SECONDS,
        check_interval: float = CHECK_INTERVAL,
        backoff_base: float = 1.0,
        backoff_cap: float = 60.0,
        rng: random.Random | None = None,
        passive: bool = True,
        counters: Mapping[str, CounterState] | None = None,
    ) -> None:
        if silence_seconds <= 0 or check_interval <= 0:
            raise ValueError("silence_seconds and check_interval must be positive")
        if backoff_base <= 0 or backoff_cap <= 0:
            raise ValueError("backoff_base and backoff_cap must be positive")
        self._adapter = config.ble.adapter
        self._inbox = inbox
        self._clock = clock
        self._monotonic = monotonic
        self._sleep = sleep
        self._factory = (
            scanner_factory
            if scanner_factory is not None
            else bleak_scanner_factory(config.ble.adapter)
        )
        self._silence = silence_seconds
        self._check_interval = check_interval
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._rng = rng if rng is not None else random.Random()  # noqa: S311 - jitter
        self._guard = BleGuard.from_config(config)
        if counters:
            self._guard.restore(counters)
        self._mode: ScanMode = "passive" if passive else "active"
        self._status = BleStatus.STOPPED
        self._problem = ""
        self._counters: Counter[str] = Counter()
        self._last_advert = 0.0
        self._heard_since_start = False
        self._dropped_logged_at: float | None = None

    # --- state ---------------------------------------------------------------------------

    @property
    def status(self) -> str:
        """One line for people: `scanning (passive)`, `adapter unavailable: …`, …"""
        if self._status is BleStatus.SCANNING:
            return f"scanning ({self._mode}) on {self._adapter}"
        if self._status is BleStatus.UNAVAILABLE:
            return f"adapter {self._adapter} unavailable: {self._problem}; retrying"
        return self._status.value

    @property
    def scanning(self) -> bool:
        return self._status is BleStatus.SCANNING

    @property
    def mode(self) -> ScanMode:
        return self._mode

    @property
    def counters(self) -> Mapping[str, int]:
        return MappingProxyType(dict(self._counters))

    @property
    def guard(self) -> BleGuard:
        return self._guard

    def encryption_counters(self) -> dict[str, CounterState]:
        """What to keep across a hub restart (see BleGuard.counters)."""
        return self._guard.counters()

    def retrust(self, sensor_id: str) -> str | None:
        """Believe the sensor's next advert whatever its counter (`sensors retrust`); its
        address, or None when it is not a BLE sensor with a bindkey."""
        address = self._guard.address_of(sensor_id)
        if address is None or not self._guard.retrust(address):
            return None
        _LOGGER.warning(
            "BLE sensor %s (%s) retrusted by its owner: its next advert is believed whatever "
            "its counter (last believed %s)",
            sensor_id,
            address,
            self._guard.last_counter(address),
        )
        return address

    def key_statuses(self) -> dict[str, str]:
        """Sensor id → `verified` / `wrong_key` / `unverified`, for keyed sensors."""
        result: dict[str, str] = {}
        for address in self._guard.addresses():
            sensor = self._guard.sensor(address)
            status = self._guard.key_status(address)
            if sensor is not None and status is not None:
                result[sensor.sensor_id] = status.value
        return result

    # --- the scan loop -------------------------------------------------------------------

    async def run(self) -> None:
        """Scan, watch and rebuild until cancelled. Raises nothing but CancelledError."""
        attempt = 0
        busy_attempt = 0
        outage_logged = False
        try:
            while True:
                try:
                    await self._scan_once()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - BLE must never take the hub down
                    error: BaseException = exc
                else:
                    attempt = busy_attempt = 0  # the watchdog asked for a rebuild
                    outage_logged = False
                    continue
                if _in_progress(error):
                    self._counters["in_progress"] += 1
                    self._status = BleStatus.STARTING
                    _LOGGER.debug("BLE scan start: %s (transient)", _describe(error))
                    delay = self._backoff(busy_attempt, cap=min(IN_PROGRESS_CAP, self._backoff_cap))
                    busy_attempt += 1
                    await self._sleep(delay)
                    continue
                if self._mode == "passive" and _passive_unsupported(error):
                    _LOGGER.info(
                        "passive BLE scanning is not available (%s); scanning actively",
                        _describe(error),
                    )
                    self._mode = "active"
                    continue
                self._counters["start_failures"] += 1
                self._status = BleStatus.UNAVAILABLE
                self._problem = _describe(error)
                if not outage_logged:
                    _LOGGER.warning(
                        "BLE adapter %s unavailable (%s); retrying in the background",
                        self._adapter,
                        self._problem,
                        exc_info=not isinstance(error, BleakError | OSError),
                    )
                    outage_logged = True
                else:
                    _LOGGER.debug("BLE start attempt %d failed: %s", attempt + 1, self._problem)
                delay = self._backoff(attempt, cap=self._backoff_cap)
                attempt += 1
                await self._sleep(delay)
        finally:
            self._status = BleStatus.STOPPED

    def _backoff(self, attempt: int, *, cap: float) -> float:
        """Full jitter, capped: uniform(0, min(cap, base * 2**attempt))."""
        ceiling = min(cap, self._backoff_base * 2 ** min(attempt, _MAX_EXPONENT))
        return self._rng.uniform(0, ceiling)

    async def _scan_once(self) -> None:
        """Start a scanner, watch it, stop it. Returns when the watchdog wants a rebuild."""
        self._status = BleStatus.STARTING
        scanner = self._factory(self._on_advert, self._mode)
        await scanner.start()
        try:
            self._last_advert = self._monotonic()
            self._heard_since_start = False
            self._status = BleStatus.SCANNING
            _LOGGER.info("BLE scanning (%s) on %s", self._mode, self._adapter)
            await self._watch()
        finally:
            if self._status is BleStatus.SCANNING:
                self._status = BleStatus.STARTING
            await self._stop(scanner)

    async def _stop(self, scanner: Scanner) -> None:
        try:
            async with asyncio.timeout(STOP_TIMEOUT):
                await scanner.stop()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a dead scanner may not stop cleanly
            _LOGGER.debug("stopping the BLE scanner: %s", _describe(exc))

    async def _watch(self) -> None:
        """Return when no advert at all came for `silence_seconds` (with sensors known)."""
        while True:
            await self._sleep(self._check_interval)
            if not len(self._guard):
                continue
            silent = self._monotonic() - self._last_advert
            if silent < self._silence:
                continue
            self._counters["rebuilds"] += 1
            _LOGGER.warning(
                "no BLE adverts for %.0f s on %s: rebuilding the scanner", silent, self._adapter
            )
            if self._mode == "passive" and not self._heard_since_start:
                _LOGGER.info("the passive BLE scanner never delivered anything: scanning actively")
                self._mode = "active"
            return

    # --- adverts -------------------------------------------------------------------------

    def _on_advert(self, device: BLEDevice, advertisement: AdvertisementData) -> None:
        """bleak's detection callback: never raises, never blocks."""
        try:
            self._handle(device, advertisement)
        except Exception:
            self._counters["callback_errors"] += 1
            if self._counters["callback_errors"] == 1:  # a bug: say it once, loudly
                _LOGGER.exception("BLE advert from %s could not be handled", device.address)
            else:
                _LOGGER.debug("BLE advert from %s could not be handled", device.address)

    def _handle(self, device: BLEDevice, advertisement: AdvertisementData) -> None:
        self._last_advert = self._monotonic()
        self._heard_since_start = True
        self._counters["adverts"] += 1
        data = advertisement.service_data.get(BTHOME_UUID)
        if data is None:
            return
        self._counters["bthome"] += 1
        verdict = self._guard.feed(
            device.address, bytes(data), self._clock(), rssi=advertisement.rssi
        )
        self._account(device.address, verdict)
        event = verdict.event
        if event is None:
            return
        try:
            self._inbox.put_nowait(event)
        except asyncio.QueueFull:
            self._counters["dropped_inbox_full"] += 1
            now = self._monotonic()
            if (
                self._dropped_logged_at is None
                or now - self._dropped_logged_at >= DROP_LOG_INTERVAL
            ):
                self._dropped_logged_at = now
                _LOGGER.warning(
                    "the event inbox is full: dropped BLE %s from %s (%d dropped so far)",
                    "motion" if isinstance(event, MotionEvent) else "state",
                    event.sensor_id,
                    self._counters["dropped_inbox_full"],
                )
            return
        self._counters["events" if isinstance(event, MotionEvent) else "states"] += 1

    def _account(self, address: str, verdict: Verdict) -> None:
        sensor = verdict.sensor_id
        if verdict.reason is Reason.STRANGER:
            self._counters["stranger"] += 1
            return
        if sensor is None:
            return
        advert = verdict.advert
        if verdict.reason is None and advert is not None and advert.truncated_object is not None:
            self._counters[f"truncated:{sensor}"] += 1
        if verdict.counter_reset:
            self._counters[f"counter_reset:{sensor}"] += 1
            _LOGGER.info("BLE sensor %s restarted its encryption counter", sensor)
        if verdict.retrusted:
            self._counters[f"retrusted:{sensor}"] += 1
            _LOGGER.warning(
                "BLE sensor %s (%s) trusted again at counter %s, as its owner asked",
                sensor,
                address.upper(),
                advert.counter if advert is not None else None,
            )
        if verdict.reason is None:
            return
        self._counters[f"{verdict.reason.value}:{sensor}"] += 1
        if verdict.locked_out:
            self._counters[f"locked_out:{sensor}"] += 1
            _LOGGER.warning(
                "BLE sensor %s (%s) is locked out: its last %d adverts were refused as replays "
                "(counter %s, last believed %s). If the sensor was reset or re-flashed, run "
                "`spottypotty sensors retrust %s`; if not, someone may be replaying recorded "
                "adverts",
                sensor,
                address.upper(),
                LOCKOUT_REFUSALS,
                advert.counter if advert is not None else None,
                self._guard.last_counter(address),
                sensor,
            )
        if verdict.first:
            _LOGGER.warning(
                "BLE sensor %s (%s): %s (reported once; see `spottypotty ble scan`)",
                sensor,
                address.upper(),
                _EXPLAIN[verdict.reason],
            )


_EXPLAIN: Final[Mapping[Reason, str]] = MappingProxyType(
    {
        Reason.WRONG_KEY: "its adverts do not decrypt with the configured ble_bindkey; "
        "check the key (or the sensor was re-keyed)",
        Reason.DOWNGRADE: "sent a plaintext advert although it has a ble_bindkey; "
        "ignored as a downgrade (encryption turned off on the sensor?)",
        Reason.NO_KEY: "sends encrypted adverts but has no ble_bindkey in the config; "
        "its motion is ignored until one is set",
        Reason.REPLAY: "an advert with an encryption counter already used was refused as a "
        "replay (counted as ble.replay)",
    }
)


# --- one-shot scanning for the CLI ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sighting:
    """One BTHome advert seen by `scan`: what `spottypotty ble scan` shows."""

    address: str
    name: str | None
    rssi: int
    sensor_id: str | None  # the configured sensor with this address, if any
    advert: Advert | None  # None when malformed
    error: str | None = None


async def scan(
    config: HubConfig,
    deliver: Callable[[Sighting], None],
    *,
    seconds: float | None = None,
    scanner_factory: ScannerFactory | None = None,
    start_attempts: int = 3,
    retry_delay: float = 1.0,
) -> None:
    """Scan actively (names come in scan responses) and hand every BTHome advert to
    `deliver`, for `seconds` (None: until cancelled). Adverts of configured sensors are
    decrypted with their bindkey; nothing is judged or deduplicated.

    Raises BleUnavailableError when no scanner can be started.
    """
    guard = BleGuard.from_config(config)
    factory = (
        scanner_factory
        if scanner_factory is not None
        else bleak_scanner_factory(config.ble.adapter)
    )

    def on_advert(device: BLEDevice, advertisement: AdvertisementData) -> None:
        data = advertisement.service_data.get(BTHOME_UUID)
        if data is None:
            return
        sensor = guard.sensor(device.address)
        try:
            advert: Advert | None = decode_service_data(
                device.address, bytes(data), sensor.bindkey if sensor else None
            )
            error = None
        except ParseError as exc:
            advert, error = None, str(exc)
        name = advertisement.local_name or device.name
        deliver(
            Sighting(
                device.address.upper(),
                name,
                advertisement.rssi,
                sensor.sensor_id if sensor else None,
                advert,
                error,
            )
        )

    scanner: Scanner | None = None
    for attempt in range(start_attempts):
        try:
            scanner = factory(on_advert, "active")
            await scanner.start()
            break
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            scanner = None
            if _in_progress(exc) and attempt + 1 < start_attempts:
                await asyncio.sleep(retry_delay)
                continue
            raise BleUnavailableError(
                f"cannot scan on Bluetooth adapter {config.ble.adapter}: {_describe(exc)}"
            ) from exc
    if scanner is None:  # start_attempts < 1
        raise BleUnavailableError("no scan attempted")
    try:
        if seconds is None:
            await asyncio.Event().wait()
        else:
            await asyncio.sleep(seconds)
    finally:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(STOP_TIMEOUT):
                await scanner.stop()
