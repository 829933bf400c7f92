"""SQLite rows → DynamoDB items in the low-level attribute-value format (pure, no boto3).

Each attribute is built from a typed field table, so `startTime` can only ever be
`{"N": "<digits>"}`: the seed wrote index keys with the wrong type and DynamoDB refused
them (pitfalls: seed bug 1). Numbers travel as decimal digit strings, never as floats;
absent values (NULL) are omitted; every item carries `hubId` so several hubs can share
one table. `decode_item` is the inverse, with numbers read back as int or float — never
a stray Decimal (seed bug 3).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import TYPE_CHECKING, Any

from hub.errors import ValidationError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

    Item = dict[str, AttributeValueTypeDef]
else:
    Item = dict[str, dict[str, Any]]

HUB_ID = "hubId"
SESSION_KEY = "sessionId"
EVENT_KEY = "eventId"
_CENTS = Decimal("0.01")


class Kind(Enum):
    """How a column becomes an attribute; the wire type follows from it."""

    STRING = "S"
    INTEGER = "N whole"  # epoch seconds, counts
    CENTS = "N 2dp"  # durationMinutes
    DECIMAL = "N exact"  # any finite number as SQLite holds it: event timestamps
    BOOLEAN = "BOOL"  # SQLite's 0/1


# The contract's session record (contracts §5) in its order; True = required.
SESSION_FIELDS: tuple[tuple[str, Kind, bool], ...] = (
    ("sessionId", Kind.STRING, True),
    ("sensorId", Kind.STRING, True),
    ("userId", Kind.STRING, True),
    ("status", Kind.STRING, True),
    ("startTime", Kind.INTEGER, True),
    ("startTimeISO", Kind.STRING, True),
    ("lastMotionTime", Kind.STRING, True),
    ("motionEventsCount", Kind.INTEGER, True),
    ("playbackStarted", Kind.BOOLEAN, True),
    ("spotifyDeviceId", Kind.STRING, False),
    ("spotifyContextUri", Kind.STRING, False),
    ("endTime", Kind.STRING, False),
    ("durationMinutes", Kind.CENTS, False),
    ("playbackStopped", Kind.BOOLEAN, False),
    ("createdAt", Kind.STRING, True),
    ("updatedAt", Kind.STRING, True),
    ("ttl", Kind.INTEGER, True),
    ("endReason", Kind.STRING, False),  # added beside the seed's fields, never replacing one
)

# The seed's MotionEvents item (contracts §6).
EVENT_FIELDS: tuple[tuple[str, Kind, bool], ...] = (
    ("eventId", Kind.STRING, True),
    ("sensorId", Kind.STRING, True),
    ("sessionId", Kind.STRING, False),
    ("timestamp", Kind.DECIMAL, True),
    ("ttl", Kind.INTEGER, True),
)


class UnmappableRowError(ValidationError):
    """A row cannot become a valid item (a bug or a damaged row): report it, keep it due."""


def session_item(row: Mapping[str, Any], hub_id: str) -> Item:
    """The DynamoDB item for a `sessions` row (extra bookkeeping columns are ignored)."""
    return _item(row, SESSION_FIELDS, hub_id)


def event_item(row: Mapping[str, Any], hub_id: str) -> Item:
    """The DynamoDB item for a `motion_events` row."""
    return _item(row, EVENT_FIELDS, hub_id)


def item_key(item: Item, key: str) -> str:
    """The value of the string key attribute `key` (sessionId / eventId)."""
    value = item[key].get("S")
    if not isinstance(value, str):
        raise UnmappableRowError(key, f"{key} is not a string attribute")
    return value


def decode_item(item: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """An item (low-level format) back to plain values: S → str, N → int or float, BOOL → bool.

    Whole numbers come back as int (epoch seconds, counts); others as float. Types this
    hub never writes raise UnmappableRowError.
    """
    values: dict[str, Any] = {}
    for name, attribute in item.items():
        if "S" in attribute:
            values[name] = attribute["S"]
        elif "N" in attribute:
            values[name] = _number(name, str(attribute["N"]))
        elif "BOOL" in attribute:
            values[name] = bool(attribute["BOOL"])
        elif attribute.get("NULL"):
            values[name] = None
        else:
            raise UnmappableRowError(
                name, f"{name}: unsupported attribute type {sorted(attribute)}"
            )
    return values


# -- private -----------------------------------------------------------------------------


def _item(row: Mapping[str, Any], fields: tuple[tuple[str, Kind, bool], ...], hub_id: str) -> Item:
    if not hub_id:
        raise UnmappableRowError(HUB_ID, "hubId must not be empty")
    item: Item = {}
    for name, kind, required in fields:
        value = row.get(name)
        if value is None:
            if required:
                raise UnmappableRowError(name, f"{name} is required but missing")
            continue
        item[name] = _attribute(name, kind, value)
    item[HUB_ID] = {"S": hub_id}
    return item


def _attribute(name: str, kind: Kind, value: Any) -> AttributeValueTypeDef:
    if kind is Kind.STRING:
        if not isinstance(value, str):
            raise UnmappableRowError(name, f"{name} must be a string, got {type(value).__name__}")
        return {"S": value}
    if kind is Kind.BOOLEAN:
        if isinstance(value, bool) or value in (0, 1):
            return {"BOOL": bool(value)}
        raise UnmappableRowError(name, f"{name} must be a boolean (0/1), got {value!r}")
    if type(value) is int:  # the common case (epoch seconds, counts), without Decimal
        return {"N": str(value)}
    number = _decimal(name, value)
    if kind is Kind.INTEGER:
        if number != number.to_integral_value():
            raise UnmappableRowError(name, f"{name} must be a whole number, got {value!r}")
        return {"N": str(int(number))}
    if kind is Kind.CENTS:
        number = number.quantize(_CENTS)
    return {"N": _digits(number)}


def _decimal(name: str, value: Any) -> Decimal:
    # bool is an int: True is never a number here.
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise UnmappableRowError(name, f"{name} must be a number, got {value!r}")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise UnmappableRowError(name, f"{name} must be finite, got {value!r}")
        # repr() is the shortest string that reads back as the same float: no binary noise.
        return Decimal(repr(value))
    number = Decimal(value)
    if not number.is_finite():
        raise UnmappableRowError(name, f"{name} must be finite, got {value!r}")
    return number


def _digits(number: Decimal) -> str:
    """Plain positional notation, trailing zeros dropped ("12.50" → "12.5", "1E+3" → "1000")."""
    if number == number.to_integral_value():
        return str(int(number))
    return format(number.normalize(), "f")


def _number(name: str, text: str) -> int | float:
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise UnmappableRowError(name, f"{name}: not a number: {text!r}") from None
    if not number.is_finite():
        raise UnmappableRowError(name, f"{name}: not a finite number: {text!r}")
    if number == number.to_integral_value():
        return int(number)
    return float(number)
