"""Hypothesis strategies shared by the unit tests."""

from __future__ import annotations

from hypothesis import strategies as st

from hub.model import Session, SessionStatus, open_session

instants = st.floats(min_value=1_000_000_000, max_value=4_000_000_000, allow_nan=False)
texts = st.text(min_size=1, max_size=40)


@st.composite
def sessions(draw: st.DrawFn) -> Session:
    start = draw(instants)
    session = open_session(
        session_id=draw(texts),
        sensor_id=draw(texts),
        user_id=draw(texts),
        start=start,
        now=start,
        ttl_days=draw(st.floats(min_value=1, max_value=365)),
        spotify_device_id=draw(st.none() | texts),
        spotify_context_uri=draw(st.none() | texts),
    )
    session = session.with_changes(
        motion_events_count=draw(st.integers(1, 10_000)),
        playback_started=draw(st.booleans()),
        last_motion=start + draw(st.floats(0, 86_400)),
    )
    if draw(st.booleans()):
        session = session.with_changes(
            status=SessionStatus.COMPLETED,
            end=start + draw(st.floats(0, 86_400)),
            playback_stopped=draw(st.none() | st.booleans()),
        )
    return session
