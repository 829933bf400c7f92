"""Timeouts learned from a room's history: the false-end rule, in SQL, on the hub's schema."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlite_utils import Database

from hub.model import EndReason, Session, SessionStatus, open_session
from hub.store import SessionRepository, close_database, open_database
from hub.store.timeouts import (
    _STARTS_AND_ENDS,
    MIN_SESSIONS,
    Learned,
    _choose,
    false_end_gaps,
    learn_timeouts,
)

T0 = 1_750_000_000.0
BOUNDS = (120.0, 900.0)  # [2, 15] minutes


@pytest.fixture
def db() -> Iterator[Database]:
    database = open_database(None)
    yield database
    close_database(database)


def save_completed(
    repository: SessionRepository,
    session_id: str,
    room: str,
    start: float,
    *,
    last_motion: float,
    end: float,
    reason: EndReason | None,
) -> None:
    """One completed session of `room`, as the engine would have written it."""
    session: Session = open_session(
        session_id=session_id, sensor_id=room, user_id="u", start=start, now=start, ttl_days=30
    ).with_changes(
        status=SessionStatus.COMPLETED, last_motion=last_motion, end=end, end_reason=reason
    )
    repository.save(session, created=True)


def history(
    db: Database, gaps: list[float], *, room: str = "bath", reason: EndReason = EndReason.TIMEOUT
) -> None:
    """Sessions of one minute of motion and a 5-minute timeout; `gaps[i]` seconds between
    the end of session i and the start of the next."""
    repository = SessionRepository(db)
    start = T0
    for index, gap in enumerate([*gaps, 3600.0]):
        save_completed(
            repository,
            f"session-{room}-{index}",
            room,
            start,
            last_motion=start + 60,
            end=start + 360,
            reason=reason,
        )
        start += 360 + gap


def test_the_smallest_timeout_that_merges_95_percent_of_false_ends(db: Database) -> None:
    # 20 false ends: the next session 10..200 s after the end (last motion + 310..500 s);
    # the rest are real ends an hour apart.
    false_ends = [10.0 * (index + 1) for index in range(20)]
    history(db, false_ends + [3600.0] * 30)
    learned = learn_timeouts(db, {"bath": BOUNDS})["bath"]
    # 95 % of 20 is 19: the 19th smallest gap is 190 s after the end, 490 s after the last
    # motion; the timeout is the next tenth of a minute past it.
    assert learned == Learned(seconds=492.0, sessions=51, false_ends=20)
    assert learned.describe() == "timeout 8.2 min, learned from 51 sessions"


def test_bounds_hold_and_no_false_ends_means_the_shortest(db: Database) -> None:
    history(db, [600.0] * 30)  # each next session 10 minutes after the end: not false
    assert learn_timeouts(db, {"bath": (120.0, 500.0)})["bath"].seconds == 120.0
    history(db, [5.0] * 30, room="hall")  # always back at once: wants 365 s, max 300
    assert learn_timeouts(db, {"hall": (60.0, 300.0)})["hall"].seconds == 300.0


def test_too_little_history_learns_nothing(db: Database) -> None:
    history(db, [30.0] * (MIN_SESSIONS - 2))  # MIN_SESSIONS - 1 sessions
    assert learn_timeouts(db, {"bath": BOUNDS}) == {}
    assert learn_timeouts(db, {}) == {}


def test_ends_by_request_and_max_hold_are_not_false_ends(db: Database) -> None:
    history(db, [30.0] * 30, reason=EndReason.ENDED_BY_REQUEST)
    assert learn_timeouts(db, {"bath": BOUNDS})["bath"] == Learned(120.0, 31, 0)


# The rule as the first version computed it, one SQL query per room (a LEAD() window over the
# narrow index, candidates joined back for their reason and last motion): the reference the
# two-pass reading must agree with.
_REFERENCE_GAPS = """
WITH ordered AS (
    SELECT startTime, startTime + durationMinutes * 60 AS ended,
           LEAD(startTime) OVER (ORDER BY startTime) AS nextStart
    FROM sessions INDEXED BY sessions_by_sensor_time
    WHERE sensorId = ?
)
SELECT o.nextStart - (julianday(s.lastMotionTime) - 2440587.5) * 86400.0
FROM ordered AS o JOIN sessions AS s ON s.sensorId = ? AND s.startTime = o.startTime
WHERE o.nextStart - o.ended BETWEEN 0 AND ?
  AND (s.endReason IS NULL OR s.endReason IN ('timeout', 'presence_cleared', 'door_opened'))
"""


def reference(db: Database, room: str, bound: tuple[float, float]) -> Learned | None:
    (sessions,) = db.execute(
        "SELECT count(*) FROM sessions WHERE sensorId = ? AND status = 'completed'", [room]
    ).fetchone()
    if sessions < MIN_SESSIONS:
        return None
    rows = db.execute(_REFERENCE_GAPS, [room, room, bound[1]]).fetchall()
    return _choose(sorted(gap for (gap,) in rows), bound, sessions)


_SESSION = st.tuples(
    st.floats(0.0, 1200.0),  # seconds of motion (start to last motion)
    st.floats(0.0, 1200.0),  # then until the end
    st.floats(-30.0, 1500.0),  # then until the next start (negative: they overlap)
    st.sampled_from([None, *EndReason]),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rooms=st.lists(st.lists(_SESSION, min_size=18, max_size=60), min_size=1, max_size=3),
    active=st.booleans(),
    low=st.floats(0.0, 600.0),
    width=st.floats(0.0, 1200.0),
)
def test_learns_what_the_window_query_learns(
    rooms: list[list[tuple[float, float, float, EndReason | None]]],
    active: bool,
    low: float,
    width: float,
) -> None:
    """Random histories (every start in its own second, as the hub makes them): the same
    learned timeouts, session counts and false ends as the first version's SQL."""
    db = open_database(None)
    try:
        repository = SessionRepository(db)
        bounds: dict[str, tuple[float, float]] = {}
        for number, sessions in enumerate(rooms):
            room = f"room-{number}"
            bounds[room] = (low, low + width)
            start = T0 + 0.25 * number
            for index, (moving, waiting, gap, reason) in enumerate(sessions):
                save_completed(
                    repository,
                    f"session-{room}-{index}",
                    room,
                    start,
                    last_motion=start + moving,
                    end=start + moving + waiting,
                    reason=reason,
                )
                # The next start: after this one's second, `gap` after its end when that is.
                start = max(math.floor(start) + 1.0, start + moving + waiting + gap)
            if active:
                repository.save(
                    open_session(
                        session_id=f"session-{room}-active",
                        sensor_id=room,
                        user_id="u",
                        start=start,
                        now=start,
                        ttl_days=30,
                    ),
                    created=True,
                )
        learned = learn_timeouts(db, bounds)
        expected = {room: reference(db, room, bound) for room, bound in bounds.items()}
        assert learned == {room: value for room, value in expected.items() if value is not None}
    finally:
        close_database(db)


def test_pairs_by_start_whatever_order_the_starts_come_in(db: Database) -> None:
    false_ends = [10.0 * (index + 1) for index in range(20)]
    history(db, false_ends + [3600.0] * 30)
    _, starts, ends = db.execute(_STARTS_AND_ENDS, ["bath"]).fetchone()
    starts, ends = json.loads(starts), json.loads(ends)
    in_order = false_end_gaps(db, "bath", starts, ends, BOUNDS[1])
    assert len(in_order) == 20
    assert false_end_gaps(db, "bath", starts[::-1], ends[::-1], BOUNDS[1]) == in_order


def test_an_end_in_the_second_before_the_bound_is_a_false_end(db: Database) -> None:
    # Each end is at 360.6 s and the next start 899.4 s later: within a bound of 899.5 s,
    # though 900 s after the end's whole second.
    repository = SessionRepository(db)
    for index in range(25):
        start = T0 + 1260.0 * index
        save_completed(
            repository,
            f"session-{index}",
            "bath",
            start,
            last_motion=start + 60,
            end=start + 360.6,
            reason=EndReason.TIMEOUT,
        )
    learned = learn_timeouts(db, {"bath": (120.0, 899.5)})["bath"]
    assert (learned.sessions, learned.false_ends) == (25, 24)
    assert learned == reference(db, "bath", (120.0, 899.5))
