"""Text output for people: aligned tables and terminal bar charts."""

from __future__ import annotations

import shutil
from collections.abc import Sequence

_BLOCKS = " ▏▎▍▌▋▊▉█"


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
        eighths = round(value / peak * bar_width * 8)
        bar = "█" * (eighths // 8) + (_BLOCKS[eighths % 8] if eighths % 8 else "")
        lines.append(f"{label.rjust(label_width)} │{bar.ljust(bar_width)} {_number(value)}")
    return "\n".join(lines)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}"
