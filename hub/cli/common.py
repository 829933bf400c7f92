"""What every command module shares: exit statuses and loading the config of `--config`."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hub.config import HubConfig

EXIT_FAILURE = 1
EXIT_CONFIG = 78  # EX_CONFIG: systemd's RestartPreventExitStatus= keeps it from looping
EXIT_DATA = 65  # EX_DATAERR: a damaged database; not restarted either (same unit line)


def load_args_config(args: argparse.Namespace) -> HubConfig:
    """`--config`, else `$SPOTTYPOTTY_CONFIG`, else /etc/spottypotty/hub.toml; validated."""
    from hub.config import config_path, load_config  # noqa: PLC0415 - lazy: fast start-up

    return load_config(config_path(args.config))
