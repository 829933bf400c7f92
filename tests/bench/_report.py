"""Timing, percentiles and printing shared by the benchmark modules."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

_T = TypeVar("_T")


def timed(call: Callable[[], _T]) -> tuple[float, _T]:
    """Run `call` once; its wall time in milliseconds and its result."""
    started = time.perf_counter_ns()
    result = call()
    return (time.perf_counter_ns() - started) / 1e6, result


def percentile(values: Sequence[float], pct: float) -> float:
    """The `pct`-th percentile, interpolating linearly between order statistics."""
    if not values:
        raise ValueError("no samples")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True, slots=True)
class Samples:
    """Wall times in milliseconds of one measurement, repeated."""

    label: str
    ms: tuple[float, ...]

    @property
    def p50(self) -> float:
        return statistics.median(self.ms)

    @property
    def p95(self) -> float:
        return percentile(self.ms, 95)

    @property
    def p99(self) -> float:
        return percentile(self.ms, 99)

    def line(self) -> str:
        return (
            f"  {self.label:<52} n={len(self.ms):<4} min {min(self.ms):9.3f}  "
            f"p50 {self.p50:9.3f}  p95 {self.p95:9.3f}  p99 {self.p99:9.3f}  "
            f"max {max(self.ms):9.3f} ms"
        )


@dataclass(frozen=True, slots=True)
class Unit:
    """What a figure counts, and which way is better: targets are ≤ or ≥ accordingly."""

    symbol: str
    higher_is_better: bool = False

    def show(self, value: float) -> str:
        if value >= 100:
            return f"{value:,.0f} {self.symbol}"
        if value >= 10:
            return f"{value:.1f} {self.symbol}"
        return f"{value:.3f} {self.symbol}"


MS = Unit("ms")
MB = Unit("MB")
BYTES_PER_EVENT = Unit("B/event")
PER_SECOND = Unit("/s", higher_is_better=True)


@dataclass(frozen=True, slots=True)
class Figure:
    """One row of the summary: a statistic in its unit, its target and its baseline."""

    name: str
    value: float
    target: float | None = None  # a ceiling, or a floor when the unit's higher is better
    baseline: float | None = None  # the same statistic of the baseline, in the same unit
    note: str = ""  # a caveat printed under the summary, e.g. a noisy baseline
    unit: Unit = MS

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.baseline <= 0:
            return None
        return self.value / self.baseline

    @property
    def verdict(self) -> str:
        if self.target is None:
            return "-"
        met = self.value >= self.target if self.unit.higher_is_better else self.value <= self.target
        return "PASS" if met else "MISS"

    def target_text(self) -> str:
        if self.target is None:
            return "-"
        return f"{'≥' if self.unit.higher_is_better else '≤'} {self.unit.show(self.target)}"


def header(title: str) -> None:
    print()
    print(f"=== {title} " + "=" * max(0, 86 - len(title)))


def show_ms(value: float) -> str:
    return MS.show(value)


def table(headings: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Plain text columns: the first left-aligned, the rest right-aligned."""
    widths = [
        max(len(str(cell)) for cell in column) for column in zip(headings, *rows, strict=True)
    ]

    def render(cells: Sequence[str]) -> str:
        first, *rest = cells
        parts = [first.ljust(widths[0])]
        parts += [cell.rjust(width) for cell, width in zip(rest, widths[1:], strict=True)]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([render(headings), rule, *(render(row) for row in rows)])


def noise_note(samples: Samples, limit: float = 3.0) -> str:
    """A caveat when the baseline's own tail is long: the machine, not the hub, was busy."""
    spread = samples.p99 / samples.p50 if samples.p50 > 0 else 0.0
    if spread <= limit:
        return ""
    return (
        f"its baseline's p99 was {spread:.0f}x its p50 in the same loop: other load on the "
        "machine; re-run before trusting the tail"
    )


def summary(figures: Sequence[Figure]) -> str:
    rows: list[tuple[str, ...]] = []
    notes: list[str] = []
    for figure in figures:
        mark = ""
        if figure.note:
            notes.append(f"{'*' * (len(notes) + 1)} {figure.name}: {figure.note}")
            mark = "*" * len(notes)
        rows.append(
            (
                figure.name,
                figure.unit.show(figure.value),
                figure.target_text(),
                "-" if figure.ratio is None else f"{figure.ratio:.2f}x",
                figure.verdict + mark,
            )
        )
    rendered = table(["figure", "value", "target", "vs baseline", "result"], rows)
    return "\n".join([rendered, *notes])
