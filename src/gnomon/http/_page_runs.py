"""The runs page: every run newest first, filtered by state (``failed`` is the failed
family: Failed, TimedOut, Crashed), deployment, trigger and creation time, 50 to a page.

Pages are keyset pages (``control.runs_page``): "Older" carries the cursor of the page's
last run and the filters, "Newest" goes back to the first page; nothing is ever counted. The
first page is live (``data-live``): new runs appear and states change without reloading. A
filter value that cannot be read is a 400 page saying which one and why, never an error
page.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import Response

from gnomon.control import run_cursor_text, run_listing_view, runs_page
from gnomon.http._dashboard import duration_text, page
from gnomon.http._params import ApiError, run_cursor, run_filters
from gnomon.states import EXACT_PREFIX, FAILED_FILTER, FAILED_NAMES, STATE_NAMES, StateName
from gnomon.store import RunCause

if TYPE_CHECKING:
    from gnomon.store.rows import FlowRunRow

PAGE_SIZE = 50

# The state filter's choices: (value, label). Failed alone is "only:Failed": "Failed" is
# the failed family (``parse_state_filter``), the first choice.
STATE_CHOICES = [
    ("", "All"),
    (FAILED_FILTER, f"Failed ({', '.join(FAILED_NAMES)})"),
    *(
        (f"{EXACT_PREFIX}{name}", f"{name} only") if name == StateName.FAILED else (name, name)
        for name in STATE_NAMES
    ),
]
TRIGGER_CHOICES = [("", "All"), *((str(cause), str(cause)) for cause in RunCause)]


def add_routes(app: FastAPI) -> None:
    @app.get("/runs", include_in_schema=False)
    def runs(
        request: Request,
        state: str = "",
        deployment: str = "",
        trigger: str = "",
        since: str = "",
        until: str = "",
        before: str = "",
    ) -> Response:
        chosen = {"state": state, "deployment": deployment, "trigger": trigger}
        chosen |= {"since": since, "until": until}
        values: dict[str, Any] = {
            "current": "runs",
            "chosen": chosen,
            "states": _choices(STATE_CHOICES, state),
            "triggers": _choices(TRIGGER_CHOICES, trigger),
            "runs": [],
            "older": None,
            "newest": _link(chosen),
            "paged": bool(before),
            "problem": None,
        }
        store = request.app.state.store
        values["zones"] = {row.name: row.timezone for row in store.read_deployments(False)}
        try:
            triggers = [trigger] if trigger else None
            filters = run_filters(
                deployment or None, state or None, triggers, since or None, until or None
            )
            cursor = run_cursor(before or None)
        except ApiError as error:
            values["problem"] = f"{error.field}: {error.message}"
            return page(request, "runs.html", 400, **values)
        rows, after = runs_page(store, filters, cursor, PAGE_SIZE)
        values["runs"] = [_row(row) for row in rows]
        if after is not None:
            values["older"] = _link({**chosen, "before": run_cursor_text(after)})
        return page(request, "runs.html", **values)


def _choices(choices: list[tuple[str, str]], value: str) -> list[tuple[str, str]]:
    """The choices of a select, with ``value`` among them even if it is none of them (an
    address typed or kept from before): the form shows what the page shows."""
    if any(value == known for known, _ in choices):
        return choices
    return [*choices, (value, value)]


def _link(query: dict[str, str]) -> str:
    """The runs page with these filters (those given) and cursor."""
    given = {name: value for name, value in query.items() if value}
    return "/runs?" + urlencode(given) if given else "/runs"


def _row(row: FlowRunRow) -> dict[str, Any]:
    """A run as the table shows it: with its duration in words ("2 min 5 s")."""
    view = run_listing_view(row)
    view["duration"] = duration_text(view["duration_s"])
    return view
