"""Learning rooms' timeouts (`timeout_minutes = "auto"`) from the 1M-session dataset.

One call of `learn_timeouts` for all 100 rooms of the dataset (1,000,000 completed
sessions in all), as the hub does once a day. Its baseline is the floor SQLite sets: a bare
`count(*)` of the same rooms' sessions through the same index.

Run alone: `python -m tests.bench.bench_learn`.
"""

from __future__ import annotations

import sys
from functools import partial

from sqlite_utils import Database

from hub.store import close_database, open_database
from hub.store.timeouts import learn_timeouts
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
    floor_ms: list[float] = []
    marks = ", ".join("?" for _ in dataset.sensors)
    count = (
        f"SELECT count(*) FROM sessions INDEXED BY sessions_by_sensor_time "
        f"WHERE sensorId IN ({marks})"
    )
    db = open_database(dataset.path)
    try:
        for index in range(RUNS):
            if index % 2:  # alternate which goes first
                ms, learned = timed(partial(learn_timeouts, db, bounds))
                floor, _ = timed(partial(_count, db, count, dataset.sensors))
            else:
                floor, _ = timed(partial(_count, db, count, dataset.sensors))
                ms, learned = timed(partial(learn_timeouts, db, bounds))
            learned_ms.append(ms)
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
    baseline = Samples("count(*)", tuple(floor_ms))
    print(f"  learn: p50 {show_ms(samples.p50)}, max {show_ms(max(learned_ms))}")
    print(f"  count(*) floor: p50 {show_ms(baseline.p50)}")
    return [
        Figure(
            f"learn every room's timeout ({sessions:,} sessions), p50",
            samples.p50,
            target=TARGET_MS,
            baseline=baseline.p50,
            note=noise_note(baseline),
        )
    ]


def _count(db: Database, sql: str, rooms: tuple[str, ...]) -> int:
    (rows,) = db.execute(sql, rooms).fetchone()
    return int(rows)


if __name__ == "__main__":
    data = prepare(lambda line: print(f"  {line}"))
    header(TITLE)
    print(summary(run(data)))
    sys.exit(0)
