"""The store writer thread: a batch is one transaction, each save's outcome kept apart;
opening and cancelling never hang or leave a thread behind."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlite_utils import Database

from hub.errors import ConflictError, DamagedDatabaseError, StorageUnavailableError, StoreError
from hub.model import MotionEvent, Session, open_session
from hub.store import SessionRepository, close_database, open_database
from hub.store import writer as writer_module
from hub.store.writer import Save, StoreWriter, _as_store_error
from tests.damage import build_hub_database, damage

T0 = 1_800_000_000.0
LIMIT = 5.0  # seconds: an upper bound for what takes milliseconds


def _session(session_id: str, sensor_id: str) -> Session:
    return open_session(
        session_id=session_id, sensor_id=sensor_id, user_id="u", start=T0, now=T0, ttl_days=30
    )


def _committed(path: Path, session_id: str) -> bool:
    with sqlite3.connect(path) as db:
        found = db.execute("SELECT count(*) FROM sessions WHERE sessionId = ?", [session_id])
        return bool(found.fetchone()[0])


async def test_a_batch_is_one_transaction_committed_before_it_answers(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    async with StoreWriter(path, ttl_days=30) as writer:
        saves = [Save(_session(f"s{n}", f"sensor-{n}"), created=True) for n in range(50)]
        outcomes = await writer.write(saves)
        assert all(_committed(path, f"s{n}") for n in range(50))
    assert outcomes == [None] * 50
    assert (writer.stats.rows, writer.stats.transactions) == (50, 1)


async def test_a_failing_save_fails_alone(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    async with StoreWriter(path, ttl_days=30) as writer:
        await writer.call(lambda repository: repository.save(_session("a", "bath"), created=True))
        # One batch: the middle one is a second active session for "bath".
        outcomes = await writer.write(
            [
                Save(_session("b", "hall"), created=True),
                Save(_session("c", "bath"), created=True),
                Save(_session("d", "porch"), created=True),
            ]
        )
    assert [error is None for error in outcomes] == [True, False, True]
    assert isinstance(outcomes[1], ConflictError)
    assert [_committed(path, sid) for sid in "bcd"] == [True, False, True]
    assert writer.stats.failures == 1


async def test_an_event_of_no_session_is_kept_on_its_own(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    event = MotionEvent("bath", occurred_at=T0, received_at=T0)
    async with StoreWriter(path, ttl_days=30) as writer:
        assert await writer.write([Save(None, event=event)]) == [None]
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT sensorId, sessionId FROM motion_events").fetchall()
    assert rows == [("bath", None)]


async def test_sqlite_errors_reach_callers_as_store_errors(tmp_path: Path) -> None:
    async with StoreWriter(tmp_path / "hub.db", ttl_days=30) as writer:
        with pytest.raises(StoreError, match="database write failed: no such table"):
            await writer.call(lambda repository: repository.db.execute("SELECT * FROM nope"))


def _writer_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "store-writer"]


async def test_a_damaged_database_is_refused_at_entry_untouched_and_no_thread_is_left(
    tmp_path: Path,
) -> None:
    path = tmp_path / "hub.db"
    build_hub_database(path, sessions=100)
    bad, _ = damage(path.read_bytes(), seed=0)
    path.write_bytes(bad)
    with pytest.raises(DamagedDatabaseError, match=str(path)):
        async with asyncio.timeout(LIMIT), StoreWriter(path, ttl_days=30):
            pytest.fail("entered a damaged database")
    assert path.read_bytes() == bad
    assert not path.with_name("hub.db-wal").exists()
    assert not path.with_name("hub.db-shm").exists()
    assert _writer_threads() == []


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (RuntimeError("a bug in opening"), RuntimeError),
        (sqlite3.DatabaseError("database disk image is malformed"), StoreError),
        (sqlite3.OperationalError("disk I/O error"), StoreError),
        (MemoryError(), MemoryError),
    ],
)
async def test_whatever_fails_at_open_reaches_the_opener_instead_of_hanging_it(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    raised: BaseException,
    expected: type[BaseException],
) -> None:
    def failing_open(path: Path | None, *, integrity_check: bool = False) -> Database:
        raise raised

    monkeypatch.setattr(writer_module, "open_database", failing_open)
    with pytest.raises(expected):
        async with asyncio.timeout(LIMIT), StoreWriter(tmp_path / "hub.db", ttl_days=30):
            pytest.fail("entered")
    assert _writer_threads() == []


class SlowOpen:
    """open_database that waits for the test's word: the writer is cancelled mid-open."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, path: Path | None, *, integrity_check: bool = False) -> Database:
        self.started.set()
        self.release.wait(LIMIT)  # bounded: a failing test must not hang the thread
        return open_database(path, integrity_check=integrity_check)


async def _enter_and_stay(writer: StoreWriter) -> None:
    async with writer:
        await asyncio.Event().wait()  # never: only the cancel during entry ends this


async def _entering_slowly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[SlowOpen, StoreWriter, asyncio.Task[None]]:
    """A writer whose entry is inside a slow open (the thread holds the database)."""
    slow = SlowOpen()
    monkeypatch.setattr(writer_module, "open_database", slow)
    writer = StoreWriter(tmp_path / "hub.db", ttl_days=30)
    task = asyncio.create_task(_enter_and_stay(writer))
    assert await asyncio.to_thread(slow.started.wait, LIMIT)
    return slow, writer, task


@contextlib.contextmanager
def _rescued(writer: StoreWriter) -> Iterator[None]:
    """Should cancelled entry block the loop on the thread (the bug this guards against), a
    timer sends the thread its stop sentinel after LIMIT, so the test fails on the time
    taken instead of hanging."""
    rescue = threading.Timer(LIMIT, writer._queue.put, args=(None,))
    rescue.start()
    try:
        yield
    finally:
        rescue.cancel()


async def _ends_cancelled(task: asyncio.Task[None]) -> None:
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(LIMIT):
            await task


@pytest.mark.parametrize("turns", [1, 2, 10])
async def test_cancelling_entry_while_it_opens_leaves_no_thread_and_does_not_block(
    tmp_path: Path, turns: int
) -> None:
    writer = StoreWriter(tmp_path / "hub.db", ttl_days=30)
    task = asyncio.create_task(_enter_and_stay(writer))
    for _ in range(turns):  # the real open takes a few event-loop turns, or is done
        await asyncio.sleep(0)
    started = time.monotonic()
    with _rescued(writer):
        task.cancel()
        await _ends_cancelled(task)
    assert time.monotonic() - started < LIMIT / 2
    assert _writer_threads() == []


async def test_cancelling_entry_in_the_middle_of_a_slow_open_waits_for_the_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow, writer, task = await _entering_slowly(tmp_path, monkeypatch)
    started = time.monotonic()
    with _rescued(writer):
        task.cancel()
        for _ in range(10):  # the loop keeps turning while entry waits for the thread …
            await asyncio.sleep(0)
        assert not task.done()  # … which still has the database open
        slow.release.set()
        await _ends_cancelled(task)
    assert time.monotonic() - started < LIMIT / 2
    assert _writer_threads() == []
    assert (tmp_path / "hub.db").exists()  # opened, then closed by the thread itself


async def test_a_second_cancel_while_entry_waits_for_the_thread_leaves_none_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow, writer, task = await _entering_slowly(tmp_path, monkeypatch)
    started = time.monotonic()
    with _rescued(writer):
        task.cancel()
        for _ in range(3):
            await asyncio.sleep(0)
        task.cancel()  # e.g. asyncio.run() cancelling what is left at shutdown
        for _ in range(3):
            await asyncio.sleep(0)
        assert not task.done()
        slow.release.set()
        await _ends_cancelled(task)
    assert time.monotonic() - started < LIMIT / 2
    assert _writer_threads() == []


async def test_cancelling_exit_still_waits_for_the_thread_to_finish(tmp_path: Path) -> None:
    busy, release = threading.Event(), threading.Event()

    def slow_call(repository: SessionRepository) -> None:
        busy.set()
        release.wait(LIMIT)  # bounded: a failing test must not hang the thread

    async def enter_and_leave(writer: StoreWriter) -> None:
        async with writer:
            queued = asyncio.ensure_future(writer.call(slow_call))
            await asyncio.sleep(0)  # its job is queued: still on the thread at exit
        await queued

    writer = StoreWriter(tmp_path / "hub.db", ttl_days=30)
    task = asyncio.create_task(enter_and_leave(writer))
    assert await asyncio.to_thread(busy.wait, LIMIT)
    task.cancel()  # lands in __aexit__'s wait for the thread
    for _ in range(10):
        await asyncio.sleep(0)
    assert not task.done()  # the thread is still busy: exit waits for it
    release.set()
    await _ends_cancelled(task)
    assert _writer_threads() == []


# -- errors in the middle of a run -----------------------------------------------------------


@pytest.mark.parametrize(
    "raised",
    [
        sqlite3.DatabaseError("database disk image is malformed"),
        sqlite3.DatabaseError("file is not a database"),
        sqlite3.OperationalError("disk I/O error"),
        sqlite3.OperationalError("database or disk is full"),
        sqlite3.IntegrityError("constraint failed"),
        sqlite3.InternalError("unexpected"),
    ],
    ids=lambda error: f"{type(error).__name__}:{error}",
)
async def test_a_sqlite_error_in_a_call_reaches_the_caller_as_a_store_error(
    tmp_path: Path, raised: sqlite3.Error
) -> None:
    def fail(repository: SessionRepository) -> None:
        raise raised

    async with StoreWriter(tmp_path / "hub.db", ttl_days=30) as writer:
        with pytest.raises(StoreError, match=str(raised)) as caught:
            await writer.call(fail)
        assert caught.value.__cause__ is raised
        # The writer keeps serving after it.
        assert await writer.call(lambda repository: repository.db.execute("SELECT 1").fetchone())


async def test_saves_failing_on_a_database_error_are_reported_as_store_errors(
    tmp_path: Path,
) -> None:
    """A real sqlite3.DatabaseError from inside the repository's write (an authorizer that
    refuses writes to sessions), then recovery once it is lifted."""
    path = tmp_path / "hub.db"

    def refuse_session_writes(action: int, table: str | None, *_: object) -> int:
        writes = {sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE}
        return (
            sqlite3.SQLITE_DENY if action in writes and table == "sessions" else sqlite3.SQLITE_OK
        )

    async with StoreWriter(path, ttl_days=30) as writer:
        await writer.call(
            lambda repository: repository.db.conn.set_authorizer(refuse_session_writes)
        )
        saves = [Save(_session(f"s{n}", f"sensor-{n}"), created=True) for n in range(3)]
        for error in await writer.write(saves):
            assert isinstance(error, StoreError), error
            assert isinstance(error.__cause__, sqlite3.DatabaseError)
        await writer.call(lambda repository: repository.db.conn.set_authorizer(None))
        assert await writer.write([Save(_session("s3", "sensor-3"), created=True)]) == [None]
    assert writer.stats.failures == 3


_SQLITE_ERRORS = st.sampled_from(
    [
        sqlite3.Error,
        sqlite3.DatabaseError,
        sqlite3.OperationalError,
        sqlite3.IntegrityError,
        sqlite3.DataError,
        sqlite3.InternalError,
        sqlite3.ProgrammingError,
        sqlite3.NotSupportedError,
    ]
)


@given(kind=_SQLITE_ERRORS, message=st.text(max_size=40))
def test_every_sqlite_error_maps_to_a_store_error_caused_by_it(
    kind: type[sqlite3.Error], message: str
) -> None:
    raised = kind(message)
    mapped = _as_store_error(raised)
    assert isinstance(mapped, StoreError)
    assert mapped.__cause__ is raised
    assert message in str(mapped)


@given(
    error=st.sampled_from(
        [StoreError("s"), ConflictError("c"), RuntimeError("r"), asyncio.CancelledError()]
    )
)
def test_other_errors_pass_through_unchanged(error: BaseException) -> None:
    assert _as_store_error(error) is error


# --- storage faults: the disk, not the data -------------------------------------------------


def _query_only(*, on: bool) -> Callable[[SessionRepository], object]:
    # SQLite's own read-only switch: every write fails with SQLITE_READONLY, as on a file
    # system remounted read-only (tests/integration/test_storage_faults.py does that too).
    return lambda repository: repository.db.execute(f"PRAGMA query_only = {int(on)}")


async def test_a_refusing_disk_fails_the_whole_batch_as_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    async with StoreWriter(path, ttl_days=30) as writer:
        await writer.call(_query_only(on=True))
        saves = [Save(_session(f"s{n}", f"sensor-{n}"), created=True) for n in range(3)]
        outcomes = await writer.write(saves)
        assert all(isinstance(error, StorageUnavailableError) for error in outcomes)
        assert "database not writable" in str(outcomes[0])
        assert writer.stats.failures == 1  # one refused transaction, not one per row
        await writer.call(_query_only(on=False))
        assert await writer.write(saves) == [None] * 3  # the same rows, once space returns
    assert all(_committed(path, f"s{n}") for n in range(3))


def _remove_database(path: Path, *, replace: bool) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    if replace:
        close_database(open_database(path))


@pytest.mark.parametrize("how", ["deleted", "replaced"])
async def test_a_database_file_deleted_or_replaced_is_noticed(tmp_path: Path, how: str) -> None:
    path = tmp_path / "hub.db"
    async with StoreWriter(path, ttl_days=30) as writer:
        _remove_database(path, replace=how == "replaced")
        (outcome,) = await writer.write([Save(_session("s", "bath"), created=True)])
    assert isinstance(outcome, StorageUnavailableError)
    assert f"{path} was deleted or replaced" in str(outcome)


async def test_a_failed_writer_thread_answers_every_call_and_says_so(tmp_path: Path) -> None:
    class Broken(BaseException):
        """What no handler expects: a bug, or a library that breaks its thread."""

    def break_thread(_repository: SessionRepository) -> None:
        raise Broken

    async with StoreWriter(tmp_path / "hub.db", ttl_days=30) as writer:
        alive = [writer.alive]
        with pytest.raises(StoreError, match="the store writer failed"):
            await asyncio.wait_for(writer.call(break_thread), LIMIT)
        alive.append(writer.alive)
        assert alive == [True, False]
        assert isinstance(writer.failure, Broken)
        with pytest.raises(StoreError, match="the store writer failed"):
            await writer.write([Save(_session("s", "bath"), created=True)])
