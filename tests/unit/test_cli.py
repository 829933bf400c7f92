"""Argument parsing of the `spottypotty` command line, what its commands import, and its
exit statuses."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from hub.cli import backup, ble, sensors, spotify, sync
from hub.cli.common import EXIT_CONFIG, EXIT_DATA, EXIT_FAILURE
from hub.cli.main import build_parser, main
from hub.errors import ConfigError, DamagedDatabaseError, StoreError
from hub.store import close_database, open_database
from tests.cli import spottypotty

ROOT = Path(__file__).resolve().parents[2]

# main() as the console script calls it; then every module the process imported goes to
# the file named first, so the command's own stdout and stderr stay as they were.
_LIST_MODULES = """
import sys
from hub.cli import main
listing, *argv = sys.argv[1:]
try:
    status = main(argv)
except SystemExit as stop:
    status = stop.code
with open(listing, "w", encoding="utf-8") as out:
    out.write("\\n".join(sorted(sys.modules)))
sys.exit(status)
"""
# Needed neither for help nor for reading sessions: the libraries of the daemon, BLE,
# Spotify and the cloud, and the command groups' own modules.
_NOT_FOR_READING = (
    "aiomqtt",
    "bleak",
    "spotipy",
    "boto3",
    "botocore",
    "aiohttp",
    "cryptography",
    "hub.daemon",
    "hub.ingest",
    "hub.playback",
    "hub.sync",
    "hub.http",
    "hub.cli.backup",
    "hub.cli.ble",
    "hub.cli.sensors",
    "hub.cli.spotify",
    "hub.cli.sync",
)


def imported(
    tmp_path: Path, *argv: str, stdin: str = ""
) -> tuple[set[str], subprocess.CompletedProcess[str]]:
    listing = tmp_path / "modules.txt"
    done = subprocess.run(
        [sys.executable, "-c", _LIST_MODULES, str(listing), *argv],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert listing.exists(), done.stderr
    return set(listing.read_text(encoding="utf-8").split("\n")), done


def unneeded(modules: set[str]) -> list[str]:
    return sorted(
        name
        for name in modules
        if any(name == top or name.startswith(f"{top}.") for top in _NOT_FOR_READING)
    )


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "hub.toml"
    path.write_text(f'[hub]\ndatabase = "{tmp_path / "hub.db"}"\n', encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "argv",
    [
        ["--config", "X", "invoke"],
        ["invoke", "--config", "X"],
        ["--config", "X", "sensors", "list"],
        ["sensors", "list", "--config", "X"],
    ],
)
def test_config_is_taken_before_or_after_the_command(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert (args.config, args.verbose) == ("X", False)


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["ble", "decode", "--address", "54:48:E6:8F:80:A5", "40"], ble.run_decode),
        (["ble", "scan", "--seconds", "2"], ble.run_scan),
        (["sensors", "list"], sensors._list),
        (["sync", "--dry-run"], sync.run),
        (["spotify", "devices"], spotify.devices_command),
        (["backup", "out.db"], backup.run),
    ],
)
def test_a_command_group_is_parsed_by_its_own_module(
    argv: list[str], command: Callable[..., int]
) -> None:
    args = build_parser().parse_args(argv)
    assert args.command is command


def test_help_imports_no_command_group_and_no_library(tmp_path: Path) -> None:
    modules, done = imported(tmp_path, "--help")
    assert done.returncode == 0, done.stderr
    for summary in ("register, revoke, list and retrust sensors", "scan nearby, decode an advert"):
        assert summary in done.stdout
    assert unneeded(modules) == []
    assert {"hub.config", "sqlite_utils", "logging"}.isdisjoint(modules)


def test_a_chosen_group_imports_its_module_only(tmp_path: Path) -> None:
    modules, done = imported(tmp_path, "ble", "decode", "--help")
    assert done.returncode == 0, done.stderr
    assert "--bindkey KEY" in done.stdout
    assert unneeded(modules) == ["hub.cli.ble"]


@pytest.mark.parametrize(
    "argv", [["sessions", "--json"], ["analytics", "--json"], ["sensors", "list", "--json"]]
)
def test_reports_never_create_a_database(
    argv: list[str], tmp_path: Path, config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*argv, "--config", str(config_file)]) == EXIT_FAILURE
    assert "no database at" in capsys.readouterr().err
    assert not (tmp_path / "hub.db").exists()


def test_sessions_imports_only_what_it_uses(tmp_path: Path, config_file: Path) -> None:
    close_database(open_database(tmp_path / "hub.db"))  # the hub made it
    modules, done = imported(tmp_path, "sessions", "--json", "--config", str(config_file))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["count"] == 0
    assert unneeded(modules) == []


def test_invoke_imports_only_what_it_uses(tmp_path: Path, config_file: Path) -> None:
    event = json.dumps({"action": "get_active_session", "sensorId": "bathroom"})
    modules, done = imported(tmp_path, "invoke", "--config", str(config_file), stdin=event)
    assert json.loads(done.stdout)["action"] == "get_active_session", done.stderr
    assert unneeded(modules) == []


CLI = sys.modules[main.__module__]  # `hub.cli.main` the attribute is the function
DAMAGED = DamagedDatabaseError("/var/lib/spottypotty/hub.db", "database disk image is malformed")
BAD_CONFIG = ConfigError(["mqtt.port: must be 1..65535"], "/etc/spottypotty/hub.toml")


@pytest.mark.parametrize(
    ("raised", "status"),
    [
        pytest.param(DAMAGED, EXIT_DATA, id="damaged"),
        pytest.param(ExceptionGroup("daemon", [DAMAGED]), EXIT_DATA, id="damaged-in-a-group"),
        pytest.param(
            ExceptionGroup("daemon", [ExceptionGroup("inner", [DAMAGED])]),
            EXIT_DATA,
            id="damaged-in-a-nested-group",
        ),
        pytest.param(BAD_CONFIG, EXIT_CONFIG, id="config"),
        pytest.param(ExceptionGroup("daemon", [BAD_CONFIG]), EXIT_CONFIG, id="config-in-a-group"),
        pytest.param(StoreError("database is locked"), EXIT_FAILURE, id="other-store-error"),
    ],
)
def test_what_a_restart_cannot_fix_exits_with_a_status_systemd_does_not_restart_on(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    raised: BaseException,
    status: int,
) -> None:
    def run(args: argparse.Namespace) -> int:
        raise raised

    monkeypatch.setattr(CLI, "_run", run)
    assert main(["run"]) == status
    captured = capsys.readouterr()
    assert captured.out == ""
    if status == EXIT_DATA:
        assert captured.err == f"spottypotty: {DAMAGED}\n"  # one line, no traceback
        assert DAMAGED.path in captured.err


def test_a_damaged_database_beside_another_failure_is_not_hidden(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only a group of refusals alone is a refusal; a bug beside one keeps its traceback."""
    group = ExceptionGroup("daemon", [DAMAGED, RuntimeError("a bug")])

    def run(args: argparse.Namespace) -> int:
        raise group

    monkeypatch.setattr(CLI, "_run", run)
    with pytest.raises(ExceptionGroup) as raised:
        main(["run"])
    assert raised.value is group


def test_dnd_with_no_hub_running_is_saved_for_the_next(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "hub.toml"
    config.write_text('[hub]\ndatabase = "hub.db"\n[[sensors]]\nid = "bath"\nuser_id = "u"\n')
    assert main(["--config", str(config), "dnd", "on", "bath", "--for", "15"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("do-not-disturb on for room bath until ")
    assert main(["--config", str(config), "dnd", "on", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["controls"]["hub"] == {"dnd": True, "dndUntil": None}
    assert answer["controls"]["rooms"]["bath"]["dnd"] is True  # kept: saved in the database
    assert main(["--config", str(config), "dnd", "off", "garden"]) == EXIT_FAILURE
    assert "no room 'garden'" in capsys.readouterr().err


def test_sessions_explain_shows_the_decision_trace(config_file: Path) -> None:
    created = spottypotty(
        "invoke",
        "--config",
        str(config_file),
        stdin='{"action": "create_session", "sensorId": "bath", "userId": "u1"}',
    )
    assert created.returncode == 0, created.stderr
    session_id = json.loads(created.stdout)["session"]["sessionId"]
    shown = spottypotty("sessions", "--config", str(config_file), "--explain", session_id)
    assert shown.returncode == 0, shown.stderr
    assert session_id in shown.stdout
    assert "created by request" in shown.stdout
    as_json = spottypotty(
        "sessions", "--config", str(config_file), "--explain", session_id, "--json"
    )
    assert json.loads(as_json.stdout)["decisions"][0]["rule"] == "start"
    missing = spottypotty("sessions", "--config", str(config_file), "--explain", "session-x-1-0")
    assert missing.returncode == 1
    assert "does not exist" in missing.stderr
