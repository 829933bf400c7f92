"""`spottypotty backup PATH [--force]`: copy the live database (SQLite backup API)."""

from __future__ import annotations

import argparse
from pathlib import Path

from hub.cli.common import load_args_config


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    # The one-line summary `spottypotty --help` shows is in hub.cli.main: it lists this
    # group without importing this module.
    parser = subparsers.add_parser(
        "backup",
        parents=[common],
        description=(
            "A consistent copy of [hub] database as of now, safe while the daemon writes. "
            "Written to a temporary file and renamed, so PATH is complete or absent."
        ),
    )
    parser.add_argument("path", metavar="PATH", type=Path, help="the backup file to write")
    parser.add_argument("--force", action="store_true", help="replace PATH if it exists")
    parser.set_defaults(command=run)


def run(args: argparse.Namespace) -> int:
    from hub.backup import backup_database  # noqa: PLC0415 - lazy by design

    config = load_args_config(args)
    result = backup_database(config.hub.database, args.path, force=args.force)
    print(
        f"backed up {result.source} to {result.path}: {_size(result.size_bytes)}, "
        f"{result.sessions:,} session(s), in {result.seconds:.2f} s"
    )
    return 0


def _size(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KiB", "MiB"):
        if value < 1024 or unit == "MiB":  # noqa: PLR2004
            return f"{value:,.0f} {unit}" if unit == "bytes" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{value:,.1f} GiB"  # pragma: no cover
