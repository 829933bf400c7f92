"""Timeouts learned from a room's own history (`timeout_minutes = "auto"`).

A *false end* is a session that ended by a timeout rule (`timeout`, `presence_cleared`,
`door_opened`, or before end reasons were recorded) and whose room's next session began
within `max` minutes of its end: the person had not left. A timeout T would have merged
it when the next session began before last motion + T. The learned timeout is the
smallest T within `[min, max]` that merges at least `SHARE` of the false ends (rounded up
to the next 0.1 minute), computed from at least `MIN_SESSIONS` completed sessions; with
fewer, nothing is learned and the room keeps its configured default.

Per room, two reads, each one ordered pass over the room's rows (no window function: SQLite
copies every row a window orders, and that alone cost more than both passes):

1. From the narrow (sensorId, startTime, ..., durationMinutes) index, every session's
   start and end (to the whole second), as two JSON arrays (far cheaper to hand to Python
   than a million rows). Python pairs each session with the next start and keeps the
   *candidates*: next start within `max` of the end, give or take the second lost.
2. One scan of the room's rows in the table, keeping only the candidates (a lookup in
   their set: several times cheaper than seeking each one), with the exact end, the
   reason and the last motion. Python applies the exact rule to these, with the same
   arithmetic as SQL, and takes the percentile.
"""

from __future__ import annotations

import json
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

# Pass 1. Parameter: the room. Index order is start order, and an aggregate over one index
# scan sees its rows in that order (checked below all the same). An active session has no
# end: it gets one at the end of time, so nothing counts as following it.
_STARTS_AND_ENDS: Final = """
SELECT sum(status = 'completed'), json_group_array(startTime),
       json_group_array(
           ifnull(CAST(startTime + durationMinutes * 60 AS INTEGER), 1000000000000000000))
FROM sessions INDEXED BY sessions_by_sensor_time
WHERE sensorId = ?
"""
# Pass 2. Parameters: the room, the candidates' starts (a JSON array), the reasons. The
# `+` keeps SQLite from seeking each candidate in the primary key: it scans the room's
# rows (the table is clustered by room and start) and looks each up in the candidates.
_CANDIDATES: Final = """
SELECT startTime, startTime + durationMinutes * 60,
       (julianday(lastMotionTime) - 2440587.5) * 86400.0
FROM sessions
WHERE sensorId = ? AND +startTime IN (SELECT value FROM json_each(?))
  AND (endReason IS NULL OR endReason IN ({reasons}))
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
    learned: dict[str, Learned] = {}
    for room, (low, high) in bounds.items():
        sessions, starts, ends = db.execute(_STARTS_AND_ENDS, [room]).fetchone()
        if not sessions or sessions < MIN_SESSIONS:
            continue
        needed = false_end_gaps(db, room, json.loads(starts), json.loads(ends), high)
        learned[room] = _choose(sorted(needed), (low, high), sessions)
    return learned


def false_end_gaps(
    db: Database, room: str, starts: list[int], ends: list[int], high: float
) -> list[float]:
    """For each false end of `room` (next start within `high` seconds of its end): next
    start - last motion. `starts` and `ends` (whole seconds) are the room's sessions.

    Sessions of a room that start in the same second (the hub never makes them, one session
    at a time; the bench's generated data has a few) are each judged against the start
    after them all, with their own end and last motion."""
    if starts != sorted(starts):  # not expected (see _STARTS_AND_ENDS), but cheap to be sure
        starts, ends = map(list, zip(*sorted(zip(starts, ends, strict=True)), strict=True))
    # Candidates, by start: `ends` are rounded down to the second, so a next start within
    # [0, high] of the exact end is within [0, high + 1) of the rounded one.
    next_start = {
        start: following
        for start, end, following in zip(starts, ends, starts[1:], strict=False)
        if 0 <= following - end < high + 1
    }
    if not next_start:
        return []
    sql = _CANDIDATES.format(reasons=", ".join("?" for _ in _TIMEOUT_ENDS))
    rows = db.execute(sql, [room, json.dumps(list(next_start)), *_TIMEOUT_ENDS])
    # The exact rule, in the same double arithmetic as SQLite's (an integer start minus a
    # REAL is the same subtraction in both).
    return [
        following - last_motion
        for start, end, last_motion in rows
        if 0 <= (following := next_start[start]) - end <= high
    ]


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
