"""Firmware tests: the MicroPython modules run under CPython.

The device imports its modules by bare name from /lib (`import mqtt_mode`), so these tests
put `firmware/lib` on sys.path, with `firmware/host` first for the CPython stand-ins of
MicroPython built-ins (`cryptolib`), and `firmware/host/micropython` for the helpers that
run under both (`golden`, `pure_aes`). Test modules load firmware modules with
`importlib.import_module`, so mypy sees them as `ModuleType` (the firmware itself is
MicroPython and outside the type-checked tree).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware"
for folder in (FIRMWARE / "lib", FIRMWARE / "host" / "micropython", FIRMWARE / "host"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))


@pytest.fixture(scope="session")
def golden() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIRMWARE / "golden_payloads.json").read_text("utf-8"))
    return data
