"""Timeouts learned from a room's own history (`timeout_minutes = "auto"`), in SQL.

A *false end* is a session that ended by a timeout rule (`timeout`, `presence_cleared`,
`door_opened`, or before end reasons were recorded) and whose room's next session began
within `max` minutes of its end: the person had not left. A timeout T would have merged
it when the next session began before last motion + T. The learned timeout is the
smallest T within `[min, max]` that merges at least `SHARE` of the false ends (rounded up
to the next 0.1 minute), computed from at least `MIN_SESSIONS` completed sessions; with
fewer, nothing is learned and the room keeps its configured default.

One query for every room asked about: a window function pairs each session with its
room's next start over the narrow (sensorId, startTime, ..., durationMinutes) index, and
only the few false-end candidates are read further (their last motion).
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

# Parameters: the rooms, MIN_SESSIONS, the widest false-end window in seconds.
_SQL: Final = """
WITH ordered AS (
    SELECT sensorId, startTime, sessionId, status, durationMinutes,
           LEAD(startTime) OVER (PARTITION BY sensorId ORDER BY startTime) AS nextStart
    FROM sessions INDEXED BY sessions_by_sensor_time
    WHERE sensorId IN ({rooms})
),
counted AS (
    SELECT sensorId, count(*) AS sessions FROM ordered
    WHERE status = 'completed' GROUP BY sensorId HAVING count(*) >= ?
),
candidates AS (
    SELECT o.sensorId, o.startTime, o.sessionId, o.nextStart
    FROM ordered AS o JOIN counted USING (sensorId)
    WHERE o.status = 'completed'
      AND o.nextStart - (o.startTime + o.durationMinutes * 60) <= ?
)
SELECT counted.sensorId, counted.sessions,
       c.nextStart - (julianday(s.lastMotionTime) - 2440587.5) * 86400.0 AS needed,
       c.nextStart - (julianday(s.endTime) - 2440587.5) * 86400.0 AS afterEnd
FROM counted
LEFT JOIN candidates AS c USING (sensorId)
LEFT JOIN sessions AS s
    ON s.sensorId = c.sensorId AND s.startTime = c.startTime AND s.sessionId = c.sessionId
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
    with fewer than MIN_SESSIONS completed sessions is left out (it keeps its default)."""
    if not bounds:
        return {}
    rooms = sorted(bounds)
    # The integer columns pick the candidates (a second or so of rounding); the exact
    # instants then decide, against each room's own max.
    window = max(high for _, high in bounds.values()) + 2
    sql = _SQL.format(
        rooms=", ".join("?" for _ in rooms), reasons=", ".join("?" for _ in _TIMEOUT_ENDS)
    )
    rows = db.execute(sql, [*rooms, MIN_SESSIONS, window, *_TIMEOUT_ENDS]).fetchall()
    sessions: dict[str, int] = {}
    needed: dict[str, list[float]] = {room: [] for room in rooms}
    for room, count, gap, after_end in rows:
        sessions[room] = count
        if gap is not None and 0 <= after_end <= bounds[room][1]:
            needed[room].append(gap)
    return {
        room: _choose(sorted(needed[room]), bounds[room], count) for room, count in sessions.items()
    }


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
