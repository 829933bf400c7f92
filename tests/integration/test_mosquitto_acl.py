"""The shipped broker config (deploy/mosquitto/) on a real mosquitto, with sensors
registered by `spottypotty sensors add` and revoked by `sensors remove`.

Shows: anonymous clients are rejected; a sensor cannot publish as another sensor (or as
the hub); a removed sensor is locked out, even when connected; the hub's account (through
the real daemon) still receives everything it should.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import pytest

from hub.cli import sensors as sensors_cli
from hub.config import load_config
from hub.daemon import Daemon
from hub.errors import ValidationError
from hub.registry import HA_USERNAME, HUB_USERNAME, password_users, set_password
from hub.systemd import Notifier
from tests.broker import Broker

pytestmark = pytest.mark.integration

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto"
HUB_PASSWORD = "hub-password-for-tests-only"  # noqa: S105 - a throwaway broker's
HA_PASSWORD = "ha-password-for-tests-only"  # noqa: S105


@dataclass
class Secured:
    broker: Broker
    config_file: Path
    passwd: Path
    capsys: pytest.CaptureFixture[str]

    def cli(self, *argv: str) -> tuple[int, str, str]:
        """`spottypotty sensors …` through hub.cli.sensors, as main() wires it."""
        common = argparse.ArgumentParser(add_help=False)
        common.add_argument("--config")
        parser = argparse.ArgumentParser(parents=[common])
        sensors_cli.add_parser(parser.add_subparsers(required=True), common)
        broker_pid = self.broker._process.pid if self.broker._process else None
        extra = (
            ["--mosquitto-passwd", str(self.passwd), "--mosquitto-pid", str(broker_pid)]
            if argv[0] in {"add", "remove"}
            else []
        )
        args = parser.parse_args(["sensors", *argv, *extra, "--config", str(self.config_file)])
        self.capsys.readouterr()
        status: int = args.command(args)
        out, err = self.capsys.readouterr()
        return status, out, err

    def add(self, sensor_id: str) -> str:
        """Register an MQTT sensor; its password, from the printed config.json."""
        status, out, err = self.cli("add", sensor_id, "--location", sensor_id, "--user", "u")
        assert status == 0, err
        firmware = json.loads(out)
        assert firmware["mqtt"]["username"] == sensor_id
        password: str = firmware["mqtt"]["password"]
        return password

    def client(self, username: str | None = None, password: str | None = None) -> aiomqtt.Client:
        return aiomqtt.Client(
            self.broker.host, self.broker.port, username=username, password=password, timeout=5
        )

    def hub(self) -> aiomqtt.Client:
        return self.client(HUB_USERNAME, HUB_PASSWORD)


def _shipped_config(broker: Broker, folder: Path) -> str:
    """deploy/mosquitto/spottypotty.conf on a free loopback port with files under `folder`."""
    text = (DEPLOY / "spottypotty.conf").read_text(encoding="utf-8")
    assert text.count("\nlistener 1883\n") == 1
    assert "\nallow_anonymous false\n" in text
    text = text.replace("\nlistener 1883\n", f"\nlistener {broker.port} {broker.host}\n")
    text = text.replace("/etc/mosquitto/spottypotty/", f"{folder}/")
    return text + (
        f"persistence_location {folder}/\n"  # Debian's mosquitto.conf sets it; not read here
        f"log_dest file {broker.log_file}\nlog_type all\nconnection_messages true\n"
        f"user {getpass.getuser()}\n"
    )


@pytest.fixture
def secured(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Secured]:
    monkeypatch.delenv("SPOTTYPOTTY_MQTT_PASSWORD", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    folder = tmp_path / "etc-mosquitto"
    folder.mkdir()
    (folder / "acl").write_bytes((DEPLOY / "acl").read_bytes())
    passwd = folder / "passwd"
    set_password(passwd, HUB_USERNAME, HUB_PASSWORD)
    set_password(passwd, HA_USERNAME, HA_PASSWORD)
    broker = Broker(tmp_path / "mosquitto")
    broker.config_file.write_text(_shipped_config(broker, folder), encoding="utf-8")
    secret = tmp_path / "mqtt-password"
    secret.write_text(HUB_PASSWORD + "\n")
    secret.chmod(0o600)
    config_file = tmp_path / "hub.toml"
    config_file.write_text(
        f'[hub]\ndatabase = "hub.db"\n\n[mqtt]\nport = {broker.port}\n'
        f'username = "{HUB_USERNAME}"\npassword_file = "mqtt-password"\n\n'
        "[spotify]\ndry_run = true\n"
    )
    broker.start()
    try:
        yield Secured(broker, config_file, passwd, capsys)
    finally:
        broker.stop()


async def _collect(client: aiomqtt.Client, until: set[str], seconds: float = 5) -> list[str]:
    """`topic payload` of each message, until all of `until` were seen or `seconds` pass."""
    seen: list[str] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            async for message in client.messages:
                payload = message.payload
                assert isinstance(payload, bytes)
                seen.append(f"{message.topic} {payload.decode()}")
                if until and until <= set(seen):
                    break
    return seen


async def _until_disconnected(client: aiomqtt.Client) -> None:
    async with asyncio.timeout(5):
        async for _ in client.messages:
            pass


async def test_anonymous_and_wrong_passwords_are_rejected(secured: Secured) -> None:
    password = await asyncio.to_thread(secured.add, "bath")
    for username, secret in ((None, None), ("bath", "wrong"), ("nobody", password)):
        with pytest.raises(aiomqtt.MqttError):
            async with secured.client(username, secret):
                pass
    async with secured.client("bath", password):
        pass  # the real password works
    assert "not authorised" in secured.broker.log()


async def test_a_sensor_cannot_publish_as_another_sensor_or_the_hub(secured: Secured) -> None:
    bath = await asyncio.to_thread(secured.add, "bath")
    hall = await asyncio.to_thread(secured.add, "hall")
    async with secured.hub() as hub, secured.client("hall", hall) as hall_client:
        await hub.subscribe("sensors/#", qos=1)
        await hub.subscribe("spottypotty/#", qos=1)
        await hall_client.subscribe("sensors/#", qos=1)  # a sensor reads nothing
        async with secured.client("bath", bath) as bath_client:
            await bath_client.publish("sensors/hall/motion", "forged", qos=1)
            await bath_client.publish("spottypotty/hub/status", "offline", qos=1)
            await bath_client.publish("homeassistant/x/config", "forged", qos=1)
            await bath_client.publish("sensors/bath/motion", "genuine", qos=1)
        await hall_client.publish("sensors/hall/motion", "genuine", qos=1)
        wanted = {"sensors/bath/motion genuine", "sensors/hall/motion genuine"}
        seen = await _collect(hub, wanted)
        leaked = await _collect(hall_client, set(), seconds=0.5)
    # bath's publishes arrive in order: the forged ones would have come before "genuine".
    assert seen == ["sensors/bath/motion genuine", "sensors/hall/motion genuine"]
    assert leaked == []


async def test_only_home_assistant_and_the_hub_write_command_topics(secured: Secured) -> None:
    bath = await asyncio.to_thread(secured.add, "bath")
    async with secured.hub() as hub, secured.client(HA_USERNAME, HA_PASSWORD) as ha:
        await hub.subscribe("spottypotty/rooms/+/+/set", qos=1)
        await hub.subscribe("spottypotty/hub/dnd/set", qos=1)
        await ha.subscribe("sensors/#", qos=1)  # HA reads motion and status
        async with secured.client("bath", bath) as sensor:
            await sensor.publish("spottypotty/rooms/bath/dnd/set", "ON", qos=1)
            await sensor.publish("spottypotty/hub/dnd/set", "ON", qos=1)
            await sensor.publish("sensors/bath/status", "online", qos=1)
        await ha.publish("spottypotty/hub/status", "offline", qos=1)  # not HA's to say
        await ha.publish("spottypotty/rooms/bath/dnd/set", "ON", qos=1)
        await ha.publish("spottypotty/hub/dnd/set", "OFF", qos=1)
        wanted = {"spottypotty/rooms/bath/dnd/set ON", "spottypotty/hub/dnd/set OFF"}
        seen = await _collect(hub, wanted)
        read = await _collect(ha, {"sensors/bath/status online"})
    assert seen == ["spottypotty/rooms/bath/dnd/set ON", "spottypotty/hub/dnd/set OFF"]
    assert read == ["sensors/bath/status online"]
    with pytest.raises(ValidationError):
        await asyncio.to_thread(secured.add, HA_USERNAME)  # no sensor takes HA's account


async def test_a_removed_sensor_is_locked_out(secured: Secured) -> None:
    bath = await asyncio.to_thread(secured.add, "bath")
    hall = await asyncio.to_thread(secured.add, "hall")
    async with secured.client("bath", bath) as connected:
        await connected.subscribe("sensors/bath/#", qos=1)  # reads nothing, but keeps it busy
        status, out, err = await asyncio.to_thread(secured.cli, "remove", "bath")
        assert status == 0, err
        assert "sent SIGHUP to mosquitto" in out
        # The reload disconnects the connected client whose account is gone.
        with pytest.raises(aiomqtt.MqttError):
            await _until_disconnected(connected)
    with pytest.raises(aiomqtt.MqttError):
        async with secured.client("bath", bath):
            pass
    assert password_users(secured.passwd) == [HUB_USERNAME, HA_USERNAME, "hall"]
    assert [s.id for s in load_config(secured.config_file).sensors] == ["hall"]
    async with secured.client("hall", hall):
        pass  # the others are untouched


async def test_the_hub_account_still_receives_everything(secured: Secured) -> None:
    bath = await asyncio.to_thread(secured.add, "bath")
    config = load_config(secured.config_file)
    assert [s.id for s in config.sensors] == ["bath"]
    daemon = Daemon(config, notifier=Notifier.from_environment({}), client_id="test-acl-hub")
    task = asyncio.create_task(daemon.run())
    try:
        async with asyncio.timeout(10):
            await daemon.ready.wait()
        assert daemon.runner is not None
        runner = daemon.runner
        async with secured.hub() as watcher:
            await watcher.subscribe("spottypotty/sessions/bath", qos=1)
            async with secured.client("bath", bath) as sensor:
                await sensor.publish(
                    "sensors/bath/status", json.dumps({"status": "online"}), qos=1, retain=True
                )
                motion = {"event": "motion_detected", "sensorId": "bath", "seq": 1}
                await sensor.publish("sensors/bath/motion", json.dumps(motion), qos=1)
            async with asyncio.timeout(10):
                while runner.counters["motion"] < 1 or runner.counters["status"] < 1:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
                message = await anext(aiter(watcher.messages))
        assert isinstance(message.payload, bytes)
        assert json.loads(message.payload)["sensorId"] == "bath"
    finally:
        daemon.stop()
        await task
    assert "not authorised" not in secured.broker.log().split("test-acl-hub", 1)[-1]
    status, out, _ = await asyncio.to_thread(secured.cli, "list", "--json")
    assert status == 0
    [row] = json.loads(out)
    assert (row["sensorId"], row["availability"], row["name"]) == ("bath", "online", "bath")
