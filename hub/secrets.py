"""Secrets (Spotify client secret, MQTT password, API token) from outside the TOML file.

Looked up in order: an environment variable, systemd credentials
(`LoadCredential=` puts them in `$CREDENTIALS_DIRECTORY`), then a file named in the config.
Values are never logged; only where they came from.
"""

from __future__ import annotations

import logging
import os
import shlex
import stat
from pathlib import Path

from hub.errors import ConfigError

_LOGGER = logging.getLogger(__name__)

CREDENTIALS_ENV = "CREDENTIALS_DIRECTORY"


def read_secret(name: str, *, env: str | None = None, path: str | Path = "") -> str | None:
    """The secret `name` from env var `env`, systemd credential `name`, or the file `path`.

    Trailing newlines are stripped (editors and `echo` add them). An empty value counts as
    absent, so the next place is tried. Returns None when no place has it. Raises ConfigError
    when `path` exists but is readable by group or others, or cannot be read.
    """
    if not name or name in {".", ".."} or "/" in name:
        # A programming error, not a config one: the name is a credential id, not a path.
        raise ValueError(f"a secret name must be a plain file name, got {name!r}")

    if env:
        from_env = _strip(os.environ.get(env, ""))
        if from_env:
            _LOGGER.debug("secret %s read from environment variable %s", name, env)
            return from_env

    credentials_dir = os.environ.get(CREDENTIALS_ENV)
    if credentials_dir:
        # systemd makes this directory private to the unit and sets the files' modes
        # itself, so the group/others check below would only reject correct setups.
        from_credentials = _read_file(Path(credentials_dir) / name, check_mode=False)
        if from_credentials:
            _LOGGER.debug("secret %s read from systemd credentials", name)
            return from_credentials

    if path:
        from_file = _read_file(Path(path), check_mode=True)
        if from_file:
            _LOGGER.debug("secret %s read from %s", name, path)
            return from_file

    return None


def _strip(value: str) -> str:
    return value.rstrip("\r\n")


def _read_file(path: Path, *, check_mode: bool) -> str | None:
    """The file's text without trailing newlines, or None if it does not exist."""
    source = str(path)
    try:
        with path.open("rb") as handle:
            # fstat the open file, not the name, so the file checked is the file read.
            mode = os.fstat(handle.fileno()).st_mode
            if check_mode and mode & 0o077:
                problem = (
                    f"secret file {path} is accessible by group or others "
                    f"(mode {stat.S_IMODE(mode):04o}); run: chmod 600 {shlex.quote(source)}"
                )
                raise ConfigError([problem], source=source)
            data = handle.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError([f"cannot read secret file {path}: {reason}"], source=source) from None
    try:
        return _strip(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError([f"secret file {path} is not UTF-8 text"], source=source) from None
