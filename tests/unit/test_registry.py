"""hub.registry: sensor registration on files in a temporary folder, reload injected."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import pytest

from hub.config import load_config
from hub.errors import ConfigError, ConflictError, HubError, NotFoundError, ValidationError
from hub.registry import (
    HUB_USERNAME,
    NewSensor,
    add_sensor,
    check_mosquitto_hash,
    mosquitto_hash,
    mosquitto_reloader,
    password_users,
    remove_sensor,
    set_password,
)

MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd")
BASE = """\
# my hub
[hub]
database = "hub.db"   # keep this comment

[[sensors]]
id = "kitchen"
user_id = "me"
quiet_hours = { start = "22:00", end = "07:00" }

[http]
port = 8081
"""


class Reloads:
    def __init__(self, fail: bool = False) -> None:
        self.count = 0
        self.fail = fail

    def __call__(self) -> str:
        self.count += 1
        if self.fail:
            raise HubError("mosquitto is not running")
        return "reloaded"


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "hub.toml"
    path.write_text(BASE)
    path.chmod(0o640)
    return path


@pytest.fixture
def passwd(tmp_path: Path) -> Path:
    return tmp_path / "passwd"


def add(config_file: Path, passwd: Path, new: NewSensor, reload: Reloads | None = None) -> object:
    return add_sensor(
        config_file,
        new,
        password_file=passwd,
        reload=reload or Reloads(),
        broker_host="hub.local",
        token=lambda _: "pw-" + "x" * 40,
        key=lambda n: "ab" * n,
    )


def test_mqtt_sensor_gets_an_account_and_a_table(config_file: Path, passwd: Path) -> None:
    reloads = Reloads()
    result = add_sensor(
        config_file,
        NewSensor("bath", "me", name="Main bathroom", context_uri="spotify:playlist:abc"),
        password_file=passwd,
        reload=reloads,
        broker_host="hub.local",
    )
    password = result.firmware_config["mqtt"]["password"]
    assert len(password) >= 40
    assert result.firmware_config["mqtt"] | {"password": "-"} == {
        "host": "hub.local",
        "port": 1883,
        "username": "bath",
        "password": "-",
        "topicPrefix": "sensors",
        "qos": 1,
    }
    assert result.kind == "mqtt"
    assert result.reloaded
    assert reloads.count == 1
    [entry] = passwd.read_text().splitlines()
    assert entry.startswith("bath:$7$")
    assert check_mosquitto_hash(password, entry.partition(":")[2])
    assert password not in config_file.read_text()  # only the hash, only in passwd
    assert password not in repr(result)
    config = load_config(config_file)
    assert [s.id for s in config.sensors] == ["kitchen", "bath"]
    assert config.sensor("bath") == result.sensor
    assert result.sensor.name == "Main bathroom"
    assert config_file.read_text().startswith(BASE)  # comments and layout kept
    assert config_file.stat().st_mode & 0o777 == 0o640
    assert passwd.stat().st_mode & 0o777 == 0o600


def test_ble_sensor_gets_a_bindkey_and_no_account(config_file: Path, passwd: Path) -> None:
    reloads = Reloads()
    result = add_sensor(
        config_file,
        NewSensor("shed", "me", ble_address="54:48:e6:8f:80:a5"),
        password_file=passwd,
        reload=reloads,
        broker_host="hub.local",
    )
    bindkey = result.firmware_config["ble"]["bindkey"]
    assert len(bytes.fromhex(bindkey)) == 16
    sensor = load_config(config_file).sensor("shed")
    assert sensor is not None
    assert sensor.ble_bindkey == bindkey
    assert sensor.ble_address == "54:48:E6:8F:80:A5"
    assert not passwd.exists()
    assert reloads.count == 0


def test_remove_undoes_add_exactly(config_file: Path, passwd: Path) -> None:
    set_password(passwd, HUB_USERNAME, "hub-pw")
    add(config_file, passwd, NewSensor("bath", "me", name='A "quoted" \\ name'))
    reloads = Reloads()
    removal = remove_sensor(config_file, "bath", password_file=passwd, reload=reloads)
    assert removal.removed_from_config
    assert removal.removed_from_broker
    assert removal.reloaded
    assert config_file.read_text() == BASE
    assert password_users(passwd) == [HUB_USERNAME]
    assert reloads.count == 1


def test_remove_a_table_in_the_middle(config_file: Path, passwd: Path) -> None:
    remove_sensor(config_file, "kitchen", password_file=passwd, reload=Reloads())
    config = load_config(config_file)
    assert config.sensors == ()
    assert config.http.port == 8081
    assert "# keep this comment" in config_file.read_text()


def test_conflicts_and_bad_values_change_nothing(config_file: Path, passwd: Path) -> None:
    set_password(passwd, "ghost", "pw")
    before = (config_file.read_text(), passwd.read_text())
    with pytest.raises(ConflictError):
        add(config_file, passwd, NewSensor("kitchen", "me"))
    with pytest.raises(ConflictError, match="broker account"):
        add(config_file, passwd, NewSensor("ghost", "me"))
    with pytest.raises(ValidationError):
        add(config_file, passwd, NewSensor(HUB_USERNAME, "me"))
    with pytest.raises(ValidationError, match="id"):
        add(config_file, passwd, NewSensor("bad/id", "me"))
    with pytest.raises(ValidationError, match="context_uri"):
        add(config_file, passwd, NewSensor("ok", "me", context_uri="not a uri"))
    with pytest.raises(NotFoundError):
        remove_sensor(config_file, "nobody", password_file=passwd, reload=Reloads())
    assert (config_file.read_text(), passwd.read_text()) == before


def test_a_failed_password_write_puts_the_config_back(
    config_file: Path, passwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("hub.registry.set_password", broken)
    with pytest.raises(OSError, match="disk full"):
        add(config_file, passwd, NewSensor("bath", "me"))
    assert config_file.read_text() == BASE


def test_a_failed_reload_is_reported_not_raised(config_file: Path, passwd: Path) -> None:
    result = add_sensor(
        config_file,
        NewSensor("bath", "me"),
        password_file=passwd,
        reload=Reloads(fail=True),
        broker_host="h",
    )
    assert not result.reloaded
    assert "not running" in result.reload_note
    assert result.firmware_config["mqtt"]["password"]  # the secret is not lost


def test_inline_sensors_are_refused_for_removal(tmp_path: Path, passwd: Path) -> None:
    config_file = tmp_path / "hub.toml"
    text = 'sensors = [{ id = "a", user_id = "u" }]\n'
    config_file.write_text(text)
    with pytest.raises(ConfigError, match="edit the file by hand"):
        remove_sensor(config_file, "a", password_file=passwd, reload=Reloads())
    with pytest.raises(ConfigError):  # appending [[sensors]] would be invalid TOML
        add(config_file, passwd, NewSensor("b", "u"))
    assert config_file.read_text() == text


def test_the_hash_is_what_mosquitto_passwd_writes(tmp_path: Path) -> None:
    salt = bytes(range(12))
    hashed = mosquitto_hash("secret", salt=salt)
    assert hashed.startswith("$7$101$" + base64.b64encode(salt).decode() + "$")
    assert check_mosquitto_hash("secret", hashed)
    assert not check_mosquitto_hash("Secret", hashed)
    assert not check_mosquitto_hash("secret", "$6$x$y")
    if MOSQUITTO_PASSWD is None:
        pytest.skip("mosquitto_passwd is not installed")
    file = tmp_path / "passwd"
    file.touch()
    subprocess.run([MOSQUITTO_PASSWD, "-b", str(file), "alice", "secret"], check=True)
    _, theirs = file.read_text().strip().split(":", 1)
    _, _, iterations, their_salt, _ = theirs.split("$")
    assert (
        mosquitto_hash("secret", salt=base64.b64decode(their_salt), iterations=int(iterations))
        == theirs
    )


def test_set_password_replaces_and_keeps_other_lines(passwd: Path) -> None:
    passwd.write_text("# a comment\nother:$7$1$AA==$AA==\n")
    set_password(passwd, "bath", "one")
    set_password(passwd, "bath", "two")
    lines = passwd.read_text().splitlines()
    assert lines[:2] == ["# a comment", "other:$7$1$AA==$AA=="]
    assert password_users(passwd) == ["other", "bath"]
    assert check_mosquitto_hash("two", lines[2].partition(":")[2])


def test_reloader_uses_systemctl_under_systemd() -> None:
    calls: list[list[str]] = []

    def run(argv: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 0, "", "")

    if shutil.which("systemctl") is None:
        pytest.skip("no systemctl")
    note = mosquitto_reloader(run=run, systemd_booted=lambda: True)()
    assert calls[0][1:] == ["try-reload-or-restart", "mosquitto.service"]
    assert "reloaded" in note
    with pytest.raises(HubError, match="not running under systemd"):
        mosquitto_reloader(run=run, systemd_booted=lambda: False)()
    with pytest.raises(HubError, match="pid"):
        mosquitto_reloader(2**22 + 12345)()
