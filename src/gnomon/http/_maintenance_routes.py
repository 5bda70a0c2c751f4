"""The ``/api/v1/maintenance`` routes: maintenance windows as ``gnomon maintenance add |
ls | rm`` changes and lists them (``control._maintenance``).

Access (``_auth.required_access``): listing needs a read token; adding and removing a
window an operate token, as a pause does: both are an operator's controls.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from gnomon.control import add_window, list_windows, parse_window, remove_window, window_view
from gnomon.http import _schemas as s
from gnomon.http._routes import Ops, StoreDep

# A window's id: the store's integer key (both databases hold 32 bits of it).
MAX_WINDOW_ID = 2**31 - 1
WindowPath = Annotated[int, Path(ge=1, le=MAX_WINDOW_ID, description="A window's id.")]

router = APIRouter(prefix="/api/v1", responses=s.error_responses(400, 401, 403, 422))


@router.get("/maintenance", response_model=list[s.MaintenanceWindow], tags=["maintenance"])
def list_maintenance(
    store: StoreDep, every: Annotated[bool, Query(alias="all")] = False
) -> list[dict[str, Any]]:
    """Maintenance windows not over yet (``all=true``: the past ones too), by start."""
    now = datetime.now(UTC)
    return [window_view(row, now) for row in list_windows(store, now, every)]


@router.post(
    "/maintenance",
    status_code=201,
    response_model=s.MaintenanceWindow,
    responses=s.error_responses(404),
    tags=["maintenance"],
)
def add_maintenance(body: s.MaintenanceRequest, ops: Ops) -> dict[str, Any]:
    """Add a window: fires of the deployments named or tagged (or all) inside it do not
    run; a run already running when it starts goes on. Audited."""
    now = datetime.now(UTC)
    start, end = parse_window(body.start, body.end, body.for_, now)
    row = add_window(
        ops, start, end, deployments=body.deployments, tags=body.tags, reason=body.reason
    )
    return window_view(row, now)


@router.delete(
    "/maintenance/{window_id}",
    status_code=204,
    response_class=Response,
    responses=s.error_responses(404, 409),
    tags=["maintenance"],
)
def remove_maintenance(window_id: WindowPath, ops: Ops) -> Response:
    """Remove an operator's window (409 for a config file's). Audited."""
    remove_window(ops, window_id)
    return Response(status_code=204)
