"""Test hygiene shared by every test (see design/style.md)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlite_utils import Database

from hub.store import close_database, open_database

SHARED = Path(__file__).resolve().parents[2] / "shared"


class _FormatCheckingHandler(logging.Handler):
    """Formats every record so a malformed `%` log call fails the test that made it."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.errors: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            record.getMessage()
        except (TypeError, ValueError) as exc:
            self.errors.append(f"{record.pathname}:{record.lineno}: {exc}")


@pytest.fixture(autouse=True)
def raise_on_bad_log_formatting() -> Iterator[None]:
    handler = _FormatCheckingHandler()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield
    root.removeHandler(handler)
    root.setLevel(previous)
    assert not handler.errors, handler.errors


@pytest.fixture
def db() -> Iterator[Database]:
    database = open_database(None)
    yield database
    close_database(database)


@pytest.fixture
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"{SHARED} is missing: clone the project beside its shared/ folder")
    return SHARED
