"""The deployments page: every deployment with its schedule, next fire, last runs and
pause state, filtered by name and tag; pause (with a reason) and resume."""

from __future__ import annotations

import functools
from datetime import UTC, datetime

from anyio import to_thread
from fastapi import FastAPI, Request
from fastapi.responses import Response

from gnomon.control import deployment_view
from gnomon.http._dashboard import act, back, checked_form, page

RECENT_RUNS = 20


def add_routes(app: FastAPI) -> None:
    @app.get("/deployments", include_in_schema=False)
    def deployments_page(request: Request, q: str = "", tag: str = "", said: str = "") -> Response:
        store = request.app.state.store
        rows = store.read_deployments()
        if q:
            rows = [row for row in rows if q.lower() in row.name.lower()]
        if tag:
            rows = [row for row in rows if tag in (row.tags or [])]
        recent = store.read_recent_states([row.name for row in rows], RECENT_RUNS)
        now = datetime.now(UTC)
        views = [deployment_view(row, now, recent.get(row.name, [])) for row in rows]
        return page(
            request,
            "deployments.html",
            current="deployments",
            deployments=views,
            q=q,
            tag=tag,
            said=said,
        )

    @app.post("/actions/deployments/{name}/pause", include_in_schema=False)
    async def pause_action(request: Request, name: str) -> Response:
        form = await checked_form(request)
        reason = str(form.get("reason") or "").strip()
        if not reason:
            return back(request, f"Pausing {name} needs a reason.")
        action = functools.partial(act, request, lambda ops: ops.pause([name], reason))
        return await to_thread.run_sync(action, f"Paused {name}.")

    @app.post("/actions/deployments/{name}/resume", include_in_schema=False)
    async def resume_action(request: Request, name: str) -> Response:
        await checked_form(request)
        action = functools.partial(act, request, lambda ops: ops.resume([name]))
        return await to_thread.run_sync(action, f"Resumed {name}.")
