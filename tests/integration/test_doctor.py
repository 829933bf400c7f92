"""`spottypotty doctor` says what works and what to fix, part by part."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING

import aiomqtt
import pytest

from hub.config import HubConfig, MqttSection, load_config
from hub.daemon import SPOTIFY_TOPIC, Daemon
from hub.doctor import check_spotify
from hub.systemd import Notifier
from tests.cli import spottypotty
from tests.fake_spotify import FakeSpotify

if TYPE_CHECKING:
    from tests.broker import Broker

pytestmark = pytest.mark.integration


def doctor(config_file: Path) -> tuple[int, dict[str, dict[str, str]]]:
    done = spottypotty("doctor", "--json", "--config", str(config_file))
    assert "Traceback" not in done.stderr
    return done.returncode, {check["part"]: check for check in json.loads(done.stdout)}


def write_config(tmp_path: Path, port: int, extra: str = "") -> Path:
    path = tmp_path / "hub.toml"
    path.write_text(
        f'[hub]\ndatabase = "hub.db"\n[mqtt]\nport = {port}\n[spotify]\ndry_run = true\n'
        + extra
        + '[[sensors]]\nid = "bath"\nuser_id = "u"\n'
    )
    return path


async def test_all_well_while_the_hub_runs(tmp_path: Path, broker: Broker) -> None:
    config_file = write_config(tmp_path, broker.port)
    daemon = Daemon(load_config(config_file), notifier=Notifier.from_environment({}))
    task = asyncio.create_task(daemon.run())
    try:
        async with asyncio.timeout(10):
            await daemon.ready.wait()
        code, checks = await asyncio.to_thread(doctor, config_file)
    finally:
        daemon.stop()
        await task
    assert code == 0
    assert checks["broker"]["verdict"] == "ok"
    assert "the hub says: online" in checks["broker"]["detail"]
    assert checks["database"]["verdict"] == "ok"
    assert (checks["spotify"]["verdict"], checks["ble"]["verdict"]) == ("off", "off")


def test_each_broken_part_is_named_with_its_fix(tmp_path: Path) -> None:
    config_file = write_config(
        tmp_path,
        1,  # nothing listens on port 1
        '[ble]\nenabled = true\nadapter = "hci99"\n'
        '[cloud]\nenabled = true\nendpoint_url = "http://127.0.0.1:1"\n',
    )
    (tmp_path / "hub.db").write_bytes(b"not a database at all" * 100)
    code, checks = doctor(config_file)
    assert code == 1
    assert checks["broker"]["verdict"] == "fail"
    assert "127.0.0.1:1" in checks["broker"]["detail"]
    assert "mosquitto" in checks["broker"]["fix"]
    assert checks["database"]["verdict"] == "fail"
    assert "backup" in checks["database"]["fix"]
    assert checks["ble"]["verdict"] == "fail"
    assert "hci99" in checks["ble"]["detail"]
    assert checks["cloud"]["verdict"] == "fail"
    assert "credentials" in checks["cloud"]["fix"]


async def test_spotify_premium_required_as_the_running_hub_said_it(
    tmp_path: Path, broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeSpotify() as fake:
        fake.add_device("Bathroom speaker")
        settings = fake.settings(tmp_path / "token.json")
        fake.write_token_cache(settings.token_cache)
        monkeypatch.setenv("SPOTIFY_CLIENT_SECRET", fake.client_secret)
        config = HubConfig(mqtt=MqttSection(port=broker.port), spotify=settings)
        async with aiomqtt.Client("127.0.0.1", broker.port) as hub:  # as the daemon retains it
            await hub.publish(SPOTIFY_TOPIC, b"Spotify Premium required", qos=1, retain=True)

        check = await asyncio.to_thread(check_spotify, config)

    assert check.verdict == "fail"
    assert "Spotify Premium required" in check.detail
    assert "Premium account" in check.fix
