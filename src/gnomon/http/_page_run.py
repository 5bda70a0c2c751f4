"""The run page: a run's state timeline, its task runs as a Gantt chart with every retry,
its artifacts (rendered and sanitised: ``_artifacts``), its parameters (secrets masked),
its error with the traceback, and its logs, followed live while it runs; cancel, retry,
and resume a paused run with a form built from the input its pause waits for.

The notification links (``/runs/<id>``) land here; an id prefix works as on the command
line. A run with thousands of task runs shows them a page at a time (``TASK_PAGE``), with
the count of each state over all of them.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from anyio import to_thread
from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse

from gnomon.control import UnknownName, log_view, run_detail, run_text
from gnomon.exceptions import InvalidInput
from gnomon.http._artifacts import shown_artifact
from gnomon.http._dashboard import act, checked_form, not_found, operations, page
from gnomon.http._streams import log_events
from gnomon.states import FINAL_TYPES, StateName, StateType
from gnomon.store import LogQuery

if TYPE_CHECKING:
    from gnomon.store import ControlStore
    from gnomon.store.rows import StateRow, TaskRunRow

TASK_PAGE = 200  # task runs drawn at once: a page of a 10,000-task run draws in well under 1 s
LOG_LINES = 500  # the newest lines shown; the stream adds what comes after them
AXIS = 1000.0  # the Gantt's width in SVG user units
CANCELLED = {
    "cancelled": "Cancelled: it had not started.",
    "requested": "Cancel requested: the run stops within a second.",
}


RESUMED = {
    StateName.RUNNING: "Resumed: the run goes on.",
    StateName.RESUMING: "Resumed: the run starts again from the top within a second.",
}
INPUT_PREFIX = "input."  # the resume form's fields: input.<field name>


@dataclass(frozen=True, slots=True)
class InputField:
    """A field of the resume form, from a property of the pause's input schema: its name,
    label, widget (text, number, choice, json), choices, default text and help."""

    name: str
    label: str
    widget: str
    required: bool
    default: str
    choices: tuple[str, ...] = ()
    help: str = ""


def input_fields(schema: dict[str, Any] | None) -> list[InputField]:
    """The resume form of a pause that waits for input of ``schema``: one field per
    property, its widget by its JSON type (booleans and enums a choice, numbers a number,
    text a line, anything else JSON)."""
    if not schema:
        return []
    required = set(schema.get("required") or ())
    fields = []
    for name, prop in (schema.get("properties") or {}).items():
        kind = prop.get("type")
        choices: tuple[str, ...] = ()
        if kind == "boolean":
            widget, choices = "choice", ("true", "false")
        elif "enum" in prop:
            widget, choices = "choice", tuple(json.dumps(v).strip('"') for v in prop["enum"])
        elif kind in ("integer", "number"):
            widget = "number"
        elif kind == "string":
            widget = "text"
        else:
            widget = "json"
        default = prop.get("default")
        shown = "" if "default" not in prop else _default_text(default, kind)
        fields.append(
            InputField(
                name=INPUT_PREFIX + name,
                label=str(prop.get("title") or name),
                widget=widget,
                required=name in required,
                default=shown,
                choices=choices,
                help=str(prop.get("description") or ""),
            )
        )
    return fields


def _default_text(value: Any, kind: Any) -> str:
    return value if kind == "string" and isinstance(value, str) else json.dumps(value)


@dataclass(frozen=True, slots=True)
class Bar:
    """One stretch of a timeline: where it starts and how wide it is on the axis, what
    it was (a state, or a task run's attempt and how it ended) and when."""

    x: float
    width: float
    state: str
    label: str


def add_routes(app: FastAPI) -> None:
    @app.get("/runs/{run_id}", include_in_schema=False)
    def run_page(request: Request, run_id: str, tasks: str = "0") -> Response:
        ops = operations(request)
        try:
            row = ops.run(run_id)
        except (UnknownName, InvalidInput) as error:
            return not_found(request, str(error))
        offset = int(tasks) if tasks.isascii() and tasks.isdigit() and len(tasks) < 9 else 0
        return page(request, "run.html", current="runs", **_run_page(ops.store, row, offset))

    @app.get("/runs/{run_id}/logs/stream", include_in_schema=False)
    def run_log_stream(request: Request, run_id: str, after_id: str = "0") -> Response:
        """The run's new log lines as server-sent events, after ``after_id`` (or the
        ``Last-Event-ID`` a reconnecting browser sends, so no line shows twice); the stream
        ends once the run is over and its last lines are sent."""
        ops = operations(request)
        try:
            row = ops.run(run_id)
        except (UnknownName, InvalidInput) as error:
            return not_found(request, str(error))
        start = max(_line_id(after_id), _line_id(request.headers.get("last-event-id", "")))
        query = LogQuery(None, row.id, None, None, start)

        def finished() -> bool:
            now = ops.store.read_flow_run(row.id)
            return now is None or now.state_type in FINAL_TYPES

        return StreamingResponse(
            log_events(request, ops.store, query, finished),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @app.post("/actions/runs/{run_id}/cancel", include_in_schema=False)
    async def cancel_action(request: Request, run_id: str) -> Response:
        form = await checked_form(request)
        reason = str(form.get("reason") or "").strip() or None
        action = functools.partial(
            act,
            request,
            lambda ops: ops.cancel(run_id, reason)[1],
            lambda outcome: CANCELLED.get(outcome, outcome),
            home=f"/runs/{quote(run_id, safe='')}",
        )
        return await to_thread.run_sync(action)

    @app.post("/actions/runs/{run_id}/resume", include_in_schema=False)
    async def resume_action(request: Request, run_id: str) -> Response:
        form = await checked_form(request)
        texts = {
            key[len(INPUT_PREFIX) :]: value
            for key, value in form.items()
            if key.startswith(INPUT_PREFIX) and value != ""
        }
        action = functools.partial(
            act,
            request,
            lambda ops: ops.resume_run(run_id, None, texts)[1],
            lambda state: RESUMED.get(state, f"Resumed: {state}."),
            home=f"/runs/{quote(run_id, safe='')}",
        )
        return await to_thread.run_sync(action)

    @app.post("/actions/runs/{run_id}/retry", include_in_schema=False)
    async def retry_action(request: Request, run_id: str) -> Response:
        await checked_form(request)
        action = functools.partial(
            act,
            request,
            lambda ops: ops.retry(run_id),
            lambda new: f"Retrying as run {new['id'][:8]}.",
            lambda new: f"/runs/{new['id']}",
            home=f"/runs/{quote(run_id, safe='')}",
        )
        return await to_thread.run_sync(action)


def _line_id(text: str) -> int:
    """A log line id given by the browser, or 0 for anything else."""
    return int(text) if text.isascii() and text.isdigit() and len(text) < 19 else 0


def _run_page(store: ControlStore, row: Any, offset: int) -> dict[str, Any]:
    """What the run page shows of ``row``: its detail, its state timeline as bars, a page
    of its task runs with their attempts as bars, and its newest log lines."""
    now = datetime.now(UTC)
    view = run_detail(store, row, tasks=False)
    final = row.state_type in FINAL_TYPES
    counts = store.count_task_states(row.id)
    shown = store.read_task_runs(row.id, offset, TASK_PAGE)
    states = store.read_task_states([task.id for task in shown])
    start, end = _axis(row, now)
    logs = store.search_logs(LogQuery(None, row.id, None, None, 0), LOG_LINES, newest=True)
    deployment = store.read_deployment(row.deployment_name) if row.deployment_name else None
    pause = view.get("pause")
    return {
        "run": view,
        "resume_fields": input_fields(pause["input_schema"]) if pause else [],
        "zone": deployment.timezone if deployment is not None else None,
        "final": final,
        "states": _state_bars(view["timeline"], start, end),
        "axis": {"start": start.isoformat(), "end": end.isoformat()},
        "tasks": _task_rows(shown, states, start, end, now, run_text(row)),
        "task_counts": sorted(counts.items()),
        "task_total": sum(counts.values()),
        "task_offset": offset,
        "task_page": TASK_PAGE,
        "logs": [log_view(line) for line in logs],
        "last_log_id": logs[-1].id if logs else store.last_log_id(),
        "artifacts": [shown_artifact(artifact) for artifact in view["artifacts"]],
    }


def _axis(row: Any, now: datetime) -> tuple[datetime, datetime]:
    """The time the charts span: the run's, from its start (or creation) to its end (or
    now, while it runs); its task runs happen within it."""
    start = row.start_time or row.created
    end = row.end_time if row.state_type in FINAL_TYPES and row.end_time else now
    return start, max(end, start + timedelta(seconds=1))


def _place(at: datetime, until: datetime, start: datetime, end: datetime) -> tuple[float, float]:
    """Where a stretch from ``at`` to ``until`` sits on the axis, at least visible."""
    span = (end - start).total_seconds()
    x = max(0.0, min(AXIS, (at - start).total_seconds() / span * AXIS))
    right = max(0.0, min(AXIS, (until - start).total_seconds() / span * AXIS))
    return round(x, 2), round(max(right - x, 2.0), 2)


def _state_bars(timeline: list[dict[str, Any]], start: datetime, end: datetime) -> list[Bar]:
    """The run's states, each lasting until the next one (the last until the axis' end)."""
    bars = []
    for index, state in enumerate(timeline):
        at = datetime.fromisoformat(state["timestamp"])
        nxt = timeline[index + 1]["timestamp"] if index + 1 < len(timeline) else None
        until = datetime.fromisoformat(nxt) if nxt else end
        x, width = _place(at, until, start, end)
        bars.append(
            Bar(x, width, state["state"] or "?", f"{state['state']} from {state['timestamp']}")
        )
    return bars


def _task_rows(
    tasks: list[TaskRunRow],
    states: list[StateRow],
    start: datetime,
    end: datetime,
    now: datetime,
    masked: Callable[[str | None], str | None],
) -> list[dict[str, Any]]:
    """Each task run with its attempts as bars: an attempt runs from a Running state to
    the state after it (Failed, AwaitingRetry, Completed, ...), or on until now. Errors
    are shown ``masked`` (the run's secret parameters hidden in them)."""
    by_task: dict[str, list[StateRow]] = {}
    for state in states:
        by_task.setdefault(state.task_run_id or "", []).append(state)
    rows = []
    for task in tasks:
        bars = []
        opened: StateRow | None = None
        for state in by_task.get(task.id, []):
            if state.type == StateType.RUNNING:
                opened = state
                continue
            if opened is not None:
                bars.append(_attempt(opened, state.timestamp, state.name or state.type, start, end))
                opened = None
        if opened is not None:
            bars.append(
                _attempt(opened, end if task.end_time else now, StateName.RUNNING, start, end)
            )
        rows.append(
            {
                "id": task.id,
                "name": task.name,
                "state": task.state_name or "?",
                "attempts": task.run_count,
                "started_at": task.start_time.isoformat() if task.start_time else None,
                "duration_s": round((task.end_time - task.start_time).total_seconds(), 3)
                if task.start_time and task.end_time
                else None,
                "error": masked(task.error_message),
                "bars": bars,
            }
        )
    return rows


def _attempt(
    opened: StateRow, until: datetime, outcome: str, start: datetime, end: datetime
) -> Bar:
    x, width = _place(opened.timestamp, until, start, end)
    seconds = (until - opened.timestamp).total_seconds()
    label = f"attempt {opened.attempt or 1}: {outcome} after {seconds:.3f} s"
    return Bar(x, width, outcome, label)
