"""``gnomon deployments list | show | next | explain | validate | apply | release``."""

from __future__ import annotations

import contextlib
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from gnomon.cli._common import (
    OperationFailed,
    changes_store,
    complete_deployments,
    config_option,
    json_option,
    open_store,
    operations,
    print_json,
    print_table,
    reload_timeout_option,
    reports_errors,
    store_lock,
)
from gnomon.control import MAX_FIRES
from gnomon.states import StateName

if TYPE_CHECKING:
    from collections.abc import Sequence

    from gnomon.control import Operations, ReloadOutcome
    from gnomon.daemon import DaemonAlreadyRunning
    from gnomon.deployments import Comparison
    from gnomon.scheduling import MaintenanceWindow
    from gnomon.store.rows import RecentRun

RECENT_RUNS = 5
# `next` and `explain`: how many fire times.
fires_option = click.option(
    "-n",
    "count",
    type=click.IntRange(1, MAX_FIRES),
    default=5,
    show_default=True,
    help="How many fire times.",
)


@click.group("deployments")
def deployments_group() -> None:
    """Inspect, check and register deployments (the [[deployments]] of the config).

    \b
    Examples:
      gnomon deployments list
      gnomon deployments show nightly-report
      gnomon deployments validate /etc/gnomon/config.toml
      gnomon deployments apply --config /etc/gnomon/config.toml
      gnomon deployments release nightly-report
    """


@deployments_group.command("list")
@config_option
@json_option
def deployments_list(config: Path | None, as_json: bool) -> None:
    """List what the daemon schedules: schedule, timezone, paused, next fire, last runs,
    and where the config file says otherwise.

    Deployments come from the store (what the daemon loaded), compared with the config
    file: one in the file but not loaded, loaded but no longer in the file, or changed in
    the file since it was loaded is marked in the CONFIG column (a reload applies the
    file). It answers with no daemon running too.

    \b
    Example:
      gnomon deployments list --config /etc/gnomon/config.toml --json
    """
    store = open_store()
    compared, config_file = _compared(config, store)
    now = datetime.now(UTC)
    recent = store.read_recent_states([each.name for each in compared], RECENT_RUNS)
    from gnomon.control import current_windows

    windows = current_windows(store, now)
    listed = [
        _view(each, config_file, now, recent.get(each.name, []), windows) for each in compared
    ]
    if as_json:
        print_json(listed)
    else:
        for item in listed:
            marks = " ".join(_state_mark(run["state"]) for run in item["recent_runs"])
            item["last_runs"] = marks or None
            item["config"] = _drift_text(item)
            item["paused"] = _paused_text(item)
        columns = ["name", "schedule", "timezone", "paused", "next_fire", "last_runs", "config"]
        from gnomon.deployments import CONFIG_SOURCE  # here: the fast commands skip pydantic

        if any(item["source"] != CONFIG_SOURCE for item in listed):  # a script serves some
            columns.append("source")
        print_table(listed, columns)
    _explain(listed, config_file)


def _paused_text(view: dict[str, Any]) -> str:
    """The PAUSED column: no, yes (until resumed), or until when, in the local zone."""
    from gnomon.control import local_text

    if not view["paused"]:
        return "no"
    until = view.get("paused_until")
    return f"until {local_text(datetime.fromisoformat(until))}" if until else "yes"


def _state_mark(state: str | None) -> str:
    """One short word per run, newest first, so a column of them stays readable."""
    marks: dict[str | None, str] = {StateName.COMPLETED: "ok", StateName.RUNNING: "run", None: "?"}
    return marks.get(state, (state or "?").lower())


def _compared(config: Path | None, store: Any) -> tuple[list[Comparison], Path | None]:
    """The store's deployments compared with the config file's (problems in the file are
    printed as warnings), and the file; without a config file, the store's alone."""
    from gnomon._settings import find_config_file
    from gnomon.deployments import Comparison, compare, load_config

    stored = store.read_deployments()
    alone = [Comparison(row.name, None, row, None) for row in stored]
    config_file = config or find_config_file()
    if config_file is None:
        return alone, None
    result = load_config(config_file, check_flows=False)
    for problem in result.problems:
        click.echo(f"warning: {problem}", err=True)
    if any(_whole_file(problem) for problem in result.problems):
        # Its deployments are unknown, not removed: comparing would say "not in file".
        click.echo(f"warning: cannot compare with {config_file}: it does not parse", err=True)
        return alone, None
    return compare(result.config.deployments, result.failed, stored), config_file


def _whole_file(problem: Any) -> bool:
    """Whether ``problem`` is with a file as a whole (unreadable, invalid TOML, a broken
    include), not with one deployment, target, calendar, window or setting."""
    entries = (problem.deployment, problem.notify, problem.calendar, problem.maintenance)
    return all(entry is None for entry in entries) and problem.field is None


def _view(
    compared: Comparison,
    config_file: Path | None,
    now: datetime,
    recent: list[RecentRun],
    windows: Sequence[MaintenanceWindow] = (),
) -> dict[str, Any]:
    """A deployment as listed (``deployment_view``), from the store where the daemon
    schedules it, else from the file (with no next fire: nothing fires it), plus how the
    file and the store agree."""
    from gnomon.control import deployment_view
    from gnomon.deployments import definition
    from gnomon.store.rows import DeploymentRow

    row = compared.row
    if row is None:
        assert compared.deployment is not None  # a comparison has one or the other
        deployment = compared.deployment
        # As the file has it, never stored: no pause of an operator's, no fire, no schema.
        row = DeploymentRow(
            **definition(deployment),
            name=deployment.name,
            anchor=deployment.anchor or (now if deployment.needs_anchor else None),
            source_file=None,
            source=None,
            active=False,
            paused=bool(deployment.paused),
            paused_by=None,
            paused_at=None,
            paused_reason=None,
            paused_until=None,
            config_paused=deployment.paused,
            last_fire=None,
            fires_from=None,
            definition_hash=None,
            registered_at=now,
            updated=now,
            parameter_schema=None,
        )
    view = deployment_view(row, now, recent, windows)
    if compared.row is None:
        view["next_fire"] = None
    view.update(
        loaded=compared.row is not None,
        in_config=None if config_file is None else compared.deployment is not None,
        config_drift=None if compared.drift is None else compared.drift.value,
        changed_fields=list(compared.changed),
    )
    return view


_DRIFT_TEXT = {
    None: "ok",
    "not_loaded": "not loaded",
    "not_in_config": "not in file",
    "invalid": "invalid in file",
}


def _drift_text(item: dict[str, Any]) -> str:
    from gnomon.deployments import CONFIG_SOURCE

    if item["in_config"] is None or item["source"] != CONFIG_SOURCE:
        return "-"
    if item["config_drift"] == "changed":
        return "changed: " + ",".join(item["changed_fields"])
    return _DRIFT_TEXT[item["config_drift"]]


def _explain(listed: list[dict[str, Any]], config_file: Path | None) -> None:
    """One line on stderr when no daemon runs, or when the file and the daemon disagree."""
    from gnomon.cli._common import daemon_holder

    differing = sum(item["config_drift"] is not None for item in listed)
    if daemon_holder() is None:
        starts = f" (it loads {config_file})" if config_file else ""
        click.echo(
            f"no daemon is running on this store: nothing fires until one starts{starts}",
            err=True,
        )
    elif differing:
        click.echo(
            f"{differing} deployment(s) differ between {config_file} and what the daemon "
            "loaded: `gnomon daemon reload` loads the file",
            err=True,
        )


@deployments_group.command("show")
@config_option
@click.argument("name", shell_complete=complete_deployments)
@json_option
@reports_errors
def deployments_show(config: Path | None, name: str, as_json: bool) -> None:
    """Show one deployment: schedule in words, next fires, pause, policies, last runs, and
    its open breaches of deadlines and freshness (`gnomon breaches ls` lists them all).

    \b
    Example:
      gnomon deployments show nightly-report
    """
    from gnomon.control import MAX_BREACHES, current_windows, deployment_detail

    ops = operations()
    row = ops.deployment(name)
    recent = ops.store.read_recent_states([name], RECENT_RUNS)[name]
    breaches = ops.store.read_breaches(name, open_only=True, limit=MAX_BREACHES)
    now = datetime.now(UTC)
    windows = current_windows(ops.store, now)
    view = deployment_detail(row, now, recent, breaches=breaches, windows=windows)
    if as_json:
        print_json(view)
        return
    _print_fields(view)


def _print_fields(view: dict[str, Any]) -> None:
    paused = _paused_text(view)
    if view["paused"]:
        paused += f", by {view['paused_by']} at {view['paused_at']}"
        if view["paused_reason"]:
            paused += f": {view['paused_reason']}"
    lines = [
        ("name", view["name"]),
        ("flow", view["flow"]),
        *_schedule_lines(view),
        ("timezone", view["timezone"] or "-"),
        ("paused", paused),
        ("next fires", ", ".join(view["next_fires"]) or "-"),
        ("last fire", view["last_fire"] or "-"),
        ("tags", ", ".join(view["tags"]) or "-"),
        ("parameters", _inline(view["parameters"])),
        ("policies", _inline(view["policies"])),
        ("description", view["description"] or "-"),
        ("source", _source_text(view)),
    ]
    width = max(len(label) for label, _ in lines)
    for label, value in lines:
        click.echo(f"{label.ljust(width)}  {value}")
    click.echo("last runs:")
    if not view["recent_runs"]:
        click.echo("  none")
    for run in view["recent_runs"]:
        click.echo(f"  {run['id']}  {run['state']:<10}  {run['scheduled_for']}")
    click.echo("open breaches:")
    if not view["open_breaches"]:
        click.echo("  none")
    for breach in view["open_breaches"]:
        run = f"run {breach['run_id'][:8]}" if breach["run_id"] else "deployment"
        click.echo(
            f"  {breach['kind']:<15}  {breach['nominal_time']}  {run}"
            f"  ({breach['policy']} = {breach['limit']}, since {breach['detected_at']})"
        )


def _schedule_lines(view: dict[str, Any]) -> list[tuple[str, str]]:
    """The schedule: as written and in words; a line per spec when it has several, or when
    its one spec has parameters of its own, bounds or DST choices."""
    specs = view["schedules"]
    lines = []
    if len(specs) == 1 and not (specs[0]["parameters"] or specs[0]["dst"]):
        lines.append(("schedule", f"{view['schedule']} ({specs[0]['text']})"))
    else:
        for index, spec in enumerate(specs):
            label = "schedules" if index == 0 else ""
            extra = f"; parameters {_inline(spec['parameters'])}" if spec["parameters"] else ""
            written = " ".join(spec["expression"].split())
            lines.append((label, f"#{index + 1} {spec['kind']} {written} ({spec['text']}){extra}"))
    if view["after"]:  # the upstreams: "after extract, crm (any)"
        from gnomon.scheduling import Upstream, after_words

        upstreams = after_words([Upstream.of(entry) for entry in view["after"]])
        lines.append(("after" if specs else "schedule", upstreams))
    if view["active_from"] or view["active_until"]:
        bounds = [f"from {view['active_from']}"] if view["active_from"] else []
        bounds += [f"until {view['active_until']}"] if view["active_until"] else []
        lines.append(("active", " ".join(bounds)))
    return lines or [("schedule", f"{view['schedule']} ({view['schedule_text']})")]


def _inline(mapping: dict[str, Any]) -> str:
    import json

    return ", ".join(f"{key}={json.dumps(value)}" for key, value in mapping.items()) or "-"


@deployments_group.command("next")
@config_option
@click.argument("name", shell_complete=complete_deployments)
@fires_option
@json_option
@reports_errors
def deployments_next(config: Path | None, name: str, count: int, as_json: bool) -> None:
    """Print a deployment's next fire times (UTC), as the daemon will fire them, and the
    times before them it will not, each with why: a calendar (exclude / only), a
    maintenance window, its pause. With several specs (schedules = [...]), each time with
    the spec it is the fire of (#1 is the first listed; a time two specs produce is the
    first's). A deployment that runs only after others (after = [...]) has no times of
    its own: "after extract".

    \b
    Example:
      gnomon deployments next nightly-report -n 10
    """
    from gnomon.control import context_of, local_text, next_view
    from gnomon.scheduling import after_words

    ops = operations()
    row = ops.deployment(name)
    now = datetime.now(UTC)
    if row.paused and row.paused_until is not None:
        ends = local_text(row.paused_until)
        click.echo(f"{name} is paused until {ends}: its fires run after that", err=True)
    elif row.paused:
        click.echo(f"{name} is paused: it fires again once resumed", err=True)
    context = context_of(ops.store, row, now)
    views = [] if context is None else next_view(context, count)
    if as_json:
        print_json(views)
        return
    schedule = context.schedule if context is not None else None
    if schedule is not None and schedule.after:  # runs at its upstreams' times: no list
        after = after_words(schedule.after)
        if not schedule.specs:
            click.echo(after)
            return
        click.echo(f"{name} also runs {after}, at their nominal times", err=True)
    specs = schedule.specs if schedule is not None else ()
    for view in views:
        line = view["time"]
        if len(specs) > 1 and view["spec"] is not None:
            line += f"  #{view['spec'] + 1} {specs[view['spec']].written}"
        excluded = view["excluded"]
        if excluded is not None:
            line += (
                f"  {excluded['reason']}"
                if excluded["kind"] == "more"
                else (f"  excluded: {excluded['reason']}")
            )
        click.echo(line)


@deployments_group.command("explain")
@config_option
@click.argument("name", shell_complete=complete_deployments)
@fires_option
@json_option
@reports_errors
def deployments_explain(config: Path | None, name: str, count: int, as_json: bool) -> None:
    """Why it fired or not: the last decisions with their reasons (fired, skipped by the
    overlap policy, missed, excluded by a calendar, a maintenance window or a pause), and
    the next fires with anything that will stop them.

    \b
    Example:
      gnomon deployments explain nightly-report
    """
    from gnomon.control import context_of, explain_view

    ops = operations()
    row = ops.deployment(name)
    context = context_of(ops.store, row, datetime.now(UTC))
    if context is None:
        raise OperationFailed(f"deployment {name!r} has a stored schedule gnomon cannot read")
    view = explain_view(ops.store, context, count)
    if as_json:
        print_json(view)
        return
    click.echo(f"{view['deployment']}: {view['schedule']}")
    for note in view["notes"]:
        click.echo(f"  note: {note}")
    click.echo("last decisions (newest first):")
    if not view["decisions"]:
        click.echo("  none")
    for decision in view["decisions"]:
        run = f" run {decision['run_id'][:8]} {decision['state']}" if decision["run_id"] else ""
        reason = f": {decision['reason']}" if decision["reason"] else ""
        click.echo(f"  {decision['time']}  {decision['decision']}{run}{reason}")
    click.echo("next fires:")
    if not view["next"]:
        click.echo("  none")
    for fire in view["next"]:
        found = fire["blockers"]
        said = "; ".join(blocker["reason"] for blocker in found) if found else "fires"
        click.echo(f"  {fire['time']}  {said}")


@deployments_group.command("validate")
@click.argument(
    "config_file",
    metavar="[CONFIG]",
    required=False,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
)
@config_option
@click.option(
    "--no-import", is_flag=True, help="Do not import the flows (faster; misses bad flows)."
)
def deployments_validate(config_file: Path | None, config: Path | None, no_import: bool) -> None:
    """Check a config without a daemon: every problem listed, exit 0 or 2.

    Flows are imported (an unimportable flow, or parameters its signature does not take,
    are problems), as the daemon would at start: in a separate process, each module within
    [daemon] flow_check_timeout, so a module that loops or crashes at import is reported.

    \b
    Example:
      gnomon deployments validate /etc/gnomon/config.toml
    """
    from gnomon.deployments import load_config

    result = load_config(config_file or config, check_flows=not no_import)
    for problem in result.problems:
        click.echo(str(problem), err=True)
    count = len(result.config.deployments)
    if result.problems:
        click.echo(f"{len(result.problems)} problem(s); {count} deployment(s) valid", err=True)
        sys.exit(2)
    click.echo(f"ok: {count} deployment(s), {len(result.config.notify)} notification target(s)")


@deployments_group.command("apply")
@config_option
@reload_timeout_option
@reports_errors
@changes_store
def deployments_apply(config: Path | None, timeout: float) -> None:
    """Apply the config's deployments: a running daemon reloads its config (as `gnomon
    daemon reload` does) and this waits for its outcome; with no daemon running, they are
    registered in the store for the next start.

    The rule is a reload's: a file that cannot be read or parsed, or a problem not confined
    to one deployment (two deployments with one name, a broken include, a bad [daemon] or
    [[notify]] entry), changes nothing (exit 2); a deployment with problems keeps its last
    good version and the rest applies (exit 1, listing the problems); else exit 0.
    Removed deployments stop scheduling and keep their history.

    \b
    Example:
      gnomon deployments apply --config /etc/gnomon/config.toml
    """
    from gnomon.cli._common import daemon_holder, report_reload

    holder = daemon_holder()
    if holder is None:
        outcome = _apply_alone(config)
        if outcome is not None:
            report_reload(outcome)
        # Daemons run on this database from other hosts: they reload their own configs.
        click.echo("gnomon daemons run on this database from other hosts: asking them to reload")
        report_reload(operations().reload(config, timeout))
    daemon_config = holder.get("config")
    if config is not None and daemon_config and Path(daemon_config) != config.absolute():
        click.echo(f"note: the daemon reloads its own config, {daemon_config}", err=True)
    report_reload(operations().reload(config, timeout))


def _apply_alone(config: Path | None) -> ReloadOutcome | None:
    """``apply`` with no daemon running on this host: under the store's lock, so none
    starts meanwhile, and a name a killed serving script left scheduled is taken over (as
    the daemon would at its start). None if daemons on other hosts hold the database (a
    PostgreSQL store's cluster): they are asked to reload instead."""
    from gnomon.cli._common import daemon_holder
    from gnomon.daemon import DaemonAlreadyRunning

    ops = operations()  # first: opening the store looks for a daemon, which this is not
    lock = store_lock()
    try:
        lock.acquire()
    except DaemonAlreadyRunning as error:
        if daemon_holder() is None and lock.server:
            return None
        raise OperationFailed(f"{error}: started meanwhile; nothing applied") from None
    try:
        click.echo("no gnomon daemon is running on this store: registering the deployments")
        return ops.apply(config, lock=contextlib.nullcontext())
    finally:
        lock.release()


@deployments_group.command("release")
@config_option
@click.argument("name", shell_complete=complete_deployments)
@reports_errors
@changes_store
def deployments_release(config: Path | None, name: str) -> None:
    """Retire a deployment that a serving script (gnomon.serve, flow.serve) left scheduled
    when it was killed (SIGKILL, a power loss) rather than stopped: nothing fires it any
    more, its runs stay, and the name is free again.

    A stopped script retires its deployments itself, and `gnomon daemon` or another
    script serving the same name takes a killed one's over at its start; this is for a
    name neither will. Refused while the script still serves the store, and for the
    config file's deployments (remove those from the file, then `gnomon deployments
    apply`).

    \b
    Example:
      gnomon deployments release greet-often
    """
    from gnomon.daemon import DaemonAlreadyRunning

    ops = operations()  # before the lock (see _apply_alone)
    try:
        with store_lock():  # no script serves the store while this holds it
            row = ops.release(name)
    except DaemonAlreadyRunning as held:
        _refuse_if_served(ops, name, held)
        row = ops.release(name)  # another process holds the store: not the script
    from gnomon.deployments import describe_source, owner

    click.echo(
        f"released: {name} ({describe_source(owner(row))} no longer schedules it; its runs stay)"
    )


def _refuse_if_served(ops: Operations, name: str, held: DaemonAlreadyRunning) -> None:
    """OperationFailed if what holds the store may be the script serving ``name``."""
    from gnomon.deployments import describe_source, owner

    source = owner(ops.deployment(name))
    if "config" not in held.holder:  # a database server's lock, taken on another host
        raise OperationFailed(
            f"{held}: it may be {describe_source(source)}; run this where it runs, or once it"
            " stopped"
        )
    if held.holder["config"] == source:
        raise OperationFailed(
            f"{describe_source(source)} still serves {name!r} (pid {held.holder.get('pid')}):"
            " stop it first (Ctrl-C or SIGTERM; it retires its deployments itself unless it"
            " serves with pause_on_shutdown=False)"
        )


def _source_text(view: dict[str, Any]) -> str:
    """Where a deployment is defined: its config file, or the script serving it."""
    from gnomon.deployments import CONFIG_SOURCE

    if view["source"] != CONFIG_SOURCE:
        return str(view["source"])
    return view["source_file"] or "-"
