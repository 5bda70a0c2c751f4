"""The ``/api/v1`` routes of backfills, over ``BackfillOperations`` (what ``gnomon backfill``
calls): ask for one (``POST /deployments/NAME/backfills``, or a dry run of it), list them,
show one with its runs by state, cancel one (``DELETE /backfills/ID``).

Access (``_auth.required_access``): reading needs a read token; asking for and cancelling
a backfill, an operator's controls as running and cancelling a run are, an operate token.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from gnomon.control import BackfillOperations, Operations, backfill_view, iso
from gnomon.http._auth import request_actor
from gnomon.http._params import NamePath
from gnomon.http._schemas import error_responses
from gnomon.store import Reprocess

if TYPE_CHECKING:
    from gnomon.store import ControlStore

BackfillPath = Annotated[int, Path(ge=1, lt=2**31, description="A backfill's id.")]


class BackfillRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    start: str = Field(
        alias="from",
        max_length=64,
        description="The first nominal time: ISO 8601, in the deployment's zone without an"
        " offset; a date alone is its first moment.",
    )
    end: str = Field(
        alias="to", max_length=64, description="The last nominal time (a date: the whole day)."
    )
    max_concurrent: int = Field(1, ge=1, le=1000)
    reprocess: Literal["none", "failed", "all"] = "none"
    reverse: bool = False
    parameters: dict[str, JsonValue] = Field(default_factory=dict)
    dry_run: bool = Field(False, description="Say what it would do with each time instead.")


class BackfillInfo(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: int
    deployment: str
    status: str
    start: str | None = Field(alias="from")
    end: str | None = Field(alias="to")
    reverse: bool
    max_concurrent: int
    reprocess: str
    parameters: dict[str, Any]
    total: int
    decided: int
    created_runs: int
    cursor: str | None
    requested_by: str | None
    created: str | None
    finished_at: str | None
    reason: str | None
    runs: dict[str, int] | None = None
    waiting: int | None = None
    running: int | None = None
    finished: int | None = None


class PlannedTimeInfo(BaseModel):
    nominal: str | None
    generation: int | None
    reason: str


class CancelBackfill(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(None, max_length=1000)


router = APIRouter(prefix="/api/v1", responses=error_responses(400, 401, 403, 422))


def backfill_operations(request: Request) -> BackfillOperations:
    """Backfills, asked for by the request's actor (its token's name, origin "api")."""
    state = request.app.state
    store: ControlStore = state.store
    return BackfillOperations(Operations(store, request_actor(request.scope), state.nudge))


Backfills = Annotated[BackfillOperations, Depends(backfill_operations)]


@router.post(
    "/deployments/{name}/backfills",
    status_code=201,
    response_model=BackfillInfo | list[PlannedTimeInfo],
    response_model_by_alias=True,
    responses=error_responses(404),
    tags=["backfills"],
)
def start_backfill(
    name: NamePath, body: BackfillRequest, backfills: Backfills, response: Response
) -> Any:
    """Ask for a backfill of the deployment's nominal times from ``from`` to ``to``; the
    daemon makes its runs, at most ``max_concurrent`` unfinished at once. With
    ``dry_run``: what it would do with each time (200), nothing recorded."""
    now = datetime.now(UTC)
    plan = backfills.plan(name, body.start, body.end, now, body.reverse)
    reprocess = Reprocess(body.reprocess)
    if body.dry_run:
        response.status_code = 200
        return [
            {"nominal": iso(p.nominal), "generation": p.generation, "reason": p.reason}
            for p in backfills.dry_run(plan, reprocess)
        ]
    row = backfills.start(
        plan,
        max_concurrent=body.max_concurrent,
        reprocess=reprocess,
        reverse=body.reverse,
        parameters=dict(body.parameters),
    )
    return backfill_view(row, {})


@router.get(
    "/backfills",
    response_model=list[BackfillInfo],
    response_model_by_alias=True,
    tags=["backfills"],
    responses=error_responses(404),  # a deployment no one has
)
def list_backfills(
    backfills: Backfills,
    deployment: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[dict[str, Any]]:
    """Backfills, newest first (a deployment's with ``deployment``)."""
    return [backfill_view(row) for row in backfills.backfills(deployment, limit)]


@router.get(
    "/backfills/{backfill_id}",
    response_model=BackfillInfo,
    response_model_by_alias=True,
    responses=error_responses(404),
    tags=["backfills"],
)
def show_backfill(backfill_id: BackfillPath, backfills: Backfills) -> dict[str, Any]:
    """A backfill with its progress: its runs by state, how many wait, run, finished."""
    row = backfills.backfill(backfill_id)
    return backfill_view(row, backfills.store.read_backfill_states(row.id))


@router.delete(
    "/backfills/{backfill_id}",
    response_model=BackfillInfo,
    response_model_by_alias=True,
    responses=error_responses(404, 409),
    tags=["backfills"],
)
def cancel_backfill(
    backfill_id: BackfillPath,
    backfills: Backfills,
    body: Annotated[CancelBackfill | None, Body()] = None,
) -> dict[str, Any]:
    """Cancel a running backfill: no more runs, its waiting runs cancelled and its running
    ones stopped; 409 if it has ended."""
    row, _ = backfills.cancel(backfill_id, body.reason if body is not None else None)
    return backfill_view(row, backfills.store.read_backfill_states(row.id))
