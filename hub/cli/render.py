"""Text output for people: aligned tables and terminal bar charts."""

from __future__ import annotations

import shutil
from collections.abc import Sequence

_BLOCKS = " ▏▎▍▌▋▊▉█"  # eighths of a cell, left to right
_COLUMN = " ▁▂▃▄▅▆▇█"  # eighths of a cell, bottom to top
_EIGHTHS = 8


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = [
        "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip(),
        "  ".join("─" * w for w in widths),
    ]
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    return "\n".join(lines)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def bar_chart(
    title: str, labels: Sequence[str], values: Sequence[float], *, width: int | None = None
) -> str:
    """Horizontal bars with eighth-block resolution, scaled to the largest value."""
    if width is None:
        width = max(20, shutil.get_terminal_size((80, 24)).columns - 20)
    label_width = max((len(label) for label in labels), default=0)
    number_width = max((len(_number(v)) for v in values), default=1)
    bar_width = max(10, width - label_width - number_width - 3)
    peak = max(values, default=0) or 1
    lines = [title]
    for label, value in zip(labels, values, strict=True):
        eighths = round(value / peak * bar_width * _EIGHTHS)
        whole, part = divmod(eighths, _EIGHTHS)
        bar = "█" * whole + (_BLOCKS[part] if part else "")
        lines.append(f"{label.rjust(label_width)} │{bar.ljust(bar_width)} {_number(value)}")
    return "\n".join(lines)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}"


def column_chart(
    title: str, values: Sequence[float], *, height: int = 6, label_every: int = 6
) -> str:
    """Vertical columns, one character wide each: a compact histogram (e.g. 24 hours)."""
    peak = max(values, default=0) or 1
    eighths = [round(v / peak * height * _EIGHTHS) for v in values]
    rows = []
    for level in range(height - 1, -1, -1):
        cells = []
        for e in eighths:
            filled = e - level * _EIGHTHS
            cells.append("█" if filled >= _EIGHTHS else (_COLUMN[filled] if filled > 0 else " "))
        rows.append(" " + " ".join(cells))
    axis = " " + " ".join("┴" if i % label_every == 0 else "─" for i in range(len(values)))
    labels = " " + "".join(f"{i:<{2 * label_every}d}" for i in range(0, len(values), label_every))
    return "\n".join([f"{title} (peak {_number(max(values, default=0))})", *rows, axis, labels])
