"""Argument parsing of the `spottypotty` command line."""

from __future__ import annotations

import pytest

from hub.cli.main import build_parser


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
