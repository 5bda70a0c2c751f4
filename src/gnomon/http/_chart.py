"""A deployment's run durations as a bar chart, drawn on the server: the geometry of an
inline SVG (one bar per finished run, oldest on the left) and its summary in words.

No chart library and no script: the page's template writes the SVG from these numbers, and
the stylesheet colours the bars by state. A bar's state is also its shape (solid for a
completed run, striped for a failed one, hollow for one cancelled), its title says it in
words, and the summary gives the median, the 95th percentile and the last duration, so
neither colour nor the picture is needed to read it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gnomon.control import iso
from gnomon.http._dashboard import duration_text
from gnomon.states import FAILED_TYPES, StateType

if TYPE_CHECKING:
    from gnomon.store.rows import FlowRunRow

WIDTH = 600  # the SVG's own units; it is scaled to the page's width
HEIGHT = 160
TOP = 14  # room above the tallest bar for the scale's label
GAP = 1
SLOTS = 100  # bars the chart has room for (the page's CHART_RUNS): a few runs are narrow
# bars on the right, not a wall


@dataclass(frozen=True)
class Bar:
    """One run's bar: where it is, its state (``kind`` is its shape: completed, failed or
    cancelled), its title, and the run page it links to."""

    x: float
    y: float
    width: float
    height: float
    state: str
    kind: str
    title: str
    run_id: str


@dataclass(frozen=True)
class Chart:
    """The bars, the longest duration (the top of the scale), and the summary."""

    bars: list[Bar]
    longest: str
    median: str
    p95: str
    last: str
    last_state: str
    first_start: str | None  # ISO 8601, for the page's ``when``
    last_start: str | None


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile of ``values`` (not empty): the smallest value that at
    least ``share`` of them do not exceed."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def _kind(state_type: str | None) -> str:
    if state_type == StateType.COMPLETED:
        return "completed"
    return "failed" if state_type in FAILED_TYPES else "cancelled"


def duration_chart(runs: list[FlowRunRow]) -> Chart | None:
    """The chart of ``runs`` (newest first, each started and ended), or None for none."""
    timed = [
        (run, run.start_time, (run.end_time - run.start_time).total_seconds())
        for run in reversed(runs)
        if run.start_time and run.end_time
    ]
    if not timed:
        return None
    durations = [seconds for _, _, seconds in timed]
    longest = max(*durations, 0.001)
    step = WIDTH / max(len(timed), SLOTS)
    first = max(SLOTS - len(timed), 0)  # the newest run is always at the right edge
    bars = []
    for index, (run, _, seconds) in enumerate(timed, start=first):
        height = max(1.0, seconds / longest * (HEIGHT - TOP))
        state = run.state_name or str(run.state_type)
        bars.append(
            Bar(
                x=round(index * step, 2),
                y=round(HEIGHT - height, 2),
                width=round(max(step - GAP, 1.0), 2),
                height=round(height, 2),
                state=state,
                kind=_kind(run.state_type),
                title=f"{state}, {duration_text(seconds)}, run {run.id[:8]}",
                run_id=run.id,
            )
        )
    return Chart(
        bars=bars,
        longest=duration_text(longest),
        median=duration_text(percentile(durations, 0.5)),
        p95=duration_text(percentile(durations, 0.95)),
        last=duration_text(durations[-1]),
        last_state=bars[-1].state,
        first_start=iso(timed[0][1]),
        last_start=iso(timed[-1][1]),
    )
