"""The daily compliance trend as inline SVG: no script, no external asset, readable when
printed in black and white (the line is solid, partial days hollow, gaps left open)."""

from __future__ import annotations

import html

from exporters.report.data import TrendDay

WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 48, 16, 16, 40  # margins around the plot area
LINE = "#0b5cad"
GRID = "#d0d7de"
TEXT = "#1b1f24"


def _x(index: int, days: int) -> float:
    span = WIDTH - LEFT - RIGHT
    return LEFT + (span * index / (days - 1) if days > 1 else span / 2)


def _y(ratio: float) -> float:
    return TOP + (HEIGHT - TOP - BOTTOM) * (1 - ratio)


def _segments(trend: list[TrendDay]) -> list[list[tuple[float, float]]]:
    """Runs of consecutive days with a complete scan: a day without one breaks the line."""
    segments: list[list[tuple[float, float]]] = [[]]
    for index, day in enumerate(trend):
        if day.ratio is None:
            if segments[-1]:
                segments.append([])
            continue
        segments[-1].append((_x(index, len(trend)), _y(day.ratio)))
    return [segment for segment in segments if segment]


def _grid() -> list[str]:
    parts = []
    for percent in (0, 25, 50, 75, 100):
        y = _y(percent / 100)
        parts.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" '
            f'stroke="{GRID}" stroke-width="1"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="{TEXT}">{percent}%</text>'
        )
    return parts


def _day_labels(trend: list[TrendDay]) -> list[str]:
    """The first and last day, and about every week between, under the axis."""
    days = len(trend)
    step = max(1, round(days / 5))
    shown = sorted({0, days - 1, *range(0, days, step)})
    if len(shown) > 2 and shown[-1] - shown[-2] < step / 2:
        shown.pop(-2)  # too close to the last label
    y = HEIGHT - BOTTOM + 16
    return [
        f'<text x="{_x(index, days):.1f}" y="{y}" text-anchor="middle" font-size="11" '
        f'fill="{TEXT}">{trend[index].day:%m-%d}</text>'
        for index in shown
    ]


def _points(trend: list[TrendDay]) -> list[str]:
    parts = []
    for index, day in enumerate(trend):
        x = _x(index, len(trend))
        if day.ratio is None:
            # a day with no complete scan: a grey tick on the axis, so the gap reads as one
            base = HEIGHT - BOTTOM
            parts.append(
                f'<line x1="{x:.1f}" y1="{base - 4}" x2="{x:.1f}" y2="{base + 4}" '
                f'stroke="#8c959f" stroke-width="2"><title>{day.day}: no complete scan'
                "</title></line>"
            )
            continue
        fill = "#ffffff" if day.partial_runs == day.complete_runs else LINE
        label = f"{day.day}: {100 * day.ratio:.1f}% of {day.checks_total} checks pass"
        if day.partial_runs:
            label += " (partial scan: some accounts unreadable)"
        parts.append(
            f'<circle cx="{x:.1f}" cy="{_y(day.ratio):.1f}" r="3.5" fill="{fill}" '
            f'stroke="{LINE}" stroke-width="1.5"><title>{html.escape(label)}</title></circle>'
        )
    return parts


def trend_svg(trend: list[TrendDay]) -> str:
    """The share of checks passing on each day of the period (its last complete scan)."""
    measured = [day for day in trend if day.ratio is not None]
    if measured:
        first, last = measured[0], measured[-1]
        summary = (
            f"Checks passing per day, from {100 * first.ratio:.1f}% on {first.day} to "  # type: ignore[operator]
            f"{100 * last.ratio:.1f}% on {last.day}"  # type: ignore[operator]
        )
    else:
        summary = "No complete scan in the period"
    lines = [" ".join(f"{x:.1f},{y:.1f}" for x, y in segment) for segment in _segments(trend)]
    polylines = [
        f'<polyline points="{points}" fill="none" stroke="{LINE}" stroke-width="2"/>'
        for points in lines
    ]
    base = HEIGHT - BOTTOM
    axis = (
        f'<line x1="{LEFT}" y1="{base}" x2="{WIDTH - RIGHT}" y2="{base}" stroke="{TEXT}" '
        'stroke-width="1"/>'
    )
    body = "".join([*_grid(), axis, *polylines, *_points(trend), *_day_labels(trend)])
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{html.escape(summary)}" '
        f'class="trend"><title>{html.escape(summary)}</title>{body}</svg>'
    )
