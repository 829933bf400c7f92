"""The engine and the clock: a step of the hub's clock never ends or prolongs a session,
and motion that sat in the broker is judged by when it happened."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given
from hypothesis import strategies as st

from hub.config import HubConfig, SensorConfig, SessionsSection
from hub.model import MotionEvent, Session
from hub.sessions.engine import Command, PersistSession, SessionEngine, StartPlayback

TIMEOUT = 6.0
CONFIG = HubConfig(
    sessions=SessionsSection(timeout_minutes=TIMEOUT / 60, debounce_seconds=0, ttl_days=30),
    sensors=(SensorConfig(id="bath", user_id="u", context_uri="spotify:playlist:x"),),
)
T0 = 1_800_000_000.0
DAY = 86_400.0


def motion(at: float, *, stamp: float | None = None) -> MotionEvent:
    return MotionEvent("bath", occurred_at=at, received_at=at, sensor_timestamp=stamp)


def ended_sessions(commands: Sequence[Command]) -> list[Session]:
    return [
        c.session for c in commands if isinstance(c, PersistSession) and not c.session.is_active
    ]


def test_a_forward_step_ends_nothing_and_the_session_keeps_its_length() -> None:
    engine = SessionEngine(CONFIG)
    engine.on_motion(motion(T0), T0)
    engine.shift(30 * DAY, history=True)  # NTP: the clock was a month behind
    stepped = T0 + 30 * DAY
    assert engine.on_motion(motion(stepped + 3.5), stepped + 3.5)  # extends, ends nothing
    session = engine.active["bath"]
    assert session.start == stepped
    assert session.ttl == int(stepped + 30 * DAY)
    assert engine.on_tick(stepped + 3.5 + TIMEOUT - 0.001) == []
    (done,) = ended_sessions(engine.on_tick(stepped + 3.5 + TIMEOUT))
    assert done.duration_minutes == round((3.5 + TIMEOUT) / 60, 2)


def test_a_backward_step_neither_prolongs_a_session_nor_sets_motion_aside() -> None:
    engine = SessionEngine(CONFIG)
    engine.on_motion(motion(T0), T0)
    engine.shift(-2 * 3600, history=False)
    back = T0 - 2 * 3600
    commands = engine.on_motion(motion(back + 1), back + 1)
    assert [type(c) for c in commands] == [PersistSession]  # counted, not out of order
    (done,) = ended_sessions(engine.on_tick(back + 1 + TIMEOUT))
    assert done.end == back + 1 + TIMEOUT


def test_motion_sent_before_the_deadline_and_received_after_it_starts_no_music() -> None:
    """The fault campaign: the hub stopped 20 s; a motion sent 1 s before the deadline
    used to open a new session (and music) 16 s later."""
    engine = SessionEngine(CONFIG)
    offset = 0.0  # sensor and hub agree (both set by NTP)
    for index in range(3):  # live motion teaches the sensor's offset
        at = T0 + index
        engine.on_motion(motion(at, stamp=at - offset), at)
    deadline = T0 + 2 + TIMEOUT
    sent = deadline - 1
    received = deadline + 16
    commands = engine.on_motion(motion(received, stamp=sent), received)
    assert not any(isinstance(c, StartPlayback) for c in commands)
    assert "bath" not in engine.active  # extended by stale motion: over at once
    (done,) = ended_sessions(commands)
    assert done.end == sent + TIMEOUT


def test_without_a_learnt_offset_late_motion_is_judged_as_today() -> None:
    engine = SessionEngine(CONFIG)
    engine.on_motion(motion(T0, stamp=T0), T0)
    received = T0 + TIMEOUT + 16
    commands = engine.on_motion(motion(received, stamp=T0 + TIMEOUT - 1), received)
    assert any(isinstance(c, StartPlayback) for c in commands)  # receive time, as before


@given(
    steps=st.lists(
        st.tuples(
            st.floats(min_value=0, max_value=TIMEOUT * 2),  # seconds until the step
            st.floats(min_value=-60 * DAY, max_value=60 * DAY),  # the step
        ),
        max_size=6,
    ),
    history=st.booleans(),
)
def test_steps_never_move_the_end_in_real_time(
    steps: list[tuple[float, float]], history: bool
) -> None:
    """Real (monotonic) time runs from 0; the hub's time is real time plus the sum of the
    steps so far. The session ends TIMEOUT after its motion in real time, whatever steps."""
    engine = SessionEngine(CONFIG)
    engine.on_motion(motion(T0), T0)
    real, offset = 0.0, T0
    ended: list[Session] = []
    for wait, step in steps:
        real += wait
        ended += ended_sessions(engine.on_tick(real + offset))
        if ended:
            break
        engine.shift(step, history=history)
        offset += step
    if not ended:
        real = max(real, TIMEOUT + 1e-5)  # (float noise on a shifted grid)
        ended += ended_sessions(engine.on_tick(real + offset))
    (done,) = ended
    assert done.end is not None
    assert abs(done.end - done.start - TIMEOUT) < 1e-5  # its length is real
    assert real >= TIMEOUT - 1e-5  # and it ended no earlier than TIMEOUT of real time


@given(
    offset=st.floats(min_value=-60 * DAY, max_value=60 * DAY),
    latencies=st.lists(st.floats(min_value=0, max_value=0.9), min_size=3, max_size=6),
    waited=st.floats(min_value=TIMEOUT + 2.5, max_value=3 * DAY),
    gap=st.floats(min_value=TIMEOUT, max_value=DAY / 2),  # (a learnt offset lasts a day)
)
def test_motion_older_than_the_timeout_never_starts_music_once_the_offset_is_known(
    offset: float, latencies: list[float], waited: float, gap: float
) -> None:
    """Live motion teaches the sensor's offset (any: the hub's clock may be weeks off); a
    motion that then sat in the broker longer than the timeout plays nothing."""
    engine = SessionEngine(CONFIG)
    at = T0
    for latency in latencies:  # whole-second stamps, as the firmware sends
        engine.on_motion(motion(at + offset + latency, stamp=float(int(at))), at + offset + latency)
        at += 1
    happened = at + gap  # after the session ended: a new one
    received = happened + offset + waited
    commands = engine.on_tick(received) + engine.on_motion(
        motion(received, stamp=float(int(happened))), received
    )
    assert not any(isinstance(c, StartPlayback) for c in commands)
