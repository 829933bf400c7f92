"""Instants as epoch seconds (floats) and their ISO-8601 spellings.

The hub keeps time as epoch seconds everywhere inside and converts at the edges:
ISO strings in records, local dates in the hub's time zone for people.
"""

from __future__ import annotations

import datetime as dt
import re
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
    """The named IANA zone, or the system's zone when `name` is empty."""
    if name:
        return ZoneInfo(name)
    system = dt.datetime.now(UTC).astimezone().tzinfo
    return system if system is not None else UTC
