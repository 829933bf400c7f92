"""People's controls over the hub: per room enabled, do-not-disturb and timeout, and a
hub-wide do-not-disturb. Pure: the state is data, commands are values, time is an argument.

The state (`Controls`) is the session runner's alone: every command — from Home Assistant
(MQTT command topics), `spottypotty dnd`, the dashboard and the local API — is an item in
its inbox, applied in order with motion (`apply`), saved in `hub_meta` (so it survives a
restart) and handed to the engine as data. Overrides live beside the config, never in it:
a room's `enabled` switch wins over its sensors' `enabled`, and its timeout over theirs
until set back to null.

Rooms are the config's (`HubConfig.all_rooms`: the `[[rooms]]` tables, and each sensor in
no room as a room of its own with its id, contracts §2).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Final, Literal

from hub.config import HubConfig
from hub.errors import HubError, ParseError, ValidationError
from hub.timeutil import iso

HUB: Final = "hub"  # the target of hub-wide commands (do-not-disturb)
ROOM_COMMAND_TOPIC: Final = "spottypotty/rooms/{room_id}/{control}/set"
HUB_DND_COMMAND_TOPIC: Final = "spottypotty/hub/dnd/set"
COMMAND_FILTERS: Final = ("spottypotty/rooms/+/+/set", HUB_DND_COMMAND_TOPIC)
ROOM_STATE_TOPIC: Final = "spottypotty/rooms/{room_id}/state"
HUB_CONTROLS_TOPIC: Final = "spottypotty/hub/controls"
MAX_MINUTES: Final = 7 * 24 * 60.0  # a week: longer is a typo, or "until turned off"
MAX_TIMEOUT_MINUTES: Final = 24 * 60.0
MAX_COMMAND_BYTES: Final = 256

Control = Literal["enabled", "dnd", "timeout", "end_session", "test_playback"]
SWITCHES: Final = frozenset({"enabled", "dnd"})
BUTTONS: Final = frozenset({"end_session", "test_playback"})
CONTROLS: Final = frozenset({*SWITCHES, *BUTTONS, "timeout"})

_ROOM_TOPIC = re.compile(r"spottypotty/rooms/([A-Za-z0-9_-]{1,64})/([a-z_]{1,32})/set")


@dataclass(frozen=True, slots=True)
class RoomControls:
    """One room's overrides; None means "as configured"."""

    enabled: bool | None = None
    dnd: bool = False
    dnd_until: float | None = None  # epoch seconds: do-not-disturb ends by itself then
    timeout_minutes: float | None = None


@dataclass(frozen=True, slots=True)
class Controls:
    rooms: Mapping[str, RoomControls] = field(default_factory=lambda: MappingProxyType({}))
    hub_dnd: bool = False
    hub_dnd_until: float | None = None

    def room(self, room_id: str) -> RoomControls:
        return self.rooms.get(room_id, _NONE)

    def dnd(self, room_id: str, now: float) -> bool:
        """Whether do-not-disturb holds for the room at `now` (its own, or the hub's)."""
        room = self.room(room_id)
        return _holds(self.hub_dnd, self.hub_dnd_until, now) or _holds(
            room.dnd, room.dnd_until, now
        )

    def dnd_until(self, room_id: str | None, now: float) -> float | None:
        """When the target's own do-not-disturb ends by itself (None: it does not, or is off)."""
        on, until = (
            (self.hub_dnd, self.hub_dnd_until)
            if room_id is None
            else (self.room(room_id).dnd, self.room(room_id).dnd_until)
        )
        return until if _holds(on, until, now) else None

    def own_dnd(self, room_id: str | None, now: float) -> bool:
        """The target's own switch (the hub's when `room_id` is None), auto-off applied."""
        if room_id is None:
            return _holds(self.hub_dnd, self.hub_dnd_until, now)
        room = self.room(room_id)
        return _holds(room.dnd, room.dnd_until, now)

    def enabled(self, room_id: str, *, configured: bool) -> bool:
        override = self.room(room_id).enabled
        return configured if override is None else override

    def timeout_minutes(self, room_id: str) -> float | None:
        return self.room(room_id).timeout_minutes

    def to_json(self) -> str:
        rooms = {
            room_id: {
                key: value
                for key, value in (
                    ("enabled", room.enabled),
                    ("dnd", room.dnd or None),
                    ("dndUntil", room.dnd_until),
                    ("timeoutMinutes", room.timeout_minutes),
                )
                if value is not None
            }
            for room_id, room in sorted(self.rooms.items())
            if room != _NONE
        }
        hub = {"dnd": self.hub_dnd, "dndUntil": self.hub_dnd_until}
        return json.dumps({"rooms": rooms, "hub": hub}, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | None) -> Controls:
        """The saved state; nothing (or something unreadable) is no overrides at all."""
        if not text:
            return cls()
        try:
            saved = json.loads(text)
            rooms = {
                str(room_id): RoomControls(
                    enabled=_bool(values.get("enabled")),
                    dnd=bool(values.get("dnd", False)),
                    dnd_until=_float(values.get("dndUntil")),
                    timeout_minutes=_float(values.get("timeoutMinutes")),
                )
                for room_id, values in saved.get("rooms", {}).items()
            }
            hub = saved.get("hub", {})
            return cls(
                MappingProxyType(rooms),
                hub_dnd=bool(hub.get("dnd", False)),
                hub_dnd_until=_float(hub.get("dndUntil")),
            )
        except (ValueError, TypeError, AttributeError):
            return cls()


_NONE: Final = RoomControls()


def _holds(on: bool, until: float | None, now: float) -> bool:
    return on and (until is None or now < until)


def _bool(value: object) -> bool | None:
    return None if value is None else bool(value)


def _float(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type] # bad: TypeError


@dataclass(frozen=True, slots=True)
class ControlCommand:
    """One command. `room_id` is None for the hub-wide do-not-disturb.

    `value`: the switch's new state (enabled, dnd), the timeout in minutes (None: back to
    the config's), unused for buttons. `minutes`: do-not-disturb ends by itself after it.
    """

    control: Control
    room_id: str | None
    value: bool | float | None = None
    minutes: float | None = None
    source: str = "mqtt"

    def describe(self) -> str:
        target = "the hub" if self.room_id is None else f"room {self.room_id}"
        if self.control in BUTTONS:
            return f"{self.control.replace('_', ' ')} in {target}"
        if self.control == "timeout":
            shown = "as configured" if self.value is None else f"{self.value:g} min"
            return f"timeout {shown} for {target}"
        state = "on" if self.value else "off"
        auto = f" for {self.minutes:g} min" if self.value and self.minutes else ""
        return f"{self.control} {state}{auto} for {target}"


def command_topic(room_id: str | None, control: Control) -> str:
    if room_id is None:
        return HUB_DND_COMMAND_TOPIC
    return ROOM_COMMAND_TOPIC.format(room_id=room_id, control=control)


def decode_command(topic: str, payload: bytes) -> ControlCommand | None:
    """A command topic's message → a command; None for a topic that is not one.

    Payloads: switches `ON`/`OFF` (do-not-disturb also a number of minutes: on, ending by
    itself then); `timeout` a number of minutes (empty or `None`: as configured); buttons
    anything (Home Assistant sends `PRESS`). Raises ParseError for anything else.
    """
    if topic == HUB_DND_COMMAND_TOPIC:
        room_id, control = None, "dnd"
    else:
        match = _ROOM_TOPIC.fullmatch(topic)
        if match is None:
            return None
        room_id, control = match.group(1), match.group(2)
    if control not in CONTROLS:
        raise ParseError(f"no control {control!r} (one of {', '.join(sorted(CONTROLS))})")
    if len(payload) > MAX_COMMAND_BYTES:
        raise ParseError(f"a command of {len(payload)} bytes")
    text = payload.decode("utf-8", errors="replace").strip()
    typed: Control = control  # type: ignore[assignment] # checked against CONTROLS above
    if typed in BUTTONS:
        return ControlCommand(typed, room_id)
    if typed == "timeout":
        if text.lower() in {"", "none"}:
            return ControlCommand("timeout", room_id, None)
        return ControlCommand("timeout", room_id, _minutes(text, MAX_TIMEOUT_MINUTES))
    word = text.upper()
    if word in {"ON", "OFF"}:
        return ControlCommand(typed, room_id, word == "ON")
    if typed == "dnd":
        return ControlCommand("dnd", room_id, value=True, minutes=_minutes(text, MAX_MINUTES))
    raise ParseError(f"{control} takes ON or OFF, not {text[:40]!r}")


def _minutes(text: str, limit: float) -> float:
    try:
        minutes = float(text)
    except ValueError:
        raise ParseError(f"not a number of minutes: {text[:40]!r}") from None
    if not math.isfinite(minutes) or not 0 < minutes <= limit:
        raise ParseError(f"minutes must be above 0 and at most {limit:g}, not {text[:40]!r}")
    return minutes


def check(command: ControlCommand, room_ids: Collection[str]) -> None:
    """Raise ValidationError for a command about no configured room (or a bad value)."""
    if command.room_id is not None and command.room_id not in room_ids:
        raise ValidationError("room", f"no room {command.room_id!r} in the config")
    if command.room_id is None and command.control != "dnd":
        raise ValidationError("control", f"{command.control} needs a room")
    if command.minutes is not None and not 0 < command.minutes <= MAX_MINUTES:
        raise ValidationError("minutes", f"minutes must be above 0 and at most {MAX_MINUTES:g}")
    if command.control == "timeout" and command.value is not None:
        minutes = float(command.value)
        if not math.isfinite(minutes) or not 0 < minutes <= MAX_TIMEOUT_MINUTES:
            raise ValidationError("timeout", "the timeout must be above 0 and at most a day")


def apply(controls: Controls, command: ControlCommand, now: float) -> Controls:
    """The state after a switch or number command (buttons change nothing here)."""
    until = None if command.minutes is None else now + command.minutes * 60
    if command.room_id is None:
        on = bool(command.value)
        return replace(controls, hub_dnd=on, hub_dnd_until=until if on else None)
    room = controls.room(command.room_id)
    match command.control:
        case "enabled":
            room = replace(room, enabled=bool(command.value))
        case "dnd":
            on = bool(command.value)
            room = replace(room, dnd=on, dnd_until=until if on else None)
        case "timeout":
            minutes = None if command.value is None else float(command.value)
            room = replace(room, timeout_minutes=minutes)
        case _:
            return controls
    return replace(controls, rooms=MappingProxyType({**controls.rooms, command.room_id: room}))


# --- the control event: `spottypotty dnd`, the control socket, `POST /controls` -----------

CONTROL_ACTION: Final = "control"
_EVENT_FIELDS: Final = frozenset({"action", "control", "room", "value", "minutes"})


def command_from_event(event: object, *, source: str) -> ControlCommand:
    """`{"action": "control", "control": "dnd", "room": "bath", "value": true,
    "minutes": 30}` → a command (`room` null or absent: the hub). Raises ValidationError."""
    if not isinstance(event, Mapping):
        raise ValidationError("event", "the event must be a JSON object")
    unknown = sorted(set(event) - _EVENT_FIELDS)
    if unknown:
        raise ValidationError(unknown[0], f"unknown field(s): {', '.join(unknown)}")
    control = event.get("control")
    if control not in CONTROLS:
        raise ValidationError("control", f"control must be one of {', '.join(sorted(CONTROLS))}")
    room = event.get("room")
    if room is not None and not isinstance(room, str):
        raise ValidationError("room", "room must be a room id or null (the hub)")
    value, minutes = event.get("value"), event.get("minutes")
    if control in SWITCHES and not isinstance(value, bool):
        raise ValidationError("value", f"{control} takes true or false")
    if control == "timeout" and value is not None and not _is_number(value):
        raise ValidationError("value", "timeout takes a number of minutes, or null")
    if minutes is not None and (control != "dnd" or value is not True or not _is_number(minutes)):
        raise ValidationError("minutes", "minutes is a number, for do-not-disturb switched on")
    return ControlCommand(
        control,
        room,
        value=value,
        minutes=None if minutes is None else float(minutes),
        source=source,
    )


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def room_view(config: HubConfig, controls: Controls, room_id: str, now: float) -> dict[str, Any]:
    """A room's controls as they hold at `now` (its retained MQTT state, and the API's)."""
    room = controls.room(room_id)
    sensor = config.sensor(room_id)
    until = controls.dnd_until(room_id, now)
    return {
        "enabled": controls.enabled(room_id, configured=sensor.enabled if sensor else True),
        "dnd": controls.own_dnd(room_id, now),
        "dndUntil": None if until is None else iso(until),
        "timeoutMinutes": room.timeout_minutes or config.timeout_seconds(room_id) / 60,
    }


def controls_view(config: HubConfig, controls: Controls, now: float) -> dict[str, Any]:
    until = controls.dnd_until(None, now)
    return {
        "hub": {
            "dnd": controls.own_dnd(None, now),
            "dndUntil": None if until is None else iso(until),
        },
        "rooms": {
            room.id: room_view(config, controls, room.id, now) for room in config.all_rooms()
        },
    }


def control_answer(config: HubConfig, controls: Controls, now: float) -> dict[str, Any]:
    return {
        "statusCode": 200,
        "action": CONTROL_ACTION,
        "controls": controls_view(config, controls, now),
    }


def control_failure(exc: HubError) -> dict[str, Any]:
    """A refused control, in the shape of the Session Manager's errors."""
    if isinstance(exc, ValidationError):
        return {
            "statusCode": 400,
            "action": CONTROL_ACTION,
            "error": "ValidationError",
            "message": str(exc),
            "field": exc.field,
        }
    return {
        "statusCode": 500,
        "action": CONTROL_ACTION,
        "error": "InternalError",
        "message": str(exc),
    }
