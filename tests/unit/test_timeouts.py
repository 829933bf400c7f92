"""Timeouts learned from a room's history: the false-end rule, in SQL, on the hub's schema."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlite_utils import Database

from hub.model import EndReason, Session, SessionStatus, open_session
from hub.store import SessionRepository, close_database, open_database
from hub.store.timeouts import MIN_SESSIONS, Learned, learn_timeouts

T0 = 1_750_000_000.0
BOUNDS = (120.0, 900.0)  # [2, 15] minutes


@pytest.fixture
def db() -> Iterator[Database]:
    database = open_database(None)
    yield database
    close_database(database)


def history(
    db: Database, gaps: list[float], *, room: str = "bath", reason: EndReason = EndReason.TIMEOUT
) -> None:
    """Sessions of one minute of motion and a 5-minute timeout; `gaps[i]` seconds between
    the end of session i and the start of the next."""
    repository = SessionRepository(db)
    start = T0
    for index, gap in enumerate([*gaps, 3600.0]):
        session: Session = open_session(
            session_id=f"session-{room}-{index}",
            sensor_id=room,
            user_id="u",
            start=start,
            now=start,
            ttl_days=30,
        ).with_changes(
            status=SessionStatus.COMPLETED,
            last_motion=start + 60,
            end=start + 360,
            end_reason=reason,
        )
        repository.save(session, created=True)
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
