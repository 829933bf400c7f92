"""deploy/install.sh in a throwaway root: what it writes, that systemd accepts the units,
that a second run changes nothing, that an edited hub.toml survives, and uninstall."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from hub.config import load_config
from hub.registry import HA_USERNAME, HUB_USERNAME, check_mosquitto_hash
from tests.systemd_units import ANALYZE, verify

ROOT = Path(__file__).resolve().parents[2]
INSTALL = ROOT / "deploy" / "install.sh"

pytestmark = pytest.mark.integration

# path -> (mode, symlink target or sha256 of the content, mtime)
Snapshot = dict[str, tuple[int, str, int]]


def install(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["bash", str(INSTALL), *args], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def snapshot(root: Path) -> Snapshot:
    files: Snapshot = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        if path.is_symlink():
            what = f"-> {path.readlink()}"
        elif path.is_file():
            what = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            what = "dir"
        files[str(path.relative_to(root))] = (info.st_mode, what, info.st_mtime_ns)
    return files


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o7777


@pytest.fixture
def target(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    install("--root", str(root))
    return root


def test_writes_the_files_with_their_modes(target: Path) -> None:
    expected = {
        "etc/spottypotty": 0o750,
        "etc/spottypotty/hub.toml": 0o640,
        "etc/spottypotty/mqtt-password": 0o600,
        "etc/spottypotty/ha-mqtt-password": 0o600,
        "var/lib/spottypotty": 0o750,
        "etc/mosquitto/spottypotty": 0o750,
        "etc/mosquitto/spottypotty/passwd": 0o600,
        "etc/mosquitto/spottypotty/acl": 0o640,
        "etc/mosquitto/conf.d/spottypotty.conf": 0o644,
        "etc/systemd/system/spottypotty-hub.service": 0o644,
    }
    for relative, wanted in expected.items():
        assert mode(target / relative) == wanted, relative
    for unit in [*ROOT.glob("systemd/*.service"), *ROOT.glob("systemd/*.timer")]:
        installed = target / "etc/systemd/system" / unit.name
        assert installed.read_bytes() == unit.read_bytes()
    assert (target / "etc/mosquitto/conf.d/spottypotty.conf").read_bytes() == (
        ROOT / "deploy/mosquitto/spottypotty.conf"
    ).read_bytes()
    link = target / "usr/local/bin/spottypotty"
    assert str(link.readlink()) == "/opt/spottypotty/venv/bin/spottypotty"


def test_the_config_is_valid_and_uses_the_hub_account(target: Path) -> None:
    config = load_config(target / "etc/spottypotty/hub.toml")
    assert config.mqtt.username == HUB_USERNAME
    assert config.mqtt.password_file == "/etc/spottypotty/mqtt-password"  # noqa: S105
    assert config.sensors == ()  # the example sensor is only a comment
    password = (target / "etc/spottypotty/mqtt-password").read_text().strip()
    assert len(password) >= 40
    entries = dict(
        line.split(":", 1)
        for line in (target / "etc/mosquitto/spottypotty/passwd").read_text().splitlines()
    )
    assert set(entries) == {HUB_USERNAME, HA_USERNAME}
    assert check_mosquitto_hash(password, entries[HUB_USERNAME])
    # Home Assistant's account, its password for a person to paste into HA.
    ha_password = (target / "etc/spottypotty/ha-mqtt-password").read_text().strip()
    assert check_mosquitto_hash(ha_password, entries[HA_USERNAME])
    assert ha_password != password


def test_nothing_is_run_on_the_system_only_printed(tmp_path: Path) -> None:
    done = install("--root", str(tmp_path / "root"))
    for command in ("apt-get install", "useradd", "chown", "systemctl enable", "pip install"):
        assert f"would run: {command}" in done.stdout or any(
            line.startswith("would run:") and command in line for line in done.stdout.splitlines()
        ), command
    assert "systemctl enable spottypotty-hub.service spottypotty-sync.timer" in done.stdout
    assert "spottypotty sensors add" in done.stdout
    assert "spottypotty spotify login" in done.stdout


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")
def test_systemd_accepts_the_installed_units(target: Path, tmp_path: Path) -> None:
    units = sorted((target / "etc/systemd/system").iterdir())
    assert {unit.name for unit in units} >= {"spottypotty-hub.service"}
    result = verify(units, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout == ""


def test_a_second_run_changes_nothing(target: Path) -> None:
    before = snapshot(target)
    done = install("--root", str(target))
    assert snapshot(target) == before
    assert "(0 change(s)" in done.stdout


def test_an_edited_config_is_never_overwritten(target: Path) -> None:
    config = target / "etc/spottypotty/hub.toml"
    edited = config.read_text() + '\n[[sensors]]\nid = "bath"\nuser_id = "me"\n'
    config.write_text(edited)
    install("--root", str(target))
    assert config.read_text() == edited


def test_an_edited_broker_config_is_kept_and_the_new_one_put_beside(target: Path) -> None:
    conf = target / "etc/mosquitto/conf.d/spottypotty.conf"
    edited = conf.read_text().replace("#listener 8883", "listener 8883")
    conf.write_text(edited)
    install("--root", str(target))
    assert conf.read_text() == edited
    shipped = (ROOT / "deploy/mosquitto/spottypotty.conf").read_text()
    assert (conf.parent / "spottypotty.conf.new").read_text() == shipped
    before = snapshot(target)
    install("--root", str(target))
    assert snapshot(target) == before


def test_an_unedited_older_broker_config_is_upgraded(target: Path) -> None:
    # What an older installer shipped (and recorded): replaced without asking.
    conf = target / "etc/mosquitto/conf.d/spottypotty.conf"
    older = "# an older shipped version\nlistener 1883\n"
    conf.write_text(older)
    (target / "opt/spottypotty/shipped/spottypotty.conf.sha256").write_text(
        hashlib.sha256(older.encode()).hexdigest() + "\n"
    )
    install("--root", str(target))
    assert conf.read_bytes() == (ROOT / "deploy/mosquitto/spottypotty.conf").read_bytes()
    assert not (conf.parent / "spottypotty.conf.new").exists()


def test_uninstall_keeps_data_and_purge_removes_it(target: Path) -> None:
    (target / "var/lib/spottypotty/hub.db").write_bytes(b"data")
    done = install("--root", str(target), "uninstall")
    assert "would run: systemctl disable --now spottypotty-hub.service" in done.stdout
    assert not (target / "etc/systemd/system/spottypotty-hub.service").exists()
    assert not (target / "etc/mosquitto/conf.d/spottypotty.conf").exists()
    assert not (target / "opt/spottypotty").exists()
    assert not (target / "usr/local/bin/spottypotty").is_symlink()
    for kept in ("etc/spottypotty/hub.toml", "var/lib/spottypotty/hub.db"):
        assert (target / kept).exists(), kept
    assert (target / "etc/mosquitto/spottypotty/passwd").exists()

    done = install("--root", str(target), "uninstall", "--purge")
    assert "would run: userdel spottypotty" in done.stdout
    for gone in ("etc/spottypotty", "var/lib/spottypotty", "etc/mosquitto/spottypotty"):
        assert not (target / gone).exists(), gone


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bogus"], "unknown argument"),
        (["--purge"], "--purge goes with uninstall"),
        (["--root", "/"], "--root / is the real system"),
    ],
)
def test_bad_arguments_are_refused(args: list[str], message: str) -> None:
    done = subprocess.run(
        ["bash", str(INSTALL), *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode != 0
    assert message in done.stderr
