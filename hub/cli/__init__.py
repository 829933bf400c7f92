"""The `spottypotty` command line (contracts §1)."""

from hub.cli.main import main

__all__ = ["main"]
