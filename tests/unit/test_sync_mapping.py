"""Rows → DynamoDB items: exact types, never a float, absent values omitted, round trip."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.model import RECORD_FIELDS, Session, SessionStatus, open_session
from hub.store.sessions import session_row
from hub.sync.mapping import (
    EVENT_FIELDS,
    SESSION_FIELDS,
    UnmappableRowError,
    decode_item,
    event_item,
    item_key,
    session_item,
)
from tests.strategies import sessions, texts

NUMBER = re.compile(r"-?\d+(\.\d*[1-9])?")  # plain digits, no exponent, no trailing zeros
HUB = "hub-0123456789abcdef"
T0 = 1_767_225_600.25


def _plain(item: dict[str, Any]) -> None:
    for name, attribute in item.items():
        assert len(attribute) == 1, name
        ((wire, value),) = attribute.items()
        assert wire in {"S", "N", "BOOL"}, name
        assert not isinstance(value, float), name
        if wire == "N":
            assert isinstance(value, str), name
            assert NUMBER.fullmatch(value), (name, value)
        if wire == "S":
            assert isinstance(value, str), name
        if wire == "BOOL":
            assert isinstance(value, bool), name


@given(sessions())
def test_every_session_item_has_numeric_keys_and_no_float(session: Session) -> None:
    item = session_item(session_row(session), HUB)

    _plain(dict(item))
    assert set(item["startTime"]) == {"N"}
    assert set(item["ttl"]) == {"N"}
    assert set(item["motionEventsCount"]) == {"N"}
    assert set(item["playbackStarted"]) == {"BOOL"}
    if "durationMinutes" in item:
        assert set(item["durationMinutes"]) == {"N"}
    assert item["hubId"] == {"S": HUB}
    assert set(item) == {*session.to_record(), "hubId"}
    assert set(item) <= {*RECORD_FIELDS, "hubId"}


@given(sessions())
def test_session_items_round_trip_to_the_record(session: Session) -> None:
    item = session_item(session_row(session), HUB)
    assert decode_item(item) == session.to_record() | {"hubId": HUB}
    assert item_key(item, "sessionId") == session.session_id


@given(
    timestamp=st.floats(min_value=0, max_value=4_000_000_000, allow_nan=False),
    ttl=st.integers(0, 2**40),
    session_id=st.none() | texts,
)
def test_event_items_keep_the_exact_timestamp_as_a_number(
    timestamp: float, ttl: int, session_id: str | None
) -> None:
    row = {
        "eventId": "event-1",
        "sensorId": "bath",
        "sessionId": session_id,
        "timestamp": timestamp,
        "ttl": ttl,
        "receivedAt": timestamp,  # not part of the item
    }
    item = event_item(row, HUB)

    _plain(dict(item))
    assert set(item["timestamp"]) == {"N"}
    assert set(item["ttl"]) == {"N"}
    assert ("sessionId" in item) == (session_id is not None)
    assert set(item) <= {name for name, _, _ in EVENT_FIELDS} | {"hubId"}
    decoded = decode_item(item)
    assert decoded["timestamp"] == timestamp
    assert decoded["ttl"] == ttl


def test_duration_is_two_decimal_places_as_digits() -> None:
    row = session_row(_completed(end_after=100.0))
    row["durationMinutes"] = 1.6666666
    assert session_item(row, HUB)["durationMinutes"] == {"N": "1.67"}
    row["durationMinutes"] = 2.5
    assert session_item(row, HUB)["durationMinutes"] == {"N": "2.5"}
    row["durationMinutes"] = Decimal("3.00")
    assert session_item(row, HUB)["durationMinutes"] == {"N": "3"}


def _completed(end_after: float) -> Session:
    session = open_session(
        session_id="s1", sensor_id="bath", user_id="u1", start=T0, now=T0, ttl_days=30
    )
    return session.with_changes(status=SessionStatus.COMPLETED, end=T0 + end_after)


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("startTime", "1767225600", "must be a number"),  # the seed's bug: a string startTime
        ("startTime", 1.5, "whole number"),
        ("startTime", True, "must be a number"),
        ("ttl", float("nan"), "finite"),
        ("durationMinutes", float("inf"), "finite"),
        ("playbackStarted", 2, "boolean"),
        ("sensorId", 7, "must be a string"),
        ("sensorId", None, "required"),
    ],
)
def test_bad_rows_are_refused_with_the_column(column: str, value: object, message: str) -> None:
    row = session_row(_completed(end_after=60))
    row[column] = value
    with pytest.raises(UnmappableRowError, match=message) as caught:
        session_item(row, HUB)
    assert caught.value.field == column


def test_an_empty_hub_id_is_refused() -> None:
    with pytest.raises(UnmappableRowError, match="hubId"):
        session_item(session_row(_completed(end_after=60)), "")


def test_the_field_tables_are_the_contract() -> None:
    assert tuple(name for name, _, _ in SESSION_FIELDS) == RECORD_FIELDS
    assert [name for name, _, _ in EVENT_FIELDS] == [
        "eventId",
        "sensorId",
        "sessionId",
        "timestamp",
        "ttl",
    ]


def test_decode_reads_numbers_as_int_or_float_never_decimal() -> None:
    decoded = decode_item({"a": {"N": "12"}, "b": {"N": "1.25"}, "c": {"N": "1E+3"}})
    assert decoded == {"a": 12, "b": 1.25, "c": 1000}
    assert type(decoded["a"]) is int
    assert type(decoded["b"]) is float
    with pytest.raises(UnmappableRowError):
        decode_item({"a": {"N": "NaN"}})
    with pytest.raises(UnmappableRowError):
        decode_item({"a": {"SS": ["x"]}})
