"""Playback policy that depends on the wall clock of the home: quiet hours.

Pure: the instant and the zone are arguments, never read from the system.
"""

from __future__ import annotations

import datetime as dt

from hub.config import QuietHours


def in_quiet_hours(window: QuietHours | None, instant: float, tz: dt.tzinfo) -> bool:
    """Whether `instant` (epoch seconds) falls in the daily `window`, in local time in `tz`.

    `start` is inclusive and `end` exclusive. `start > end` crosses midnight, so
    22:00-07:00 covers 23:30 and 06:59 but not 07:00 or 21:59. `start == end` is an empty
    window: silence all day must be said explicitly (e.g. `enabled = false`), never by
    accident.

    The local time comes from converting the instant with a real zone (zoneinfo), so it
    is right on DST days: the seed compared against a UTC hour and mixed types, which made
    14:00-18:00 match the whole day.
    """
    if window is None:
        return False
    local = dt.datetime.fromtimestamp(instant, tz).time()
    if window.start <= window.end:
        return window.start <= local < window.end
    # Crosses midnight: the evening part or the morning part.
    return local >= window.start or local < window.end
