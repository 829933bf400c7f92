"""Session values: copies with changes, and which record fields a change touches."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.model import RECORD_FIELDS, Session, SessionStatus
from tests.strategies import sessions

changes = st.fixed_dictionaries(
    {},
    optional={
        "last_motion": st.floats(1e9, 4e9),
        "motion_events_count": st.integers(0, 10_000),
        "updated_at": st.floats(1e9, 4e9),
        "playback_started": st.booleans(),
        "spotify_device_id": st.none() | st.text(max_size=10),
        "playback_note": st.none() | st.text(max_size=10),
    },
)


@given(sessions(), changes)
def test_with_changes_is_dataclasses_replace(session: Session, change: dict[str, Any]) -> None:
    assert session.with_changes(**change) == dataclasses.replace(session, **change)


def test_with_changes_refuses_an_unknown_field() -> None:
    session = Session("s", "bath", "u", SessionStatus.ACTIVE, 1.0, 1.0, 1, 1.0, 1.0, 1)
    with pytest.raises(TypeError, match="no field"):
        session.with_changes(lastMotion=2.0)


@given(sessions(), sessions())
def test_changed_fields_are_exactly_the_record_fields_that_differ(
    before: Session, after: Session
) -> None:
    old, new = before.to_record(), after.to_record()
    differing = {name for name in RECORD_FIELDS if old.get(name) != new.get(name)}
    changed = after.changed_fields(before)
    assert differing <= changed  # never a missed column
    assert changed <= set(RECORD_FIELDS)


def test_record_values_of_every_field_is_the_record_with_absent_values() -> None:
    session = Session("s", "bath", "u", SessionStatus.ACTIVE, 1.5, 2.5, 1, 1.5, 2.5, 99)
    values = session.record_values(RECORD_FIELDS)
    assert {k: v for k, v in values.items() if v is not None} == session.to_record()
    assert values["endTime"] is None
