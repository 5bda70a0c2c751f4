"""The ``/api/v1`` routes: one per CLI command, each calling the operation the CLI calls.

Routes are plain functions (FastAPI runs them in its thread pool) because the store is
synchronous; only the log stream is async, polling the store from a worker thread.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from gnomon.control import (
    MAX_ARTIFACTS,
    MAX_BREACHES,
    MAX_FIRES,
    Operations,
    ReloadNotAnswered,
    artifact_view,
    audit_view,
    breach_view,
    context_of,
    current_windows,
    deployment_detail,
    deployment_view,
    explain_view,
    find_artifacts,
    firing_from,
    iso,
    log_view,
    member_views,
    parse_expiry,
    parse_pause_end,
    pool_views,
    run_cursor_text,
    run_detail,
    run_view,
    runs_page,
    token_access,
    token_view,
)
from gnomon.exceptions import InvalidInput
from gnomon.http import _schemas as s
from gnomon.http._auth import request_actor
from gnomon.http._params import (
    MAX_LOG_ID,
    NEXT_CURSOR,
    AfterQuery,
    ApiError,
    ArtifactKeyQuery,
    ArtifactPath,
    CursorQuery,
    LevelQuery,
    NamePath,
    NameQuery,
    RunPath,
    RunQuery,
    SinceQuery,
    StateQuery,
    TagPath,
    TokenPath,
    TriggerQuery,
    UntilQuery,
    level_number,
    run_cursor,
    run_filters,
    since_time,
)
from gnomon.http._streams import log_events
from gnomon.store import LogQuery, ReloadStatus, TokenAccess

if TYPE_CHECKING:
    from gnomon.store import ControlStore

RECENT_RUNS = 5


router = APIRouter(prefix="/api/v1", responses=s.error_responses(400, 401, 403, 422))


def operations(request: Request) -> Operations:
    """The operations, done by the request's actor (its token's name, origin "api")."""
    state = request.app.state
    return Operations(state.store, request_actor(request.scope), state.nudge)


def store_of(request: Request) -> ControlStore:
    request_actor(request.scope)  # refuse unless authenticated, as operations() does
    store: ControlStore = request.app.state.store
    return store


Ops = Annotated[Operations, Depends(operations)]
StoreDep = Annotated["ControlStore", Depends(store_of)]


# Deployments.


@router.get("/deployments", response_model=list[s.DeploymentSummary], tags=["deployments"])
def list_deployments(store: StoreDep) -> list[dict[str, Any]]:
    """Every deployment: schedule (and in words), pause, next fire, its last runs' states."""
    rows = store.read_deployments()
    recent = store.read_recent_states([row.name for row in rows], RECENT_RUNS)
    now = datetime.now(UTC)
    windows = current_windows(store, now)
    return [deployment_view(row, now, recent.get(row.name, []), windows) for row in rows]


@router.get(
    "/deployments/{name}",
    response_model=s.DeploymentDetail,
    responses=s.error_responses(404),
    tags=["deployments"],
)
def show_deployment(name: NamePath, ops: Ops) -> dict[str, Any]:
    """One deployment: schedule, next fires, pause, parameters, policies, last runs."""
    row = ops.deployment(name)
    recent = ops.store.read_recent_states([name], RECENT_RUNS)[name]
    breaches = ops.store.read_breaches(name, open_only=True, limit=MAX_BREACHES)
    now = datetime.now(UTC)
    windows = current_windows(ops.store, now)
    return deployment_detail(row, now, recent, breaches=breaches, windows=windows)


@router.get(
    "/deployments/{name}/next",
    response_model=list[str],
    responses=s.error_responses(404),
    tags=["deployments"],
)
def next_fire_times(
    name: NamePath, ops: Ops, count: Annotated[int, Query(ge=1, le=MAX_FIRES)] = 5
) -> list[str | None]:
    """The next fire times (UTC), as the daemon will fire them (once resumed, if paused;
    after its end, for a pause that ends by itself)."""
    row = ops.deployment(name)
    now = datetime.now(UTC)
    context = context_of(ops.store, row, now)
    if context is None:
        return []
    # Its schedule with the windows that apply: calendars and windows left out (explain
    # says why); a paused one's from when its pause ends, or as if resumed.
    start = firing_from(row, now) or now
    start = max(start, row.last_fire) if row.last_fire else start
    return [iso(fire) for fire in context.schedule.next_fires(start, count)]


@router.get(
    "/deployments/{name}/explain",
    response_model=s.Explanation,
    responses=s.error_responses(404),
    tags=["deployments"],
)
def explain_deployment(
    name: NamePath, ops: Ops, count: Annotated[int, Query(ge=1, le=MAX_FIRES)] = 5
) -> dict[str, Any]:
    """Why it fired or not: its last decisions with their reasons (fired, skipped, missed,
    excluded by a calendar, a maintenance window or a pause), and its next ``count`` fires
    with what will stop (or may stop) each."""
    row = ops.deployment(name)
    context = context_of(ops.store, row, datetime.now(UTC))
    if context is None:
        raise ApiError(409, f"deployment {name!r} has a stored schedule gnomon cannot read")
    return explain_view(ops.store, context, count)


@router.post(
    "/deployments/{name}/pause",
    response_model=s.PauseResponse,
    responses=s.error_responses(404),
    tags=["deployments"],
)
def pause_deployment(
    name: NamePath, ops: Ops, body: Annotated[s.PauseRequest | None, Body()] = None
) -> dict[str, Any]:
    """Pause a deployment: no fire after this returns. Running runs go on unless
    ``cancel_running``. With ``until`` (a time) or ``for`` (a duration) the daemon resumes
    it by itself then; a paused deployment's pause is only ever made longer."""
    body = body or s.PauseRequest()
    return _paused(ops, ops.select([name]), body, body.reason, body.cancel_running)


@router.post(
    "/deployments/{name}/resume",
    response_model=s.ResumeResponse,
    responses=s.error_responses(404),
    tags=["deployments"],
)
def resume_deployment(
    name: NamePath, ops: Ops, body: Annotated[s.ResumeRequest | None, Body()] = None
) -> dict[str, Any]:
    """Resume a deployment from its next fire; the paused period is not caught up."""
    return _resumed(ops, ops.select([name]), (body or s.ResumeRequest()).reason)


@router.post(
    "/pause", response_model=s.PauseResponse, responses=s.error_responses(404), tags=["deployments"]
)
def pause_many(body: s.SelectPauseRequest, ops: Ops) -> dict[str, Any]:
    """Pause the deployments named, or ``all``, or those with ``tag`` (until a time, or
    for a while, as a deployment's pause)."""
    return _paused(ops, _select(ops, body), body, body.reason, body.cancel_running)


@router.post(
    "/resume",
    response_model=s.ResumeResponse,
    responses=s.error_responses(404),
    tags=["deployments"],
)
def resume_many(body: s.SelectRequest, ops: Ops) -> dict[str, Any]:
    """Resume the deployments named, or ``all``, or those with ``tag``."""
    return _resumed(ops, _select(ops, body), body.reason)


def _select(ops: Operations, body: s.SelectRequest) -> list[str]:
    if sum((bool(body.names), body.all, body.tag is not None)) != 1:
        raise ApiError(422, "give names, or all: true, or a tag (exactly one of these)", "body")
    return ops.select(body.names, body.all, body.tag)


def _paused(
    ops: Operations, names: list[str], end: s.PauseEnd, reason: str | None, cancel_running: bool
) -> dict[str, Any]:
    until = pause_end(end)
    result = ops.pause(names, reason, until, cancel_running=cancel_running)
    return {
        "paused": result.changed,
        "already_paused": result.unchanged,
        "cancelled_runs": result.cancelled_runs,
        "paused_until": iso(result.until),
    }


def pause_end(end: s.PauseEnd) -> datetime | None:
    """When the pause asked for ends (``parse_pause_end``); a 422 naming the field if the
    value cannot be one (both given: the body)."""
    try:
        return parse_pause_end(end.until, end.for_, datetime.now(UTC))
    except InvalidInput as error:
        field = "for" if end.until is None else "until" if end.for_ is None else "body"
        raise ApiError(422, str(error), field) from None


def _resumed(ops: Operations, names: list[str], reason: str | None) -> dict[str, Any]:
    result = ops.resume(names, reason)
    return {"resumed": result.changed, "not_paused": result.unchanged}


@router.post(
    "/apply",
    response_model=s.ApplyResponse,
    responses={
        202: {"model": s.ApplyResponse, "description": "Not answered within the timeout."},
        422: {"model": s.ApplyResponse, "description": "Refused: nothing was applied."},
    },
    tags=["deployments"],
)
def apply_config(
    request: Request,
    ops: Ops,
    timeout: Annotated[float, Query(gt=0, le=600)] = 30.0,
) -> Any:
    """Reload the daemon's own config file (as ``gnomon daemon reload``) and answer with
    the outcome: "applied"; "partial" (the deployments with problems keep their last good
    version); or "refused" with 422 (a problem not confined to one deployment: nothing
    changed). If the daemon has not answered within ``timeout`` seconds: 202, "pending"
    (it may still apply it; ``gnomon audit`` shows the outcome)."""
    try:
        outcome = ops.reload(request.app.state.config_path, timeout)
    except ReloadNotAnswered as error:
        body = {"status": ReloadStatus.PENDING, "request": error.request}
        return JSONResponse(s.ApplyResponse.model_validate(body).model_dump(), status_code=202)
    body = {**outcome.detail, "status": outcome.status, "request": outcome.request}
    if outcome.status is ReloadStatus.REFUSED:
        return JSONResponse(s.ApplyResponse.model_validate(body).model_dump(), status_code=422)
    return body


@router.post(
    "/deployments/{name}/runs",
    status_code=201,
    response_model=s.RunDetail,
    responses=s.error_responses(404),
    tags=["runs"],
)
def trigger_run(
    name: NamePath, ops: Ops, body: Annotated[s.RunRequest | None, Body()] = None
) -> dict[str, Any]:
    """Run a deployment now with its policies (``force`` overrides overlap); ``parameters``
    update the deployment's own."""
    body = body or s.RunRequest()
    row = ops.trigger(name, body.parameters, force=body.force)
    return _run_detail(ops, row["id"])


def _run_detail(ops: Operations, run_id: str) -> dict[str, Any]:
    return run_detail(ops.store, ops.run(run_id))


# Runs.


@router.get("/runs", response_model=list[s.RunSummary], tags=["runs"])
def list_runs(
    store: StoreDep,
    response: Response,
    deployment: NameQuery = None,
    state: StateQuery = None,
    trigger: TriggerQuery = None,
    since: SinceQuery = None,
    until: UntilQuery = None,
    before: CursorQuery = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> list[dict[str, Any]]:
    """Flow runs, newest first; ``state=failed`` gives every failed run (Failed, TimedOut,
    Crashed), ``state=only:Failed`` exactly the state named Failed. If there are more, the
    ``X-Next-Cursor`` header is the ``before`` that gives the next page."""
    filters = run_filters(deployment, state, trigger, since, until)
    rows, after = runs_page(store, filters, run_cursor(before), limit)
    if after is not None:
        response.headers[NEXT_CURSOR] = run_cursor_text(after)
    return [run_view(row) for row in rows]


@router.get(
    "/runs/{run_id}", response_model=s.RunDetail, responses=s.error_responses(404), tags=["runs"]
)
def show_run(run_id: RunPath, ops: Ops) -> dict[str, Any]:
    """A run: state timeline, task runs with durations, parameters, error and traceback."""
    return _run_detail(ops, run_id)


@router.post(
    "/runs/{run_id}/cancel",
    response_model=s.CancelResponse,
    responses=s.error_responses(404, 409),
    tags=["runs"],
)
def cancel_run(
    run_id: RunPath, ops: Ops, body: Annotated[s.CancelRequest | None, Body()] = None
) -> dict[str, Any]:
    """Cancel a run: a waiting one at once ("cancelled"), a running one within a second
    ("requested"). 409 if it has already finished."""
    row, outcome = ops.cancel(run_id, (body or s.CancelRequest()).reason)
    return {"id": row.id, "outcome": outcome}


@router.post(
    "/runs/{run_id}/resume",
    response_model=s.RunDetail,
    responses=s.error_responses(404, 409, 422),
    tags=["runs"],
)
def resume_run(
    run_id: RunPath, ops: Ops, body: Annotated[s.RunResumeRequest | None, Body()] = None
) -> dict[str, Any]:
    """Resume a paused or suspended run with the input it waits for (``pause_flow_run``,
    ``suspend_flow_run``); 422 naming the field and the value if the input does not fit,
    409 if the run is not paused or its pause timed out."""
    row, _ = ops.resume_run(run_id, body.input if body is not None else None)
    return _run_detail(ops, row.id)


@router.post(
    "/runs/{run_id}/retry",
    status_code=201,
    response_model=s.RunDetail,
    responses=s.error_responses(404, 409),
    tags=["runs"],
)
def retry_run(run_id: RunPath, ops: Ops) -> dict[str, Any]:
    """Run a finished run's deployment again with the same parameters, as a new run."""
    return _run_detail(ops, ops.retry(run_id)["id"])


# Logs.


def _log_query(
    ops: Operations,
    deployment: str | None,
    run: str | None,
    level: str | None,
    since: str | None,
    after_id: int,
) -> LogQuery:
    flow_run_id = ops.run(run).id if run is not None else None
    return LogQuery(deployment, flow_run_id, level_number(level), since_time(since), after_id)


@router.get(
    "/logs", response_model=list[s.LogLine], responses=s.error_responses(404), tags=["logs"]
)
def read_logs(
    ops: Ops,
    deployment: NameQuery = None,
    run: RunQuery = None,
    level: LevelQuery = None,
    since: SinceQuery = None,
    after_id: AfterQuery = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 100,
) -> list[dict[str, Any]]:
    """Log lines oldest first: the newest ``limit``, or with ``after_id`` the first
    ``limit`` after it."""
    query = _log_query(ops, deployment, run, level, since, after_id or 0)
    rows = ops.store.search_logs(query, limit, newest=after_id is None)
    return [log_view(row) for row in rows]


@router.get(
    "/logs/stream",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
            "description": "Server-sent events: one `log` event per line, its id the line's.",
        },
        **s.error_responses(404),
    },
    tags=["logs"],
)
def stream_logs(
    request: Request,
    ops: Ops,
    deployment: NameQuery = None,
    run: RunQuery = None,
    level: LevelQuery = None,
    after_id: AfterQuery = None,
    last_event_id: Annotated[str | None, Header(max_length=30)] = None,
) -> StreamingResponse:
    """Follow new log lines as server-sent events, across runs as they start. Lines after
    ``after_id`` (or the ``Last-Event-ID`` a reconnecting client sends), else from now on."""
    start = after_id
    if start is None and last_event_id is not None:
        if not (last_event_id.isascii() and last_event_id.isdigit()) or (
            int(last_event_id) > MAX_LOG_ID
        ):
            raise ApiError(422, "Last-Event-ID must be a log line's id", "last-event-id")
        start = int(last_event_id)
    if start is None:
        start = ops.store.last_log_id()
    query = _log_query(ops, deployment, run, level, None, start)
    return StreamingResponse(
        log_events(request, ops.store, query),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


# Artifacts.


@router.get(
    "/artifacts",
    response_model=list[s.ArtifactView],
    responses=s.error_responses(404),
    tags=["artifacts"],
)
def list_artifacts(
    ops: Ops,
    key: ArtifactKeyQuery = None,
    run: RunQuery = None,
    limit: Annotated[int, Query(ge=1, le=MAX_ARTIFACTS)] = 50,
) -> list[dict[str, Any]]:
    """Artifacts runs made, newest first: a key's history, a run's (id or prefix), or all."""
    flow_run_id = ops.run(run).id if run is not None else None
    rows = ops.store.read_artifacts(key=key, flow_run_id=flow_run_id, limit=limit)
    return [artifact_view(row) for row in rows]


@router.get(
    "/artifacts/{key_or_id}",
    response_model=s.ArtifactView,
    responses=s.error_responses(404),
    tags=["artifacts"],
)
def show_artifact(key_or_id: ArtifactPath, store: StoreDep) -> dict[str, Any]:
    """An artifact: a key's latest, or the one with this id (or unique id prefix)."""
    return artifact_view(find_artifacts(store, key_or_id)[0])


# Run pools.


@router.get("/pools", response_model=list[s.PoolInfo], tags=["limits"])
def list_pools(store: StoreDep) -> list[dict[str, Any]]:
    """Run pools: slots, slots taken now, runs waiting for a slot, their deployments."""
    return pool_views(store)


# The daemons sharing the database.


@router.get("/daemons", response_model=list[s.DaemonInfo], tags=["daemon"])
def list_daemons(store: StoreDep) -> list[dict[str, Any]]:
    """The daemons sharing this PostgreSQL database, oldest first (none on SQLite, where
    one daemon serves it: see /healthz)."""
    return member_views(store)  # type: ignore[arg-type]


# Concurrency limits.


def _limits(store: ControlStore) -> list[dict[str, Any]]:
    limits = store.read_concurrency_limits()
    active = store.count_active_slots()
    return [
        {"tag": name[4:], "limit": limit, "active": active.get(name, 0)}
        for name, limit in sorted(limits.items())
        if name.startswith("tag:")
    ]


@router.get("/concurrency-limits", response_model=list[s.LimitInfo], tags=["limits"])
def list_limits(store: StoreDep) -> list[dict[str, Any]]:
    """Tag concurrency limits and the slots taken now."""
    return _limits(store)


@router.put("/concurrency-limits/{tag}", response_model=s.LimitInfo, tags=["limits"])
def set_limit(tag: TagPath, body: s.LimitRequest, ops: Ops) -> dict[str, Any]:
    """Allow at most ``limit`` running tasks tagged ``tag`` (0 blocks them)."""
    ops.set_limit(tag, body.limit)
    return next(item for item in _limits(ops.store) if item["tag"] == tag)


@router.delete(
    "/concurrency-limits/{tag}",
    status_code=204,
    response_class=Response,
    responses=s.error_responses(404),
    tags=["limits"],
)
def remove_limit(tag: TagPath, ops: Ops) -> Response:
    """Remove the limit on ``tag``."""
    ops.remove_limit(tag)
    return Response(status_code=204)


# Deadlines and freshness.


@router.get("/breaches", response_model=list[s.Breach], tags=["deployments"])
def list_breaches(
    store: StoreDep,
    deployment: NameQuery = None,
    open_only: Annotated[bool, Query(alias="open")] = False,
    limit: Annotated[int, Query(ge=1, le=MAX_BREACHES)] = 100,
) -> list[dict[str, Any]]:
    """Deadline and freshness breaches (late, deadline_missed, too_fast, stale), newest
    first: a deployment's or everyone's, only those not cleared with ``open=true``."""
    rows = store.read_breaches(deployment, open_only=open_only, limit=limit)
    return [breach_view(row) for row in rows]


# Audit and tokens.


@router.get("/audit", response_model=list[s.AuditEntry], tags=["audit"])
def read_audit(
    store: StoreDep, since: SinceQuery = None, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[dict[str, Any]]:
    """Who changed what, newest first: pauses, runs, cancels, retries, applies, tokens."""
    return [audit_view(row) for row in store.read_audit(since_time(since), limit)]


@router.get("/tokens", response_model=list[s.TokenInfo], tags=["tokens"])
def list_tokens(store: StoreDep) -> list[dict[str, Any]]:
    """Tokens: name, scope, creator, last use (never the token)."""
    return [token_view(row) for row in store.read_tokens()]


@router.post(
    "/tokens",
    status_code=201,
    response_model=s.TokenCreated,
    responses=s.error_responses(409),
    tags=["tokens"],
)
def create_token(body: s.TokenRequest, ops: Ops) -> dict[str, Any]:
    """Create a token; the response is the only time it is shown."""
    access = token_access(body.scope, body.read_only)
    life = None if body.expires is None else parse_expiry(body.expires)
    token = ops.create_token(body.name, access, life)
    [created] = [row for row in ops.store.read_tokens() if row.name == body.name]
    return {**token_view(created), "read_only": access is TokenAccess.READ, "token": token}


@router.delete(
    "/tokens/{name}",
    status_code=204,
    response_class=Response,
    responses=s.error_responses(404),
    tags=["tokens"],
)
def revoke_token(name: TokenPath, ops: Ops) -> Response:
    """Revoke a token: requests with it fail from now on."""
    ops.revoke_token(name)
    return Response(status_code=204)
