"""``gnomon runs list | show | cancel | resume | retry`` and ``gnomon run NAME``."""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from gnomon.cli._common import (
    SECONDS,
    STATE,
    changes_store,
    complete_deployments,
    config_option,
    daemon_holder,
    fast_store,
    iso,
    json_option,
    open_store,
    operations,
    print_json,
    print_table,
    reports_errors,
    since_option,
)
from gnomon.control import MAX_COUNT
from gnomon.states import StateName, StateType

if TYPE_CHECKING:
    from gnomon.states import StateFilter

RUN_COLUMNS = [
    "id",
    "deployment",
    "flow",
    "state",
    "trigger",
    "scheduled_for",
    "started_at",
    "ended_at",
]


@click.group("runs")
def runs_group() -> None:
    """Inspect, cancel, resume and retry flow runs.

    \b
    Examples:
      gnomon runs list --state failed --since 1d
      gnomon runs show 3f2a9c
      gnomon runs cancel 3f2a9c --reason "stuck on the CRM API"
      gnomon runs resume 3f2a9c --input approved=true
      gnomon runs retry 3f2a9c
    """


@runs_group.command("list")
@config_option
@click.option("--deployment", help="Only runs of this deployment.")
@click.option(
    "--state",
    type=STATE,
    metavar="STATE",
    help="Only runs in this state, any case: 'failed' for every failed run (Failed, TimedOut, "
    "Crashed), a state name (Completed, Running, Skipped, ...), or only:NAME for exactly that "
    "name (only:Failed leaves out TimedOut and Crashed).",
)
@since_option
@click.option(
    "--limit",
    type=click.IntRange(1, MAX_COUNT),
    default=50,
    show_default=True,
    help="At most this many runs, newest first.",
)
@json_option
@reports_errors
def runs_list(
    config: Path | None,
    deployment: str | None,
    state: StateFilter | None,
    since: datetime | None,
    limit: int,
    as_json: bool,
) -> None:
    """List flow runs, newest first.

    \b
    Examples:
      gnomon runs list --state failed --since 1d      # Failed, TimedOut and Crashed
      gnomon runs list --state only:Failed            # exactly the state named Failed
      gnomon runs list --deployment nightly-report --state completed --since 2h --limit 10
    """
    from gnomon.control import check_name, run_view

    if deployment is not None:
        check_name("deployment", deployment)
    rows = fast_store().read_runs(deployment, state, since=since, limit=limit)
    runs = [run_view(row) for row in rows]
    if as_json:
        print_json(runs)
        return
    if not runs:
        click.echo("no runs", err=True)
        return
    print_table(runs, RUN_COLUMNS)


@runs_group.command("show")
@config_option
@click.argument("run_id", metavar="RUN")
@json_option
@reports_errors
def runs_show(config: Path | None, run_id: str, as_json: bool) -> None:
    """Show a run: state timeline, task runs with durations, parameters, error, traceback.

    RUN is the run's id, or enough of its first characters to be unique.

    \b
    Example:
      gnomon runs show 3f2a9c
    """
    from gnomon.control import run_detail

    ops = operations()
    view = run_detail(ops.store, ops.run(run_id))
    if as_json:
        print_json(view)
        return
    _print_run(view)


def _pause_text(pause: dict[str, Any]) -> str:
    """What a paused run waits for, for `runs show`: the input's fields and the timeout."""
    schema = pause.get("input_schema") or {}
    fields = ", ".join(schema.get("properties") or {})
    wanted = f"input ({fields}): gnomon runs resume ID --input KEY=VALUE" if fields else "resume"
    until = f" until {pause['timeout_at']}" if pause.get("timeout_at") else ""
    kind = "suspended" if pause.get("suspended") else "paused"
    return f"{wanted}{until} ({kind})"


def _print_run(view: dict[str, Any]) -> None:
    fields = [
        ("id", view["id"]),
        ("name", view["name"]),
        ("deployment", view["deployment"] or "-"),
        ("flow", view["flow"]),
        ("state", view["state"] + (f": {view['message']}" if view["message"] else "")),
        ("trigger", view["trigger"] or "-"),
        ("scheduled for", view["scheduled_for"] or "-"),
        ("generation", str(view["generation"])),
        ("started", view["started_at"] or "-"),
        ("ended", view["ended_at"] or "-"),
        ("duration", f"{view['duration_s']} s" if view["duration_s"] is not None else "-"),
        ("parameters", json.dumps(view["parameters"])),
    ]
    if view["requested_by"]:
        fields.append(("requested by", view["requested_by"]))
    if view["retry_of"]:
        fields.append(("retry of", view["retry_of"]))
    if view["caused_by"]:
        fields.append(("caused by", view["caused_by"]))
    for index, caused in enumerate(view["caused"]):
        text = f"{caused['id']} {caused['deployment']} {caused['state']}"
        fields.append(("caused" if index == 0 else "", text))
    if view["exit_code"] is not None or view["signal"]:
        ended = f"exit {view['exit_code']}" if view["exit_code"] is not None else view["signal"]
        fields.append(("worker", f"pid {view['worker_pid']}, {ended}"))
    if pause := view.get("pause"):
        fields.append(("waits for", _pause_text(pause)))
    width = max(len(label) for label, _ in fields)
    for label, value in fields:
        click.echo(f"{label.ljust(width)}  {value}")
    click.echo("\ntimeline:")
    for state in view["timeline"]:
        message = f"  {state['message']}" if state["message"] else ""
        click.echo(f"  {state['timestamp']}  {state['state']}{message}")
    if view["task_runs"]:
        click.echo("\ntask runs:")
        print_table(view["task_runs"], ["name", "state", "started_at", "duration_s", "error"])
    if view["error"]:
        click.echo(f"\nerror: {view['error']['type']}: {view['error']['message']}")
        if view["error"]["traceback"]:
            click.echo(view["error"]["traceback"].rstrip())


@runs_group.command("cancel")
@config_option
@click.argument("run_id", metavar="RUN")
@click.option("--reason", help="Why, for the audit log and the run's state message.")
@reports_errors
@changes_store
def runs_cancel(config: Path | None, run_id: str, reason: str | None) -> None:
    """Cancel a run: a waiting one at once, a running one within a second (its worker is
    stopped, SIGTERM then SIGKILL). Exit 1 if it has already finished.

    \b
    Example:
      gnomon runs cancel 3f2a9c --reason "stuck on the CRM API"
    """
    row, outcome = operations().cancel(run_id, reason)
    if outcome == "cancelled":
        why = "it was suspended" if row.state_name == StateName.SUSPENDED else "it had not started"
        click.echo(f"cancelled {row.id} ({why})")
    else:
        click.echo(f"cancelling {row.id}: the daemon stops its worker within a second")


@runs_group.command("resume")
@config_option
@click.argument("run_id", metavar="RUN")
@click.option(
    "--input",
    "inputs",
    multiple=True,
    metavar="KEY=VALUE",
    help="A field of the input the run waits for (repeatable); VALUE is text for a text "
    "field, else read as JSON if it parses (5, true, [1,2]).",
)
@click.option("--input-json", metavar="JSON", help="The whole input as a JSON object.")
@reports_errors
@changes_store
def runs_resume(
    config: Path | None, run_id: str, inputs: tuple[str, ...], input_json: str | None
) -> None:
    """Resume a paused or suspended run (pause_flow_run, suspend_flow_run), with the input
    it waits for, checked against its model. A paused run goes on in its worker; a
    suspended one runs again from the top within a second. Exit 2 for input that does not
    fit (the field and the value named), 1 if the run is not paused or its pause timed out.

    \b
    Examples:
      gnomon runs resume 3f2a9c
      gnomon runs resume 3f2a9c --input approved=true --input note="looks good"
      gnomon runs resume 3f2a9c --input-json '{"approved": true}'
    """
    texts: dict[str, str] = {}
    for item in inputs:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r}: expected KEY=VALUE", param_hint="--input")
        texts[key] = text
    row, state = operations().resume_run(run_id, _input_object(input_json), texts)
    if state == StateName.RESUMING:
        click.echo(f"resumed {row.id}: it runs again from the top (Resuming)")
    else:
        click.echo(f"resumed {row.id}: it goes on (Running)")


def _input_object(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as error:
        raise click.BadParameter(f"not JSON: {error}", param_hint="--input-json") from None
    if not isinstance(value, dict):
        raise click.BadParameter("expected a JSON object", param_hint="--input-json")
    return value


@runs_group.command("retry")
@config_option
@click.argument("run_id", metavar="RUN")
@click.option("--wait", is_flag=True, help="Follow the new run; exit 0 if it completes, else 1.")
@reports_errors
@changes_store
def runs_retry(config: Path | None, run_id: str, wait: bool) -> None:
    """Run a finished run's deployment again with the same parameters, as a new run.

    The new run is the next generation of the same nominal time (its "scheduled for"),
    so what depends on that time sees it; refused while a run of that time is unfinished.

    \b
    Example:
      gnomon runs retry 3f2a9c --wait
    """
    ops = operations()
    row = ops.retry(run_id)
    nominal = iso(row.get("scheduled_for"))
    click.echo(
        f"retry of {row['retry_of']}: run {row['id']} queued"
        f" (generation {row['generation']} of {nominal})"
    )
    if wait:
        sys.exit(follow_run(row["id"]))


@click.command("run")
@config_option
@click.argument("name", shell_complete=complete_deployments)
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="A parameter for this run (repeatable); VALUE is read as JSON if it parses "
    "(5, true, [1,2]), else as text.",
)
@click.option("--force", is_flag=True, help="Start even if the overlap policy would not.")
@click.option("--wait", is_flag=True, help="Follow the run; exit 0 if it completes, else 1.")
@click.option(
    "--timeout",
    type=SECONDS,
    help="With --wait: give up waiting after this many seconds (exit 1; the run goes on).",
)
@reports_errors
@changes_store
def run_command(
    config: Path | None,
    name: str,
    params: tuple[str, ...],
    force: bool,
    wait: bool,
    timeout: float | None,
) -> None:
    """Run a deployment now, with its policies (--force overrides overlap).

    The daemon starts it within a second; with the daemon down it starts when the daemon
    does. With --wait the command follows the run and exits with its outcome: 0 Completed,
    1 anything else.

    \b
    Examples:
      gnomon run nightly-report
      gnomon run nightly-report --param day=2026-11-23 --param dry_run=true --wait
    """
    parameters = parse_params(params)
    row = operations().trigger(name, parameters, force=force)
    click.echo(f"run {row['id']} of {name} requested")
    if daemon_holder() is None:
        click.echo("no daemon is running on this store: the run starts when one does", err=True)
    if wait:
        sys.exit(follow_run(row["id"], timeout))


def parse_params(params: tuple[str, ...]) -> dict[str, Any]:
    parameters: dict[str, Any] = {}
    for item in params:
        key, sep, text = item.partition("=")
        if not sep or not key.isidentifier():
            raise click.BadParameter(
                f"{item!r}: expected KEY=VALUE with KEY a parameter name", param_hint="--param"
            )
        try:
            parameters[key] = json.loads(text)
        except ValueError:
            parameters[key] = text
    return parameters


def follow_run(run_id: str, timeout: float | None = None) -> int:
    """Print a run's state changes until it ends; 0 if it completed, else 1."""
    from gnomon.control import run_text
    from gnomon.states import FINAL_TYPES

    store = open_store()
    shown = run_text(store.read_flow_run(run_id))
    deadline = None if timeout is None else time.monotonic() + timeout
    seen = 0
    while True:
        # The run first: a final state is committed with its state row, so the states read
        # after a final run include it.
        row = store.read_flow_run(run_id)
        states = store.read_states(flow_run_id=run_id)
        for state in states[seen:]:
            message = f": {shown(state.message)}" if state.message else ""
            click.echo(f"{state.name}{message}")
        seen = len(states)
        if row is not None and row.state_type in FINAL_TYPES:
            if row.state_type != StateType.COMPLETED and row.error_type:
                click.echo(f"{row.error_type}: {shown(row.error_message)}", err=True)
            return 0 if row.state_type == StateType.COMPLETED else 1
        if deadline is not None and time.monotonic() >= deadline:
            click.echo(f"gave up waiting after {timeout} s; run {run_id} goes on", err=True)
            return 1
        time.sleep(0.2)
