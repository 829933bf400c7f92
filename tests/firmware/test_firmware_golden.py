"""One set of golden payloads, checked from both sides: the firmware produces exactly these
bytes, and the hub's decoders read exactly these fields from them."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from hub.ingest.mqtt_decode import StatusUpdate, TopicRouter, encode_seed_motion
from hub.model import MotionEvent

mqtt_mode = importlib.import_module("mqtt_mode")
bthome = importlib.import_module("bthome")
golden_check = importlib.import_module("golden")  # firmware/host/golden.py


def test_the_firmware_makes_every_golden_payload_byte_for_byte(golden: dict[str, Any]) -> None:
    outputs = golden_check.firmware_outputs(golden, mqtt_mode, bthome)
    count = sum(len(golden[kind]) for kind in ("mqtt_motion", "mqtt_status", "bthome"))
    assert len(outputs) == count >= 12
    for name, made, expected in outputs:
        assert made == expected, name


def test_the_hubs_simulator_sends_every_golden_motion_payload(golden: dict[str, Any]) -> None:
    """`spottypotty simulate motion` sends what the firmware sends."""
    assert len(golden["mqtt_motion"]) >= 5
    for case in golden["mqtt_motion"]:
        fw = case["firmware"]
        assert case["payload"].encode() == encode_seed_motion(
            fw["sensor_id"],
            seq=fw["seq"],
            timestamp=fw["timestamp"],
            late=fw["late"],
            battery_level=fw["battery"],
            signal_strength=fw["rssi"],
            firmware_version=fw["firmware_version"],
        ), case["name"]


def test_the_hub_decodes_every_golden_motion_payload(golden: dict[str, Any]) -> None:
    router = TopicRouter(prefix="sensors")
    for case in golden["mqtt_motion"]:
        event = router.decode(case["topic"], case["payload"].encode(), case["received_at"])
        assert isinstance(event, MotionEvent), case["name"]
        expected = case["expected"]
        assert event.sensor_id == expected["sensor_id"]
        assert event.seq == expected["seq"]
        assert event.late is expected["late"]
        assert event.sensor_timestamp == expected["sensor_timestamp"]
        assert event.battery_level == expected["battery_level"]
        assert event.signal_strength == expected["signal_strength"]
        assert event.firmware_version == expected["firmware_version"]
        assert event.occurred_at == expected["occurred_at"], case["name"]


def test_the_contract_example_has_the_contract_fields(golden: dict[str, Any]) -> None:
    first = golden["mqtt_motion"][0]
    assert first["topic"] == "sensors/bathroom_main/motion"
    assert first["payload"].startswith('{"event":"motion_detected","sensorId":"bathroom_main"')
    assert (
        '"metadata":{"batteryLevel":85,"signalStrength":-45,"firmwareVersion":"1.0.0"}'
        in (first["payload"])
    )


def test_the_hub_decodes_every_golden_status_payload(golden: dict[str, Any]) -> None:
    router = TopicRouter(prefix="sensors")
    for case in golden["mqtt_status"]:
        value = router.decode(case["topic"], case["payload"].encode(), 1.0, retained=case["retain"])
        assert isinstance(value, StatusUpdate)
        assert value.sensor_id == case["expected"]["sensor_id"]
        assert value.online is case["expected"]["online"]


def test_the_hub_decodes_every_golden_bthome_frame(golden: dict[str, Any]) -> None:
    ble_decode = pytest.importorskip(
        "hub.ingest.ble_decode", reason="the hub's BLE decoder is not in this tree yet"
    )
    for case in golden["bthome"]:
        key = bytes.fromhex(case["bindkey"]) if case["bindkey"] else None
        advert = ble_decode.decode_service_data(
            case["address"], bytes.fromhex(case["service_data"]), key
        )
        expected = case["expected"]
        assert advert.readable, case["name"]
        assert advert.encrypted is expected["encrypted"]
        assert advert.trigger_based is expected["trigger_based"]
        assert advert.counter == expected["counter"]
        assert dict(advert.values) == expected["values"], case["name"]
        assert advert.packet_id == expected["values"]["packet_id"]
        assert advert.motion == expected["values"].get("motion")
