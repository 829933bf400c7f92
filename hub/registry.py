"""Sensor registration: credentials on the broker, a `[[sensors]]` table in the config.

`add_sensor` makes an MQTT sensor a mosquitto account named after the sensor id (the
broker's pattern ACL `pattern write sensors/%u/#` then lets it publish only under its
own topic) with a fresh random password, or gives a BLE sensor a fresh bindkey; appends
the sensor's table to the config file (validated with `parse_config` before it replaces
the file atomically); reloads mosquitto; and returns the firmware's `config.json`
snippet. That snippet is the only place the password ever appears in clear: the
password file holds a PBKDF2-SHA512 hash, and nothing here logs it.

`remove_sensor` revokes: the password entry goes, the sensor's table goes, mosquitto
reloads (which also disconnects a client whose account is gone).

Every file is rewritten atomically (temporary file, fsync, rename) with the old file's
owner and mode, under a lock on the config file's directory, so two registrations at once
cannot lose each other's changes.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import fcntl
import hashlib
import hmac
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from hub.config import HubConfig, SensorConfig, parse_config
from hub.errors import ConfigError, ConflictError, HubError, NotFoundError, ValidationError

# The hub's own broker account (reads sensors/#, writes spottypotty/# and homeassistant/#,
# see deploy/mosquitto/acl). No sensor may take this name.
HUB_USERNAME: Final = "spottypotty-hub"
HA_USERNAME: Final = "ha"  # Home Assistant's broker account (deploy/install.sh makes it)
RESERVED: Final = frozenset({HUB_USERNAME, HA_USERNAME})  # broker accounts no sensor may take
DEFAULT_PASSWORD_FILE: Final = Path("/etc/mosquitto/spottypotty/passwd")
DEFAULT_BROKER_PORT: Final = 1883

# mosquitto 2's password hash: `$7$<iterations>$<base64 salt>$<base64 sha512>`, the format
# `mosquitto_passwd` writes (checked against it in the tests). 101 is its own default; the
# passwords made here are 256 random bits, so slowing the hash would add nothing but CPU
# time on every connect.
HASH_ITERATIONS: Final = 101
_SALT_BYTES: Final = 12
_HASH_ID: Final = "7"
_PASSWORD_BYTES: Final = 32  # secrets.token_urlsafe(32): 43 characters, 256 bits
_BINDKEY_BYTES: Final = 16  # BTHome v2 AES-CCM key

_USERNAME = re.compile(r"[^:\s]+")
_SENSORS_HEADER = re.compile(r"\s*\[\[\s*sensors\s*\]\]\s*(#.*)?$")
_SENSORS_SUBTABLE = re.compile(r"\s*\[\s*sensors\s*\.")
_ANY_HEADER = re.compile(r"\s*\[")

Reloader = Callable[[], str]
"""Makes mosquitto re-read its password file; returns what it did, raises HubError."""


@dataclass(frozen=True, slots=True)
class NewSensor:
    """What `sensors add` is told about a sensor."""

    id: str
    user_id: str
    name: str = ""  # --location
    ble_address: str = ""  # set: a BLE sensor (bindkey), else an MQTT sensor (password)
    context_uri: str = ""  # --playlist
    spotify_device: str = ""  # --device


@dataclass(frozen=True, slots=True)
class Registration:
    sensor: SensorConfig
    kind: Literal["mqtt", "ble"]
    # The firmware's config.json: holds the password or bindkey; show it once, never log it.
    firmware_config: dict[str, Any] = field(repr=False)
    reloaded: bool
    reload_note: str


@dataclass(frozen=True, slots=True)
class Removal:
    sensor_id: str
    removed_from_config: bool
    removed_from_broker: bool
    reloaded: bool
    reload_note: str


# --- the two operations ----------------------------------------------------------------------


def add_sensor(
    config_file: Path,
    new: NewSensor,
    *,
    password_file: Path,
    reload: Reloader,
    broker_host: str,
    broker_port: int = DEFAULT_BROKER_PORT,
    token: Callable[[int], str] = secrets.token_urlsafe,
    key: Callable[[int], str] = secrets.token_hex,
) -> Registration:
    """Register `new`: config table, broker account (MQTT) or bindkey (BLE), reload.

    Raises ConflictError when the id is taken (in the config or on the broker),
    ValidationError when it is the hub's own account name, ConfigError when the config
    (as it is, or with the new table) does not validate. Nothing is changed then.
    A failed reload does not undo the registration: the result says so instead.
    """
    if new.id in RESERVED:
        raise ValidationError("id", f"{new.id!r} is a broker account of the hub's own")
    ble = bool(new.ble_address)
    _check_new(new)
    with _locked(config_file.parent):
        text = _read_text(config_file)
        before = parse_config(text, source=str(config_file), base_dir=config_file.parent)
        if before.sensor(new.id) is not None:
            raise ConflictError(f"sensor {new.id!r} is already in {config_file}")
        if new.id == before.mqtt.username:
            raise ValidationError("id", f"{new.id!r} is the hub's broker account (mqtt.username)")
        if not ble and new.id in password_users(password_file):
            raise ConflictError(
                f"{password_file} already has a broker account {new.id!r}; "
                f"remove it first (spottypotty sensors remove {new.id})"
            )
        secret = key(_BINDKEY_BYTES) if ble else token(_PASSWORD_BYTES)
        table = sensor_table(new, bindkey=secret if ble else "")
        after_text = _append_table(text, table)
        after = _validated(after_text, config_file)
        sensor = after.sensor(new.id)
        if sensor is None or after.sensors[:-1] != before.sensors:  # pragma: no cover
            raise HubError(f"the new table for {new.id!r} did not read back as itself")
        _replace_file(config_file, after_text.encode("utf-8"), default_mode=0o640)
        if not ble:
            try:
                set_password(password_file, new.id, secret)
            except BaseException:
                # No account, no sensor: put the config back as it was.
                _replace_file(config_file, text.encode("utf-8"), default_mode=0o640)
                raise
    if ble:
        firmware: dict[str, Any] = {
            "sensorId": new.id,
            "location": new.name,
            "ble": {"bindkey": secret},
        }
        return Registration(sensor, "ble", firmware, reloaded=False, reload_note="")
    firmware = {
        "sensorId": new.id,
        "location": new.name,
        "mqtt": {
            "host": broker_host,
            "port": broker_port,
            "username": new.id,
            "password": secret,
            "topicPrefix": before.mqtt.topic_prefix,
            "qos": 1,
        },
    }
    reloaded, note = _try_reload(reload)
    return Registration(sensor, "mqtt", firmware, reloaded=reloaded, reload_note=note)


def remove_sensor(
    config_file: Path, sensor_id: str, *, password_file: Path, reload: Reloader
) -> Removal:
    """Revoke `sensor_id`: its broker account and its config table; reload mosquitto.

    Either one alone is enough to proceed (a half-registered sensor is cleaned up);
    neither raises NotFoundError. ConfigError when the table cannot be removed safely
    (e.g. the sensors are written as an inline array): then nothing is changed.
    """
    if sensor_id in RESERVED:
        raise ValidationError("id", f"{sensor_id!r} is a broker account of the hub's own")
    with _locked(config_file.parent):
        text = _read_text(config_file)
        before = parse_config(text, source=str(config_file), base_dir=config_file.parent)
        in_config = before.sensor(sensor_id) is not None
        on_broker = sensor_id in password_users(password_file)
        if not in_config and not on_broker:
            raise NotFoundError(f"no sensor {sensor_id!r} in {config_file} or {password_file}")
        after_text = _without_table(text, sensor_id, config_file) if in_config else text
        if in_config:
            after = _validated(after_text, config_file)
            kept = tuple(s for s in before.sensors if s.id != sensor_id)
            if after.sensors != kept or _sections(after) != _sections(before):
                raise ConfigError(
                    [f"sensors: cannot remove {sensor_id!r} safely; edit the file by hand"],
                    source=str(config_file),
                )
        # Revoke first: if anything after this fails, the sensor is at least locked out.
        if on_broker:
            delete_password(password_file, sensor_id)
        if in_config:
            _replace_file(config_file, after_text.encode("utf-8"), default_mode=0o640)
    reloaded, note = _try_reload(reload) if on_broker else (False, "")
    return Removal(sensor_id, in_config, on_broker, reloaded=reloaded, reload_note=note)


def _check_new(new: NewSensor) -> None:
    """The new sensor's own values, judged by the config's rules before any file is read."""
    try:
        parse_config(sensor_table(new, bindkey="0" * 2 * _BINDKEY_BYTES if new.ble_address else ""))
    except ConfigError as exc:
        problems = [problem.removeprefix("sensors[0].") for problem in exc.problems]
        raise ValidationError("sensor", "; ".join(problems)) from None


def sensor_table(new: NewSensor, *, bindkey: str = "") -> str:
    """The `[[sensors]]` TOML table for `new` (strings quoted as TOML basic strings)."""
    lines = ["[[sensors]]", f"id = {_quote(new.id)}", f"user_id = {_quote(new.user_id)}"]
    optional = (
        ("name", new.name),
        ("spotify_device", new.spotify_device),
        ("context_uri", new.context_uri),
        ("ble_address", new.ble_address),
        ("ble_bindkey", bindkey),
    )
    lines += [f"{key} = {_quote(value)}" for key, value in optional if value]
    return "\n".join(lines) + "\n"


# --- mosquitto's password file ---------------------------------------------------------------


def mosquitto_hash(
    password: str, *, salt: bytes | None = None, iterations: int = HASH_ITERATIONS
) -> str:
    """The password-file hash mosquitto 2 checks: `$7$iterations$salt$pbkdf2-sha512`."""
    salt = secrets.token_bytes(_SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    encode = base64.b64encode
    return f"${_HASH_ID}${iterations}${encode(salt).decode()}${encode(digest).decode()}"


def check_mosquitto_hash(password: str, hashed: str) -> bool:
    """Whether `password` matches a `$7$` hash (for tests and `doctor`)."""
    parts = hashed.split("$")
    if len(parts) != 5 or parts[1] != _HASH_ID or not parts[2].isdigit():  # noqa: PLR2004
        return False
    salt = base64.b64decode(parts[3])
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, int(parts[2]))
    return hmac.compare_digest(digest, base64.b64decode(parts[4]))


def password_users(password_file: Path) -> list[str]:
    """The account names in a mosquitto password file (none if it does not exist)."""
    return [user for user, _ in _password_entries(password_file)]


def set_password(password_file: Path, username: str, password: str) -> None:
    """Add `username` (or replace its hash) in the password file; other lines untouched."""
    if not _USERNAME.fullmatch(username):
        raise ValidationError("username", "a broker user name has no ':' and no white space")
    entry = f"{username}:{mosquitto_hash(password)}"
    lines = _password_lines(password_file)
    kept = [line for line in lines if _entry_user(line) != username]
    _replace_file(password_file, "".join(f"{line}\n" for line in [*kept, entry]).encode())


def delete_password(password_file: Path, username: str) -> bool:
    """Remove `username` from the password file; False when it was not there."""
    lines = _password_lines(password_file)
    kept = [line for line in lines if _entry_user(line) != username]
    if len(kept) == len(lines):
        return False
    _replace_file(password_file, "".join(f"{line}\n" for line in kept).encode())
    return True


def _password_lines(password_file: Path) -> list[str]:
    try:
        return password_file.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []


def _password_entries(password_file: Path) -> list[tuple[str, str]]:
    entries = []
    for line in _password_lines(password_file):
        user = _entry_user(line)
        if user:
            entries.append((user, line.partition(":")[2]))
    return entries


def _entry_user(line: str) -> str:
    if not line.strip() or line.lstrip().startswith("#") or ":" not in line:
        return ""
    return line.partition(":")[0]


# --- reloading mosquitto ---------------------------------------------------------------------


def mosquitto_reloader(
    pid: int | None = None,
    *,
    run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run,
    systemd_booted: Callable[[], bool] = lambda: Path("/run/systemd/system").is_dir(),
) -> Reloader:
    """SIGHUP to `pid`; else `systemctl try-reload-or-restart mosquitto` under systemd."""

    def reload() -> str:
        if pid is not None:
            try:
                os.kill(pid, signal.SIGHUP)
            except OSError as exc:
                raise HubError(f"cannot signal mosquitto (pid {pid}): {exc.strerror}") from exc
            return f"sent SIGHUP to mosquitto (pid {pid})"
        systemctl = shutil.which("systemctl")
        if systemctl is None or not systemd_booted():
            raise HubError("not running under systemd: reload mosquitto yourself (kill -HUP)")
        done = run(
            [systemctl, "try-reload-or-restart", "mosquitto.service"],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        if done.returncode != 0:
            reason = done.stderr.strip() or f"exit status {done.returncode}"
            raise HubError(f"systemctl could not reload mosquitto: {reason}")
        return "reloaded mosquitto (systemctl try-reload-or-restart mosquitto)"

    return reload


def no_reload() -> str:
    raise HubError("mosquitto was not reloaded (--no-reload): reload it to apply the change")


def _try_reload(reload: Reloader) -> tuple[bool, str]:
    try:
        return True, reload()
    except HubError as exc:
        return False, str(exc)


# --- the config file as text -----------------------------------------------------------------


def _read_text(config_file: Path) -> str:
    try:
        return config_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            [f"config file not found: {config_file} (run deploy/install.sh, or pass --config)"],
            source=str(config_file),
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"cannot read {config_file}: {exc}"], source=str(config_file)) from None


def _validated(text: str, config_file: Path) -> HubConfig:
    return parse_config(text, source=str(config_file), base_dir=config_file.parent)


def _append_table(text: str, table: str) -> str:
    if text and not text.endswith("\n"):
        text += "\n"
    return f"{text}\n{table}" if text else table


def _without_table(text: str, sensor_id: str, config_file: Path) -> str:
    """`text` without the `[[sensors]]` table whose id is `sensor_id`."""
    lines = text.splitlines(keepends=True)
    start = 0
    while start < len(lines):
        if not _SENSORS_HEADER.match(lines[start]):
            start += 1
            continue
        end = start + 1
        while end < len(lines):
            line = lines[end]
            if _ANY_HEADER.match(line) and not _SENSORS_SUBTABLE.match(line):
                break
            end += 1
        if _table_id(lines[start:end]) == sensor_id:
            # Take the blank line before it too, so repeated add/remove leaves no trail.
            if start > 0 and not lines[start - 1].strip():
                start -= 1
            return "".join(lines[:start] + lines[end:])
        start = end
    raise ConfigError(
        [f"sensors: {sensor_id!r} is not written as a [[sensors]] table; edit the file by hand"],
        source=str(config_file),
    )


def _table_id(block: list[str]) -> object:
    try:
        document = tomllib.loads("".join(block))
    except tomllib.TOMLDecodeError:
        return None
    tables = document.get("sensors")
    if isinstance(tables, list) and len(tables) == 1 and isinstance(tables[0], dict):
        return tables[0].get("id")
    return None


def _sections(config: HubConfig) -> tuple[object, ...]:
    return tuple(
        getattr(config, f.name)
        for f in dataclasses.fields(config)
        if f.name not in {"sensors", "source"}
    )


def _quote(value: str) -> str:
    # A TOML basic string: backslash escapes as in JSON, \uXXXX for control characters.
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + re.sub(r"[\x00-\x1f\x7f]", lambda m: f"\\u{ord(m.group()):04x}", escaped) + '"'


# --- files -----------------------------------------------------------------------------------


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """An exclusive lock on `directory` (flock on its descriptor) for one change."""
    try:
        descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise ConfigError(
            [f"cannot open {directory}: {exc.strerror}"], source=str(directory)
        ) from None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # closing releases the lock


def _replace_file(path: Path, data: bytes, *, default_mode: int = 0o600) -> None:
    """Write `data` to `path` atomically, keeping the old file's mode and owner.

    A new file gets `default_mode` (0600 unless told) and, when run as root, the
    directory's owner and group: a password file made in /etc/mosquitto/spottypotty
    (mosquitto:mosquitto) is the broker's, a hub.toml made in /etc/spottypotty
    (root:spottypotty) is readable by the hub.
    """
    try:
        old = path.stat()
    except FileNotFoundError:
        old = None
    mode = (old.st_mode & 0o7777) if old is not None else default_mode
    descriptor, temporary = _mkstemp(path)
    try:
        os.fchmod(descriptor, mode)
        if os.geteuid() == 0:
            owner = old if old is not None else path.parent.stat()
            os.fchown(descriptor, owner.st_uid, owner.st_gid)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def _mkstemp(path: Path) -> tuple[int, str]:
    import tempfile  # noqa: PLC0415 - only when writing

    return tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


# --- for deploy/install.sh (no venv yet): `python3 -m hub.registry passwd FILE USER` ---------


def _main(argv: list[str]) -> int:
    """`passwd FILE USER`: set USER's password (read from stdin) in mosquitto's FILE.

    The installer uses it for the hub's own account, so the password never appears on a
    command line (as it would with `mosquitto_passwd -b`).
    """
    if len(argv) != 3 or argv[0] != "passwd":  # noqa: PLR2004
        print(
            "usage: python3 -m hub.registry passwd FILE USER  (password on stdin)", file=sys.stderr
        )
        return 2
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        print("hub.registry: no password on stdin", file=sys.stderr)
        return 2
    set_password(Path(argv[1]), argv[2], password)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
