"""Run the real `spottypotty` command line as a separate process, as a user would."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping


def spottypotty(
    *args: str, stdin: str = "", env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
