"""The overview page at ``/``: a timeline with a row per deployment (a page of them, filtered
by name), finished runs as marks in time bins and the next fires as hollow marks; the runs of
the last 24 h by state; deployments failing now; late and missed fires; the daemon's health
and its workers.

Every read is bounded (see ``gnomon.store._overview``): the timeline reads the bins of one
page of deployments, never the runs themselves, so a day of 1.44 million runs is as quick
to show as a quiet one (docs/design.md, "The overview's data").
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from fastapi import FastAPI, Query, Request
from fastapi.responses import Response

from gnomon.control import current_windows, fire_clock, iso, member_views
from gnomon.http._dashboard import page
from gnomon.http._timeline import (
    DEFAULT_WINDOW,
    KINDS,
    MAX_BACK,
    NEXT_GLYPH,
    WINDOWS,
    Marks,
    Window,
    add_counts,
    add_fires,
    bin_labels,
    bins_html,
    kind_of,
    window_at,
)
from gnomon.states import StateName, is_failed
from gnomon.store import ControlStore

if TYPE_CHECKING:
    from gnomon.store.rows import DeploymentRow, RecentRun

PAGE_SIZE = 100  # deployments per page of the timeline
LIST_LIMIT = 50  # rows of each list (failing, late, missed)
UNFINISHED_LIMIT = 2000  # unfinished runs drawn on one page of the timeline
LATE_AFTER = timedelta(seconds=30)  # a waiting run this far past its time is late
DAY = timedelta(hours=24)
DEFAULTS = {"back": 0, "page": 1, "q": ""}  # left out of links


def add_routes(app: FastAPI) -> None:
    @app.get("/", include_in_schema=False)
    def overview_page(
        request: Request,
        window: str = DEFAULT_WINDOW,
        back: str = "0",
        page_number: str = Query("1", alias="page"),
        q: str = "",
        said: str = "",
    ) -> Response:
        now = datetime.now(UTC)
        problems, choice = _choice(window, back, page_number, q)
        values = overview(request.app.state.store, now, **choice)
        values["health"] = _health(request.app.state.health)
        values["members"] = member_views(request.app.state.store)
        status = 400 if problems else 200
        return page(
            request,
            "overview.html",
            status,
            current="overview",
            problems=problems,
            said=said,
            kinds=KINDS,
            next_glyph=NEXT_GLYPH,
            **values,
        )


def _choice(window: str, back: str, page_number: str, q: str) -> tuple[list[str], dict[str, Any]]:
    """The window, how many windows back, the page and the name filter asked for; each bad
    one replaced by its default, with a sentence saying what was wrong."""
    problems: list[str] = []
    if window not in WINDOWS:
        problems.append(f"window must be one of {', '.join(WINDOWS)}; showing {DEFAULT_WINDOW}.")
        window = DEFAULT_WINDOW
    steps = _whole(back, 0, MAX_BACK)
    if steps is None:
        problems.append(f"back must be a whole number from 0 to {MAX_BACK}; showing now.")
    number = _whole(page_number, 1, 10_000)
    if number is None:
        problems.append("page must be a whole number from 1; showing the first.")
    if len(q) > 100:
        problems.append("the name filter is at most 100 characters; showing every name.")
        q = ""
    return problems, {"window": window, "back": steps or 0, "number": number or 1, "q": q}


def _whole(text: str, low: int, high: int) -> int | None:
    """``text`` as a whole number within [low, high], or None."""
    if not text.isascii() or not text.isdigit() or len(text) > 6:
        return None
    value = int(text)
    return value if low <= value <= high else None


def overview(
    store: ControlStore, now: datetime, *, window: str, back: int, number: int, q: str
) -> dict[str, Any]:
    """What the page shows, read from ``store`` at ``now``."""
    span = window_at(window, back, now)
    rows = sorted(store.read_deployments(), key=lambda row: row.name)
    if q:
        rows = [row for row in rows if q.lower() in row.name.lower()]
    shown = rows[(number - 1) * PAGE_SIZE : number * PAGE_SIZE]
    marks = _marks(store, shown, span, now)
    labels = bin_labels(span)
    since = (now - DAY).replace(minute=0, second=0, microsecond=0)  # hourly bins
    totals = store.read_run_totals(since, now)
    return {
        "window": span,
        "windows": list(WINDOWS),
        "axis": _axis(span),
        "rows": [
            {
                "name": row.name,
                "paused": bool(row.paused),
                "bins": bins_html(marks[row.name], labels),
            }
            for row in shown
        ],
        "q": q,
        "number": number,
        "pages": max(1, -(-len(rows) // PAGE_SIZE)),
        "matching": len(rows),
        "links": _links(span, number, q),
        "day_start": iso(since),
        "by_state": _by_state(totals),
        "missed": _missed(store.read_state_runs(StateName.MISSED, since, now)),
        "failing": _failing(store),
        "late": store.read_late_runs(now - LATE_AFTER, LIST_LIMIT),
        "iso": iso,
    }


def _marks(
    store: ControlStore, shown: list[DeploymentRow], span: Window, now: datetime
) -> dict[str, Marks]:
    """Each shown deployment's marks: finished runs by bin, runs not finished yet, and the
    next fires of the active ones."""
    names = [row.name for row in shown]
    marks: dict[str, Marks] = {name: {} for name in names}
    if not names:
        return marks
    width = int(span.width.total_seconds())
    bins = store.read_run_bins(names, span.start, span.end, width)
    counted = [
        (b.deployment_name, _at(b.bin_start), b.state_type, b.state_name, b.runs) for b in bins
    ]
    add_counts(marks, span, counted)
    if span.end > now - DAY:  # unfinished runs are recent (older ones are late: listed)
        unfinished = store.read_unfinished_runs(names, UNFINISHED_LIMIT)
        waiting = [
            (r.deployment_name or "", r.scheduled_for, r.state_type, r.state_name, 1)
            for r in unfinished
            if r.scheduled_for is not None
        ]
        add_counts(marks, span, waiting)
    windows = current_windows(store, now) if span.end > now else []
    for row in shown:
        if not row.paused and span.end > now:
            add_fires(marks[row.name], span, now, fire_clock(row, windows))
    return marks


def _failing(store: ControlStore) -> list[RecentRun]:
    """The last finished runs that failed, one per deployment, the first ``LIST_LIMIT``."""
    last = store.read_last_finished()
    return [run for run in last if is_failed(run.state_type, run.state_name)][:LIST_LIMIT]


def _at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _axis(span: Window) -> list[str]:
    """The times written under the timeline: its start and every quarter of it."""
    quarter = (span.end - span.start) / 4
    return [iso(span.start + k * quarter) or "" for k in range(5)]


def _links(span: Window, number: int, q: str) -> dict[str, str | None]:
    """Where earlier, later, each window, and the pages around lead, keeping the rest."""

    def to(**changes: Any) -> str:
        params = {"window": span.name, "back": span.back, "page": number, "q": q, **changes}
        kept = {key: value for key, value in params.items() if DEFAULTS.get(key) != value}
        return "/?" + urlencode(kept)

    return {
        "earlier": to(back=span.back + 1) if span.back < MAX_BACK else None,
        "later": to(back=span.back - 1) if span.back > 0 else None,
        "now": to(back=0) if span.back else None,
        "previous": to(page=number - 1) if number > 1 else None,
        "next": to(page=number + 1),
        **{f"window-{name}": to(window=name, back=0) for name in WINDOWS},
    }


def _by_state(totals: list[Any]) -> list[tuple[str, str, int]]:
    """Finished runs of the last 24 h by state name: (name, kind, runs), most first."""
    counted: dict[str, int] = {}
    kinds: dict[str, str] = {}
    for row in totals:
        counted[row.state_name] = counted.get(row.state_name, 0) + row.runs
        kinds[row.state_name] = kind_of(row.state_name, row.state_type)
    return sorted(
        ((name, kinds[name], runs) for name, runs in counted.items() if runs),
        key=lambda item: -item[2],
    )


def _missed(rows: list[Any]) -> list[tuple[str, int]]:
    """Deployments with Missed fires in the last 24 h, most first."""
    missed = [(row.deployment_name, row.runs) for row in rows if row.runs]
    return sorted(missed, key=lambda item: (-item[1], item[0]))[:LIST_LIMIT]


def _health(health: Callable[[], Any] | None) -> dict[str, Any] | None:
    """The daemon's health as the page shows it; None with no daemon attached."""
    if health is None:
        return None
    status = health()
    return {
        "state": str(status.state),
        "last_tick_age": status.last_tick_age,
        "reason": status.reason,
        "detail": status.detail,
        "workers": status.workers,
    }
