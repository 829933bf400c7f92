"""No secret ever reaches a log line or the terminal, and a readable secret file stops the hub.

Known fake secrets go into every place the hub reads them from (environment, password
file); the demo and the daemon then run with DEBUG logging, and all their output — stdout,
stderr, every log record, the files they wrote — is searched for them.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest

from hub.config import load_config
from hub.daemon import Daemon
from hub.demo import run_demo
from hub.registry import set_password
from hub.systemd import Notifier
from tests.broker import Broker
from tests.cli import spottypotty

pytestmark = pytest.mark.integration

# Fake, and distinctive enough that a match can only be a leak.
SECRETS = {
    "SPOTIFY_CLIENT_SECRET": "fake-spotify-secret-7f3a9c1e5b",
    "SPOTTYPOTTY_MQTT_PASSWORD": "fake-mqtt-password-2d8e4b6a0c",
    "AWS_SECRET_ACCESS_KEY": "fake-aws-secret-9b1d3f5e7a",
    "AWS_ACCESS_KEY_ID": "AKIAFAKE0000TESTKEY1",
    "SPOTTYPOTTY_API_TOKEN": "fake-api-token-4c6e8a0b2d",
}
EXIT_CONFIG = 78


class _Everything(logging.Handler):
    """Every record of every logger, formatted with its arguments and any traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def everything(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Everything]:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    handler = _Everything()
    # On the root logger *and* on "hub": the demo stops hub records from propagating.
    loggers = [logging.getLogger(), logging.getLogger("hub")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    yield handler
    for logger, level in zip(loggers, levels, strict=True):
        logger.removeHandler(handler)
        logger.setLevel(level)


def _leaks(text: str) -> list[str]:
    return [name for name, value in SECRETS.items() if value in text]


def _files_text(folder: Path) -> str:
    return "\n".join(
        path.read_bytes().decode("utf-8", errors="replace")
        for path in folder.rglob("*")
        if path.is_file()
    )


def test_the_demo_logs_no_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], everything: _Everything
) -> None:
    assert run_demo(tmp_path / "demo", scale=0.1) == 0
    out, err = capsys.readouterr()
    assert "session" in out  # it did run
    assert everything.lines  # and logged
    assert _leaks(out + err) == []
    assert _leaks("\n".join(everything.lines)) == []
    assert _leaks(_files_text(tmp_path / "demo")) == []


async def test_the_daemon_logs_no_secret_when_it_uses_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], everything: _Everything
) -> None:
    # A broker that wants the hub's password, which comes from the environment.
    password = SECRETS["SPOTTYPOTTY_MQTT_PASSWORD"]
    passwd = tmp_path / "passwd"
    set_password(passwd, "spottypotty-hub", password)
    broker = Broker(tmp_path / "mosquitto")
    broker.config_file.write_text(
        f"listener {broker.port} {broker.host}\nallow_anonymous false\n"
        f"password_file {passwd}\nlog_dest file {broker.log_file}\nlog_type all\n"
        f"user {getpass.getuser()}\n"
    )
    config_file = tmp_path / "hub.toml"
    config_file.write_text(
        f'[hub]\ndatabase = "hub.db"\n[mqtt]\nport = {broker.port}\n'
        'username = "spottypotty-hub"\n[spotify]\ndry_run = true\nclient_id = "fake-client"\n'
        '[[sensors]]\nid = "bath"\nuser_id = "u"\n'
        'ble_address = "54:48:E6:8F:80:A5"\nble_bindkey = "231d39c1d7cc1ab1aee224cd096db932"\n'
    )
    broker.start()
    try:
        daemon = Daemon(
            load_config(config_file), notifier=Notifier.from_environment({}), client_id="t-logs"
        )
        task = asyncio.create_task(daemon.run())
        try:
            async with asyncio.timeout(10):
                await daemon.ready.wait()
            assert daemon.runner is not None
            async with aiomqtt.Client(
                broker.host, broker.port, username="spottypotty-hub", password=password
            ) as sensor:
                motion = json.dumps({"event": "motion_detected", "seq": 1})
                await sensor.publish("sensors/bath/motion", motion, qos=1)
            async with asyncio.timeout(10):
                while daemon.runner.counters["motion"] < 1:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
        finally:
            daemon.stop()
            await task
    finally:
        broker.stop()
    out, err = capsys.readouterr()
    logged = "\n".join(everything.lines)
    assert "secret mqtt_password read from environment variable" in logged  # it used it
    assert _leaks(out + err + logged) == []
    assert "231d39c1d7cc1ab1aee224cd096db932" not in out + err + logged  # the bindkey


@pytest.fixture
def readable_secret(tmp_path: Path) -> tuple[Path, Path]:
    secret = tmp_path / "mqtt-password"
    secret.write_text("fake-password\n")
    secret.chmod(0o644)
    config_file = tmp_path / "hub.toml"
    config_file.write_text(
        '[hub]\ndatabase = "hub.db"\n[mqtt]\nport = 1\nusername = "spottypotty-hub"\n'
        'password_file = "mqtt-password"\n[spotify]\ndry_run = true\n'
    )
    return config_file, secret


def _env_without_secrets() -> dict[str, str]:
    return {
        key: value
        for key, value in os.environ.items()
        if key not in {"SPOTTYPOTTY_MQTT_PASSWORD", "CREDENTIALS_DIRECTORY", "NOTIFY_SOCKET"}
    }


def test_read_secret_names_a_world_readable_file(readable_secret: tuple[Path, Path]) -> None:
    from hub.errors import ConfigError  # noqa: PLC0415
    from hub.secrets import read_secret  # noqa: PLC0415

    _, secret = readable_secret
    with pytest.raises(ConfigError) as caught:
        read_secret("mqtt_password", path=secret)
    assert str(secret) in str(caught.value)
    assert "chmod 600" in str(caught.value)
    assert "fake-password" not in str(caught.value)


def test_the_hub_refuses_to_start_on_a_world_readable_secret(
    readable_secret: tuple[Path, Path],
) -> None:
    config_file, secret = readable_secret
    done = spottypotty("run", "--config", str(config_file), env=_env_without_secrets())
    assert done.returncode == EXIT_CONFIG, done.stderr
    assert str(secret) in done.stderr
    assert "Traceback" not in done.stderr
    assert "fake-password" not in done.stdout + done.stderr
