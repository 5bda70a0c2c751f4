"""The HTTP API's request and response bodies, so its OpenAPI schema says exactly what each
route takes and gives.

Responses mirror the views of ``_views`` (what the CLI's ``--json`` prints) field for field;
FastAPI checks every response against them, so the schema cannot drift from the views.
Requests forbid unknown fields: a misspelt ``cancel_runing`` is an error, not ignored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from gnomon._names import NAME_PATTERN, NAME_RULE, is_name
from gnomon.control import MAX_LIMIT, check_parameters
from gnomon.exceptions import InvalidInput

RUN_ID_PATTERN = r"^[0-9a-f]{4,32}$"


def valid_name(value: str) -> str:
    if not is_name(value):  # the pattern cannot say "not only dots"; this can
        raise ValueError(f"use {NAME_RULE}")
    return value


Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=100), AfterValidator(valid_name)]
Reason = Annotated[str | None, Field(max_length=1000)]


def _parameters(value: dict[str, Any]) -> dict[str, Any]:
    """A run's parameters by the rule the CLI's ``--param`` follows too (``check_parameters``:
    identifier names, standard JSON values, a size limit)."""
    try:
        check_parameters(value)
    except InvalidInput as error:
        raise ValueError(str(error)) from None
    return value


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


PauseText = Annotated[str | None, Field(max_length=100)]


class PauseEnd(Request):
    """When a pause ends by itself: ``until`` an ISO 8601 time (without an offset, in the
    daemon's machine's local zone) or ``for`` a duration from now ("2h", "PT30M"); neither:
    when resumed."""

    until: PauseText = None
    for_: PauseText = Field(default=None, alias="for")


class PauseRequest(PauseEnd):
    reason: Reason = None
    cancel_running: bool = False


class ResumeRequest(Request):
    reason: Reason = None


class SelectRequest(Request):
    """Which deployments: ``names``, or ``all``, or those with ``tag`` (exactly one)."""

    names: Annotated[list[Name], Field(max_length=1000)] = []
    all: bool = False
    tag: Name | None = None
    reason: Reason = None


class SelectPauseRequest(SelectRequest, PauseEnd):
    cancel_running: bool = False


class RunRequest(Request):
    """A manual run: ``parameters`` update the deployment's; ``force`` overrides overlap."""

    parameters: Annotated[dict[str, Any], AfterValidator(_parameters)] = {}
    force: bool = False


class CancelRequest(Request):
    reason: Reason = None


class LimitRequest(Request):
    limit: Annotated[int, Field(ge=0, le=MAX_LIMIT)]


class TokenRequest(Request):
    name: Name
    scope: Literal["read", "operate", "admin"] | None = Field(
        None,
        description="read: GET only; operate: also pause, resume, run, cancel and retry;"
        " admin (the default): everything.",
    )
    read_only: bool = Field(False, description="The same as scope read.")
    expires: str | None = Field(
        None,
        max_length=100,
        description="Valid for this long from now (30d, 12h, P90D); by default until revoked.",
    )


# Responses.


class Problem(BaseModel):
    field: str | None = None
    message: str


class ErrorBody(BaseModel):
    """Every error: a message, and the field it is about when there is one."""

    error: str
    field: str | None = None
    problems: list[Problem] | None = None


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI's ``responses`` entry for routes that answer ``codes`` with an ErrorBody."""
    return {code: {"model": ErrorBody} for code in codes}


class RecentRun(BaseModel):
    id: str
    state: str | None
    scheduled_for: str | None


class DeploymentSummary(BaseModel):
    name: str
    flow: str
    schedule: str
    schedule_text: str
    timezone: str | None
    paused: bool
    paused_by: str | None
    paused_at: str | None
    paused_reason: str | None
    paused_until: str | None  # when the pause ends by itself (null: when resumed)
    next_fire: str | None
    last_fire: str | None
    tags: list[str]
    description: str | None
    # Who defines it: "config" (the config file) or "serve:<script path>" (gnomon.serve).
    source: str
    recent_runs: list[RecentRun]


class ScheduleSpecView(BaseModel):
    """One spec of a deployment's schedule (a cron, an interval or an rrule)."""

    kind: Literal["cron", "interval", "rrule"]
    expression: str  # as written
    text: str  # in words, with its bounds and DST choices
    parameters: dict[str, Any]  # its own, merged over the deployment's for its runs
    active_from: str | None
    active_until: str | None
    dst: dict[str, str]  # the DST choices it states: repeated, skipped


class UpcomingFire(BaseModel):
    due: str
    spec: int  # the index in schedules of the spec it is the fire of


class Breach(BaseModel):
    """A deadline or freshness breach: ``kind`` late, deadline_missed, too_fast or stale;
    ``nominal_time`` its run's (for stale: when the deployment went stale); ``policy`` and
    ``limit`` what it broke, as set then; ``cleared_at`` None while it is open."""

    id: int
    deployment: str
    kind: Literal["late", "deadline_missed", "too_fast", "stale"]
    run_id: str | None
    nominal_time: str | None
    policy: Literal["late_after", "deadline", "min_duration", "fresh_within"]
    limit: str
    limit_seconds: float
    detected_at: str | None
    cleared_at: str | None
    open: bool
    notified: bool


class UpstreamView(BaseModel):
    deployment: str
    on: Literal["completed", "failed", "any"]


class DeploymentDetail(DeploymentSummary):
    open_breaches: list[Breach]
    parameters: dict[str, Any]
    policies: dict[str, Any]
    anchor: str | None
    source_file: str | None
    registered_at: str | None
    next_fires: list[str]
    schedules: list[ScheduleSpecView]
    after: list[UpstreamView] = Field(
        default_factory=list,
        description="The upstreams whose runs' ends start this deployment's (after = [...]).",
    )
    active_from: str | None
    active_until: str | None
    upcoming: list[UpcomingFire]


class PauseResponse(BaseModel):
    paused: list[str]
    already_paused: list[str]
    cancelled_runs: list[str]
    paused_until: str | None  # when the pause asked for ends by itself (null: when resumed)


class ResumeResponse(BaseModel):
    resumed: list[str]
    not_paused: list[str]


class ApplyResponse(BaseModel):
    """A reload's outcome: applied, partial (``kept_last_good`` kept their last good
    version), refused (nothing changed), with the problems found; or pending (the daemon
    has not answered yet)."""

    status: Literal["applied", "partial", "refused", "pending"]
    request: int | None = None
    added: list[str] = []
    removed: list[str] = []
    changed: dict[str, list[str]] = {}  # the fields that changed, by deployment
    kept_last_good: list[str] = []
    problems: list[str] = []


class RunSummary(BaseModel):
    id: str
    deployment: str | None
    flow: str
    state: str
    trigger: str | None
    scheduled_for: str | None
    generation: int = 1
    started_at: str | None
    ended_at: str | None


class RunError(BaseModel):
    type: str | None
    message: str | None
    traceback: str | None


class StateEntry(BaseModel):
    timestamp: str | None
    state: str
    message: str | None


class TaskRunSummary(BaseModel):
    id: str
    name: str
    state: str
    started_at: str | None
    duration_s: float | None
    error: str | None


class ArtifactView(BaseModel):
    id: str
    key: str | None
    type: str | None
    description: str | None
    data: Any
    run_id: str | None
    task_run_id: str | None
    created: str | None
    updated: str | None


class RunPause(BaseModel):
    key: str
    suspended: bool
    since: str | None
    timeout_at: str | None
    input_schema: dict[str, Any] | None
    description: str | None


class RunResumeRequest(Request):
    input: dict[str, Any] | None = Field(
        None, description="The input the run waits for, checked against its pause's schema."
    )


class RunDetail(RunSummary):
    name: str
    state_type: str
    message: str | None
    parameters: dict[str, Any]
    tags: list[str]
    duration_s: float | None
    requested_by: str | None
    retry_of: str | None
    caused_by: str | None = Field(
        None, description="The upstream run whose end decided this run (trigger upstream)."
    )
    caused: list[RunSummary] = Field(
        default_factory=list, description="The downstream runs this run's end decided."
    )
    worker_pid: int | None
    exit_code: int | None
    signal: str | None
    error: RunError | None
    timeline: list[StateEntry]
    pause: RunPause | None = None
    task_runs: list[TaskRunSummary]
    artifacts: list[ArtifactView]


class CancelResponse(BaseModel):
    id: str
    outcome: Literal["cancelled", "requested"]


class LogLine(BaseModel):
    id: int
    timestamp: str | None
    level: str
    logger: str | None
    deployment: str | None
    run_id: str | None
    message: str
    extra: dict[str, Any]


class AuditEntry(BaseModel):
    timestamp: str | None
    actor: str
    origin: str
    action: str
    target: str | None
    reason: str | None
    detail: dict[str, Any]


class LimitInfo(BaseModel):
    tag: str
    limit: int
    active: int


class PoolInfo(BaseModel):
    """A run pool ([[pools]]): its slots, those its runs hold now, the runs waiting for
    one (AwaitingPool) and the deployments that name it."""

    name: str
    slots: int
    taken: int
    waiting: int
    deployments: list[str]


class DaemonInfo(BaseModel):
    """A daemon sharing the database (PostgreSQL): where it runs, its version and part,
    its workers, its last heartbeat (seconds ago, by the database's clock), and the
    deployments whose definition it loaded otherwise than the scheduler did."""

    id: str
    host: str
    pid: int
    version: str
    scheduler: bool
    workers: int
    busy: int
    idle: int
    heartbeat_at: datetime
    heartbeat_age: float
    lease_left: float
    differing: list[str]
    missing: list[str]


class TokenInfo(BaseModel):
    name: str
    scope: Literal["read", "operate", "admin"]
    expires: str | None
    created: str | None
    created_by: str | None
    last_used: str | None


class TokenCreated(BaseModel):
    name: str
    scope: Literal["read", "operate", "admin"]
    read_only: bool
    expires: str | None
    token: str = Field(description="The bearer token: shown this once, store it now.")


class Health(BaseModel):
    """The daemon's health: "ok", "degraded" (still scheduling; ``reason`` says what
    fails) or "stuck" (answered with 503), and how long ago its loop last ticked."""

    status: Literal["ok", "degraded", "stuck"]
    last_tick_age_seconds: float | None = None
    reason: str | None = None


# Maintenance windows and explain.


class MaintenanceRequest(Request):
    """A maintenance window from ``start`` (default: now) until ``end`` or for ``for``
    (ISO 8601 times, without an offset in the daemon machine's local zone; a duration like
    "2h"), for the ``deployments`` named or ``tags`` (neither: every deployment)."""

    start: PauseText = None
    end: PauseText = None
    for_: PauseText = Field(default=None, alias="for")
    deployments: Annotated[list[Name], Field(max_length=1000)] = []
    tags: Annotated[list[Name], Field(max_length=100)] = []
    reason: Reason = None


class MaintenanceWindow(BaseModel):
    """A window; ``state`` upcoming, active or past; ``source`` operator (added by the CLI
    or the API) or config (a [[maintenance]] entry, ``name`` its name)."""

    id: int
    start: str | None
    end: str | None
    state: Literal["upcoming", "active", "past"]
    reason: str | None
    deployments: list[str]
    tags: list[str]
    source: Literal["operator", "config"]
    name: str | None
    created: str | None
    created_by: str | None


class Blocker(BaseModel):
    """What stops a fire: ``kind`` paused, calendar, maintenance, overlap (or "more" in a
    listing: the rest of a row of excluded times), ``by`` what or who, ``reason`` in words."""

    kind: str
    by: str | None
    reason: str


class ComingFire(BaseModel):
    time: str | None
    spec: int | None
    blockers: list[Blocker]


class Decision(BaseModel):
    """A past decision: a run's (fired, skipped, missed, manual, retry) or, with no run,
    "excluded (calendar|maintenance|paused)" or "none"."""

    time: str | None
    decision: str
    reason: str | None
    run_id: str | None
    state: str | None
    trigger: str | None


class Explanation(BaseModel):
    deployment: str
    now: str | None
    schedule: str
    notes: list[str]
    decisions: list[Decision]
    next: list[ComingFire]
