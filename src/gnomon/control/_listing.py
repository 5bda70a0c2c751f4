"""The listing of runs, page by page, as the HTTP API and the dashboard show it: the filters
an operator chose (``RunFilters``), and one page of runs with the cursor of the next.

Pages are keyset pages (``RunCursor``: the last row's creation time and id), so a page deep
in a million runs costs what the first does; whether there is a next page is known by
reading one row more than the page shows, never by counting.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gnomon.states import StateFilter
    from gnomon.store import FastControl, RunCause, RunCursor
    from gnomon.store.rows import FlowRunRow


@dataclass(frozen=True)
class RunFilters:
    """Which runs to list: all optional, combined with AND. ``since`` and ``until`` bound
    when the run was created (from ``since``, before ``until``)."""

    deployment: str | None = None
    state: StateFilter | None = None
    trigger: frozenset[RunCause] | None = None
    since: datetime | None = None
    until: datetime | None = None


def runs_page(
    store: FastControl, filters: RunFilters, before: RunCursor | None, limit: int
) -> tuple[list[FlowRunRow], RunCursor | None]:
    """Up to ``limit`` runs newest first, below ``before`` if given; and the cursor of the
    page after this one, None if this is the last."""
    from gnomon.store import RunCursor

    rows = store.read_runs(
        filters.deployment,
        filters.state,
        filters.since,
        limit + 1,
        until=filters.until,
        trigger=filters.trigger,
        before=before,
    )
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    return rows[:limit], RunCursor(last.created, last.id)
