"""``gnomon deployments list | show | next | validate | apply``."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from gnomon.api._inputs import MAX_FIRES
from gnomon.cli._common import (
    complete_deployments,
    config_option,
    json_option,
    open_store,
    operations,
    print_json,
    print_table,
    reports_errors,
)

RECENT_RUNS = 5


@click.group("deployments")
def deployments_group() -> None:
    """Inspect, check and register deployments (the [[deployments]] of the config).

    \b
    Examples:
      gnomon deployments list
      gnomon deployments show nightly-report
      gnomon deployments validate /etc/gnomon/config.toml
      gnomon deployments apply --config /etc/gnomon/config.toml
    """


@deployments_group.command("list")
@config_option
@json_option
def deployments_list(config: Path | None, as_json: bool) -> None:
    """List deployments: schedule, timezone, paused, next fire, last runs' states.

    Deployments come from the config file, with what the store knows of them (pause, fire
    times, anchors); without a config file, from the store.

    \b
    Example:
      gnomon deployments list --config /etc/gnomon/config.toml --json
    """
    from gnomon.api._views import deployment_view

    store = open_store()
    rows = _rows(config, store)
    now = datetime.now(UTC)
    recent = store.read_recent_states([row["name"] for row in rows], RECENT_RUNS)
    listed = [deployment_view(row, now, recent.get(row["name"], [])) for row in rows]
    if as_json:
        print_json(listed)
        return
    for item in listed:
        item["last_runs"] = " ".join(_state_mark(run["state"]) for run in item["recent_runs"])
    print_table(listed, ["name", "schedule", "timezone", "paused", "next_fire", "last_runs"])


def _state_mark(state: str | None) -> str:
    """One short word per run, newest first, so a column of them stays readable."""
    return {"Completed": "ok", "Running": "run", None: "?"}.get(state, (state or "?").lower())


def _rows(config: Path | None, store: Any) -> list[dict[str, Any]]:
    """The config's deployments as store rows (the stored row where there is one; the file's
    definition, anchored now, where it was never registered); else the store's."""
    from gnomon._settings import find_config_file
    from gnomon.deployments import load_config
    from gnomon.deployments._sync import definition

    stored = {row["name"]: row for row in store.read_deployments()}
    if config is None and find_config_file() is None:
        return list(stored.values())
    result = load_config(config, check_flows=False)
    for problem in result.problems:
        click.echo(f"warning: {problem}", err=True)
    now = datetime.now(UTC)
    rows = []
    for deployment in result.config.deployments:
        row = stored.get(deployment.name)
        if row is None:
            row = {
                "name": deployment.name,
                **definition(deployment),
                "anchor": deployment.anchor or now,
                "paused": bool(deployment.paused),
                "paused_by": None,
                "paused_at": None,
                "paused_reason": None,
                "last_fire": None,
                "source_file": str(deployment.source_file or ""),
                "registered_at": None,
            }
        rows.append(row)
    return rows


@deployments_group.command("show")
@config_option
@click.argument("name", shell_complete=complete_deployments)
@json_option
@reports_errors
def deployments_show(config: Path | None, name: str, as_json: bool) -> None:
    """Show one deployment: schedule in words, next fires, pause, policies, last runs.

    \b
    Example:
      gnomon deployments show nightly-report
    """
    from gnomon.api._views import deployment_detail

    ops = operations()
    row = ops.deployment(name)
    recent = ops.store.read_recent_states([name], RECENT_RUNS)[name]
    view = deployment_detail(row, datetime.now(UTC), recent)
    if as_json:
        print_json(view)
        return
    _print_fields(view)


def _print_fields(view: dict[str, Any]) -> None:
    paused = "no"
    if view["paused"]:
        paused = f"yes, by {view['paused_by']} at {view['paused_at']}"
        if view["paused_reason"]:
            paused += f": {view['paused_reason']}"
    lines = [
        ("name", view["name"]),
        ("flow", view["flow"]),
        ("schedule", f"{view['schedule']} ({view['schedule_text']})"),
        ("timezone", view["timezone"] or "-"),
        ("paused", paused),
        ("next fires", ", ".join(view["next_fires"]) or "-"),
        ("last fire", view["last_fire"] or "-"),
        ("tags", ", ".join(view["tags"]) or "-"),
        ("parameters", _inline(view["parameters"])),
        ("policies", _inline(view["policies"])),
        ("description", view["description"] or "-"),
        ("source", view["source_file"] or "-"),
    ]
    width = max(len(label) for label, _ in lines)
    for label, value in lines:
        click.echo(f"{label.ljust(width)}  {value}")
    click.echo("last runs:")
    if not view["recent_runs"]:
        click.echo("  none")
    for run in view["recent_runs"]:
        click.echo(f"  {run['id']}  {run['state']:<10}  {run['scheduled_for']}")


def _inline(mapping: dict[str, Any]) -> str:
    import json

    return ", ".join(f"{key}={json.dumps(value)}" for key, value in mapping.items()) or "-"


@deployments_group.command("next")
@config_option
@click.argument("name", shell_complete=complete_deployments)
@click.option(
    "-n",
    "count",
    type=click.IntRange(1, MAX_FIRES),
    default=5,
    show_default=True,
    help="How many fire times.",
)
@json_option
@reports_errors
def deployments_next(config: Path | None, name: str, count: int, as_json: bool) -> None:
    """Print a deployment's next fire times (UTC), as the daemon will fire them.

    \b
    Example:
      gnomon deployments next nightly-report -n 10
    """
    from gnomon.api._views import iso, next_fires

    row = operations().deployment(name)
    if row["paused"]:
        click.echo(f"{name} is paused: it fires again once resumed", err=True)
    fires = [iso(fire) for fire in next_fires(row, datetime.now(UTC), count)]
    if as_json:
        print_json(fires)
        return
    for fire in fires:
        click.echo(fire)


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
    are problems), as the daemon would at start.

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
@reports_errors
def deployments_apply(config: Path | None) -> None:
    """Register the config's deployments in the store; a running daemon reloads them.

    The config is checked first (flows imported); with any problem nothing changes and the
    exit code is 2. Removed deployments stop scheduling and keep their history.

    \b
    Example:
      gnomon deployments apply --config /etc/gnomon/config.toml
    """
    synced = operations().apply(config)
    for label, names in (
        ("added", synced.added),
        ("changed", synced.changed),
        ("removed", synced.removed),
    ):
        for name in names:
            click.echo(f"{label}: {name}")
    click.echo(
        f"applied: {len(synced.added)} added, {len(synced.changed)} changed, "
        f"{len(synced.removed)} removed, {len(synced.unchanged)} unchanged"
    )
