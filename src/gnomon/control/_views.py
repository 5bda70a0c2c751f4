"""What operators see of deployments, runs, logs and the audit log: JSON-able dicts that the
CLI's ``--json``, its tables and the HTTP API all print, so the three always agree.

Secret-looking values (parameters named like password or token, ...) are masked here, on the
one way out, and so are their values in a run's messages, errors and tracebacks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from gnomon._secrets import mask, mask_text, secret_values
from gnomon.states import StateType

if TYPE_CHECKING:
    from gnomon.scheduling import MaintenanceWindow, Schedule, ScheduleSpec
    from gnomon.store import ControlStore
    from gnomon.store.rows import (
        ArtifactRow,
        AuditEntry,
        BreachRow,
        DeploymentRow,
        FlowRunRow,
        LogRow,
        RecentRun,
        TokenInfo,
    )

# What a view is: JSON-able values by name.
View = dict[str, Any]

RUN_ARTIFACTS = 100  # the newest of a run's artifacts its detail lists


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z (milliseconds), or None."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def schedule_of(row: DeploymentRow, windows: Sequence[MaintenanceWindow] = ()) -> Schedule | None:
    """A registered deployment's schedule, leaving out the maintenance ``windows`` that
    apply to it; None for one stored before a rule refused it (a sub-second interval),
    which shows as it was written and never fires."""
    from gnomon.deployments import stored_schedule, windows_for
    from gnomon.scheduling import ScheduleError

    try:
        schedule = stored_schedule(row)
    except ScheduleError:
        return None
    return schedule.with_windows(windows_for(windows, row.name, row.tags or ()))


def next_fires(
    row: DeploymentRow,
    after: datetime,
    count: int,
    windows: Sequence[MaintenanceWindow] = (),
) -> list[datetime]:
    """When its next ``count`` fires after ``after`` are due (nominal time plus the jitter
    offset), counted from its last fire if that is later; its calendars' and the
    ``windows``' times left out."""
    return [due for due, _ in next_fires_by_spec(row, after, count, windows)]


def next_fires_by_spec(
    row: DeploymentRow,
    after: datetime,
    count: int,
    windows: Sequence[MaintenanceWindow] = (),
) -> list[tuple[datetime, int]]:
    """``next_fires`` with the index of the spec each fire is of (the first listed that
    produces its time)."""
    schedule = schedule_of(row, windows)
    if schedule is None:
        return []
    last = row.last_fire
    return schedule.next_fires_by_spec(max(after, last) if last else after, count)


def fire_clock(
    row: DeploymentRow, windows: Sequence[MaintenanceWindow] = ()
) -> Callable[[datetime, int], list[datetime]]:
    """``next_fires`` of ``row`` with its schedule built once: for a caller asking about
    many spans (the overview's timeline asks bin by bin)."""
    schedule = schedule_of(row, windows)
    last = row.last_fire

    def fires(after: datetime, count: int) -> list[datetime]:
        if schedule is None:
            return []
        return schedule.next_fires(max(after, last) if last else after, count)

    return fires


def firing_from(row: DeploymentRow, now: datetime) -> datetime | None:
    """From when the deployment fires: ``now``, or once a pause that ends by itself ends
    (the fire at its end time included); None while paused until resumed."""
    if not row.paused:
        return now
    if row.paused_until is None:
        return None
    from gnomon.store import resumes_from

    return max(now, resumes_from(row.paused_until))


def deployment_view(
    row: DeploymentRow,
    now: datetime,
    recent: list[RecentRun] | None = None,
    windows: Sequence[MaintenanceWindow] = (),
) -> View:
    """A deployment as listed: schedule (and in words), zone, pause (and until when), next
    fire (after the pause, for one that ends by itself), last runs, and its source (the
    config file, or the script serving it)."""
    from gnomon.deployments import owner

    paused = bool(row.paused)
    schedule = schedule_of(row)
    start = firing_from(row, now)
    fires = [] if start is None else next_fires(row, start, 1, windows)
    view: View = {
        "name": row.name,
        "flow": row.flow,
        "schedule": schedule.written if schedule else f"{row.schedule_kind} {row.schedule}",
        "schedule_text": schedule.describe() if schedule is not None else row.schedule,
        "timezone": row.timezone if _zoned(row, schedule) else None,
        "paused": paused,
        "paused_by": row.paused_by,
        "paused_at": iso(row.paused_at),
        "paused_reason": row.paused_reason,
        "paused_until": iso(row.paused_until) if paused else None,
        "next_fire": iso(fires[0]) if fires else None,
        "last_fire": iso(row.last_fire),
        "tags": list(row.tags or []),
        "description": row.description,
        "source": owner(row),
    }
    if recent is not None:
        view["recent_runs"] = [
            {
                "id": run.id,
                "state": run.state_name,
                "scheduled_for": iso(run.scheduled_for),
            }
            for run in recent
        ]
    return view


def deployment_detail(
    row: DeploymentRow,
    now: datetime,
    recent: list[RecentRun],
    count: int = 5,
    breaches: Sequence[BreachRow] = (),
    windows: Sequence[MaintenanceWindow] = (),
) -> View:
    """Everything about one deployment: the listed fields, its schedule's specs and
    bounds, parameters, policies, next fires and the spec each is of (none while paused
    until resumed; after its end, for a pause that ends by itself), and its open
    ``breaches`` of deadlines and freshness."""
    view = deployment_view(row, now, recent, windows)
    view["open_breaches"] = [breach_view(breach) for breach in breaches]
    schedule = schedule_of(row)
    start = firing_from(row, now)
    upcoming = [] if start is None else next_fires_by_spec(row, start, count, windows)
    window = schedule.window if schedule is not None else None
    view.update(
        parameters=mask(row.parameters or {}),
        policies=row.policies or {},
        anchor=iso(row.anchor),
        source_file=row.source_file,
        registered_at=iso(row.registered_at),
        next_fires=[iso(due) for due, _ in upcoming],
        schedules=[spec_view(spec) for spec in schedule.specs] if schedule else [],
        after=[upstream.table() for upstream in schedule.after] if schedule else [],
        active_from=window.written_from if window else None,
        active_until=window.written_until if window else None,
        upcoming=[{"due": iso(due), "spec": index} for due, index in upcoming],
    )
    return view


def spec_view(spec: ScheduleSpec) -> View:
    """One spec of a deployment's schedule: as written, in words, its own parameters
    (masked), bounds and DST choices."""
    return {
        "kind": str(spec.kind),
        "expression": spec.expression,
        "text": spec.describe(),
        "parameters": mask(dict(spec.parameters)),
        "active_from": spec.window.written_from,
        "active_until": spec.window.written_until,
        "dst": spec.dst.table(),
    }


def _zoned(row: DeploymentRow, schedule: Schedule | None) -> bool:
    """Whether the deployment's zone matters to its fires (a cron or an rrule spec)."""
    if schedule is None:
        return row.schedule_kind == "cron"
    return any(spec.kind != "interval" for spec in schedule.specs)


def run_view(row: FlowRunRow) -> View:
    """A flow run as listed."""
    return {
        "id": row.id,
        "deployment": row.deployment_name,
        "flow": row.flow_name,
        "state": row.state_name,
        "trigger": row.trigger,
        "scheduled_for": iso(row.scheduled_for),
        "generation": row.generation,  # which run of its nominal time: 1, then retries
        "started_at": iso(row.start_time),
        "ended_at": iso(row.end_time),
    }


def run_listing_view(row: FlowRunRow) -> View:
    """A flow run as the dashboard lists it: as listed, with its name and duration."""
    return {
        **run_view(row),
        "name": row.name,
        "duration_s": _duration(row.start_time, row.end_time),
    }


def _duration(start: datetime | None, end: datetime | None) -> float | None:
    return round((end - start).total_seconds(), 3) if start and end else None


def run_text(row: FlowRunRow | None) -> Callable[[str | None], str | None]:
    """What shows a run's free text (messages, errors, tracebacks): with the secret values
    of its parameters masked, even in rows stored before the engine masked them."""
    secrets = frozenset(secret_values((row and row.parameters) or {}))

    def shown(text: str | None) -> str | None:
        return mask_text(text, secrets) if text and secrets else text

    return shown


def pause_view(store: ControlStore, row: FlowRunRow) -> View | None:
    """What a paused or suspended run waits for: its pause key, whether it suspended, until
    when, the input's JSON schema and description; None for a run that is not paused."""
    if row.state_type != StateType.PAUSED:
        return None
    pause = store.read_open_pause(row.id)
    if pause is None:
        return None
    return {
        "key": pause.pause_key,
        "suspended": pause.suspend,
        "since": iso(pause.created),
        "timeout_at": iso(pause.timeout_at),
        "input_schema": pause.input_schema,
        "description": pause.description,
    }


def run_detail(store: ControlStore, row: FlowRunRow, *, tasks: bool = True) -> View:
    """Everything about one run: timeline, task runs with durations (unless not ``tasks``:
    a page showing a run's thousands of tasks reads them a page at a time), parameters,
    error."""
    shown = run_text(row)
    view = run_listing_view(row)
    view.update(
        state_type=row.state_type,
        message=shown(row.state_message),
        parameters=mask(row.parameters or {}),
        tags=list(row.tags or []),
        requested_by=row.requested_by,
        retry_of=row.retry_of,
        caused_by=row.caused_by,
        caused=[run_view(caused) for caused in store.read_caused_runs(row.id)],
        worker_pid=row.worker_pid,
        exit_code=row.exit_code,
        signal=row.signal,
        error=(
            {
                "type": row.error_type,
                "message": shown(row.error_message),
                "traceback": shown(row.error_traceback),
            }
            if row.error_type or row.error_message
            else None
        ),
        timeline=[
            {
                "timestamp": iso(state.timestamp),
                "state": state.name,
                "message": shown(state.message),
            }
            for state in store.read_states(flow_run_id=row.id)
        ],
        pause=pause_view(store, row),
        task_runs=[
            {
                "id": task.id,
                "name": task.name,
                "state": task.state_name,
                "started_at": iso(task.start_time),
                "duration_s": _duration(task.start_time, task.end_time),
                "error": shown(task.error_message),
            }
            for task in (store.read_task_runs(row.id) if tasks else [])
        ],
        artifacts=[
            artifact_view(artifact)
            for artifact in store.read_artifacts(flow_run_id=row.id, limit=RUN_ARTIFACTS)
        ],
    )
    return view


def artifact_view(row: ArtifactRow) -> View:
    """An artifact: its key, type, description, data as stored (Prefect's form: a table
    is JSON text), the run and task run that made it, when it was made and last changed."""
    return {
        "id": row.id,
        "key": row.key,
        "type": row.type or None,
        "description": row.description,
        "data": row.data,
        "run_id": row.flow_run_id,
        "task_run_id": row.task_run_id,
        "created": iso(row.created),
        "updated": iso(row.updated),
    }


def log_view(row: LogRow) -> View:
    """A log line: time, level name, where it came from, message, structured context."""
    return {
        "id": row.id,
        "timestamp": iso(row.timestamp),
        "level": logging.getLevelName(row.level),
        "logger": row.logger,
        "deployment": row.deployment_name,
        "run_id": row.flow_run_id,
        "message": row.message,
        "extra": mask(row.extra or {}),
    }


def audit_view(row: AuditEntry) -> View:
    return {
        "timestamp": iso(row.timestamp),
        "actor": row.actor,
        "origin": row.origin,
        "action": row.action,
        "target": row.target,
        "reason": row.reason,
        "detail": mask(row.detail or {}),
    }


def breach_view(row: BreachRow) -> View:
    """A deadline or freshness breach: of which deployment, run (if one run's) and nominal
    time (for ``stale``, when the deployment went stale), the policy it broke and its
    value then, when it was found and cleared (None: open), whether it was notified."""
    from gnomon.scheduling import format_duration

    return {
        "id": row.id,
        "deployment": row.deployment_name,
        "kind": row.kind.value,
        "run_id": row.flow_run_id,
        "nominal_time": iso(row.nominal_time),
        "policy": row.kind.policy,
        "limit": format_duration(timedelta(seconds=row.limit_seconds)),
        "limit_seconds": row.limit_seconds,
        "detected_at": iso(row.detected_at),
        "cleared_at": iso(row.cleared_at),
        "open": row.cleared_at is None,
        "notified": row.notified,
    }


def token_view(row: TokenInfo) -> View:
    """An API token as listed: never the token or its hash."""
    from gnomon.store import TokenAccess

    return {
        "name": row.name,
        "scope": str(TokenAccess.of(row.access, row.read_only)),
        "expires": iso(row.expires_at),
        "created": iso(row.created),
        "created_by": row.created_by,
        "last_used": iso(row.last_used),
    }
