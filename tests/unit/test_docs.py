"""The README is the manual: every config key and CLI command must be documented there."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pytest

from hub.cli.main import build_parser
from hub.config import ROOM_KEYS, HubConfig, SensorConfig

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def config_keys() -> list[str]:
    keys = []
    for section in dataclasses.fields(HubConfig):
        if section.name in {"sensors", "rooms", "source"}:
            continue
        section_type = type(getattr(HubConfig(), section.name))
        keys += [f"{section.name}.{f.name}" for f in dataclasses.fields(section_type)]
    keys += [f"sensors[].{f.name}" for f in dataclasses.fields(SensorConfig)]
    keys += [f"rooms[].{key}" for key in ROOM_KEYS]
    return keys


def commands() -> list[str]:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sorted(subparsers.choices)


@pytest.mark.parametrize("key", config_keys())
def test_every_config_key_is_in_the_readme(key: str) -> None:
    assert f"`{key}`" in README


@pytest.mark.parametrize("command", commands())
def test_every_command_is_in_the_readme(command: str) -> None:
    assert f"`spottypotty {command}" in README


def test_the_two_commands_come_first() -> None:
    first_block = README.split("```sh", 1)[1].split("```", 1)[0]
    assert "make demo" in first_block
    assert "make test" in first_block


def test_ci_runs_the_readme_test_command() -> None:
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
