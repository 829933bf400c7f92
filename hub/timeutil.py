"""Instants as epoch seconds (floats) and their ISO-8601 spellings.

The hub keeps time as epoch seconds everywhere inside and converts at the edges:
ISO strings in records, local dates in the hub's time zone for people.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import zoneinfo
from pathlib import Path
from zoneinfo import ZoneInfo

from hub.errors import ParseError

UTC = dt.UTC
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_LATEST_EPOCH = 1e11  # year 5138: anything larger is a unit mistake (ms, µs)


def iso(ts: float) -> str:
    """Epoch seconds → ISO-8601 UTC with microseconds: `2026-02-08T23:11:12.410166+00:00`."""
    return dt.datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds")


def parse_iso(text: str) -> float:
    """ISO-8601 (with offset; naive means UTC, as the seed wrote it) → epoch seconds."""
    try:
        value = dt.datetime.fromisoformat(text)
    except (ValueError, AttributeError) as exc:
        raise ParseError(f"not an ISO-8601 time: {text!r}") from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def parse_instant(value: object, tz: dt.tzinfo, *, end_of_day: bool = False) -> float:
    """A request's time bound → epoch seconds.

    Accepts epoch seconds (int/float), a date `YYYY-MM-DD` (a whole local day in `tz`:
    its first instant, or with `end_of_day` its last), or an ISO date-time (naive means
    local time in `tz`). Raises ParseError on anything else.
    """
    if isinstance(value, bool):
        raise ParseError(f"not a date or time: {value!r}")
    if isinstance(value, int | float):
        if not (0 <= value < _LATEST_EPOCH):
            raise ParseError(f"epoch seconds out of range: {value!r}")
        return float(value)
    if not isinstance(value, str):
        raise ParseError(f"not a date or time: {value!r}")
    text = value.strip()
    try:
        if _DATE_ONLY.match(text):
            day = dt.date.fromisoformat(text)
            if end_of_day:
                next_day = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tz)
                return next_day.timestamp() - 1e-6
            return dt.datetime.combine(day, dt.time(), tz).timestamp()
        moment = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise ParseError(f"not a date (YYYY-MM-DD) or ISO-8601 time: {value!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return moment.timestamp()


def local_zone(name: str | None) -> dt.tzinfo:
    """The named IANA zone, or the system's zone (with its DST rules) when `name` is empty."""
    if name:
        return ZoneInfo(name)
    return _system_zone()


def _system_zone() -> dt.tzinfo:
    # A real zone, not the fixed offset `astimezone()` gives: a daemon that runs for
    # months must see DST changes in quiet hours and analytics.
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    with contextlib.suppress(OSError):
        candidates.append(Path("/etc/timezone").read_text(encoding="utf-8").strip())
    for candidate in candidates:
        if candidate:
            with contextlib.suppress(ValueError, zoneinfo.ZoneInfoNotFoundError):
                return ZoneInfo(candidate)
    with contextlib.suppress(OSError, ValueError), Path("/etc/localtime").open("rb") as file:
        return ZoneInfo.from_file(file, key="localtime")
    return UTC
