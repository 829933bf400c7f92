"""The benchmark summary: each figure in its own unit, judged the way that unit is better."""

from __future__ import annotations

from tests.bench._report import BYTES_PER_EVENT, MB, PER_SECOND, Figure, summary


def test_a_rate_must_reach_its_target_and_a_time_must_stay_under_it() -> None:
    assert Figure("rate", 5_000.0, 4_000.0, unit=PER_SECOND).verdict == "PASS"
    assert Figure("rate", 3_000.0, 4_000.0, unit=PER_SECOND).verdict == "MISS"
    assert Figure("latency", 3.0, 5.0).verdict == "PASS"
    assert Figure("latency", 6.0, 5.0).verdict == "MISS"
    assert Figure("memory", 61.0, 60.0, unit=MB).verdict == "MISS"
    assert Figure("reported", 1e9, unit=BYTES_PER_EVENT).verdict == "-"


def test_each_row_shows_its_own_unit_and_the_ratio_to_its_baseline() -> None:
    rows = summary(
        [
            Figure("latency", 0.32, 5.0, 0.16),
            Figure("memory", 33.94, 60.0, 10.6, unit=MB),
            Figure("writes", 4_785.2, unit=BYTES_PER_EVENT),
            Figure("ingest", 13_785.0, 10_747.0, 17_912.0, unit=PER_SECOND),
        ]
    ).splitlines()[2:]
    cells = [row.split("  ") for row in rows]
    assert [[c.strip() for c in row if c.strip()] for row in cells] == [
        ["latency", "0.320 ms", "≤ 5.000 ms", "2.00x", "PASS"],
        ["memory", "33.9 MB", "≤ 60.0 MB", "3.20x", "PASS"],
        ["writes", "4,785 B/event", "-", "-", "-"],
        ["ingest", "13,785 /s", "≥ 10,747 /s", "0.77x", "PASS"],
    ]
