from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlite_utils import Database

from hub.cli.sync import dry_run_report, summary_report
from hub.clock import ClockState
from hub.config import HubConfig
from hub.errors import ConflictError, DamagedDatabaseError, StoreError
from hub.model import MotionEvent, Session, SessionStatus, open_session
from hub.sessions.analytics import summarize
from hub.store import SessionRepository, close_database, open_database
from hub.store.aggregates import aggregate_sessions
from hub.store.database import is_damage
from hub.store.meta import SENSOR_CLOCKS_KEY, load_sensor_clocks, save_sensor_clocks, set_meta
from hub.store.schema import KNOWN_MIGRATIONS
from hub.store.sessions import SessionQuery, record_from_row, session_row
from hub.sync.outbox import Outbox
from hub.sync.uploader import SyncSummary
from tests.damage import build_hub_database, damage, page_size
from tests.strategies import sessions

T0 = 1_770_592_272.410166


def _session(
    session_id: str, sensor: str = "bath", start: float = T0, **changes: object
) -> Session:
    session = open_session(
        session_id=session_id, sensor_id=sensor, user_id="u1", start=start, now=start, ttl_days=30
    )
    return session.with_changes(**changes) if changes else session


def _completed(session_id: str, sensor: str = "bath", start: float = T0) -> Session:
    return _session(session_id, sensor, start, status=SessionStatus.COMPLETED, end=start + 300)


def test_file_database_uses_wal_normal_sync_and_foreign_keys(tmp_path: Path) -> None:
    db = open_database(tmp_path / "sub" / "hub.db", integrity_check=True)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert db.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
        applied = [r[0] for r in db.execute("SELECT name FROM _sqlite_migrations ORDER BY id")]
        assert applied == KNOWN_MIGRATIONS
    finally:
        close_database(db)


def test_reopening_applies_nothing_twice_and_keeps_data(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    db = open_database(path)
    SessionRepository(db).save(_session("s1"), created=True)
    close_database(db)
    db = open_database(path)
    try:
        assert SessionRepository(db).get("s1") == _session("s1")
        assert db.execute("SELECT count(*) FROM _sqlite_migrations").fetchone()[0] == len(
            KNOWN_MIGRATIONS
        )
    finally:
        close_database(db)


def test_a_file_that_is_not_a_database_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    garbage = b"this is not sqlite at all\n" * 200
    path.write_bytes(garbage)
    with pytest.raises(DamagedDatabaseError, match=str(path)):
        open_database(path)
    assert path.read_bytes() == garbage
    assert not (tmp_path / "hub.db-wal").exists()


@pytest.fixture(scope="module")
def hub_database(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The bytes of a real, VACUUMed hub database of a few hundred sessions."""
    path = tmp_path_factory.mktemp("healthy") / "hub.db"
    build_hub_database(path, sessions=200)
    return path.read_bytes()


def _truncated(original: bytes) -> bytes:
    return original[: len(original) // 2]


def _zeroed(original: bytes) -> bytes:
    """Pages 3 and 4 zero-filled, as a torn write on a bad SD card can leave them."""
    size = page_size(original)
    return original[: 2 * size] + bytes(2 * size) + original[4 * size :]


@pytest.mark.parametrize(
    "damaged",
    [
        pytest.param(lambda original: damage(original, 0)[0], id="random-pages-malformed"),
        pytest.param(lambda original: damage(original, 2)[0], id="random-pages-quick-check"),
        pytest.param(_zeroed, id="zeroed-pages"),
        pytest.param(_truncated, id="truncated"),
    ],
)
def test_a_damaged_database_is_refused_by_name_and_left_byte_for_byte(
    tmp_path: Path, hub_database: bytes, damaged: Callable[[bytes], bytes]
) -> None:
    path = tmp_path / "hub.db"
    bad = damaged(hub_database)
    path.write_bytes(bad)
    with pytest.raises(DamagedDatabaseError) as refused:
        open_database(path, integrity_check=True)
    message = str(refused.value)
    assert str(path) in message
    assert "\n" not in message
    assert "spottypotty backup" in message
    assert "-wal/-shm file beside it aside" in message
    assert refused.value.path == str(path)
    assert path.read_bytes() == bad
    assert [p.name for p in tmp_path.iterdir()] == ["hub.db"]  # no -wal/-shm left either


def _error_of(database: str, sql: str, *, timeout: float = 5.0) -> sqlite3.Error:
    connection = sqlite3.connect(database, uri=True, timeout=timeout)
    try:
        connection.execute(sql).fetchall()
    except sqlite3.Error as exc:
        return exc
    finally:
        connection.close()
    raise AssertionError(f"{sql} succeeded on {database}")


def _locked(path: Path) -> sqlite3.Error:
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        return _error_of(str(path), "SELECT * FROM sqlite_master", timeout=0)
    finally:
        holder.close()


def _read_only(path: Path) -> sqlite3.Error:
    return _error_of(f"file:{path}?mode=ro", "CREATE TABLE t (x)")


def _malformed(path: Path) -> sqlite3.Error:
    path.write_bytes(damage(path.read_bytes(), 0)[0])
    return _error_of(str(path), "PRAGMA quick_check")


def _not_a_database(path: Path) -> sqlite3.Error:
    path.write_bytes(b"not sqlite\n" * 1000)
    return _error_of(str(path), "SELECT * FROM sqlite_master")


@pytest.mark.parametrize(
    ("provoke", "damaged"),
    [(_malformed, True), (_not_a_database, True), (_locked, False), (_read_only, False)],
)
def test_only_wrong_bytes_count_as_damage_not_a_lock_or_a_read_only_file(
    tmp_path: Path,
    hub_database: bytes,
    provoke: Callable[[Path], sqlite3.Error],
    damaged: bool,
) -> None:
    """A lock passes and a read-only file is a person's fix: exit 1 and restart, not 65."""
    path = tmp_path / "hub.db"
    path.write_bytes(hub_database)
    # Rollback journal: an exclusive lock then keeps readers out, as the test needs.
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode = DELETE")
    connection.close()
    error = provoke(path)
    assert isinstance(error, sqlite3.DatabaseError)  # OperationalError is one too
    assert is_damage(error) is damaged


def test_a_database_from_a_newer_hub_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    close_database(open_database(path))
    raw = sqlite3.connect(path)
    raw.execute(
        "INSERT INTO _sqlite_migrations (migration_set, name, applied_at) "
        "VALUES ('spottypotty', '9999_from_the_future', 'x')"
    )
    raw.commit()
    raw.close()
    with pytest.raises(StoreError, match="newer hub"):
        open_database(path)


def test_session_round_trips_through_its_row(db: Database) -> None:
    repo = SessionRepository(db)
    session = _completed("s1").with_changes(
        playback_started=True,
        spotify_device_id="dev",
        spotify_context_uri="spotify:playlist:x",
        playback_stopped=True,
        playback_note="started",
    )
    repo.save(session, created=True)
    assert repo.get("s1") == session
    row = db.execute("SELECT * FROM sessions").fetchone()
    names = [d[0] for d in db.execute("SELECT * FROM sessions").description]
    stored = dict(zip(names, row, strict=True))
    assert {k: stored[k] for k in session_row(session)} == session_row(session)
    assert stored["startTime"] == int(T0)
    assert stored["durationMinutes"] == 5.0


def test_the_database_itself_refuses_a_second_active_session(db: Database) -> None:
    repo = SessionRepository(db)
    repo.save(_session("s1"), created=True)
    with pytest.raises(ConflictError, match="s1") as caught:
        repo.save(_session("s2", start=T0 + 1), created=True)
    assert caught.value.session_id == "s1"
    # Even raw SQL that bypasses the repository cannot create the duplicate.
    row = session_row(_session("s3", start=T0 + 2))
    columns = ", ".join(row)
    marks = ", ".join("?" for _ in row)
    with pytest.raises(sqlite3.IntegrityError):
        db.execute(f"INSERT INTO sessions ({columns}) VALUES ({marks})", list(row.values()))
    # Other sensors, and completed sessions of the same sensor, are fine.
    repo.save(_session("s4", sensor="kitchen"), created=True)
    repo.save(_completed("s5", start=T0 - 900), created=True)
    assert {s.session_id for s in repo.all_active()} == {"s1", "s4"}


def test_update_bumps_the_change_version_for_sync(db: Database) -> None:
    repo = SessionRepository(db)
    repo.save(_session("s1"), created=True)
    repo.save(_session("s1").with_changes(motion_events_count=2), created=False)
    version, synced = db.execute("SELECT version, syncedVersion FROM sessions").fetchone()
    assert (version, synced) == (2, 0)
    due = db.execute("SELECT sessionId FROM sessions WHERE version > syncedVersion").fetchall()
    assert due == [("s1",)]


def _stored_row(db: Database, session_id: str) -> dict[str, object]:
    cursor = db.execute("SELECT * FROM sessions WHERE sessionId = ?", [session_id])
    names = [d[0] for d in cursor.description]
    return dict(zip(names, cursor.fetchone(), strict=True))


@given(before=sessions(), after=sessions())
@settings(max_examples=200)
def test_an_update_of_only_the_changed_columns_leaves_exactly_the_new_row(
    before: Session, after: Session
) -> None:
    after = after.with_changes(session_id=before.session_id)
    db = open_database(None)
    try:
        repo = SessionRepository(db)
        repo.save(before, created=True)
        repo.save(after, created=False)
        stored = _stored_row(db, before.session_id)
        assert {column: stored[column] for column in session_row(after)} == session_row(after)
        expected_version = 1 if after == before else 2
        assert stored["version"] == expected_version
    finally:
        close_database(db)


def test_updating_a_missing_session_is_an_error_not_a_silent_no_op(db: Database) -> None:
    with pytest.raises(StoreError, match="ghost"):
        SessionRepository(db).save(_session("ghost"), created=False)


def test_event_and_session_are_written_in_one_transaction(db: Database) -> None:
    repo = SessionRepository(db)
    repo.save(_session("s1"), created=True)
    event = MotionEvent(sensor_id="bath", occurred_at=T0 + 5, received_at=T0 + 5, seq=7)
    # The duplicate active session fails, so its motion event must not be kept either.
    with pytest.raises(ConflictError):
        repo.save(_session("s2", start=T0 + 5), created=True, event=event)
    assert db.execute("SELECT count(*) FROM motion_events").fetchone()[0] == 0
    repo.save(_session("s1").with_changes(motion_events_count=2), created=False, event=event)
    stored = db.execute("SELECT sessionId, timestamp, seq, ttl FROM motion_events").fetchone()
    assert stored == ("s1", T0 + 5, 7, int(T0 + 5) + 30 * 86400)


def test_range_query_is_an_index_range_scan_newest_first(db: Database) -> None:
    where = "sensorId = ? AND startTime >= ? AND startTime <= ?"
    plan = db.execute(
        f"EXPLAIN QUERY PLAN SELECT * FROM sessions WHERE {where} "
        "ORDER BY startTime DESC, sessionId DESC LIMIT 101",
        ["bath", 0, 1],
    ).fetchall()
    details = " ".join(str(row[3]) for row in plan)
    assert "USING PRIMARY KEY (sensorId=? AND startTime>? AND startTime<?)" in details
    assert "TEMP B-TREE" not in details


@settings(max_examples=40, deadline=None)
@given(
    starts=st.lists(st.integers(min_value=0, max_value=50), min_size=0, max_size=40),
    page=st.integers(min_value=1, max_value=7),
)
def test_pages_cover_every_session_once_newest_first(starts: list[int], page: int) -> None:
    db = open_database(None)
    try:
        repo = SessionRepository(db)
        for index, offset in enumerate(starts):
            repo.save(_completed(f"s{index:03d}", start=T0 + offset), created=True)
        seen: list[Session] = []
        after: tuple[int, str] | None = None
        while True:
            rows, more = repo.query(SessionQuery(sensor_id="bath", limit=page, after=after))
            seen += rows
            if not more:
                break
            after = (int(rows[-1].start), rows[-1].session_id)
        keys = [(int(s.start), s.session_id) for s in seen]
        assert keys == sorted(keys, reverse=True)
        assert len(set(keys)) == len(starts)
    finally:
        close_database(db)


@settings(max_examples=100, deadline=None)
@given(
    start=st.floats(min_value=0, max_value=4e9, allow_nan=False),
    length=st.floats(min_value=0, max_value=1e5, allow_nan=False),
    count=st.integers(min_value=0, max_value=10**6),
    completed=st.booleans(),
    started=st.booleans(),
    stopped=st.one_of(st.none(), st.booleans()),
    device=st.one_of(st.none(), st.text(min_size=1, max_size=10)),
)
def test_record_from_row_is_exactly_the_sessions_record(
    start: float,
    length: float,
    count: int,
    completed: bool,
    started: bool,
    stopped: bool | None,
    device: str | None,
) -> None:
    session = _session("s", start=start).with_changes(
        last_motion=start + length,
        motion_events_count=count,
        playback_started=started,
        playback_stopped=stopped,
        spotify_device_id=device,
    )
    if completed:
        session = session.with_changes(status=SessionStatus.COMPLETED, end=start + length + 60)
    assert record_from_row(session_row(session)) == session.to_record()


# -- times recorded before the system clock is synchronised (hub/clock.py) ---------------

DAY = 86_400.0
TRUE_T0 = 1_800_000_000.0
BEHIND = 30 * DAY  # a Pi booted with its clock a month behind
BOOT = "boot-1"


@pytest.fixture
def memory_db() -> Iterator[Database]:
    database = open_database(None)
    yield database
    close_database(database)


def unconfirmed_sessions(db: Database) -> int:
    return int(
        db.execute("SELECT count(*) FROM sessions WHERE clockBoot IS NOT NULL").fetchone()[0]
    )


def unconfirmed(base: float, boot: str = BOOT) -> ClockState:
    return ClockState(boot_id=boot, base=base, confirmed=False)


def written_behind(db: Database, boot: str = BOOT) -> SessionRepository:
    """A repository that wrote a session and its motion a month behind, unconfirmed."""
    repository = SessionRepository(db, ttl_days=30)
    repository.set_clock(unconfirmed(base=-BEHIND, boot=boot))
    wrong = TRUE_T0 - BEHIND
    event = MotionEvent("bath", occurred_at=wrong, received_at=wrong)
    repository.save(_session("session-bath-1", start=wrong), created=True, event=event)
    return repository


def test_rows_written_unconfirmed_are_corrected_and_confirmed_by_the_step(
    memory_db: Database,
) -> None:
    db = memory_db
    repository = written_behind(db)
    outbox = Outbox(db)
    assert unconfirmed_sessions(db) == outbox.count_unconfirmed() == 1
    assert (outbox.count_due_sessions(), outbox.count_due_events()) == (0, 0)
    # NTP steps the clock a month forward; timesyncd says it is synchronised.
    touched = repository.set_clock(ClockState(BOOT, base=0.0, confirmed=True))
    assert touched == 4  # the session and its event corrected, then both confirmed
    (row,) = db.execute("SELECT startTime, ttl, startTimeISO, clockBoot FROM sessions")
    assert row == (int(TRUE_T0), int(TRUE_T0 + 30 * DAY), "2027-01-15T08:00:00.000000+00:00", None)
    (event_row,) = db.execute("SELECT timestamp, receivedAt, ttl, clockBoot FROM motion_events")
    assert event_row == (TRUE_T0, TRUE_T0, int(TRUE_T0 + 30 * DAY), None)
    assert (outbox.count_due_sessions(), outbox.count_due_events()) == (1, 1)
    assert outbox.count_unconfirmed() == 0
    # Written from now on: confirmed.
    repository.save(_session("session-hall-1", "hall", TRUE_T0 + 100), created=True)
    assert unconfirmed_sessions(db) == 0


def test_a_restart_in_the_same_boot_corrects_what_the_last_process_wrote(
    memory_db: Database,
) -> None:
    db = memory_db
    written_behind(db)
    # The clock stepped while the hub was restarting: the new process only sees its base.
    second = SessionRepository(db, ttl_days=30)
    assert second.set_clock(unconfirmed(base=0.0)) == 2  # the session and its event
    (row,) = db.execute("SELECT startTime, clockBoot, clockBase FROM sessions")
    assert row == (int(TRUE_T0), BOOT, 0.0)  # corrected, still unconfirmed
    assert Outbox(db).count_due_sessions() == 0


def test_rows_of_another_boot_cannot_be_corrected_and_stay_unsent(memory_db: Database) -> None:
    db = memory_db
    written_behind(db, boot="an-earlier-boot")
    now = SessionRepository(db, ttl_days=30)
    assert now.set_clock(ClockState(BOOT, base=0.0, confirmed=True)) == 0
    (row,) = db.execute("SELECT startTime, clockBoot FROM sessions")
    assert row == (int(TRUE_T0 - BEHIND), "an-earlier-boot")
    assert Outbox(db).count_due_sessions() == 0


def test_the_sync_says_what_it_holds_back(memory_db: Database) -> None:
    written_behind(memory_db)
    report = summary_report(SyncSummary(held_back=1), HubConfig())
    assert report.splitlines()[-1].startswith("held back: 1 session(s) recorded before")
    assert "held back: 1 session(s)" in dry_run_report(Outbox(memory_db), HubConfig())


def test_analytics_after_the_correction_see_the_real_time_between_sessions(
    memory_db: Database,
) -> None:
    repository = written_behind(memory_db)  # 08:00 on a clock a month behind
    repository.set_clock(ClockState(BOOT, base=0.0, confirmed=True))  # NTP
    repository.save(_completed("session-bath-2", start=TRUE_T0 + 600), created=True)
    analytics = summarize(aggregate_sessions(memory_db, sensor_id="bath"), dt.UTC)
    assert analytics["averageTimeBetweenSessionsMinutes"] == 10.0  # not 43,210


def test_sensor_clock_offsets_are_kept_in_hub_meta(memory_db: Database) -> None:
    assert load_sensor_clocks(memory_db) == {}
    save_sensor_clocks(memory_db, {"bath": (-3600.25, TRUE_T0)})
    assert load_sensor_clocks(memory_db) == {"bath": (-3600.25, TRUE_T0)}
    set_meta(memory_db, {SENSOR_CLOCKS_KEY: "not json"})
    assert load_sensor_clocks(memory_db) == {}
