"""`spottypotty sensors retrust ID` with no daemon running: the saved guard state says to
believe the sensor's next advert (the daemon path: tests/integration/test_ble_daemon.py)."""

from __future__ import annotations

from pathlib import Path

from hub.ingest.ble_decode import CounterState
from hub.ingest.ble_state import load_states, save_states
from hub.store import close_database, open_database
from tests.cli import spottypotty

ADDRESS = "54:48:E6:8F:80:A5"


def config(tmp_path: Path) -> Path:
    path = tmp_path / "hub.toml"
    path.write_text(
        f'[hub]\ndatabase = "{tmp_path / "hub.db"}"\n'
        '[[sensors]]\nid = "shelly"\nuser_id = "u"\n'
        f'ble_address = "{ADDRESS.lower()}"\nble_bindkey = "231d39c1d7cc1ab1aee224cd096db932"\n'
        '[[sensors]]\nid = "plain"\nuser_id = "u"\nble_address = "A4:C1:38:8D:18:B2"\n'
    )
    return path


def test_retrust_without_a_daemon_is_saved_for_the_next_one(tmp_path: Path) -> None:
    path = config(tmp_path)
    db = open_database(tmp_path / "hub.db")
    try:
        save_states(db, {ADDRESS: CounterState(90_000, low_seen=1 << 3)})
    finally:
        close_database(db)
    done = spottypotty("sensors", "retrust", "shelly", "--config", str(path))
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        f"retrusted shelly ({ADDRESS}): its next encrypted advert is believed whatever its "
        "counter (last believed: 90000)\n"
    )
    assert "retrusted by its owner" in done.stderr  # logged
    db = open_database(tmp_path / "hub.db")
    try:
        assert load_states(db) == {ADDRESS: CounterState(90_000, None, 1 << 3, trust_next=True)}
    finally:
        close_database(db)


def test_only_encrypted_ble_sensors_can_be_retrusted(tmp_path: Path) -> None:
    path = config(tmp_path)
    for sensor in ("plain", "nobody"):
        done = spottypotty("sensors", "retrust", sensor, "--config", str(path))
        assert done.returncode == 1
        assert done.stdout == ""
        assert "not a BLE sensor with a ble_bindkey" in done.stderr
