"""`spottypotty ble scan` and `spottypotty ble decode`: aids for wiring a BTHome sensor.

- `ble scan [--seconds N] [--adapter hciX] [--json]`: every BTHome device nearby, as a
  table redrawn in place on a terminal (plain lines when stdout is not one, or one JSON
  object per advert with `--json`): address, name, RSSI, last values, encrypted or not
  (and whether the configured bindkey verifies), and which configured sensor it is.
  Without a usable adapter: one line on stderr, exit 1.
- `ble decode --address MAC [--bindkey KEY] [--interval S] [--json] HEX [HEX ...]`:
  service-data payloads (the bytes after UUID 0xFCD2; a leading `d2fc` is skipped), in
  order, through the guard the daemon uses (`BleGuard`, starting afresh: the first
  encrypted advert is believed as the first one from a new sensor), `--interval` seconds
  apart (default 1). For each: accepted or refused and why (replay, repeat, wrong key,
  ...), the event it makes, and its values; `--json` prints one JSON object per payload
  and line with `accepted`, `reason` (when refused), `event`, `motion`, `occupancy`,
  `battery`, `packet_id`, `counter` and `values`. Exit 0 when every payload was accepted,
  else 1. Bad hex, a bad MAC or bindkey: one line on stderr, exit 1. The key may also
  come from `$SPOTTYPOTTY_BLE_BINDKEY` (kept out of shell history).

Bindkeys are never printed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, TextIO

from hub.cli.common import EXIT_FAILURE
from hub.cli.render import table

if TYPE_CHECKING:
    from hub.config import HubConfig
    from hub.ingest.ble import Sighting
    from hub.ingest.ble_decode import Advert, Verdict

DEFAULT_SECONDS = 30.0
DEFAULT_INTERVAL = 1.0
DECODE_SENSOR = "decoded"  # the sensor id `ble decode` judges the payloads as
BINDKEY_ENV = "SPOTTYPOTTY_BLE_BINDKEY"
_REDRAW_EVERY = 0.5  # seconds between table redraws on a terminal
_VALUES_WIDTH = 60
_HEADERS = ("ADDRESS", "NAME", "RSSI", "ENCRYPTED", "SENSOR", "LAST VALUES", "SEEN")
_UUID_PREFIX = "d2fc"


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    # The one-line summary `spottypotty --help` shows is in hub.cli.main: it lists this
    # group without importing this module.
    parser = subparsers.add_parser("ble", parents=[common])
    sub = parser.add_subparsers(metavar="WHAT", required=True)

    scan = sub.add_parser(
        "scan",
        parents=[common],
        help="list BTHome devices nearby, live (address, name, RSSI, values, encryption)",
    )
    scan.add_argument(
        "--seconds",
        type=_positive_float,
        default=DEFAULT_SECONDS,
        metavar="N",
        help=f"how long to scan (default {DEFAULT_SECONDS:g})",
    )
    scan.add_argument("--adapter", help="Bluetooth adapter (default: [ble] adapter, hci0)")
    scan.add_argument("--json", action="store_true", help="one JSON object per advert")
    scan.set_defaults(command=run_scan)

    decode = sub.add_parser(
        "decode",
        parents=[common],
        help="decode BTHome service-data payloads (hex) through the hub's replay guard",
    )
    decode.add_argument("--address", required=True, metavar="MAC", help="the sensor's MAC")
    decode.add_argument(
        "--bindkey",
        metavar="KEY",
        help=f"32 hex characters, for encrypted adverts (or ${BINDKEY_ENV})",
    )
    decode.add_argument(
        "--interval",
        type=_positive_float,
        default=DEFAULT_INTERVAL,
        metavar="S",
        help=f"seconds between the payloads, for the repeat window (default {DEFAULT_INTERVAL:g})",
    )
    decode.add_argument("--json", action="store_true", help="one JSON object per payload")
    decode.add_argument(
        "hex", metavar="HEX", nargs="+", help="service data after UUID 0xFCD2, in order"
    )
    decode.set_defaults(command=run_decode)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


# --- decode ---------------------------------------------------------------------------------


def _fail(command: str, message: str) -> int:
    print(f"spottypotty ble {command}: {message}", file=sys.stderr)
    return EXIT_FAILURE


def parse_hex(text: str) -> bytes:
    """Hex with optional spaces, colons, dashes or a `0x`; a leading UUID `d2fc` is skipped.

    Raises ValueError with a message for people.
    """
    cleaned = "".join(text.split()).replace(":", "").replace("-", "").lower()
    cleaned = cleaned.removeprefix("0x")
    if not cleaned:
        raise ValueError("no hex given")
    try:
        data = bytes.fromhex(cleaned)
    except ValueError:
        raise ValueError(f"not hex: {text[:80]!r}") from None
    # A device-info byte 0xd2 would be BTHome version 6, which does not exist: so a
    # payload starting d2 fc is one copied with its UUID in front.
    if cleaned.startswith(_UUID_PREFIX) and len(data) > len(_UUID_PREFIX) // 2:
        data = data[2:]
    return data


def run_decode(args: argparse.Namespace) -> int:
    from hub.errors import ParseError  # noqa: PLC0415 - lazy by design
    from hub.ingest.ble_decode import (  # noqa: PLC0415
        BleGuard,
        BleSensor,
        Encryption,
        decode_service_data,
        mac_bytes,
        parse_bindkey,
    )

    try:
        payloads = [parse_hex(text) for text in args.hex]
    except ValueError as exc:
        return _fail("decode", str(exc))
    key_text = args.bindkey if args.bindkey is not None else os.environ.get(BINDKEY_ENV)
    try:
        mac_bytes(args.address)
        bindkey = parse_bindkey(key_text) if key_text else None
    except ParseError as exc:
        return _fail("decode", str(exc))
    address = args.address.upper()
    guard = BleGuard({address: BleSensor(DECODE_SENSOR, bindkey)})
    all_accepted = True
    hints: set[str] = set()
    for index, data in enumerate(payloads, start=1):
        now = time.time() + (index - 1) * args.interval
        try:
            verdict = guard.judge(address, decode_service_data(address, data, bindkey), now)
            error = None
        except ParseError as exc:
            verdict, error = guard.feed(address, data, now), str(exc)
        record = decode_record(verdict, error)
        all_accepted = all_accepted and bool(record["accepted"])
        advert = verdict.advert
        if advert is not None and advert.encryption is Encryption.NO_KEY:
            hints.add("encrypted: pass --bindkey to read the values")
        elif advert is not None and advert.encryption is Encryption.WRONG_KEY:
            hints.add(
                "the bindkey does not decrypt this advert (MIC check failed): a wrong key, "
                "or the wrong --address (the MAC is part of the nonce)"
            )
        if args.json:
            print(json.dumps({"payload": index, **record}, ensure_ascii=False))
        else:
            print(f"{index}: {_decode_line(record)}")
    for hint in sorted(hints):
        print(f"spottypotty ble decode: {hint}", file=sys.stderr)
    return 0 if all_accepted else EXIT_FAILURE


def decode_record(verdict: Verdict, error: str | None = None) -> dict[str, object]:
    """One payload's verdict as `ble decode --json` prints it."""
    from hub.ingest.ble_decode import Reason  # noqa: PLC0415
    from hub.model import SensorState  # noqa: PLC0415

    accepted = verdict.reason in {None, Reason.NO_MOTION}
    record: dict[str, object] = {"accepted": accepted}
    if not accepted and verdict.reason is not None:
        record["reason"] = verdict.reason.value
    if error is not None:
        record["error"] = error
    event = verdict.event
    record["event"] = None
    if event is not None:
        record["event"] = event.word if isinstance(event, SensorState) else "motion"
    advert = verdict.advert
    values = advert.values if advert is not None else {}
    record["motion"] = values.get("motion")
    record["occupancy"] = values.get("occupancy")
    record["battery"] = advert.battery if advert is not None else None
    record["packet_id"] = advert.packet_id if advert is not None else None
    record["counter"] = advert.counter if advert is not None else None
    if advert is not None:
        record.update(advert.to_json())
    return record


def _decode_line(record: dict[str, object]) -> str:
    verdict = "accepted" if record["accepted"] else f"refused ({record.get('reason')})"
    parts = [verdict, f"event={record['event'] or '-'}"]
    if record.get("counter") is not None:
        parts.append(f"counter={record['counter']}")
    values = record.get("values")
    if isinstance(values, dict):
        parts.extend(f"{key}={_show(value)}" for key, value in values.items())
    if record.get("error"):
        parts.append(f"error: {record['error']}")
    return "  ".join(parts)


# --- scan -----------------------------------------------------------------------------------


def _config(args: argparse.Namespace) -> HubConfig:
    """The config file if there is one (sensor names, keys, adapter), else defaults."""
    from hub.config import HubConfig, config_path, load_config  # noqa: PLC0415

    path = config_path(args.config)
    config = load_config(path) if args.config or path.exists() else HubConfig()
    if args.adapter:
        config = replace(config, ble=replace(config.ble, adapter=args.adapter))
    return config


def run_scan(args: argparse.Namespace) -> int:
    import asyncio  # noqa: PLC0415

    from hub.ingest.ble import BleUnavailableError, scan  # noqa: PLC0415

    config = _config(args)
    out = sys.stdout
    board = Board(out, live=out.isatty() and not args.json, json_lines=args.json)
    try:
        asyncio.run(scan(config, board.add, seconds=args.seconds))
    except BleUnavailableError as exc:
        return _fail("scan", str(exc))
    board.finish()
    return 0


@dataclass(slots=True)
class _Row:
    address: str
    name: str | None
    rssi: int
    encrypted: str
    sensor: str | None
    values: str
    seen: int = 1

    def cells(self) -> tuple[object, ...]:
        return (
            self.address,
            self.name,
            self.rssi,
            self.encrypted,
            self.sensor,
            self.values,
            self.seen,
        )


def encryption_label(advert: Advert | None) -> str:
    if advert is None:
        return "?"
    labels = {
        "none": "no",
        "decrypted": "yes, key ok",
        "no_key": "yes",
        "wrong_key": "yes, WRONG KEY",
    }
    return labels[advert.encryption.value]


def values_text(sighting: Sighting) -> str:
    if sighting.advert is None:
        text = f"malformed: {sighting.error}"
    elif not sighting.advert.readable:
        text = f"counter {sighting.advert.counter}" if sighting.advert.counter is not None else ""
    else:
        text = " ".join(f"{key}={_show(value)}" for key, value in sighting.advert.values.items())
    return text if len(text) <= _VALUES_WIDTH else text[: _VALUES_WIDTH - 1] + "…"


def _show(value: object) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


class Board:
    """What `ble scan` shows: one row per device, redrawn in place on a terminal."""

    def __init__(
        self,
        out: TextIO,
        *,
        live: bool,
        json_lines: bool = False,
        clock: Callable[[], float] = time.monotonic,
        width: int | None = None,
    ) -> None:
        self._out = out
        self._width = width
        self._live = live
        self._json = json_lines
        self._clock = clock
        self._rows: dict[str, _Row] = {}
        self._drawn_lines = 0
        self._drawn_at: float | None = None

    @property
    def rows(self) -> list[_Row]:
        return list(self._rows.values())

    def add(self, sighting: Sighting) -> None:
        if self._json:
            self._print_json(sighting)
            return
        row = _Row(
            sighting.address,
            sighting.name,
            sighting.rssi,
            encryption_label(sighting.advert),
            sighting.sensor_id,
            values_text(sighting),
        )
        old = self._rows.get(sighting.address)
        if old is not None:
            row.seen = old.seen + 1
            row.name = row.name or old.name
        self._rows[sighting.address] = row
        if self._live:
            now = self._clock()
            if self._drawn_at is None or now - self._drawn_at >= _REDRAW_EVERY:
                self._draw()
                self._drawn_at = now
        elif old is None or (old.values, old.encrypted) != (row.values, row.encrypted):
            self._line(row)

    def finish(self) -> None:
        if self._json:
            return
        if self._live:
            self._draw()
        count = len(self._rows)
        print(f"{count} BTHome device(s) seen", file=self._out)
        self._out.flush()

    def _table(self) -> str:
        rows = sorted(self._rows.values(), key=lambda r: (r.sensor is None, -r.rssi))
        return table(_HEADERS, [row.cells() for row in rows])

    def _draw(self) -> None:
        width = self._width or shutil.get_terminal_size().columns
        lines = [line[:width] for line in self._table().split("\n")]
        if self._drawn_lines:
            # Up to where the last table started, and clear from there down.
            self._out.write(f"\x1b[{self._drawn_lines}F\x1b[J")
        self._out.write("\n".join(lines) + "\n")
        self._out.flush()
        self._drawn_lines = len(lines)

    def _line(self, row: _Row) -> None:
        sensor = f"sensor {row.sensor}" if row.sensor else "not configured"
        print(
            f"{row.address}  {row.name or '-'}  {row.rssi} dBm  encrypted: {row.encrypted}  "
            f"{sensor}  {row.values}".rstrip(),
            file=self._out,
            flush=True,
        )

    def _print_json(self, sighting: Sighting) -> None:
        record: dict[str, object] = {
            "address": sighting.address,
            "name": sighting.name,
            "rssi": sighting.rssi,
            "sensor": sighting.sensor_id,
        }
        if sighting.advert is not None:
            record.update(sighting.advert.to_json())
        else:
            record["error"] = sighting.error
        print(json.dumps(record, ensure_ascii=False), file=self._out, flush=True)
