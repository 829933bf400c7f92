"""Argument parsing of the `spottypotty` command line, and what its commands import."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from hub.cli import backup, ble, sensors, spotify, sync
from hub.cli.main import build_parser

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
    for summary in ("register, revoke and list sensors", "scan nearby, decode an advert"):
        assert summary in done.stdout
    assert unneeded(modules) == []
    assert {"hub.config", "sqlite_utils", "logging"}.isdisjoint(modules)


def test_a_chosen_group_imports_its_module_only(tmp_path: Path) -> None:
    modules, done = imported(tmp_path, "ble", "decode", "--help")
    assert done.returncode == 0, done.stderr
    assert "--bindkey KEY" in done.stdout
    assert unneeded(modules) == ["hub.cli.ble"]


def test_sessions_imports_only_what_it_uses(tmp_path: Path, config_file: Path) -> None:
    modules, done = imported(tmp_path, "sessions", "--json", "--config", str(config_file))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["count"] == 0
    assert unneeded(modules) == []


def test_invoke_imports_only_what_it_uses(tmp_path: Path, config_file: Path) -> None:
    event = json.dumps({"action": "get_active_session", "sensorId": "bathroom"})
    modules, done = imported(tmp_path, "invoke", "--config", str(config_file), stdin=event)
    assert json.loads(done.stdout)["action"] == "get_active_session", done.stderr
    assert unneeded(modules) == []
