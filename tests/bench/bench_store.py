"""`query_sessions` and `get_session_analytics` through the real operation, on the dataset.

Each figure is `handle(event, ctx)` end to end (validation, SQL, rows → Session →
JSON-ready records or the folded analytics). Its baseline is the floor SQLite sets:
for a query, the very SELECT the hub ran (captured with sqlite-utils' tracer) executed
on the raw sqlite3 connection; for analytics, a bare `count(*)` over the same range.
Both run in the same iteration, alternating which goes first.
"""

from __future__ import annotations

import random
import re
import sqlite3
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from hub.config import HubConfig, HubSection
from hub.sessions.operations import OperationContext, handle
from hub.store import close_database, open_database
from tests.bench._dataset import Dataset, month_range, year_range
from tests.bench._report import Figure, Samples, noise_note, show_ms, timed

ORDER = 1
TITLE = "store: query_sessions and get_session_analytics via handle()"

QUERY_TARGET_MS = 5.0  # p99, one sensor, one month
SENSOR_ANALYTICS_TARGET_MS = 100.0  # one sensor over a year
ALL_ANALYTICS_TARGET_MS = 1_000.0  # every sensor over a year
QUERY_WARMUP, QUERY_RUNS = 50, 500
SENSOR_ANALYTICS_WARMUP, SENSOR_ANALYTICS_RUNS = 3, 30
WIDE_ANALYTICS_WARMUP, WIDE_ANALYTICS_RUNS = 1, 5

_Statement = tuple[str, Any]


def run(dataset: Dataset) -> list[Figure]:
    config = HubConfig(hub=HubSection(database=dataset.path, timezone=dataset.timezone))
    db = open_database(dataset.path)
    try:
        ctx = OperationContext(config=config, db=db)
        (rows,) = db.execute("SELECT count(*) FROM sessions").fetchone()
        print(f"  sessions in the file: {rows:,}; timezone {dataset.timezone}")
        rng = random.Random(7)
        return [
            *_query_sessions(ctx, dataset, rng, limit=100, label="limit 100, the seed's page"),
            *_query_sessions(ctx, dataset, rng, limit=1_000, label="limit 1000, whole month"),
            *_analytics(ctx, dataset, rng),
        ]
    finally:
        close_database(db)


# -- plumbing -------------------------------------------------------------------------


def _traced(
    ctx: OperationContext, event: dict[str, Any]
) -> tuple[dict[str, Any], list[_Statement]]:
    """Run `event` once, untimed, recording every statement the hub sent to SQLite."""
    statements: list[_Statement] = []

    def record(sql: str, params: Any) -> None:
        statements.append((sql, params))

    with ctx.db.tracer(record):
        response = _ok(handle(event, ctx))
    return response, statements


def _ok(response: dict[str, Any]) -> dict[str, Any]:
    if response.get("statusCode") != 200:
        raise RuntimeError(f"the hub answered {response}")
    return response


def _fetch_all(conn: sqlite3.Connection, sql: str, params: Any) -> list[Any]:
    return conn.execute(sql, params).fetchall()


def _both(
    first: Callable[[], Any], second: Callable[[], Any], swap: bool
) -> tuple[tuple[float, Any], tuple[float, Any]]:
    """Time both calls, in the order `swap` says, so neither always runs warmer."""
    if swap:
        later = timed(second)
        return timed(first), later
    earlier = timed(first)
    return earlier, timed(second)


def _print_plan(conn: sqlite3.Connection, title: str, statements: Sequence[_Statement]) -> None:
    print(f"  query plan, {title}:")
    for sql, params in statements:
        shown = " ".join(sql.split())
        print(f"    {shown[:150]}{' …' if len(shown) > 150 else ''}")
        for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params):
            print(f"      {row[-1]}")


def _selects(statements: Sequence[_Statement]) -> list[_Statement]:
    return [
        (sql, params) for sql, params in statements if sql.lstrip().upper().startswith("SELECT")
    ]


# -- query_sessions -------------------------------------------------------------------


def _query_sessions(
    ctx: OperationContext, dataset: Dataset, rng: random.Random, *, limit: int, label: str
) -> list[Figure]:
    conn: sqlite3.Connection = ctx.db.conn
    hub_ms: list[float] = []
    raw_ms: list[float] = []
    returned: list[int] = []
    for iteration in range(QUERY_WARMUP + QUERY_RUNS):
        start, end = month_range(rng.randint(1, 12))
        event = {
            "action": "query_sessions",
            "sensorId": rng.choice(dataset.sensors),
            "startDate": start,
            "endDate": end,
            "limit": limit,
        }
        _, statements = _traced(ctx, event)
        ((sql, params),) = _selects(statements)
        if iteration == 0:
            _print_plan(conn, f"query_sessions ({label})", [(sql, params)])
        (op_ms, response), (sql_ms, rows) = _both(
            partial(handle, event, ctx), partial(_fetch_all, conn, sql, params), iteration % 2 == 1
        )
        _ok(response)
        # The same rows: the page plus the one extra row that says "hasMore".
        ids = [session["sessionId"] for session in response["sessions"]]
        if [row[0] for row in rows[: len(ids)]] != ids or len(rows) != len(ids) + bool(
            response["hasMore"]
        ):
            raise RuntimeError("the baseline SELECT did not fetch the rows the hub returned")
        if iteration >= QUERY_WARMUP:
            hub_ms.append(op_ms)
            raw_ms.append(sql_ms)
            returned.append(len(ids))
    hub = Samples(f"query_sessions via handle() ({label})", tuple(hub_ms))
    raw = Samples("  baseline: the same SELECT on raw sqlite3", tuple(raw_ms))
    print(hub.line())
    print(raw.line())
    mean_rows = max(sum(returned) / len(returned), 1.0)
    print(
        f"  {mean_rows:.0f} sessions returned on average; "
        f"{(hub.p50 - raw.p50) / mean_rows * 1000:.1f} µs per session above the SELECT (p50); "
        f"p99 {show_ms(hub.p99)} vs target {show_ms(QUERY_TARGET_MS)}"
    )
    name = f"query_sessions 1 sensor x 1 month ({label})"
    return [
        Figure(f"{name} p50", hub.p50, None, raw.p50),
        Figure(f"{name} p99", hub.p99, QUERY_TARGET_MS, raw.p99, noise_note(raw)),
    ]


# -- get_session_analytics ------------------------------------------------------------


def _analytics(ctx: OperationContext, dataset: Dataset, rng: random.Random) -> list[Figure]:
    start, end = year_range()
    base = {"action": "get_session_analytics", "startDate": start, "endDate": end}
    sensor_hub, sensor_raw = _analytics_case(
        ctx,
        "1 sensor x 1 year",
        lambda: {**base, "sensorId": rng.choice(dataset.sensors)},
        SENSOR_ANALYTICS_WARMUP,
        SENSOR_ANALYTICS_RUNS,
    )
    user_hub, user_raw = _analytics_case(
        ctx,
        "1 user x 1 year",
        lambda: {**base, "userId": rng.choice(dataset.users)},
        WIDE_ANALYTICS_WARMUP,
        WIDE_ANALYTICS_RUNS,
    )
    all_hub, all_raw = _analytics_case(
        ctx, "all sensors x 1 year", lambda: dict(base), WIDE_ANALYTICS_WARMUP, WIDE_ANALYTICS_RUNS
    )
    return [
        Figure("analytics 1 sensor x 1 year p50", sensor_hub.p50, None, sensor_raw.p50),
        Figure(
            "analytics 1 sensor x 1 year p99",
            sensor_hub.p99,
            SENSOR_ANALYTICS_TARGET_MS,
            sensor_raw.p99,
            noise_note(sensor_raw),
        ),
        Figure("analytics 1 user (10 sensors) x 1 year median", user_hub.p50, None, user_raw.p50),
        Figure(
            "analytics all sensors x 1 year median",
            all_hub.p50,
            ALL_ANALYTICS_TARGET_MS,
            all_raw.p50,
        ),
    ]


# The WHERE clause of the hub's first aggregate, without its GROUP BY / ORDER BY.
_FROM_SESSIONS = re.compile(
    r"\bFROM\s+sessions\s+(WHERE\s.*?)(?:\s+GROUP\s+BY\b.*)?$", re.DOTALL | re.IGNORECASE
)


def _count_baseline(statements: Sequence[_Statement]) -> _Statement:
    """`SELECT count(*)` with the WHERE clause and parameters of the hub's totals query."""
    for sql, params in _selects(statements):
        match = _FROM_SESSIONS.search(sql.strip())
        if match:
            return f"SELECT count(*) FROM sessions {match.group(1)}", params
    raise RuntimeError("no analytics statement reads FROM sessions WHERE …")


def _analytics_case(
    ctx: OperationContext,
    label: str,
    make_event: Callable[[], dict[str, Any]],
    warmup: int,
    runs: int,
) -> tuple[Samples, Samples]:
    conn: sqlite3.Connection = ctx.db.conn
    hub_ms: list[float] = []
    raw_ms: list[float] = []
    counted: list[int] = []
    for iteration in range(warmup + runs):
        event = make_event()
        _, statements = _traced(ctx, event)
        sql, params = _count_baseline(statements)
        if iteration == 0:
            _print_plan(conn, f"analytics {label}", [*_selects(statements), (sql, params)])
        (op_ms, response), (sql_ms, rows) = _both(
            partial(handle, event, ctx), partial(_fetch_all, conn, sql, params), iteration % 2 == 1
        )
        total = _ok(response)["analytics"]["totalSessions"]
        if rows[0][0] != total:
            raise RuntimeError(f"count(*) says {rows[0][0]}, the analytics say {total}")
        if iteration >= warmup:
            hub_ms.append(op_ms)
            raw_ms.append(sql_ms)
            counted.append(total)
    hub = Samples(f"get_session_analytics via handle(), {label}", tuple(hub_ms))
    raw = Samples("  baseline: SELECT count(*) over the same range", tuple(raw_ms))
    print(hub.line())
    print(raw.line())
    print(f"  {sum(counted) / len(counted):,.0f} sessions in range on average")
    _print_breakdown(conn, _selects(statements), op_ms)
    return hub, raw


_GROUP_BY = re.compile(r"\bGROUP\s+BY\s+(\w+)", re.IGNORECASE)


def _print_breakdown(
    conn: sqlite3.Connection, statements: Sequence[_Statement], op_ms: float
) -> None:
    """Where the last run's time went: each of the hub's statements alone, and the rest."""
    parts: list[str] = []
    sql_ms = 0.0
    for sql, params in statements:
        took, rows = timed(partial(_fetch_all, conn, sql, params))
        sql_ms += took
        group = _GROUP_BY.search(sql)
        name = f"GROUP BY {group.group(1)}" if group else "totals"
        parts.append(f"{name} {show_ms(took)} ({len(rows):,} row{'s' * (len(rows) != 1)})")
    print(
        f"  where the last run's {show_ms(op_ms)} went: SQL {show_ms(sql_ms)} = "
        + " + ".join(parts)
        + f"; Python (rows to Aggregates, summarize) ~{show_ms(max(op_ms - sql_ms, 0.0))}"
    )
