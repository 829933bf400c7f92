"""One exception root, subclassed by what the caller should do about it."""

from __future__ import annotations


class HubError(Exception):
    """Root of every error the hub raises on purpose."""


class ConfigError(HubError):
    """The configuration is unusable: exit non-zero and do not restart-loop.

    Carries every problem found, each prefixed with its key path, so a person can
    fix them all in one go.
    """

    def __init__(self, problems: list[str], source: str = "") -> None:
        self.problems = list(problems)
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(f"{where}" + "; ".join(self.problems))


class StoreError(HubError):
    """The database cannot be used as it is (corrupt, locked, unwritable)."""


class StorageUnavailableError(StoreError):
    """The database cannot be written now (disk full, read-only, I/O error, the file
    deleted or replaced): not the data's fault, so hold it and try again later."""


class DamagedDatabaseError(StoreError):
    """The file is not a database, is malformed, or fails its integrity check.

    A restart cannot heal it, so the daemon exits with EX_DATAERR (65), which its unit
    does not restart; a person has to restore a backup or move the file aside.
    """

    def __init__(self, path: str, detail: str) -> None:
        self.path = path
        # SQLite's integrity reports span lines; stderr and the journal get one line.
        self.detail = " ".join(detail.split())
        # The -wal/-shm go too: SQLite would replay a stale WAL onto a restored backup.
        super().__init__(
            f"{path} is damaged ({self.detail}): move it and any -wal/-shm file beside it "
            "aside, then restore a backup made with `spottypotty backup` in its place, or "
            "start the hub without one to begin a new empty database"
        )


class ParseError(HubError):
    """Input from a peer (payload, advert, event) is malformed: drop it and count it."""


class ValidationError(HubError):
    """A request names a bad value; `field` says which one."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


class NotFoundError(HubError):
    """A request names something that does not exist."""


class ConflictError(HubError):
    """A request collides with the current state (e.g. a second active session)."""

    def __init__(self, message: str, session_id: str | None = None) -> None:
        self.session_id = session_id
        super().__init__(message)


class TransientError(HubError):
    """Worth retrying later; `retry_after` (seconds) when the peer said so."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class AuthError(HubError):
    """Credentials were refused: back off hard and ask a person to log in again."""
