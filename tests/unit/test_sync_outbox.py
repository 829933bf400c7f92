"""What is due, chunked streaming, marking after acceptance, the hub id; and sync() over a
fake client (throttling, network errors, permanent errors) without any server."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, cast

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from sqlite_utils import Database

from hub.config import CloudSection
from hub.model import MotionEvent, Session, SessionStatus, open_session
from hub.store import SessionRepository, close_database, open_database
from hub.sync.outbox import Outbox
from hub.sync.uploader import MAX_BATCH, Backoff, Uploader, sync

T0 = 1_767_225_600.0
CLOUD = CloudSection(enabled=True, table="Sessions", region="us-east-2")


def _session(number: int, *, completed: bool = True) -> Session:
    start = T0 + number * 60
    session = open_session(
        session_id=f"session-bath-{int(start)}-{number:08x}",
        sensor_id="bath",
        user_id="u1",
        start=start,
        now=start,
        ttl_days=30,
    )
    if completed:
        session = session.with_changes(status=SessionStatus.COMPLETED, end=start + 120)
    return session


def _seed(db: Database, count: int) -> list[Session]:
    sessions = [_session(n) for n in range(count)]
    SessionRepository(db).save_many([(s, True, None) for s in sessions])
    return sessions


# -- the outbox ------------------------------------------------------------------------------


def test_due_sessions_stream_in_chunks_each_row_once(db: Database) -> None:
    sessions = _seed(db, 10)
    outbox = Outbox(db, chunk_size=3)

    chunks = list(outbox.due_sessions())

    assert [len(chunk) for chunk in chunks] == [3, 3, 3, 1]
    seen = [due.session_id for chunk in chunks for due in chunk]
    assert seen == sorted(s.session_id for s in sessions)
    assert all(due.version == 1 for chunk in chunks for due in chunk)
    assert outbox.count_due_sessions() == 10


def test_marking_uses_the_uploaded_version_so_a_later_change_stays_due(db: Database) -> None:
    sessions = _seed(db, 2)
    outbox = Outbox(db)
    read = {due.session_id: due.version for chunk in outbox.due_sessions() for due in chunk}
    # The daemon updates the first session after it was read, before it is marked.
    SessionRepository(db).save(sessions[0].with_changes(motion_events_count=2), created=False)

    assert outbox.mark_sessions_synced(read.items()) == 2

    due = [d for chunk in outbox.due_sessions() for d in chunk]
    assert [(d.session_id, d.version) for d in due] == [(sessions[0].session_id, 2)]
    assert due[0].row["motionEventsCount"] == 2
    # An old acknowledgement arriving late never lowers syncedVersion.
    outbox.mark_sessions_synced([(sessions[0].session_id, 2)])
    assert outbox.mark_sessions_synced([(sessions[0].session_id, 1)]) == 0
    assert outbox.count_due_sessions() == 0


def test_the_due_query_uses_the_partial_index(db: Database) -> None:
    from hub.sync.outbox import _DUE_EVENTS, _DUE_SESSIONS  # noqa: PLC0415

    for sql, index in (
        (_DUE_SESSIONS, "sessions_unsynced"),
        (_DUE_EVENTS, "motion_events_unsynced"),
    ):
        plan = " ".join(str(row[3]) for row in db.execute("EXPLAIN QUERY PLAN " + sql, ["", 5]))
        assert f"USING INDEX {index}" in plan


def test_events_are_due_until_marked(db: Database) -> None:
    repo = SessionRepository(db)
    for n in range(5):
        repo.record_event(MotionEvent(sensor_id="bath", occurred_at=T0 + n, received_at=T0 + n))
    outbox = Outbox(db, chunk_size=2)
    ids = [due.event_id for chunk in outbox.due_events() for due in chunk]
    assert len(ids) == 5

    assert outbox.mark_events_synced(ids[:3]) == 3
    assert outbox.count_due_events() == 2
    assert outbox.mark_events_synced(ids[:3]) == 0


def test_the_hub_id_is_made_once_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    db = open_database(path)
    try:
        first = Outbox(db).hub_id()
        assert first.startswith("hub-")
        assert Outbox(db).hub_id() == first
    finally:
        close_database(db)
    db = open_database(path)
    try:
        assert Outbox(db).hub_id() == first
    finally:
        close_database(db)


# -- sync() over a fake client ---------------------------------------------------------------


def _client_error(code: str, message: str = "") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "BatchWriteItem")


class FakeClient:
    """Accepts everything unless told otherwise; remembers every item it stored."""

    def __init__(self) -> None:
        self.stored: dict[str, dict[str, Any]] = {}
        self.batch_failures: list[Exception] = []  # raised by the next batch calls, in order
        self.bad_keys: set[str] = set()  # items refused with a ValidationException
        self.calls: list[str] = []

    def describe_table(self, **_: Any) -> dict[str, Any]:
        return {"Table": {"TableStatus": "ACTIVE"}}

    def batch_write_item(self, *, RequestItems: dict[str, list[Any]]) -> dict[str, Any]:  # noqa: N803
        self.calls.append("batch")
        if self.batch_failures:
            raise self.batch_failures.pop(0)
        ((_, requests),) = RequestItems.items()
        items = [request["PutRequest"]["Item"] for request in requests]
        assert len(items) <= MAX_BATCH
        keys = [item["sessionId"]["S"] for item in items]
        assert len(set(keys)) == len(keys)
        if self.bad_keys & set(keys):
            raise _client_error("ValidationException", "One or more parameter values were invalid")
        for key, item in zip(keys, items, strict=True):
            self.stored[key] = item
        return {"UnprocessedItems": {}}

    def put_item(self, *, TableName: str, Item: dict[str, Any]) -> dict[str, Any]:  # noqa: N803
        self.calls.append("put")
        key = Item["sessionId"]["S"]
        if key in self.bad_keys:
            raise _client_error(
                "ValidationException", "Item size has exceeded the maximum allowed size"
            )
        self.stored[key] = Item
        return {}


def _uploader(client: FakeClient, sleeps: list[float] | None = None) -> Uploader:
    return Uploader(
        CLOUD,
        client=cast("Any", client),
        backoff=Backoff(base=0.1, cap=1.0, tries=4),
        sleep=(sleeps if sleeps is not None else []).append,
        rng=random.Random(1),
    )


def test_sync_uploads_in_batches_of_25_and_marks_them(db: Database) -> None:
    sessions = _seed(db, 60)
    client = FakeClient()

    summary = sync(Outbox(db, chunk_size=40), _uploader(client))

    assert summary.ok
    assert summary.uploaded["sessions"] == 60
    # Chunks of 40 rows → batches of 25 + 15, then 20.
    assert summary.batches == 3
    assert sorted(client.stored) == sorted(s.session_id for s in sessions)
    assert Outbox(db).count_due_sessions() == 0


def test_throttling_and_network_errors_are_retried(db: Database) -> None:
    _seed(db, 5)
    client = FakeClient()
    client.batch_failures = [
        _client_error("ProvisionedThroughputExceededException", "slow down"),
        EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
    ]
    sleeps: list[float] = []

    summary = sync(Outbox(db), _uploader(client, sleeps))

    assert summary.ok, summary
    assert summary.retries == 2
    assert len(sleeps) == 2
    assert len(client.stored) == 5


def test_a_bad_item_is_found_by_single_puts_and_the_rest_still_go(db: Database) -> None:
    sessions = _seed(db, 5)
    client = FakeClient()
    client.bad_keys = {sessions[2].session_id}

    summary = sync(Outbox(db), _uploader(client))

    assert summary.uploaded["sessions"] == 4
    assert [(f.key, f.code) for f in summary.failed] == [
        (sessions[2].session_id, "ValidationException")
    ]
    assert client.calls == ["batch"] + ["put"] * 5
    assert Outbox(db).count_due_sessions() == 1


def test_a_refused_request_stops_the_run(db: Database) -> None:
    _seed(db, 60)
    client = FakeClient()
    client.batch_failures = [_client_error("AccessDeniedException", "not allowed")]

    summary = sync(Outbox(db), _uploader(client))

    assert summary.stopped is not None
    assert "AccessDeniedException" in summary.stopped
    assert summary.uploaded["sessions"] == 0
    assert client.calls == ["batch"]  # no 60 doomed PutItem calls
    assert summary.left == 60


def test_giving_up_on_a_dead_network_keeps_the_rows_due(db: Database) -> None:
    _seed(db, 30)
    client = FakeClient()
    client.batch_failures = [_client_error("ThrottlingException")] * 1 + [
        EndpointConnectionError(endpoint_url="http://127.0.0.1:1") for _ in range(10)
    ]
    client.batch_failures.insert(0, _client_error("InternalServerError"))

    summary = sync(Outbox(db), _uploader(client))

    assert summary.stopped is not None
    assert "gave up after 4 tries" in summary.stopped
    assert summary.uploaded["sessions"] == 0
    assert Outbox(db).count_due_sessions() == 30


def test_a_row_that_cannot_be_mapped_is_reported_and_kept(db: Database) -> None:
    sessions = _seed(db, 3)
    db.execute(
        "UPDATE sessions SET startTime = 'yesterday' WHERE sessionId = ?", [sessions[1].session_id]
    )
    client = FakeClient()

    summary = sync(Outbox(db), _uploader(client))

    assert summary.uploaded["sessions"] == 2
    assert [f.code for f in summary.failed] == ["UnmappableRow"]
    assert "startTime" in summary.failed[0].reason
    assert Outbox(db).count_due_sessions() == 1


def test_nothing_due_makes_no_call(db: Database) -> None:
    client = FakeClient()
    summary = sync(Outbox(db), _uploader(client))
    assert summary.ok
    assert client.calls == []


@pytest.mark.parametrize("size", [0, 26])
def test_write_refuses_oversized_or_duplicate_batches(size: int) -> None:
    from hub.store.sessions import session_row  # noqa: PLC0415
    from hub.sync.mapping import session_item  # noqa: PLC0415

    item = session_item(session_row(_session(1)), "hub-1")
    uploader = _uploader(FakeClient())
    with pytest.raises(ValueError, match="distinct keys"):
        uploader.write("Sessions", "sessionId", [item] * max(size, 2))
