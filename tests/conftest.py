"""Test hygiene shared by every test (see design/style.md)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlite_utils import Database

from hub.store import close_database, open_database

FIXTURES = Path(__file__).resolve().parent / "fixtures"


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
def bthome_vectors() -> list[dict[str, Any]]:
    """The BTHome v2 test vectors (where they come from: tests/fixtures/README.md)."""
    document = json.loads((FIXTURES / "bthome-v2.json").read_text(encoding="utf-8"))
    vectors: list[dict[str, Any]] = document["vectors"]
    return vectors
