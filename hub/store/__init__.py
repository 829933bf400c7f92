"""SQLite persistence: one file, one writer, named migrations."""

from hub.store.database import close_database, open_database
from hub.store.sessions import SessionRepository

__all__ = ["SessionRepository", "close_database", "open_database"]
