"""TOML → frozen, typed configuration, validated once; every problem reported together.

The schema is contracts §2. Unknown keys are errors. Durations accept floats.
"""

from __future__ import annotations

import datetime as dt
import difflib
import ipaddress
import json
import math
import os
import re
import tomllib
import urllib.parse
import zoneinfo
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final, Literal

from hub.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("/etc/spottypotty/hub.toml")
CONFIG_ENV = "SPOTTYPOTTY_CONFIG"

MqttFormat = Literal["seed", "esphome", "zigbee2mqtt"]
# motion: a pulse that starts or extends a session; presence: a held state (occupied /
# clear); door: a contact (open / closed). None: what the sensor's payloads say.
SensorKind = Literal["motion", "presence", "door"]
AUTO: Final = "auto"  # timeout_minutes = "auto": learned from the room's own history


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A daily window in local time; `start > end` means it crosses midnight."""

    start: dt.time
    end: dt.time


@dataclass(frozen=True, slots=True)
class Moment:
    """What plays, and how loud, in a daily window of local time (`start > end` crosses
    midnight). A key left out (empty, None) takes the sensor's own value."""

    start: dt.time
    end: dt.time
    context_uri: str = ""
    volume: int | None = None
    shuffle: bool | None = None
    fade_in_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class HubSection:
    database: Path = Path("/var/lib/spottypotty/hub.db")
    timezone: str = ""  # empty: the system's zone
    # Nothing written for this long (disk full, read-only, …): the watchdog check fails,
    # so systemd restarts the hub and the journal says why.
    unwritable_grace_minutes: float = 10.0
    # The system clock is right without NTP (a real-time clock): recorded times need no
    # confirmation (hub/clock.py).
    trust_clock: bool = False


@dataclass(frozen=True, slots=True)
class MqttSection:
    host: str = "127.0.0.1"
    port: int = 1883
    username: str = ""
    password_file: str = ""
    topic_prefix: str = "sensors"


@dataclass(frozen=True, slots=True)
class BleSection:
    enabled: bool = False
    adapter: str = "hci0"


@dataclass(frozen=True, slots=True)
class SessionsSection:
    timeout_minutes: float = 5.0
    debounce_seconds: float = 10.0
    ttl_days: float = 30.0
    # A room held by a presence source (or a closed door with someone seen inside) ends
    # after this long all the same: a stuck mmWave must not play music for ever.
    max_hold_minutes: float = 240.0
    # After a door opens on a room with someone seen inside: the person has left.
    door_timeout_seconds: float = 60.0


@dataclass(frozen=True, slots=True)
class SpotifySection:
    client_id: str = ""
    redirect_uri: str = "http://127.0.0.1:8888/callback"
    token_cache: Path = Path("/var/lib/spottypotty/spotify-token.json")
    api_url: str = "https://api.spotify.com/v1/"
    accounts_url: str = "https://accounts.spotify.com/"
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class CloudSection:
    enabled: bool = False
    table: str = "SpottyPottySense-Sessions-dev"
    events_table: str = ""
    region: str = "us-east-2"
    endpoint_url: str = ""


@dataclass(frozen=True, slots=True)
class HttpSection:
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 8080
    token_file: str = ""


@dataclass(frozen=True, slots=True)
class SensorConfig:
    id: str
    user_id: str
    name: str = ""
    spotify_device: str = ""
    context_uri: str = ""
    shuffle: bool | None = None  # None: never sent, the user's own shuffle stays
    volume: int | None = None
    # None: [sessions].timeout_minutes; "auto": learned from the room's history within
    # timeout_bounds (minutes), the default until there is enough of it.
    timeout_minutes: float | Literal["auto"] | None = None
    timeout_bounds: tuple[float, float] | None = None
    quiet_hours: QuietHours | None = None
    enabled: bool = True
    kind: SensorKind | None = None
    ble_address: str = ""
    ble_bindkey: str = ""
    mqtt_topic: str = ""
    mqtt_format: MqttFormat = "seed"
    # None: on for shows, episodes and audiobooks, off for music.
    resume: bool | None = None
    fade_in_seconds: float = 0.0  # 0: the volume is set at once
    moments: tuple[Moment, ...] = ()
    # Music that follows you: between rooms that all say `follow = true`, a new session
    # here takes over the music another room's session plays (moved to this speaker)
    # once that room has had no motion for `follow_after_seconds`.
    follow: bool = False
    follow_after_seconds: float = 20.0


@dataclass(frozen=True, slots=True)
class RoomConfig:
    """A `[[rooms]]` table: several sensors, one session. `settings` holds the room's
    playback and policy keys as a sensor's (its id is the room's)."""

    id: str
    name: str
    sensor_ids: tuple[str, ...]
    settings: SensorConfig
    door_timeout_seconds: float | None = None  # None: [sessions].door_timeout_seconds
    max_hold_minutes: float | None = None  # None: [sessions].max_hold_minutes


@dataclass(frozen=True, slots=True)
class Room:
    """The unit of a session, as the engine uses it: a `[[rooms]]` table, or a sensor in no
    room (its own room, with its id and its own keys: contracts §2)."""

    id: str
    name: str
    sensor_ids: tuple[str, ...]
    settings: SensorConfig  # playback and policy: the room's (id = the room id)
    timeout_seconds: float
    door_timeout_seconds: float
    max_hold_seconds: float


@dataclass(frozen=True, slots=True)
class HubConfig:
    hub: HubSection = field(default_factory=HubSection)
    mqtt: MqttSection = field(default_factory=MqttSection)
    ble: BleSection = field(default_factory=BleSection)
    sessions: SessionsSection = field(default_factory=SessionsSection)
    spotify: SpotifySection = field(default_factory=SpotifySection)
    cloud: CloudSection = field(default_factory=CloudSection)
    http: HttpSection = field(default_factory=HttpSection)
    sensors: tuple[SensorConfig, ...] = ()
    rooms: tuple[RoomConfig, ...] = ()
    source: str = ""  # where it was read from, for messages

    def sensor(self, sensor_id: str) -> SensorConfig | None:
        return next((s for s in self.sensors if s.id == sensor_id), None)

    def timeout_seconds(self, room_or_sensor_id: str) -> float:
        """The configured timeout of a room, or of the room a sensor is in."""
        room = self.room(room_or_sensor_id)
        return room.timeout_seconds if room is not None else self.sessions.timeout_minutes * 60

    def room(self, room_or_sensor_id: str) -> Room | None:
        """The room with this id, else the room the sensor with this id is in."""
        rooms = self.all_rooms()
        return next((r for r in rooms if r.id == room_or_sensor_id), None) or next(
            (r for r in rooms if room_or_sensor_id in r.sensor_ids), None
        )

    def learned_bounds(self) -> dict[str, tuple[float, float]]:
        """Room id -> [min, max] seconds, for the rooms whose timeout is learned."""
        return {
            room.id: (room.settings.timeout_bounds[0] * 60, room.settings.timeout_bounds[1] * 60)
            for room in self.all_rooms()
            if room.settings.timeout_minutes == AUTO and room.settings.timeout_bounds is not None
        }

    def all_rooms(self) -> tuple[Room, ...]:
        """Every room: the `[[rooms]]` tables, then each sensor in no room as a room of its
        own with its id and keys — so a config without rooms behaves as it always did. The
        one place rooms are derived."""
        defaults = self.sessions
        rooms = [
            Room(
                id=room.id,
                name=room.name or room.id,
                sensor_ids=room.sensor_ids,
                settings=room.settings,
                timeout_seconds=_minutes(room.settings.timeout_minutes, defaults) * 60,
                door_timeout_seconds=(
                    room.door_timeout_seconds
                    if room.door_timeout_seconds is not None
                    else defaults.door_timeout_seconds
                ),
                max_hold_seconds=(
                    room.max_hold_minutes
                    if room.max_hold_minutes is not None
                    else defaults.max_hold_minutes
                )
                * 60,
            )
            for room in self.rooms
        ]
        in_a_room = {sensor_id for room in self.rooms for sensor_id in room.sensor_ids}
        rooms.extend(
            Room(
                id=sensor.id,
                name=sensor.name or sensor.id,
                sensor_ids=(sensor.id,),
                settings=sensor,
                timeout_seconds=_minutes(sensor.timeout_minutes, defaults) * 60,
                door_timeout_seconds=defaults.door_timeout_seconds,
                max_hold_seconds=defaults.max_hold_minutes * 60,
            )
            for sensor in self.sensors
            if sensor.id not in in_a_room
        )
        return tuple(rooms)


def _minutes(configured: float | str | None, defaults: SessionsSection) -> float:
    """Configured minutes; the default for none, or "auto" (until something is learned)."""
    return (
        defaults.timeout_minutes if configured is None or configured == AUTO else float(configured)
    )


def config_path(explicit: str | os.PathLike[str] | None) -> Path:
    """`--config`, else `$SPOTTYPOTTY_CONFIG`, else /etc/spottypotty/hub.toml."""
    if explicit:
        return Path(explicit)
    from_env = os.environ.get(CONFIG_ENV)
    return Path(from_env) if from_env else DEFAULT_CONFIG_PATH


def load_config(path: Path) -> HubConfig:
    """Read and validate the config file at `path`; relative paths in it are relative to it.

    Raises ConfigError (never anything else) when the file is missing, unreadable or invalid.
    """
    source = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        problem = (
            f"config file not found: {path} (copy deploy/hub.example.toml there, or pass --config)"
        )
        raise ConfigError([problem], source=source) from None
    except IsADirectoryError:
        raise ConfigError([f"{path} is a directory, not a config file"], source=source) from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError([f"cannot read config file {path}: {reason}"], source=source) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        problem = f"not valid UTF-8 (byte {exc.start}); TOML files must be UTF-8"
        raise ConfigError([problem], source=source) from None
    return parse_config(text, source=source, base_dir=path.parent)


def parse_config(text: str, *, source: str = "<string>", base_dir: Path | None = None) -> HubConfig:
    """Validate TOML `text` into a HubConfig, or raise ConfigError listing every problem.

    Relative paths (hub.database, spotify.token_cache, mqtt.password_file, http.token_file)
    are joined to `base_dir`, the config file's directory; without it they stay relative.
    Sensor key paths count from 0: `sensors[1]` is the second `[[sensors]]` table.
    """
    try:
        document = tomllib.loads(text)
    except ValueError as exc:
        # TOMLDecodeError's message carries "(at line L, column C)". It is a ValueError, and
        # a bare ValueError also escapes tomllib: Python's limit on an integer's digits.
        raise ConfigError([f"invalid TOML: {exc}"], source=source) from None
    except RecursionError:
        raise ConfigError(
            ["invalid TOML: arrays or tables nested too deeply"], source=source
        ) from None
    try:
        config: HubConfig = _read_document(document)
    except _Invalid as exc:
        problems = [f"{where}: {message}" for where, message in exc.problems.items()]
        raise ConfigError(problems, source=source) from None
    if base_dir is not None:
        config = _resolve_paths(config, base_dir)
    return replace(config, source=source)


# --- validation machinery -------------------------------------------------------------------
#
# Every key maps to a converter: a function from the raw TOML value to the typed value that
# raises _Invalid saying what is wrong. Tables are converters too (built by `_table`), so a
# problem deep inside bubbles up with its key path and nothing stops at the first problem.

_Convert = Callable[[Any], Any]
# (good values, raw table) -> problems by key, for rules that tie keys together.
_Check = Callable[[dict[str, Any], dict[str, Any]], dict[str, str]]


class _Invalid(Exception):  # noqa: N818 - private control flow, never escapes this module
    """A value broke a rule: `problems` maps a key path relative to the value ("" = itself)."""

    def __init__(self, message: str = "", *, at: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.problems: dict[str, str] = at if at is not None else {"": message}


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_SHOW_LIMIT = 60


def _join(parent: str, child: str) -> str:
    if not parent:
        return child
    if not child:
        return parent
    return parent + child if child.startswith("[") else f"{parent}.{child}"


def _key(key: str) -> str:
    """A key as TOML would spell it, so `a.b` (one quoted key) is not mistaken for a path."""
    return key if _BARE_KEY.fullmatch(key) else json.dumps(key, ensure_ascii=False)


def _show(value: object) -> str:
    """A value the way the user wrote it in TOML, short enough for a one-line problem."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        shown = json.dumps(value, ensure_ascii=False)
        return shown if len(shown) <= _SHOW_LIMIT else shown[: _SHOW_LIMIT - 4] + '..."'
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dt.date | dt.time):  # datetime is a date
        return value.isoformat()
    shown = repr(value)
    return shown if len(shown) <= _SHOW_LIMIT else shown[: _SHOW_LIMIT - 3] + "..."


def _unknown(key: str, known: Iterable[str]) -> str:
    names = sorted(known)
    close = difflib.get_close_matches(key, names, n=1)
    if close:
        return f"unknown key (did you mean {close[0]!r}?)"
    return f"unknown key (expected one of: {', '.join(names)})"


def _table(
    fields: Mapping[str, _Convert],
    build: Callable[..., Any],
    *,
    required: tuple[str, ...] = (),
    check: _Check | None = None,
) -> _Convert:
    """A converter for a TOML table whose keys are `fields`; `build(**values)` makes the value."""

    def convert(raw: Any) -> Any:
        if not isinstance(raw, dict):
            raise _Invalid(f"must be a table, got {_show(raw)}")
        good: dict[str, Any] = {}
        problems: dict[str, str] = {}
        for key, value in raw.items():
            field_convert = fields.get(key)
            if field_convert is None:
                problems[_key(key)] = _unknown(key, fields)
                continue
            try:
                good[key] = field_convert(value)
            except _Invalid as exc:
                for where, message in exc.problems.items():
                    problems[_join(_key(key), where)] = message
        for key in required:
            if key not in raw:
                problems[key] = "required, but missing"
        if check is not None:
            problems.update(check(good, raw))
        if problems:
            raise _Invalid(at=problems)
        return build(**good)

    return convert


# --- value converters -----------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"must be a string, got {_show(value)}")
    # No key holds multi-line text; a control character is a typo or paste accident, and a
    # NUL would only blow up later inside open() or the MQTT client.
    if _CONTROL.search(value):
        raise _Invalid(f"must not contain control characters, got {_show(value)}")
    return value


def _nonempty(value: Any) -> str:
    text = _string(value)
    if not text.strip():
        raise _Invalid("must not be empty")
    return text


def _path(value: Any) -> Path:
    return Path(_nonempty(value))


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(f"must be true or false, got {_show(value)}")
    return value


def _integer(value: Any, low: int, high: int) -> int:
    # bool is an int subclass in Python; `port = true` is a mistake, never 1.
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _Invalid(f"must be an integer from {low} to {high}, got {_show(value)}")
    return value


def _port(value: Any) -> int:
    return _integer(value, 1, 65535)


def _volume(value: Any) -> int:
    return _integer(value, 0, 100)


# Durations turn into timers, deadlines and ISO timestamps elsewhere; past a century they
# would overflow datetime, and no one means them.
_MAX_DURATION_SECONDS = 100 * 365 * 86400
_SECONDS_PER = {"seconds": 1, "minutes": 60, "days": 86400}


def _duration(unit: str, *, zero_ok: bool = False) -> _Convert:
    low = "0 or more" if zero_ok else "greater than 0"
    most = _MAX_DURATION_SECONDS // _SECONDS_PER[unit]

    def convert(value: Any) -> float:
        # bool is an int subclass: `timeout_minutes = true` is a mistake, never 1.
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or (isinstance(value, float) and math.isnan(value))
            or value < 0
            or (value == 0 and not zero_ok)
        ):
            raise _Invalid(f"must be a number of {unit}, {low}, got {_show(value)}")
        # Compared before float(): float() of a huge TOML integer raises OverflowError.
        if value > most:
            raise _Invalid(f"must be at most {most} {unit} (100 years), got {_show(value)}")
        return float(value)

    return convert


def _choice(*options: str) -> _Convert:
    def convert(value: Any) -> str:
        if value not in options:
            quoted = ", ".join(json.dumps(option) for option in options)
            raise _Invalid(f"must be one of {quoted}, got {_show(value)}")
        return _string(value)

    return convert


def _timezone(value: Any) -> str:
    name = _string(value)
    if not name:
        return name  # the system's zone
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise _Invalid(
            f'must be an IANA time zone such as "Europe/London", got {_show(name)}'
        ) from None
    return name


def _topic_prefix(value: Any) -> str:
    prefix = _nonempty(value)
    if "+" in prefix or "#" in prefix:
        raise _Invalid(f"must not contain the MQTT wildcards + or #, got {_show(prefix)}")
    if prefix.startswith("/") or prefix.endswith("/"):
        raise _Invalid(f'must not start or end with "/", got {_show(prefix)}')
    return prefix


def _mqtt_topic(value: Any) -> str:
    topic = _string(value)
    if "+" in topic or "#" in topic:
        raise _Invalid(
            f"must be one sensor's topic, without the MQTT wildcards + or #, got {_show(topic)}"
        )
    return topic


def _host(value: Any) -> str:
    host = _nonempty(value)
    if any(char.isspace() for char in host):
        raise _Invalid(f"must be a host name or IP address, got {_show(host)}")
    return host


def _url_parts(value: Any) -> urllib.parse.SplitResult:
    url = _string(value)
    try:
        parts = urllib.parse.urlsplit(url)
        _ = parts.port  # raises ValueError on a port that is not a number
    except ValueError:
        raise _Invalid(f"must be an http:// or https:// URL, got {_show(url)}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _Invalid(f"must be an http:// or https:// URL, got {_show(url)}")
    return parts


def _http_url(value: Any) -> str:
    _url_parts(value)
    return str(value)


def _optional_http_url(value: Any) -> str:
    return "" if value == "" else _http_url(value)


def _redirect_uri(value: Any) -> str:
    parts = _url_parts(value)
    host = parts.hostname or ""
    # Spotify's rules since April 2025: "localhost" is refused outright, and plain http is
    # only allowed for loopback IP literals.
    if host == "localhost":
        raise _Invalid(
            "Spotify rejects localhost in redirect URIs: use 127.0.0.1 "
            f"(e.g. {_show(re.sub('localhost', '127.0.0.1', value, count=1, flags=re.IGNORECASE))})"
        )
    if parts.scheme == "http" and not _is_loopback_ip(host):
        raise _Invalid(
            "Spotify only allows http:// for 127.0.0.1 or [::1]; "
            f"use https:// or http://127.0.0.1, got {_show(value)}"
        )
    return _string(value)


def _is_loopback_ip(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# DynamoDB's own rule for table names.
_TABLE_NAME = re.compile(r"[A-Za-z0-9_.-]{3,255}")


def _table_name(value: Any) -> str:
    name = _string(value)
    if not _TABLE_NAME.fullmatch(name):
        raise _Invalid(
            f"must be a DynamoDB table name (3-255 of A-Z a-z 0-9 _ . -), got {_show(name)}"
        )
    return name


def _optional_table_name(value: Any) -> str:
    return "" if value == "" else _table_name(value)


# The id is an MQTT topic level and part of every session id, so it stays plain.
_SENSOR_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_MAC = re.compile(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}")
_BINDKEY = re.compile(r"[0-9A-Fa-f]{32}")
_CLOCK = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")
_CONTEXT_URI = re.compile(
    r"spotify:(playlist|album|artist|show|episode|audiobook|track):[A-Za-z0-9]+"
)
_CONTEXT_URL = re.compile(r"https://open\.spotify\.com/\S+")


def _sensor_id(value: Any) -> str:
    sensor_id = _string(value)
    if not _SENSOR_ID.fullmatch(sensor_id):
        raise _Invalid(
            "must be 1-64 characters of A-Z a-z 0-9 _ - (it is an MQTT topic level), "
            f"got {_show(sensor_id)}"
        )
    return sensor_id


def _ble_address(value: Any) -> str:
    address = _string(value)
    if address and not _MAC.fullmatch(address):
        raise _Invalid(f'must be a MAC address like "54:48:E6:8F:80:A5", got {_show(address)}')
    return address.upper()


def _ble_bindkey(value: Any) -> str:
    if not isinstance(value, str):
        raise _Invalid("must be a string of 32 hex characters")
    # A bindkey is a secret: say what is wrong with it, never echo it.
    if value and not _BINDKEY.fullmatch(value):
        raise _Invalid(f"must be exactly 32 hex characters, got {len(value)} characters")
    return value.lower()


def _context_uri(value: Any) -> str:
    uri = _string(value)
    if uri and not (_CONTEXT_URI.fullmatch(uri) or _CONTEXT_URL.fullmatch(uri)):
        raise _Invalid(
            'must be a Spotify URI like "spotify:playlist:37i9dQZF1DXcBWIGoYBM5M" '
            f"or an https://open.spotify.com/ link, got {_show(uri)}"
        )
    return uri


def _clock(value: Any) -> dt.time:
    # TOML's own local time (`start = 22:00:00`) is accepted as well as the "HH:MM" string.
    if isinstance(value, dt.time) and value.tzinfo is None:
        return value
    if not isinstance(value, str) or not _CLOCK.fullmatch(value):
        raise _Invalid(f'must be a time "HH:MM" from "00:00" to "23:59", got {_show(value)}')
    return dt.time.fromisoformat(value)


def _quiet_hours(start: dt.time, end: dt.time) -> QuietHours:
    return QuietHours(start=start, end=end)


def _check_quiet_hours(good: dict[str, Any], _raw: dict[str, Any]) -> dict[str, str]:
    if "start" in good and good.get("start") == good.get("end"):
        return {"end": "must differ from start (an empty window is a typo; remove quiet_hours)"}
    return {}


def _check_moment(good: dict[str, Any], _raw: dict[str, Any]) -> dict[str, str]:
    if "start" in good and good.get("start") == good.get("end"):
        return {"end": "must differ from start (an empty window is a typo; remove the moment)"}
    return {}


_DAY = 86400


def _spans(start: dt.time, end: dt.time) -> list[tuple[int, int]]:
    """A daily window as [from, to) seconds of the day; one crossing midnight is two."""
    first = start.hour * 3600 + start.minute * 60 + start.second
    last = end.hour * 3600 + end.minute * 60 + end.second
    return [(first, last)] if first < last else [(first, _DAY), (0, last)]


def _first_overlap(one: Moment, other: Moment) -> dt.time | None:
    """The first clock time both windows cover (in `one`'s order of the day), or None."""
    shared = [
        max(a, c)
        for a, b in _spans(one.start, one.end)
        for c, d in _spans(other.start, other.end)
        if max(a, c) < min(b, d)
    ]
    if not shared:
        return None
    at = min(shared)
    return dt.time(at // 3600, at % 3600 // 60, at % 60)


def _hhmm(value: dt.time) -> str:
    return value.strftime("%H:%M:%S" if value.second else "%H:%M")


_read_moment = _table(
    {
        "start": _clock,
        "end": _clock,
        "context_uri": _context_uri,
        "volume": _volume,
        "shuffle": _bool,
        "fade_in_seconds": _duration("seconds", zero_ok=True),
    },
    Moment,
    required=("start", "end"),
    check=_check_moment,
)


def _read_moments(raw: Any) -> tuple[Moment, ...]:
    """A sensor's moments: windows may not overlap (which one would play is then a guess)."""
    if not isinstance(raw, list):
        raise _Invalid(f"must be an array of tables ([[sensors.moments]]), got {_show(raw)}")
    problems: dict[str, str] = {}
    moments: list[tuple[int, Moment]] = []
    for index, item in enumerate(raw):
        try:
            moment: Moment = _read_moment(item)
        except _Invalid as exc:
            for where, message in exc.problems.items():
                problems[_join(f"[{index}]", where)] = message
            continue
        for earlier_index, earlier in moments:
            at = _first_overlap(moment, earlier)
            if at is not None:
                problems[f"[{index}]"] = (
                    f"{_hhmm(moment.start)}-{_hhmm(moment.end)} overlaps moments[{earlier_index}] "
                    f"({_hhmm(earlier.start)}-{_hhmm(earlier.end)}) from {_hhmm(at)}"
                )
                break
        moments.append((index, moment))
    if problems:
        raise _Invalid(at=problems)
    return tuple(moment for _, moment in moments)


# --- the schema -----------------------------------------------------------------------------


def _check_http(good: dict[str, Any], raw: dict[str, Any]) -> dict[str, str]:
    invalid = raw.keys() - good.keys()
    if "host" in invalid or "token_file" in invalid:
        return {}  # already reported; judging the pair now would only repeat it
    host: str = good.get("host", HttpSection().host)
    loopback = host.lower() == "localhost" or _is_loopback_ip(host)
    if not loopback and not good.get("token_file"):
        return {
            "token_file": f"required when host is {_show(host)}, which is not loopback: "
            "anyone on the network could otherwise use the API"
        }
    return {}


def _check_sensor(good: dict[str, Any], raw: dict[str, Any]) -> dict[str, str]:
    problems: dict[str, str] = {}
    # Rules between keys only fire when the keys involved are valid, so a bad
    # ble_address is reported once, not again as "bindkey without address".
    if good.get("ble_bindkey") and not raw.get("ble_address"):
        problems["ble_bindkey"] = "only allowed together with ble_address"
    mqtt_format = good.get("mqtt_format", "seed")
    if mqtt_format != "seed" and not raw.get("mqtt_topic"):
        problems["mqtt_topic"] = (
            f"required when mqtt_format = {_show(mqtt_format)} (the sensor's own topic)"
        )
    return problems


_minutes_duration = _duration("minutes")


def _timeout_minutes(value: Any) -> float | str:
    """Minutes, or "auto" (learned from the room's history within timeout_bounds)."""
    if value == AUTO:
        return AUTO
    try:
        minutes: float = _minutes_duration(value)
    except _Invalid as exc:
        raise _Invalid(f'{exc} (or "auto")') from None
    return minutes


def _timeout_bounds(value: Any) -> tuple[float, float]:
    if not isinstance(value, list) or len(value) != 2:  # noqa: PLR2004 - [min, max]
        raise _Invalid(f"must be [min, max] in minutes, got {_show(value)}")
    low, high = (_minutes_duration(item) for item in value)
    if low > high:
        raise _Invalid(f"min must not exceed max, got {_show(value)}")
    return low, high


def _check_playback(good: dict[str, Any], raw: dict[str, Any]) -> dict[str, str]:
    problems = _check_follow(good, raw)
    if "timeout_bounds" in raw and raw.get("timeout_minutes") != AUTO:
        problems["timeout_bounds"] = 'only allowed with timeout_minutes = "auto"'
    if good.get("timeout_minutes") == AUTO and "timeout_bounds" not in raw:
        problems["timeout_bounds"] = 'required with timeout_minutes = "auto" ([min, max] minutes)'
    return problems


def _check_follow(good: dict[str, Any], raw: dict[str, Any]) -> dict[str, str]:
    """`follow_after_seconds` says nothing without `follow = true`: a typo'd or forgotten
    `follow` would otherwise look configured and never move music."""
    said_no = "follow" not in raw or good.get("follow") is False  # (a bad value is reported)
    if "follow_after_seconds" in raw and said_no:
        return {"follow_after_seconds": "only allowed with follow = true"}
    return {}


# The keys that say what a room plays and when: a sensor's, and a room's.
_PLAYBACK_FIELDS: dict[str, _Convert] = {
    "spotify_device": _string,
    "context_uri": _context_uri,
    "shuffle": _bool,
    "volume": _volume,
    "timeout_minutes": _timeout_minutes,
    "timeout_bounds": _timeout_bounds,
    "quiet_hours": _table(
        {"start": _clock, "end": _clock},
        _quiet_hours,
        required=("start", "end"),
        check=_check_quiet_hours,
    ),
    "enabled": _bool,
    "resume": _bool,
    "fade_in_seconds": _duration("seconds", zero_ok=True),
    "moments": _read_moments,
    "follow": _bool,
    "follow_after_seconds": _duration("seconds"),
}

_SENSOR_FIELDS: dict[str, _Convert] = {
    "id": _sensor_id,
    "user_id": _nonempty,
    "name": _string,
    **_PLAYBACK_FIELDS,
    "kind": _choice("motion", "presence", "door"),
    "ble_address": _ble_address,
    "ble_bindkey": _ble_bindkey,
    "mqtt_topic": _mqtt_topic,
    "mqtt_format": _choice("seed", "esphome", "zigbee2mqtt"),
}


def _check_sensor_and_timeout(good: dict[str, Any], raw: dict[str, Any]) -> dict[str, str]:
    return {**_check_sensor(good, raw), **_check_playback(good, raw)}


_read_sensor = _table(
    _SENSOR_FIELDS, SensorConfig, required=("id", "user_id"), check=_check_sensor_and_timeout
)


def _sensor_ids(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _Invalid(f"must be an array of sensor ids, got {_show(value)}")
    ids = tuple(_sensor_id(item) for item in value)
    if not ids:
        raise _Invalid("must name at least one sensor (an empty room never plays)")
    twice = sorted({sensor_id for sensor_id in ids if ids.count(sensor_id) > 1})
    if twice:
        raise _Invalid(f"names {', '.join(twice)} twice")
    return ids


def _room(
    *,
    id: str,  # noqa: A002 - the TOML key
    sensors: tuple[str, ...],
    name: str = "",
    user_id: str = "",
    door_timeout_seconds: float | None = None,
    max_hold_minutes: float | None = None,
    **playback: Any,
) -> RoomConfig:
    # user_id "" is filled in from the room's first sensor once the sensors are read.
    settings = SensorConfig(id=id, user_id=user_id, name=name, **playback)
    return RoomConfig(id, name, sensors, settings, door_timeout_seconds, max_hold_minutes)


_ROOM_FIELDS: dict[str, _Convert] = {
    "id": _sensor_id,
    "name": _string,
    "sensors": _sensor_ids,
    "user_id": _nonempty,
    "door_timeout_seconds": _duration("seconds"),
    "max_hold_minutes": _duration("minutes"),
    **_PLAYBACK_FIELDS,
}
ROOM_KEYS: Final = tuple(_ROOM_FIELDS)  # a [[rooms]] table's keys (for the manual's test)

_read_room = _table(
    _ROOM_FIELDS,
    _room,
    required=("id", "sensors"),
    check=_check_playback,
)


def _read_each(raw: list[Any], read: _Convert) -> tuple[list[Any], dict[str, str]]:
    """Each table of an array read: (the values, None for a table with problems; the
    problems by key path)."""
    values: list[Any] = []
    problems: dict[str, str] = {}
    for index, item in enumerate(raw):
        try:
            values.append(read(item))
        except _Invalid as exc:
            values.append(None)
            for where, message in exc.problems.items():
                problems[_join(f"[{index}]", where)] = message
    return values, problems


def _read_rooms(raw: Any) -> tuple[RoomConfig, ...]:
    if not isinstance(raw, list):
        raise _Invalid(f"must be an array of tables ([[rooms]]), got {_show(raw)}")
    rooms, problems = _read_each(raw, _read_room)
    if problems:
        raise _Invalid(at=problems)
    return tuple(rooms)


# Stands for a room with problems of its own, so the others keep their indexes.
_UNREADABLE = RoomConfig("", "", (), SensorConfig(id="", user_id=""))


def _readable_rooms(raw: Any) -> tuple[RoomConfig, ...]:
    """The rooms of `raw`, each that does not read as `_UNREADABLE` (indexes kept)."""
    if not isinstance(raw, list):
        return ()
    rooms, _ = _read_each(raw, _read_room)
    return tuple(_UNREADABLE if room is None else room for room in rooms)


def _check_rooms(good: dict[str, Any], raw: dict[str, Any]) -> dict[str, str]:
    """Rooms against sensors: every sensor in at most one room, known, and a room that can
    start a session (a door alone never does); room ids distinct from every other room's."""
    # Rooms that read well are judged even when another one did not (all problems at once).
    rooms: tuple[RoomConfig, ...] = good.get("rooms") or _readable_rooms(raw.get("rooms"))
    if "sensors" in raw and "sensors" not in good:
        return {}  # the sensors' own problems are reported; rooms are judged against them
    sensors = {sensor.id: sensor for sensor in good.get("sensors", ())}
    problems: dict[str, str] = {}
    room_of: dict[str, int] = {}
    in_a_room = {sensor_id for room in rooms for sensor_id in room.sensor_ids}
    seen_ids: dict[str, int] = {}
    for index, room in enumerate(rooms):
        if room is _UNREADABLE:
            continue
        where = f"rooms[{index}]"
        first = seen_ids.setdefault(room.id, index)
        if first != index:
            problems[f"{where}.id"] = f"{_show(room.id)} is already used by rooms[{first}]"
        elif room.id in sensors and room.id not in in_a_room:
            problems[f"{where}.id"] = (
                f"{_show(room.id)} is also a sensor in no room (its own room): rename one"
            )
        said: list[str] = []
        for sensor_id in room.sensor_ids:
            if sensor_id not in sensors:
                said.append(f"{_show(sensor_id)} is not a configured sensor")
            earlier = room_of.setdefault(sensor_id, index)
            if earlier != index:
                said.append(
                    f"{_show(sensor_id)} is already in rooms[{earlier}] (a sensor is in one room)"
                )
        kinds = {sensors[s].kind for s in room.sensor_ids if s in sensors}
        if kinds == {"door"}:
            said.append(
                "only doors: a door alone never starts music (add a motion or presence sensor)"
            )
        if said:
            problems[f"{where}.sensors"] = "; ".join(said)
    return problems


def _config(**values: Any) -> HubConfig:
    """The config, with each room's user_id defaulting to its first sensor's."""
    sensors = {sensor.id: sensor for sensor in values.get("sensors", ())}
    rooms = tuple(
        room
        if room.settings.user_id
        else replace(
            room, settings=replace(room.settings, user_id=sensors[room.sensor_ids[0]].user_id)
        )
        for room in values.get("rooms", ())
    )
    return HubConfig(**{**values, "rooms": rooms})


# Keys whose values must differ between sensors, with what a clash would break.
_UNIQUE_SENSOR_KEYS = {
    "id": "sensor ids name MQTT topics and sessions",
    "ble_address": "one BLE device cannot be two sensors",
    "mqtt_topic": "one topic cannot feed two sensors",
}


def _read_sensors(raw: Any) -> tuple[SensorConfig, ...]:
    if not isinstance(raw, list):
        raise _Invalid(f"must be an array of tables ([[sensors]]), got {_show(raw)}")
    sensors: list[SensorConfig] = []
    problems: dict[str, str] = {}
    first_seen: dict[tuple[str, str], int] = {}
    for index, item in enumerate(raw):
        try:
            sensors.append(_read_sensor(item))
        except _Invalid as exc:
            for where, message in exc.problems.items():
                problems[_join(f"[{index}]", where)] = message
        # Duplicates are looked for even in sensors with other problems, so that one run
        # reports everything; a value counts only once it is valid.
        if not isinstance(item, dict):
            continue
        for key, why in _UNIQUE_SENSOR_KEYS.items():
            try:
                value = _SENSOR_FIELDS[key](item[key]) if item.get(key) else ""
            except _Invalid:
                value = ""
            if not value:
                continue
            first = first_seen.setdefault((key, value), index)
            if first != index:
                problems[f"[{index}].{key}"] = (
                    f"{_show(value)} is already used by sensors[{first}] ({why})"
                )
    if problems:
        raise _Invalid(at=problems)
    return tuple(sensors)


_read_document = _table(
    {
        "hub": _table(
            {
                "database": _path,
                "timezone": _timezone,
                "unwritable_grace_minutes": _duration("minutes"),
                "trust_clock": _bool,
            },
            HubSection,
        ),
        "mqtt": _table(
            {
                "host": _host,
                "port": _port,
                "username": _string,
                "password_file": _string,
                "topic_prefix": _topic_prefix,
            },
            MqttSection,
        ),
        "ble": _table({"enabled": _bool, "adapter": _nonempty}, BleSection),
        "sessions": _table(
            {
                "timeout_minutes": _duration("minutes"),
                "debounce_seconds": _duration("seconds", zero_ok=True),
                "ttl_days": _duration("days"),
                "max_hold_minutes": _duration("minutes"),
                "door_timeout_seconds": _duration("seconds"),
            },
            SessionsSection,
        ),
        "spotify": _table(
            {
                "client_id": _string,
                "redirect_uri": _redirect_uri,
                "token_cache": _path,
                "api_url": _http_url,
                "accounts_url": _http_url,
                "dry_run": _bool,
            },
            SpotifySection,
        ),
        "cloud": _table(
            {
                "enabled": _bool,
                "table": _table_name,
                "events_table": _optional_table_name,
                "region": _nonempty,
                "endpoint_url": _optional_http_url,
            },
            CloudSection,
        ),
        "http": _table(
            {"enabled": _bool, "host": _host, "port": _port, "token_file": _string},
            HttpSection,
            check=_check_http,
        ),
        "sensors": _read_sensors,
        "rooms": _read_rooms,
    },
    _config,
    check=_check_rooms,
)


def _resolve_paths(config: HubConfig, base_dir: Path) -> HubConfig:
    """Join relative file paths to the config file's directory, as a person would expect."""

    def resolve(path: Path) -> Path:
        return path if path.is_absolute() else base_dir / path

    def resolve_optional(path: str) -> str:
        return str(resolve(Path(path))) if path else ""

    return replace(
        config,
        hub=replace(config.hub, database=resolve(config.hub.database)),
        mqtt=replace(config.mqtt, password_file=resolve_optional(config.mqtt.password_file)),
        spotify=replace(config.spotify, token_cache=resolve(config.spotify.token_cache)),
        http=replace(config.http, token_file=resolve_optional(config.http.token_file)),
    )
