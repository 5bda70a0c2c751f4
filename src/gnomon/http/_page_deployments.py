"""The deployments page: every deployment with its schedule, next fire, last runs, pause
state and open breaches of deadlines and freshness, filtered by name and tag; pause (with
a reason, and optionally for a while or until a time) and resume.

Pause and resume say what they did, as the API's ``already_paused`` and ``not_paused`` do:
a page showing an old state must not claim a pause that changed nothing (the new reason
of an already paused deployment is not kept) or a resume of an active one.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from anyio import to_thread
from fastapi import FastAPI, Request
from fastapi.responses import Response

from gnomon.control import (
    MAX_BREACHES,
    Operations,
    current_windows,
    deployment_view,
    local_text,
    parse_pause_text,
)
from gnomon.http._dashboard import act, back, checked_form, page

RECENT_RUNS = 20
# Deployments to a page: a thousand on one page were 2.8 MB of HTML and half a second to
# serve (docs/benchmarks.md, issue 16); their number is the config's, so it is counted.
PAGE = 100
HOME_PAGE = "/deployments"  # where this page's actions go back to, without a Referer


def add_routes(app: FastAPI) -> None:
    @app.get("/deployments", include_in_schema=False)
    def deployments_page(
        request: Request, q: str = "", tag: str = "", start: str = "0"
    ) -> Response:
        store = request.app.state.store
        rows = store.read_deployments()
        if q:
            rows = [row for row in rows if q.lower() in row.name.lower()]
        if tag:
            rows = [row for row in rows if tag in (row.tags or [])]
        first = int(start) if start.isascii() and start.isdigit() and len(start) < 9 else 0
        first = min(first, max(len(rows) - 1, 0)) // PAGE * PAGE
        shown = rows[first : first + PAGE]
        recent = store.read_recent_states([row.name for row in shown], RECENT_RUNS)
        now = datetime.now(UTC)
        windows = current_windows(store, now)
        views = [deployment_view(row, now, recent.get(row.name, []), windows) for row in shown]
        breaches: dict[str, list[str]] = {}
        for breach in store.read_breaches(open_only=True, limit=MAX_BREACHES):
            breaches.setdefault(breach.deployment_name, []).append(breach.kind.value)
        return page(
            request,
            "deployments.html",
            current="deployments",
            deployments=views,
            breaches={name: sorted(set(kinds)) for name, kinds in breaches.items()},
            q=q,
            tag=tag,
            recent_runs=RECENT_RUNS,
            pages=_pages(request, first, len(rows)),
        )

    @app.post("/actions/deployments/{name}/pause", include_in_schema=False)
    async def pause_action(request: Request, name: str) -> Response:
        form = await checked_form(request)
        reason = str(form.get("reason") or "").strip()
        until = str(form.get("until") or "")
        if not reason:
            return back(request, f"Pausing {name} needs a reason.", HOME_PAGE)
        action = functools.partial(
            act, request, lambda ops: _paused(ops, name, reason, until), home=HOME_PAGE
        )
        return await to_thread.run_sync(action, str)

    @app.post("/actions/deployments/{name}/resume", include_in_schema=False)
    async def resume_action(request: Request, name: str) -> Response:
        await checked_form(request)
        action = functools.partial(act, request, lambda ops: _resumed(ops, name), home=HOME_PAGE)
        return await to_thread.run_sync(action, str)


def _paused(ops: Operations, name: str, reason: str, until: str = "") -> str:
    """Pause ``name`` (checked as the API checks it: a bad or unknown name is refused),
    ``until`` a time or for a duration if given (``parse_pause_text``), and say what was
    done: paused (until when), or already paused (by whom and why, until when), the reason
    unchanged."""
    [name] = ops.select([name])
    end = parse_pause_text(until, datetime.now(UTC))
    if ops.pause([name], reason, end).changed:
        return f"Paused {name}{f' until {local_text(end)}' if end else ''}."
    row = ops.deployment(name)
    why = ": ".join(
        text for text in (row.paused_by and f"by {row.paused_by}", row.paused_reason) if text
    )
    ends = f" until {local_text(row.paused_until)}" if row.paused_until else ""
    already = f"{name} was already paused{ends}{f' ({why})' if why else ''}"
    return f"{already}; its reason is unchanged."


def _resumed(ops: Operations, name: str) -> str:
    """Resume ``name`` (checked as ``_paused`` checks it) and say whether it was paused."""
    [name] = ops.select([name])
    if ops.resume([name]).changed:
        return f"Resumed {name}."
    return f"{name} is not paused."


def _pages(request: Request, first: int, total: int) -> dict[str, Any]:
    """Where this page is among the filtered deployments, and the links to the others
    (the filters kept)."""

    def link(start: int) -> str:
        query = {key: value for key, value in request.query_params.items() if key != "start"}
        return "?" + urlencode({**query, "start": start})

    return {
        "first": first + 1 if total else 0,
        "last": min(first + PAGE, total),
        "total": total,
        "earlier": link(max(first - PAGE, 0)) if first > 0 else None,
        "later": link(first + PAGE) if first + PAGE < total else None,
    }
