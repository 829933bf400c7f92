"""The ESPHome alternative: `esphome config` accepts it (offline), and the topic and payloads
it publishes are the ones the hub's `esphome` decoder reads."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from hub.ingest.mqtt_decode import ForeignRoute, TopicRouter
from hub.model import SensorState
from tests.firmware.conftest import FIRMWARE

ESPHOME_DIR = FIRMWARE / "esphome"
YAML = ESPHOME_DIR / "motion-sensor.yaml"
# ESPHome pins paho-mqtt 1.x (the hub needs 2.x, via aiomqtt), so it cannot share .venv.
LOCAL_VENV = FIRMWARE.parent / ".venv-esphome" / "bin" / "esphome"
INSTALL_HINT = (
    "esphome is not installed; it conflicts with the hub's own dependencies, so give it its "
    "own venv: python3 -m venv .venv-esphome && .venv-esphome/bin/pip install esphome "
    "(or point $ESPHOME at an esphome executable)"
)


def esphome_binary() -> str | None:
    explicit = os.environ.get("ESPHOME")
    if explicit:
        return explicit
    if LOCAL_VENV.exists():
        return str(LOCAL_VENV)
    return shutil.which("esphome")


def substitution(name: str) -> str:
    match = re.search(rf"^  {name}: (\S+)", YAML.read_text("utf-8"), re.MULTILINE)
    assert match, name
    return match.group(1)


def state_topic() -> str:
    match = re.search(r"^    state_topic: (\S+)", YAML.read_text("utf-8"), re.MULTILINE)
    assert match
    return match.group(1).replace("${node_name}", substitution("node_name"))


def test_the_state_topic_and_payloads_are_what_the_hubs_esphome_decoder_reads() -> None:
    topic = state_topic()
    assert topic == "bathroom-pir/binary_sensor/motion/state"  # contracts §2's example
    sensor_id = substitution("sensor_id")
    router = TopicRouter(foreign={topic: ForeignRoute(sensor_id, "esphome")})
    assert topic in router.subscriptions()
    on = router.decode(topic, b"ON", 10.0)
    assert isinstance(on, SensorState)
    assert (on.sensor_id, on.on) == ("bathroom_main", True)
    off = router.decode(topic, b"OFF", 11.0)
    assert isinstance(off, SensorState)
    assert not off.on


def test_no_secret_is_written_in_the_yaml() -> None:
    text = YAML.read_text("utf-8")
    for key in ("ssid", "password"):
        for line in text.splitlines():
            if line.strip().startswith(f"{key}:"):
                assert "!secret" in line, line


def test_esphome_config_validates_it(tmp_path: Path) -> None:
    binary = esphome_binary()
    if binary is None:
        pytest.skip(INSTALL_HINT)
    shutil.copy(YAML, tmp_path / YAML.name)
    shutil.copy(ESPHOME_DIR / "secrets.example.yaml", tmp_path / "secrets.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    done = subprocess.run(
        [binary, "config", YAML.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env=env,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "Configuration is valid!" in output
    assert "state_topic: bathroom-pir/binary_sensor/motion/state" in output
