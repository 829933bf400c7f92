"""Playback policy that depends on the wall clock of the home: quiet hours and moments.

Pure: the instant and the zone are arguments, never read from the system.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from hub.config import Moment, QuietHours, SensorConfig


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
    return _covers(window.start, window.end, _local_time(instant, tz))


def moment_at(moments: tuple[Moment, ...], instant: float, tz: dt.tzinfo) -> Moment | None:
    """The moment whose daily window holds `instant` in local time (the config keeps them
    from overlapping), or None."""
    local = _local_time(instant, tz)
    return next((m for m in moments if _covers(m.start, m.end, local)), None)


def playback_for(sensor: SensorConfig, instant: float, tz: dt.tzinfo) -> SensorConfig:
    """The sensor's playback settings at `instant`: its moment's where it sets them."""
    moment = moment_at(sensor.moments, instant, tz)
    if moment is None:
        return sensor
    return replace(
        sensor,
        context_uri=moment.context_uri or sensor.context_uri,
        volume=moment.volume if moment.volume is not None else sensor.volume,
        shuffle=moment.shuffle if moment.shuffle is not None else sensor.shuffle,
        fade_in_seconds=(
            moment.fade_in_seconds if moment.fade_in_seconds is not None else sensor.fade_in_seconds
        ),
    )


def _local_time(instant: float, tz: dt.tzinfo) -> dt.time:
    return dt.datetime.fromtimestamp(instant, tz).time()


def _covers(start: dt.time, end: dt.time, local: dt.time) -> bool:
    """`start` inclusive, `end` exclusive; `start > end` crosses midnight."""
    if start <= end:
        return start <= local < end
    # Crosses midnight: the evening part or the morning part.
    return local >= start or local < end
