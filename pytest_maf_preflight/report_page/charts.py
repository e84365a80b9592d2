"""The page's pictures, as HTML and inline SVG: the gate's timeline, a strip of outcomes and a
duration sparkline. Every text is escaped here; positions are numbers we computed.

The elements carry ``data-`` attributes saying what they show (``data-bar``,
``data-status``, ``data-decisive``...), so tests and scripts read the page, not its looks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape

from ..runtime.records import RecentOutcome
from .model import Timeline, TimelineBar
from .text import duration, utc

#: Narrowest bar drawn, in percent of the axis: an instant check stays visible.
MIN_BAR_PERCENT = 0.4
#: Ticks aimed at on the time axis.
TICKS = 5
SPARK_WIDTH = 120
SPARK_HEIGHT = 26
#: The statuses an execution has, each with its colour (``st-<status>``).
STATUSES = ("passed", "failed", "timeout", "error", "skipped")


def timeline_html(timeline: Timeline, anchors: Mapping[str, str]) -> str:
    """One row per check: its id (a link to its history, ``anchors``), its bar, its time."""
    if not timeline.bars:
        return '<p class="empty" data-timeline="empty">No checks ran.</p>'
    span = timeline.span or 0.001
    decisive = timeline.decisive
    rows = "".join(
        _bar_row(bar, span, bar is decisive, anchors.get(bar.check_id)) for bar in timeline.bars
    )
    return (
        f'<div class="tl" data-timeline data-span="{span:.6f}">'
        f'<div class="tl-row tl-axis-row"><div></div><div class="tl-axis">{_axis(span)}</div>'
        "<div></div></div>"
        f"{rows}</div>"
    )


def _axis(span: float) -> str:
    step = nice_step(span / TICKS)
    ticks = []
    count = int(span / step + 1e-9)
    for i in range(count + 1):
        at = i * step
        ticks.append(
            f'<span class="tick" style="left:{100 * at / span:.3f}%">{escape(duration(at))}</span>'
        )
    return "".join(ticks)


def nice_step(raw: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at or above ``raw``."""
    if raw <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if factor * power >= raw * (1 - 1e-9):
            return float(factor * power)
    return float(10 * power)


def _bar_row(bar: TimelineBar, span: float, decisive: bool, anchor: str | None) -> str:
    left = 100 * bar.start / span
    width = max(MIN_BAR_PERCENT, 100 * bar.duration / span)
    left = min(left, 100 - width)
    classes = f"tl-bar st-{escape(bar.status)}" + ("" if bar.blocking else " nonblocking")
    if decisive:
        classes += " decisive"
    attempts = f" &times;{bar.attempts}" if bar.attempts > 1 else ""
    tip = (
        f"{bar.check_id}: {bar.status}, started +{duration(bar.start)}, took "
        f"{duration(bar.duration)}, {bar.attempts} attempt{'s' if bar.attempts != 1 else ''}"
        + (f" ({bar.name})" if bar.name else "")
        + ("" if bar.blocking else ", does not block the gate")
        + (f"\n{bar.message}" if bar.message else "")
    )
    label = escape(bar.check_id)
    if anchor is not None:
        label = f'<a href="#{anchor}">{label}</a>'
    mark = (
        '<span class="decisive-mark" title="the gate waited for this check last">'
        "decided the gate&#8217;s time</span>"
        if decisive
        else ""
    )
    return (
        '<div class="tl-row">'
        f'<div class="tl-label" title="{escape(bar.name)}">{label}</div>'
        '<div class="tl-track">'
        f'<div class="{classes}" data-bar data-check-id="{escape(bar.check_id)}" '
        f'data-status="{escape(bar.status)}" data-attempts="{bar.attempts}" '
        f'data-decisive="{"true" if decisive else "false"}" '
        f'style="left:{left:.3f}%;width:{width:.3f}%" title="{escape(tip)}"></div></div>'
        f'<div class="tl-dur">{escape(duration(bar.duration))}{attempts}{mark}</div>'
        "</div>"
    )


def strip_html(outcomes: Sequence[RecentOutcome]) -> str:
    """The outcomes oldest first, one cell each: the newest is at the right end."""
    # The hottest loop of a page (50 cells a check): times and durations are our own digits,
    # only the status is the store's.
    cells = []
    for o in outcomes:
        status = o.status if o.status in STATUSES else escape(o.status)
        cells.append(
            f'<i class="o st-{status}" data-outcome="{status}" '
            f'title="{status}, {utc(o.started_at)}, {duration(o.duration)}"></i>'
        )
    return f'<span class="strip">{"".join(cells)}</span>'


def sparkline_svg(durations: Sequence[float]) -> str:
    """The durations oldest first as a line from 0 to the longest; the last one is a dot."""
    if not durations:
        return ""
    top = max(durations) or 1.0
    pad = 2.0
    width, height = SPARK_WIDTH - 2 * pad, SPARK_HEIGHT - 2 * pad
    step = width / (len(durations) - 1) if len(durations) > 1 else 0.0
    points = [(pad + i * step, pad + height * (1 - d / top)) for i, d in enumerate(durations)]
    if len(points) == 1:  # one run: a dot halfway up, not a trend
        points = [(pad, pad + height / 2)]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    last_x, last_y = points[-1]
    title = (
        f"duration of the last {len(durations)}: {duration(min(durations))} to "
        f"{duration(max(durations))}, last {duration(durations[-1])}"
    )
    return (
        f'<svg class="spark" width="{SPARK_WIDTH}" height="{SPARK_HEIGHT}" '
        f'viewBox="0 0 {SPARK_WIDTH} {SPARK_HEIGHT}" role="img" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title>"
        f'<polyline points="{line}" fill="none" stroke="currentColor" stroke-width="1.5"/>'
        f'<circle cx="{last_x:.1f}" cy="{last_y:.1f}" r="2.5"/></svg>'
    )


def rate_bar(rate: float, kind: str) -> str:
    """A rate from 0 to 1 as a small filled bar and a percentage."""
    percent = max(0.0, min(1.0, rate)) * 100
    return (
        f'<span class="rate {escape(kind)}"><span style="width:{percent:.1f}%"></span></span>'
        f" {percent:.0f}%"
    )
