"""`sync()` of 100,000 sessions to dynalite on loopback, against a bare boto3 loop.

The baseline is the floor any uploader has: BatchWriteItem calls of 25 prebuilt items in
a tight loop, nothing read, mapped or marked. The hub's run streams the rows out of
SQLite, maps them, uploads and commits each batch's acknowledgement; its target is at
least 0.8x the baseline's rate (sessions per second). Each side gets a fresh dynalite (in
memory), so neither writes into a table the other filled.

Memory: the peak RSS of this process before and after the hub's run (it streams, so the
growth must not scale with the row count); the baseline runs after it, since it holds
all its items in memory by design. `BENCH_SYNC_SESSIONS` shrinks the run.
"""

from __future__ import annotations

import os
import resource
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hub.model import MotionEvent, Session, SessionStatus, open_session
from hub.store import SessionRepository, close_database, open_database
from hub.store.sessions import session_row
from hub.sync.mapping import session_item
from hub.sync.outbox import Outbox
from hub.sync.uploader import MAX_BATCH, Uploader, sync
from tests.bench._dataset import CACHE_DIR, Dataset
from tests.bench._report import PER_SECOND, Figure
from tests.integration.test_sync_dynalite import FAKE_AWS, SESSIONS_TABLE, Dynalite

ORDER = 5
TITLE = "cloud sync: sessions to dynalite vs a bare boto3 BatchWriteItem loop"

SESSIONS_ENV = "BENCH_SYNC_SESSIONS"
DEFAULT_SESSIONS = 100_000
ROUNDS = 2
TARGET_RATIO = 0.8  # of the baseline's rate
_T0 = 1_767_225_600.0
_INSERT_BATCH = 5_000


def _sessions() -> int:
    raw = os.environ.get(SESSIONS_ENV, "").strip()
    if not raw:
        return DEFAULT_SESSIONS
    try:
        count = int(raw)
    except ValueError:
        raise SystemExit(f"{SESSIONS_ENV} must be a whole number, got {raw!r}") from None
    if count < MAX_BATCH:
        raise SystemExit(f"{SESSIONS_ENV} must be at least {MAX_BATCH}, got {count}")
    return count


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _session_rows(count: int) -> Iterator[Session]:
    for n in range(count):
        start = _T0 + n * 37
        yield open_session(
            session_id=f"session-s{n % 100:02d}-{int(start)}-{n:08x}",
            sensor_id=f"s{n % 100:02d}",
            user_id=f"user-{n % 10}",
            start=start,
            now=start,
            ttl_days=30,
            spotify_device_id="device-1",
            spotify_context_uri="spotify:playlist:37i9dQZF1DX0XUsuxWHRQd",
        ).with_changes(
            status=SessionStatus.COMPLETED,
            end=start + 240 + n % 300,
            motion_events_count=1 + n % 9,
            playback_started=n % 3 != 0,
            playback_stopped=n % 3 != 0,
        )


def _build(path: Path, count: int) -> None:
    db = open_database(path)
    try:
        repo = SessionRepository(db)
        batch: list[tuple[Session, bool, MotionEvent | None]] = []
        for session in _session_rows(count):
            batch.append((session, True, None))
            if len(batch) == _INSERT_BATCH:
                repo.save_many(batch)
                batch = []
        if batch:
            repo.save_many(batch)
    finally:
        close_database(db)


def run(dataset: Dataset) -> list[Figure]:
    del dataset  # this benchmark makes its own rows: the sync only reads due sessions
    os.environ.update(FAKE_AWS)
    count = _sessions()
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE_DIR, prefix="sync-") as tmp:
        path = Path(tmp) / "hub.db"
        started = time.perf_counter()
        _build(path, count)
        print(f"  {count:,} completed sessions written in {time.perf_counter() - started:.1f} s")

        # Alternating rounds, the best of each: one busy moment on a shared 2-core machine
        # must not decide the ratio either way.
        hub_runs: list[float] = []
        base_runs: list[float] = []
        rss_before = rss_after = 0.0
        for round_number in range(ROUNDS):
            if round_number:
                _mark_all_due(path)
            else:
                rss_before = _peak_rss_mb()  # before any bare loop holds its items
            seconds, batches = _hub_run(path, count)
            hub_runs.append(seconds)
            if not round_number:
                rss_after = _peak_rss_mb()
            base_runs.append(_bare_loop(count))
        hub_seconds, base_seconds = min(hub_runs), min(base_runs)
        print(
            f"  rounds (s): hub {', '.join(f'{t:.1f}' for t in hub_runs)}; "
            f"bare {', '.join(f'{t:.1f}' for t in base_runs)}"
        )

    print(
        f"  hub sync():      {count / hub_seconds:8,.0f} sessions/s "
        f"({hub_seconds:.1f} s, {batches:,} batches)"
    )
    print(f"  bare boto3 loop: {count / base_seconds:8,.0f} sessions/s ({base_seconds:.1f} s)")
    print(
        f"  rate ratio {base_seconds / hub_seconds:.2f} (target >= {TARGET_RATIO}); "
        f"peak RSS {rss_before:.0f} MB before the hub's run, {rss_after:.0f} MB after "
        f"(+{rss_after - rss_before:.0f} MB for {count:,} rows)"
    )
    base_rate = count / base_seconds
    return [
        Figure(
            f"sync {count:,} sessions, rate",
            count / hub_seconds,
            base_rate * TARGET_RATIO,
            base_rate,
            note=f"sessions uploaded per second; baseline: the bare boto3 loop; target: >= "
            f"{TARGET_RATIO}x its rate; peak RSS grew {rss_after - rss_before:.0f} MB",
            unit=PER_SECOND,
        )
    ]


def _mark_all_due(path: Path) -> None:
    """Undo the previous round's upload marks (untimed), so the next round sends it all."""
    db = open_database(path)
    try:
        with db.atomic():
            db.execute("UPDATE sessions SET syncedVersion = 0")
    finally:
        close_database(db)


def _hub_run(path: Path, count: int) -> tuple[float, int]:
    server = Dynalite()
    server.start()
    try:
        server.create_tables()
        db = open_database(path)
        try:
            # The client is made before the clock starts, as in the baseline.
            uploader = Uploader(server.cloud(), client=server.client())
            started = time.perf_counter()
            summary = sync(Outbox(db), uploader)
            seconds = time.perf_counter() - started
        finally:
            close_database(db)
    finally:
        server.stop()
    if not summary.ok or summary.uploaded["sessions"] != count:
        raise SystemExit(f"the hub's sync did not upload everything: {summary}")
    return seconds, summary.batches


def _bare_loop(count: int) -> float:
    """The floor: prebuilt items, BatchWriteItem of 25 in a loop, nothing else."""
    items = [session_item(session_row(s), "hub-bench") for s in _session_rows(count)]
    server = Dynalite()
    server.start()
    try:
        server.create_tables()
        client = server.client()
        started = time.perf_counter()
        for start in range(0, len(items), MAX_BATCH):
            requests: Any = [{"PutRequest": {"Item": i}} for i in items[start : start + MAX_BATCH]]
            response = client.batch_write_item(RequestItems={SESSIONS_TABLE: requests})
            if response.get("UnprocessedItems"):
                raise SystemExit("dynalite left items unprocessed in the baseline")
        return time.perf_counter() - started
    finally:
        server.stop()
