"""A real hub database, and copies of it with whole pages overwritten by random bytes."""

from __future__ import annotations

import random
from pathlib import Path

from hub.model import MotionEvent, SessionStatus, open_session
from hub.store import SessionRepository, close_database, open_database

T0 = 1_780_000_000.0
SENSORS = 25


def build_hub_database(path: Path, sessions: int = 400) -> None:
    """Sessions, each with two motion events, written by the hub's own repository; then
    VACUUMed so every page is in use (no free page to damage harmlessly) and closed, which
    checkpoints: the file is all there is, no -wal beside it."""
    db = open_database(path)
    try:
        repository = SessionRepository(db, ttl_days=30)
        for n in range(sessions):
            sensor = f"sensor-{n % SENSORS}"
            start = T0 + n * 600
            session = open_session(
                session_id=f"session-{sensor}-{int(start)}-{n:08x}",
                sensor_id=sensor,
                user_id=f"user-{n % 3}",
                start=start,
                now=start,
                ttl_days=30,
                spotify_context_uri="spotify:playlist:x",
            )
            repository.save(session, created=True, event=MotionEvent(sensor, start, start))
            later = start + 90
            ended = session.with_changes(
                status=SessionStatus.COMPLETED,
                last_motion=later,
                motion_events_count=2,
                end=later + 300,
                updated_at=later + 300,
            )
            repository.save(ended, created=False, event=MotionEvent(sensor, later, later))
        db.execute("VACUUM")
    finally:
        close_database(db)


def page_size(data: bytes) -> int:
    """From the file header (offset 16, big-endian; 1 stands for 65536)."""
    size = int.from_bytes(data[16:18], "big")
    return 65_536 if size == 1 else size


def damage(original: bytes, seed: int) -> tuple[bytes, list[int]]:
    """`original` with 1 to 3 of its pages (numbered from 1; page 1, the header and schema
    root, is spared) overwritten with random bytes; and which pages they were."""
    rng = random.Random(seed)
    size = page_size(original)
    pages = len(original) // size
    chosen = sorted(rng.sample(range(2, pages + 1), rng.randint(1, 3)))
    data = bytearray(original)
    for page in chosen:
        data[(page - 1) * size : page * size] = rng.randbytes(size)
    return bytes(data), chosen
