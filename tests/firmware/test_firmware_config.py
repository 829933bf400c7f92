"""config.json: the example validates, problems are listed together, unknown keys refused."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

from tests.firmware.conftest import FIRMWARE

config = importlib.import_module("config")


def test_the_example_config_is_valid_and_has_no_real_secrets() -> None:
    text = (FIRMWARE / "config.example.json").read_text("utf-8")
    cfg = config.loads(text)
    assert cfg.mode == "mqtt"
    assert cfg.mqtt["topicPrefix"] == "sensors"
    assert cfg.wifi["password"] == cfg.mqtt["password"] == "change-me"  # noqa: S105 - placeholder
    assert cfg.ble["bindkey"] == ""
    summary = cfg.summary()
    assert "change-me" not in summary
    assert "bathroom_main" in summary


def test_defaults_fill_what_a_ble_config_leaves_out() -> None:
    cfg = config.validate(
        {"sensorId": "hall", "mode": "ble", "ble": {"bindkey": "231d39c1d7cc1ab1aee224cd096db932"}}
    )
    assert cfg.pir["pin"] == 13
    assert cfg.ble["burstMs"] == 1000
    assert cfg.mqtt["queueSize"] == 20


def test_every_problem_is_reported_at_once() -> None:
    raw = {
        "sensorId": "bad id!",
        "mode": "zigbee",
        "pir": {"pin": 99, "colour": "red"},
        "mqtt": {"port": 0},
        "ble": {"bindkey": "xyz"},
        "extra": 1,
    }
    with pytest.raises(config.ConfigError) as caught:
        config.validate(raw)
    problems = "\n".join(caught.value.problems)
    for where in ("sensorId:", "mode:", "pir.pin:", "pir.colour: unknown", "mqtt.port:"):
        assert where in problems
    assert "ble.bindkey:" in problems
    assert "extra: unknown key" in problems


def test_mqtt_mode_needs_wifi_and_a_broker() -> None:
    with pytest.raises(config.ConfigError) as caught:
        config.validate({"sensorId": "hall", "mqtt": {"password": "x"}})
    assert caught.value.problems == [
        "wifi.ssid: needed in mqtt mode",
        "mqtt.host: needed in mqtt mode",
        "mqtt.username: needed with mqtt.password",
    ]


def test_a_missing_or_broken_file_says_what_to_do() -> None:
    with pytest.raises(config.ConfigError, match=r"copy config\.example\.json"):
        config.load(str(FIRMWARE / "no-such-config.json"))
    with pytest.raises(config.ConfigError, match="not valid JSON"):
        config.loads("{")
    assert json.loads((FIRMWARE / "config.example.json").read_text("utf-8"))["mode"] == "mqtt"


def test_what_sensors_add_prints_is_a_config_once_wifi_is_added(tmp_path: Path) -> None:
    """`spottypotty sensors add … > config.json` (hub.registry) + a "wifi" section."""
    registry = pytest.importorskip("hub.registry", reason="`sensors add` is not in this tree yet")
    hub_toml = tmp_path / "hub.toml"
    hub_toml.write_text('[hub]\ndatabase = "hub.db"\n', encoding="utf-8")
    passwords = tmp_path / "passwd"
    passwords.write_text("", encoding="utf-8")
    printed = {}
    for sensor_id, address in (("bath", ""), ("hall", "54:48:E6:8F:80:A5")):
        registration = registry.add_sensor(
            hub_toml,
            registry.NewSensor(id=sensor_id, user_id="u1", name="Room", ble_address=address),
            password_file=passwords,
            reload=registry.no_reload,
            broker_host="192.168.1.10",
        )
        printed[sensor_id] = json.loads(json.dumps(registration.firmware_config))
    mqtt_cfg = config.validate({**printed["bath"], "wifi": {"ssid": "lan", "password": "pw"}})
    assert (mqtt_cfg.sensor_id, mqtt_cfg.mode, mqtt_cfg.location) == ("bath", "mqtt", "Room")
    assert mqtt_cfg.mqtt["username"] == "bath"
    assert len(mqtt_cfg.mqtt["password"]) >= 16
    ble_cfg = config.validate(printed["hall"])  # BLE needs no Wi-Fi
    assert (ble_cfg.sensor_id, ble_cfg.mode) == ("hall", "ble")
    assert len(ble_cfg.ble["bindkey"]) == 32
