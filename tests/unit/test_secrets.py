"""hub.secrets.read_secret: env var, then systemd credentials, then a private file."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from hub.errors import ConfigError
from hub.secrets import read_secret

ENV = "SPOTTYPOTTY_TEST_SECRET"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No secret leaks in from the machine running the tests."""
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)


@pytest.fixture
def credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A systemd credentials directory, as LoadCredential= would make it."""
    directory = tmp_path / "credentials"
    directory.mkdir()
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(directory))
    return directory


def private_file(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def test_environment_wins_over_credentials_and_file(
    tmp_path: Path, credentials: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, "from-env")
    private_file(credentials / "spotify", "from-credentials")
    secret_file = private_file(tmp_path / "secret", "from-file")

    assert read_secret("spotify", env=ENV, path=secret_file) == "from-env"


def test_credentials_win_over_file(tmp_path: Path, credentials: Path) -> None:
    private_file(credentials / "spotify", "from-credentials\n")
    secret_file = private_file(tmp_path / "secret", "from-file")

    assert read_secret("spotify", env=ENV, path=secret_file) == "from-credentials"


def test_file_is_the_last_resort(tmp_path: Path, credentials: Path) -> None:
    # credentials is set up but holds no secret of this name
    secret_file = private_file(tmp_path / "secret", "from-file\n")

    assert read_secret("spotify", env=ENV, path=str(secret_file)) == "from-file"


def test_empty_values_count_as_absent(
    tmp_path: Path, credentials: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, "")
    private_file(credentials / "spotify", "\n")
    secret_file = private_file(tmp_path / "secret", "from-file")

    assert read_secret("spotify", env=ENV, path=secret_file) == "from-file"


def test_none_when_nowhere(tmp_path: Path) -> None:
    assert read_secret("spotify") is None
    assert read_secret("spotify", env=ENV, path="") is None
    assert read_secret("spotify", env=ENV, path=tmp_path / "missing") is None


def test_only_trailing_newlines_are_stripped(tmp_path: Path) -> None:
    secret_file = private_file(tmp_path / "secret", " pass word \r\n\n")

    assert read_secret("mqtt", path=secret_file) == " pass word "


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o602, 0o610])
def test_a_file_others_can_reach_is_refused(tmp_path: Path, mode: int) -> None:
    secret_file = private_file(tmp_path / "secret", "hunter2", mode)

    with pytest.raises(ConfigError) as info:
        read_secret("mqtt", path=secret_file)

    assert info.value.source == str(secret_file)
    (problem,) = info.value.problems
    assert str(secret_file) in problem
    assert f"mode {mode:04o}" in problem
    assert f"chmod 600 {secret_file}" in problem
    assert "hunter2" not in problem


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_a_private_file_is_read(tmp_path: Path, mode: int) -> None:
    secret_file = private_file(tmp_path / "secret", "hunter2", mode)

    assert read_secret("mqtt", path=secret_file) == "hunter2"


def test_a_loose_file_is_not_checked_once_a_secret_was_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, "from-env")
    secret_file = private_file(tmp_path / "secret", "from-file", 0o644)

    assert read_secret("mqtt", env=ENV, path=secret_file) == "from-env"


def test_credentials_modes_are_left_to_systemd(credentials: Path) -> None:
    private_file(credentials / "mqtt", "from-credentials", 0o440)

    assert read_secret("mqtt") == "from-credentials"


def test_unreadable_secret_path_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        read_secret("mqtt", path=tmp_path)  # a directory

    assert info.value.problems == [f"cannot read secret file {tmp_path}: Is a directory"]


def test_secret_file_that_is_not_text(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_bytes(b"\xff\xfe")
    secret_file.chmod(0o600)

    with pytest.raises(ConfigError) as info:
        read_secret("mqtt", path=secret_file)

    assert info.value.problems == [f"secret file {secret_file} is not UTF-8 text"]


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "../etc/passwd"])
def test_name_must_be_a_plain_file_name(name: str) -> None:
    with pytest.raises(ValueError, match="plain file name"):
        read_secret(name)


def test_values_are_never_logged(
    tmp_path: Path,
    credentials: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="hub.secrets")
    monkeypatch.setenv(ENV, "value-from-env")
    private_file(credentials / "cred", "value-from-credentials")
    secret_file = private_file(tmp_path / "secret", "value-from-file")

    read_secret("env", env=ENV)
    read_secret("cred")
    read_secret("file", path=secret_file)

    assert "value-from" not in caplog.text
    assert [record.getMessage() for record in caplog.records] == [
        f"secret env read from environment variable {ENV}",
        "secret cred read from systemd credentials",
        f"secret file read from {secret_file}",
    ]
