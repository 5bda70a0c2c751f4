"""The dashboard's backfills: the form on a deployment's page that asks for one (its
range in the deployment's zone, max concurrent, reprocess, order), and a backfill's page,
its progress (times done of the total, runs by state, its newest runs) with a cancel
button; both through ``BackfillOperations``, as ``gnomon backfill`` and the API."""

from __future__ import annotations

import functools
from datetime import UTC, datetime

from anyio import to_thread
from fastapi import FastAPI, Request
from fastapi.responses import Response

from gnomon.control import (
    BackfillOperations,
    Operations,
    UnknownName,
    backfill_view,
    run_listing_view,
)
from gnomon.exceptions import InvalidInput
from gnomon.http._dashboard import act, checked_form, not_found, operations, page
from gnomon.http._page_deployments import HOME_PAGE
from gnomon.store import Reprocess

RUNS_SHOWN = 50  # a backfill's newest runs on its page


def _start(name: str, form: dict[str, str], ops: object) -> int:
    """Ask for the form's backfill of deployment ``name``; its id."""
    from gnomon.control import Operations

    assert isinstance(ops, Operations)
    backfills = BackfillOperations(ops)
    reverse = form.get("order") == "reverse"
    plan = backfills.plan(
        name, form.get("from", ""), form.get("to", ""), datetime.now(UTC), reverse
    )
    try:
        concurrent = int(form.get("max_concurrent") or "1")
        reprocess = Reprocess(form.get("reprocess") or "none")
    except ValueError:
        raise InvalidInput(
            "max concurrent is a whole number; reprocess none, failed or all"
        ) from None
    row = backfills.start(plan, max_concurrent=concurrent, reprocess=reprocess, reverse=reverse)
    return row.id


def add_routes(app: FastAPI) -> None:
    @app.get("/backfills/{backfill_id}", include_in_schema=False)
    def backfill_page(request: Request, backfill_id: str) -> Response:
        backfills = BackfillOperations(operations(request))
        try:
            row = backfills.backfill(backfill_id)
        except UnknownName as error:
            return not_found(request, f"{str(error)[:200]}.")
        store = backfills.store
        view = backfill_view(row, store.read_backfill_states(row.id))
        runs = store.read_backfill_runs(row.id, RUNS_SHOWN)
        return page(
            request,
            "backfill.html",
            current="deployments",
            b=view,
            runs=[run_listing_view(run) for run in runs],
        )

    @app.post("/actions/deployments/{name}/backfill", include_in_schema=False)
    async def backfill_action(request: Request, name: str) -> Response:
        form = await checked_form(request)
        action = functools.partial(
            act,
            request,
            lambda ops: _start(name, form, ops),
            lambda new: f"Backfill {new} of {name} asked for.",
            lambda new: f"/backfills/{new}",
            home=HOME_PAGE,
        )
        return await to_thread.run_sync(action)

    @app.post("/actions/backfills/{backfill_id}/cancel", include_in_schema=False)
    async def cancel_action(request: Request, backfill_id: str) -> Response:
        form = await checked_form(request)
        reason = form.get("reason") or None

        def cancel(ops: Operations) -> int:
            return BackfillOperations(ops).cancel(backfill_id, reason)[1]

        action = functools.partial(
            act,
            request,
            cancel,
            lambda count: f"Backfill {backfill_id} cancelled, and {count} of its runs.",
            home=HOME_PAGE,
        )
        return await to_thread.run_sync(action)
