"""A deployment's page: its schedule (in words and as written, with its zone) and pause
state, its open breaches of deadlines and freshness and the latest cleared ones, its run
durations over time, the schedule's recent decisions with their reasons, the next fires,
the coming times a calendar, a maintenance window or the pause excludes, with why, its
config as loaded (secrets masked) and its audit entries; pause, resume and run now.

The decisions are the store's own records, interleaved by time: each fire is a run row
(a run that fired, or one the daemon recorded Skipped or Missed with the reason in its
state message), and each pause or resume is an audit entry.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from anyio import to_thread
from fastapi import FastAPI, Request
from fastapi.responses import Response

from gnomon.control import (
    MAX_BREACHES,
    UnknownName,
    backfill_view,
    breach_view,
    context_of,
    current_windows,
    deployment_detail,
    explain_view,
    iso,
    next_view,
    run_text,
    run_view,
)
from gnomon.exceptions import InvalidInput
from gnomon.http._chart import HEIGHT, SLOTS, WIDTH, duration_chart
from gnomon.http._dashboard import act, checked_form, not_found, operations, page
from gnomon.http._page_audit import audit_entry
from gnomon.http._page_deployments import HOME_PAGE
from gnomon.states import StateName
from gnomon.store import AuditAction, RunCause

if TYPE_CHECKING:
    from gnomon.control import FireContext
    from gnomon.store import ControlStore
    from gnomon.store.rows import AuditEntry, FlowRunRow

CHART_RUNS = SLOTS  # the newest finished runs the chart shows
DECISIONS = 50
UPCOMING = 10
AUDIT_ENTRIES = 50
BREACHES = 10  # the newest breaches read for the latest cleared ones
BACKFILLS = 5  # its newest backfills, under the form that asks for one
REQUESTED = frozenset({RunCause.MANUAL, RunCause.RETRY})
PAUSES = {AuditAction.PAUSE: "paused", AuditAction.RESUME: "resumed"}


@dataclass(frozen=True)
class Decision:
    """One of the schedule's decisions: ``kind`` is fired, requested (an operator's run),
    skipped, missed (``reason`` says why), paused (``until`` when, for a pause that ends by
    itself) or resumed (by ``actor``, with its ``reason``); ``run`` is the run's view for a
    fire."""

    at: datetime
    kind: str
    reason: str | None = None
    actor: str | None = None
    run: dict[str, Any] | None = None
    until: str | None = None

    @property
    def iso(self) -> str | None:
        return iso(self.at)


def decisions(
    runs: list[FlowRunRow], entries: list[AuditEntry], count: int = DECISIONS
) -> list[Decision]:
    """The newest ``count`` decisions, newest first: fires from ``runs``, pauses and
    resumes from ``entries``."""
    found = [
        Decision(
            entry.timestamp,
            PAUSES[entry.action],
            entry.reason,
            entry.actor,
            until=(entry.detail or {}).get("until"),
        )
        for entry in entries
        if entry.action in PAUSES
    ]
    for run in runs:
        kind = "requested" if run.trigger in REQUESTED else "fired"
        reason = None
        if run.state_name in (StateName.SKIPPED, StateName.MISSED):
            kind = str(run.state_name).lower()
            reason = run_text(run)(run.state_message)
        found.append(Decision(run.scheduled_for or run.created, kind, reason, run=run_view(run)))
    return sorted(found, key=lambda decision: decision.at, reverse=True)[:count]


def why_view(store: ControlStore, context: FireContext) -> dict[str, Any]:
    """What the page's "Coming fires and exclusions" shows (``deployments next`` and
    ``explain``): the coming times with why each excluded one does not run, the fires
    excluded lately (no row: derived from calendars, windows and pauses), notes."""
    explained = explain_view(store, context, UPCOMING)
    lately = [each for each in explained["decisions"] if each["decision"].startswith("excluded")]
    return {"coming": next_view(context, UPCOMING), "lately": lately, "notes": explained["notes"]}


def add_routes(app: FastAPI) -> None:
    @app.get("/deployments/{name}", include_in_schema=False)
    def deployment_page(request: Request, name: str) -> Response:
        try:
            row = operations(request).deployment(name)
        except (UnknownName, InvalidInput) as error:
            return not_found(request, f"{str(error)[:200]}.")
        store = request.app.state.store
        entries = store.read_audit(limit=AUDIT_ENTRIES, target=name)
        opened = store.read_breaches(name, open_only=True, limit=MAX_BREACHES)
        cleared = [b for b in store.read_breaches(name, limit=BREACHES) if b.cleared_at]
        context = context_of(store, row, datetime.now(UTC))
        return page(
            request,
            "deployment.html",
            current="deployments",
            d=deployment_detail(
                row,
                datetime.now(UTC),
                [],
                UPCOMING,
                breaches=opened,
                windows=current_windows(store, datetime.now(UTC)),
            ),
            cleared_breaches=[breach_view(breach) for breach in cleared],
            chart=duration_chart(store.read_finished_runs(name, CHART_RUNS)),
            chart_size=(WIDTH, HEIGHT),
            decisions=decisions(store.read_runs(deployment=name, limit=DECISIONS), entries),
            entries=[audit_entry(entry, {name}) for entry in entries],
            why=None if context is None else why_view(store, context),
            backfills=[backfill_view(b) for b in store.read_backfills(name, limit=BACKFILLS)],
        )

    @app.post("/actions/deployments/{name}/run", include_in_schema=False)
    async def run_action(request: Request, name: str) -> Response:
        await checked_form(request)
        action = functools.partial(act, request, lambda ops: ops.trigger(name), home=HOME_PAGE)
        return await to_thread.run_sync(action, lambda run: f"Run {run['id']} of {name} requested.")
