"""The benchmark dataset: a year of sessions over 100 sensors, built once, then cached.

Rows are made the way the hub makes them (`open_session(...).with_changes(...)` through
`session_row`) and written into a file the hub's own `open_database` created, so the
schema, indexes and pragmas are exactly the hub's. The file is cached under var/bench/
and named by a hash of the schema SQL the migrations produce, the shape of a session
row, this module's source and the dataset parameters: change any of them and the next
run rebuilds (and deletes the stale file).

`BENCH_SESSIONS` (default 1,000,000) shrinks the dataset for a quick run.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import os
import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from hub.model import Session, SessionStatus, open_session
from hub.store import close_database, open_database
from hub.store.sessions import session_row

REPO = Path(__file__).resolve().parents[2]
CACHE_DIR = REPO / "var" / "bench"
SESSIONS_ENV = "BENCH_SESSIONS"
DEFAULT_SESSIONS = 1_000_000

SENSORS = 100
USERS = 10  # sensors 0-9 belong to user-00, 10-19 to user-01, …
YEAR = 2025
TIMEZONE = "Europe/London"
TTL_DAYS = 30.0
TIMEOUT_SECONDS = 300.0  # the hub's default [sessions].timeout_minutes
SEED = 20250101
_BATCH = 10_000
_PROGRESS_EVERY = 100_000
# A bathroom: busy mornings and evenings, quiet nights (local hours 0-23).
_HOUR_WEIGHTS = (1, 1, 1, 1, 1, 2, 6, 10, 9, 5, 3, 3, 3, 3, 3, 3, 4, 5, 6, 7, 8, 8, 6, 3)
_PLAYBACK_NOTES = ("quiet_hours", "dry_run", "stale", "already_playing")


@dataclass(frozen=True, slots=True)
class Dataset:
    path: Path
    completed: int
    active: int
    sensors: tuple[str, ...]
    users: tuple[str, ...]
    year: int
    timezone: str
    build_seconds: float | None  # None: reused from the cache

    @property
    def rows(self) -> int:
        return self.completed + self.active

    @property
    def megabytes(self) -> float:
        return self.path.stat().st_size / 1e6


def sensor_ids() -> tuple[str, ...]:
    return tuple(f"sensor-{index:03d}" for index in range(SENSORS))


def user_ids() -> tuple[str, ...]:
    return tuple(f"user-{index:02d}" for index in range(USERS))


def _user_of(sensor_index: int) -> str:
    return user_ids()[sensor_index * USERS // SENSORS]


def requested_sessions() -> int:
    raw = os.environ.get(SESSIONS_ENV, "").strip()
    if not raw:
        return DEFAULT_SESSIONS
    try:
        sessions = int(raw)
    except ValueError:
        raise SystemExit(f"{SESSIONS_ENV} must be a whole number, got {raw!r}") from None
    if sessions < 1:
        raise SystemExit(f"{SESSIONS_ENV} must be at least 1, got {sessions}")
    return sessions


def cache_key() -> str:
    """What the cached file depends on, except the row count (that is in its name)."""
    db = open_database(None)
    try:
        schema = [
            list(row)
            for row in db.execute(
                "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name"
            )
        ]
    finally:
        close_database(db)
    sample = open_session(
        session_id="session-sample-0-00000000",
        sensor_id="sample",
        user_id="user",
        start=1_750_000_000.5,
        now=1_750_000_000.5,
        ttl_days=TTL_DAYS,
    ).with_changes(status=SessionStatus.COMPLETED, end=1_750_000_300.25)
    payload = json.dumps(
        {
            "schema": schema,
            "row": session_row(sample),
            "generator": hashlib.sha256(Path(__file__).read_bytes()).hexdigest(),
            "params": [SENSORS, USERS, YEAR, TIMEZONE, TTL_DAYS, TIMEOUT_SECONDS, SEED],
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def prepare(say: Callable[[str], None] = print) -> Dataset:
    """The cached dataset for this run, built first if the cache has none that fits."""
    sessions = requested_sessions()
    key = cache_key()
    path = CACHE_DIR / f"sessions-{key}-{sessions}.db"
    dataset = Dataset(
        path=path,
        completed=sessions,
        active=SENSORS,
        sensors=sensor_ids(),
        users=user_ids(),
        year=YEAR,
        timezone=TIMEZONE,
        build_seconds=None,
    )
    if path.exists():
        say(f"dataset: reusing {path.relative_to(REPO)}")
        return dataset
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    for stale in CACHE_DIR.glob("sessions-*.db*"):
        if not stale.name.startswith(f"sessions-{key}-"):
            say(f"dataset: deleting stale cache {stale.name}")
            stale.unlink()
    say(f"dataset: building {path.relative_to(REPO)} ({sessions:,} completed sessions)")
    started = time.perf_counter()
    building = path.with_name(path.name + ".building")
    for leftover in (building, *(Path(f"{building}{suffix}") for suffix in ("-wal", "-shm"))):
        leftover.unlink(missing_ok=True)
    _build(building, sessions, say)
    building.replace(path)  # only a finished build is ever reused
    elapsed = time.perf_counter() - started
    say(f"dataset: built in {elapsed:.1f} s")
    return replace(dataset, build_seconds=elapsed)


def _build(path: Path, sessions: int, say: Callable[[str], None]) -> None:
    db = open_database(path)  # the hub's own schema, indexes and pragmas
    try:
        db.execute("PRAGMA cache_size = -262144")  # 256 MiB while building only
        columns = [*session_row(_placeholder()), "syncedVersion"]
        insert = (
            f"INSERT INTO sessions ({', '.join(columns)}) "
            f"VALUES ({', '.join(':' + column for column in columns)})"
        )
        total = sessions + SENSORS
        rows = itertools.chain(_completed_rows(sessions), _active_rows())
        conn: sqlite3.Connection = db.conn
        started = time.perf_counter()
        done = 0
        conn.execute("BEGIN")
        while batch := list(itertools.islice(rows, _BATCH)):
            conn.executemany(insert, batch)
            before, done = done, done + len(batch)
            if done // _PROGRESS_EVERY > before // _PROGRESS_EVERY or done == total:
                say(f"  {done:>9,} / {total:,} rows  {time.perf_counter() - started:6.1f} s")
        conn.execute("COMMIT")
        say(f"  committed; checkpointing  {time.perf_counter() - started:6.1f} s")
    finally:
        close_database(db)


def _placeholder() -> Session:
    return open_session(
        session_id="x", sensor_id="x", user_id="x", start=0.0, now=0.0, ttl_days=TTL_DAYS
    )


def _year_bounds() -> tuple[list[float], float]:
    """Epoch seconds of each local midnight of YEAR, and of the first one after it."""
    tz = ZoneInfo(TIMEZONE)
    first = dt.date(YEAR, 1, 1)
    days = (dt.date(YEAR + 1, 1, 1) - first).days
    midnights = [
        dt.datetime.combine(first + dt.timedelta(days=day), dt.time(), tz).timestamp()
        for day in range(days + 1)
    ]
    return midnights[:-1], midnights[-1]


def _context_uri(rng: random.Random) -> str:
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    return "spotify:playlist:" + "".join(rng.choice(alphabet) for _ in range(22))


def _completed_rows(count: int) -> Iterator[dict[str, Any]]:
    """`count` completed sessions spread over the year, in start order (as they happen)."""
    rng = random.Random(SEED)
    midnights, _ = _year_bounds()
    uris = [_context_uri(rng) for _ in range(SENSORS)]
    busyness = [0.5 + index / (SENSORS - 1) for index in range(SENSORS)]  # 0.5 … 1.5
    rng.shuffle(busyness)
    hour_weights = list(itertools.accumulate(_HOUR_WEIGHTS))
    starts = sorted(
        rng.choice(midnights) + hour * 3600 + rng.random() * 3600
        for hour in rng.choices(range(24), cum_weights=hour_weights, k=count)
    )
    sensor_of = rng.choices(range(SENSORS), weights=busyness, k=count)
    for start, index in zip(starts, sensor_of, strict=True):
        sensor = f"sensor-{index:03d}"
        motions = min(1 + int(rng.expovariate(0.4)), 60)
        last_motion = start + (motions - 1) * rng.uniform(5.0, 90.0)
        # Most end at the timeout after the last motion; some are ended early by hand.
        end = last_motion + (TIMEOUT_SECONDS if rng.random() < 0.9 else rng.uniform(1.0, 300.0))
        started = rng.random() < 0.88
        session = open_session(
            session_id=f"session-{sensor}-{int(start)}-{rng.getrandbits(32):08x}",
            sensor_id=sensor,
            user_id=_user_of(index),
            start=start,
            now=start,
            ttl_days=TTL_DAYS,
            spotify_device_id=f"device-{index:03d}" if started else None,
            spotify_context_uri=uris[index],
            playback_note=None if started else rng.choice(_PLAYBACK_NOTES),
        ).with_changes(
            status=SessionStatus.COMPLETED,
            last_motion=last_motion,
            motion_events_count=motions,
            end=end,
            updated_at=end,
            playback_started=started,
            playback_stopped=(rng.random() < 0.97) if started else None,
        )
        row = session_row(session)
        row["syncedVersion"] = 1  # history the nightly sync has already pushed
        yield row


def _active_rows() -> Iterator[dict[str, Any]]:
    """One session still open per sensor, in the year's last minutes."""
    rng = random.Random(SEED + 1)
    _, year_end = _year_bounds()
    for index, sensor in enumerate(sensor_ids()):
        start = year_end - rng.uniform(60.0, 240.0)
        session = open_session(
            session_id=f"session-{sensor}-{int(start)}-{rng.getrandbits(32):08x}",
            sensor_id=sensor,
            user_id=_user_of(index),
            start=start,
            now=start,
            ttl_days=TTL_DAYS,
        ).with_changes(playback_started=True, last_motion=start + 20, updated_at=start + 20)
        row = session_row(session)
        row["syncedVersion"] = 0
        yield row


def month_range(month: int) -> tuple[str, str]:
    """The seed's startDate/endDate for one calendar month of the dataset's year."""
    first = dt.date(YEAR, month, 1)
    following = dt.date(YEAR + (month == 12), month % 12 + 1, 1)
    return first.isoformat(), (following - dt.timedelta(days=1)).isoformat()


def year_range() -> tuple[str, str]:
    return f"{YEAR}-01-01", f"{YEAR}-12-31"
