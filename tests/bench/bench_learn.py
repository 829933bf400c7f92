"""Learning rooms' timeouts (`timeout_minutes = "auto"`) from the 1M-session dataset.

All 100 rooms of the dataset (1,000,000 completed sessions in all), as the hub does once a
day: `learn_side_by_side` on a read pool of the daemon's size (each room a job; the pool's
connections work at once). Also shown: `learn_timeouts`, one room after another on one
connection (the API's and `analytics`' way). The baseline is the floor SQLite sets: a bare
`count(*)` of the same rooms' sessions through the same index.

Run alone: `python -m tests.bench.bench_learn`.
"""

from __future__ import annotations

import asyncio
import sys
from functools import partial

from sqlite_utils import Database

from hub.store import close_database, open_database
from hub.store.pool import POOL_SIZE, DatabasePool
from hub.store.timeouts import Learned, learn_side_by_side, learn_timeouts
from tests.bench._dataset import Dataset, prepare
from tests.bench._report import Figure, Samples, header, noise_note, show_ms, summary, timed

ORDER = 6
TITLE = "learned timeouts: every room of the dataset, 1M sessions"

TARGET_MS = 1_000.0  # the issue: a room's timeout from 1M sessions in at most 1 s
RUNS = 5
BOUNDS = (120.0, 900.0)  # [2, 15] minutes


def run(dataset: Dataset) -> list[Figure]:
    bounds = dict.fromkeys(dataset.sensors, BOUNDS)
    learned_ms: list[float] = []
    serial_ms: list[float] = []
    floor_ms: list[float] = []
    marks = ", ".join("?" for _ in dataset.sensors)
    count = (
        f"SELECT count(*) FROM sessions INDEXED BY sessions_by_sensor_time "
        f"WHERE sensorId IN ({marks})"
    )
    db = open_database(dataset.path)
    try:
        for index in range(RUNS):
            floor, _ = timed(partial(_count, db, count, dataset.sensors))
            serially = partial(learn_timeouts, db, bounds)
            side_by_side = partial(_side_by_side, dataset, bounds)
            if index % 2:  # alternate which goes first
                one_by_one, serial = timed(serially)
                ms, learned = timed(side_by_side)
            else:
                ms, learned = timed(side_by_side)
                one_by_one, serial = timed(serially)
            assert learned == serial  # the same answer either way
            learned_ms.append(ms)
            serial_ms.append(one_by_one)
            floor_ms.append(floor)
    finally:
        close_database(db)
    sessions = sum(value.sessions for value in learned.values())
    false_ends = sum(value.false_ends for value in learned.values())
    example = learned[dataset.sensors[0]]
    print(
        f"  {len(learned)} rooms, {sessions:,} completed sessions, {false_ends:,} false ends; "
        f"{dataset.sensors[0]}: {example.describe()}"
    )
    samples = Samples("learn", tuple(learned_ms))
    serial_samples = Samples("learn one by one", tuple(serial_ms))
    baseline = Samples("count(*)", tuple(floor_ms))
    print(
        f"  learn, {POOL_SIZE} read connections (the daemon's way): p50 {show_ms(samples.p50)}, "
        f"max {show_ms(max(learned_ms))}"
    )
    print(f"  learn, one room after another on one connection: p50 {show_ms(serial_samples.p50)}")
    print(f"  count(*) floor: p50 {show_ms(baseline.p50)}")
    return [
        Figure(
            f"learn every room's timeout ({sessions:,} sessions), p50",
            samples.p50,
            target=TARGET_MS,
            baseline=baseline.p50,
            note=noise_note(baseline),
        ),
        Figure(
            "learn every room's timeout, one by one on one connection, p50",
            serial_samples.p50,
            baseline=baseline.p50,
        ),
    ]


def _side_by_side(dataset: Dataset, bounds: dict[str, tuple[float, float]]) -> dict[str, Learned]:
    async def learn() -> dict[str, Learned]:
        pool = DatabasePool(dataset.path)  # the daemon's, opened as the daemon opens it
        try:
            return await learn_side_by_side(pool, bounds)
        finally:
            await pool.close()

    return asyncio.run(learn())


def _count(db: Database, sql: str, rooms: tuple[str, ...]) -> int:
    (rows,) = db.execute(sql, rooms).fetchone()
    return int(rows)


if __name__ == "__main__":
    data = prepare(lambda line: print(f"  {line}"))
    header(TITLE)
    print(summary(run(data)))
    sys.exit(0)
