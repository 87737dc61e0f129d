"""Trend charts as inline SVG, drawn on the server with no script.

A chart is a line over the periods of a trend; a period whose figure has no
data leaves a gap in the line and no dot. Every text in the SVG is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

WIDTH = 360
HEIGHT = 120
PADDING = 24


def trend_svg(title: str, labels: Sequence[str], values: Sequence[float | None]) -> str:
    """Return an SVG line chart of `values` over `labels`, with `title` for readers."""
    present = [value for value in values if value is not None]
    low = min(present, default=0.0)
    high = max(present, default=1.0)
    if high == low:
        high = low + 1.0
    step = (WIDTH - 2 * PADDING) / max(len(values) - 1, 1)

    def point(index: int, value: float) -> tuple[float, float]:
        x = PADDING + index * step
        y = HEIGHT - PADDING - (value - low) / (high - low) * (HEIGHT - 2 * PADDING)
        return round(x, 1), round(y, 1)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="trend" role="img" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}">',
        f"<title>{escape(title)}</title>",
        f'<line x1="{PADDING}" y1="{HEIGHT - PADDING}" x2="{WIDTH - PADDING}" '
        f'y2="{HEIGHT - PADDING}" stroke="#999"/>',
    ]
    for segment in _segments(values):
        coordinates = " ".join(f"{x},{y}" for x, y in (point(i, v) for i, v in segment))
        parts.append(
            f'<polyline fill="none" stroke="#1f5fa8" stroke-width="2" '
            f'points="{coordinates}"/>'
        )
    for index, value in enumerate(values):
        if value is None:
            continue
        x, y = point(index, value)
        parts.append(
            f'<circle cx="{x}" cy="{y}" r="3" fill="#1f5fa8">'
            f"<title>{escape(labels[index])}: {value:.4g}</title></circle>"
        )
    if labels:
        parts.append(_axis_label(PADDING, labels[0], "start"))
        parts.append(_axis_label(WIDTH - PADDING, labels[-1], "end"))
    parts.append("</svg>")
    return "".join(parts)


def _axis_label(x: float, text: str, anchor: str) -> str:
    return (
        f'<text x="{x}" y="{HEIGHT - 6}" font-size="10" text-anchor="{anchor}">'
        f"{escape(text)}</text>"
    )


def _segments(values: Sequence[float | None]) -> list[list[tuple[int, float]]]:
    """Runs of consecutive present values; a run of one point draws no line."""
    runs: list[list[tuple[int, float]]] = [[]]
    for index, value in enumerate(values):
        if value is None:
            runs.append([])
        else:
            runs[-1].append((index, value))
    return [run for run in runs if len(run) > 1]
