"""Timeouts learned from a room's own history (`timeout_minutes = "auto"`), in SQL.

A *false end* is a session that ended by a timeout rule (`timeout`, `presence_cleared`,
`door_opened`, or before end reasons were recorded) and whose room's next session began
within `max` minutes of its end: the person had not left. A timeout T would have merged
it when the next session began before last motion + T. The learned timeout is the
smallest T within `[min, max]` that merges at least `SHARE` of the false ends (rounded up
to the next 0.1 minute), computed from at least `MIN_SESSIONS` completed sessions; with
fewer, nothing is learned and the room keeps its configured default.

Per room, a window function pairs each session with the room's next start over the narrow
(sensorId, startTime, ..., durationMinutes) index, and only the false-end candidates are
read further (their reason and last motion).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from sqlite_utils import Database

SHARE: Final = 0.95
MIN_SESSIONS: Final = 20
STEP_SECONDS: Final = 6.0  # learned timeouts are whole tenths of a minute
# End reasons a longer timeout would have changed (NULL: ended before reasons were kept).
_TIMEOUT_ENDS: Final = ("timeout", "presence_cleared", "door_opened")

_COUNT: Final = """
SELECT count(*) FROM sessions INDEXED BY sessions_by_sensor_time
WHERE sensorId = ? AND status = 'completed'
"""
# Parameters: the room, the room again, the false-end window in seconds, the reasons.
# The window carries as little as it can (SQLite copies every row it orders): the integer
# columns of the narrow index say which sessions are false ends (their end to the second
# or so: startTime is whole seconds, durationMinutes has 2 decimals), and only those are
# read further, for their reason and exact last motion. Active sessions have no duration,
# so they are never false ends.
_GAPS: Final = """
WITH ordered AS (
    SELECT startTime, startTime + durationMinutes * 60 AS ended,
           LEAD(startTime) OVER (ORDER BY startTime) AS nextStart
    FROM sessions INDEXED BY sessions_by_sensor_time
    WHERE sensorId = ?
)
SELECT o.nextStart - (julianday(s.lastMotionTime) - 2440587.5) * 86400.0
FROM ordered AS o JOIN sessions AS s ON s.sensorId = ? AND s.startTime = o.startTime
WHERE o.nextStart - o.ended BETWEEN 0 AND ?
  AND (s.endReason IS NULL OR s.endReason IN ({reasons}))
"""


@dataclass(frozen=True, slots=True)
class Learned:
    """A room's learned timeout, and from how many of its completed sessions."""

    seconds: float
    sessions: int
    false_ends: int

    def describe(self) -> str:
        """As people read it: "timeout 7.5 min, learned from 143 sessions"."""
        return f"timeout {self.seconds / 60:g} min, learned from {self.sessions} sessions"


def learn_timeouts(db: Database, bounds: Mapping[str, tuple[float, float]]) -> dict[str, Learned]:
    """Learned timeouts of the rooms in `bounds` (room id -> [min, max] seconds); a room
    with fewer than MIN_SESSIONS completed sessions is left out (it keeps its default).

    One query per room: SQLite pairs one room's sessions with their next start several
    times faster than it partitions many rooms in one window."""
    gaps = _GAPS.format(reasons=", ".join("?" for _ in _TIMEOUT_ENDS))
    learned: dict[str, Learned] = {}
    for room, (low, high) in bounds.items():
        (sessions,) = db.execute(_COUNT, [room]).fetchone()
        if sessions < MIN_SESSIONS:
            continue
        rows = db.execute(gaps, [room, room, high, *_TIMEOUT_ENDS]).fetchall()
        needed = sorted(gap for (gap,) in rows)
        learned[room] = _choose(needed, (low, high), sessions)
    return learned


def _choose(needed: list[float], bound: tuple[float, float], sessions: int) -> Learned:
    """The smallest T in bounds with next start < last motion + T for SHARE of `needed`."""
    low, high = bound
    if not needed:
        return Learned(low, sessions, 0)  # no false ends: the shortest timeout will do
    index = max(0, math.ceil(SHARE * len(needed)) - 1)
    gap = needed[index]
    # Strictly after the gap (motion at the deadline is too late), on the 0.1-minute grid.
    seconds = (math.floor(gap / STEP_SECONDS) + 1) * STEP_SECONDS
    return Learned(min(high, max(low, seconds)), sessions, len(needed))
