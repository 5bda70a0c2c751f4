"""``gnomon deployments list`` and ``gnomon runs list``: what is scheduled and what ran."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from gnomon.cli._common import (
    config_option,
    iso,
    json_option,
    print_json,
    print_table,
    settings,
)


@click.group("deployments")
def deployments_group() -> None:
    """Inspect deployments (the [[deployments]] of the config).

    \b
    Example:
      gnomon deployments list --config /etc/gnomon/config.toml
    """


@deployments_group.command("list")
@config_option
@json_option
def deployments_list(config: Path | None, as_json: bool) -> None:
    """List deployments: schedule, timezone, paused, next fire.

    \b
    Example:
      gnomon deployments list --config /etc/gnomon/config.toml --json
    """
    from gnomon.deployments import load_config
    from gnomon.store import get_store

    settings()  # a config that cannot be read is reported, not a traceback
    result = load_config(config, check_flows=False)
    for problem in result.problems:
        click.echo(f"warning: {problem}", err=True)
    rows = {row["name"]: row for row in get_store().read_deployments()}
    now = datetime.now(UTC)
    listed = [_deployment_view(d, rows.get(d.name), now) for d in result.config.deployments]
    if as_json:
        print_json(listed)
    else:
        print_table(listed, ["name", "schedule", "timezone", "paused", "next_fire"])


def _deployment_view(deployment: Any, row: dict[str, Any] | None, now: datetime) -> dict[str, Any]:
    anchor = row["anchor"] if row else None
    trigger = deployment.trigger(anchor or now)
    paused = bool(row["paused"]) if row else bool(deployment.paused)
    after = max(now, row["last_fire"]) if row and row["last_fire"] else now
    next_fire = None if paused else trigger.next_fire(after)
    return {
        "name": deployment.name,
        "schedule": f"{deployment.schedule_kind} {deployment.schedule}",
        "timezone": deployment.timezone if deployment.schedule_kind == "cron" else None,
        "paused": paused,
        "next_fire": iso(next_fire),
        "flow": deployment.flow,
    }


@click.group("runs")
def runs_group() -> None:
    """Inspect flow runs.

    \b
    Example:
      gnomon runs list --state Failed --limit 10
    """


@runs_group.command("list")
@config_option
@click.option("--deployment", help="Only runs of this deployment.")
@click.option(
    "--state", help="Only runs in this state (a name like Failed, or a type like FAILED)."
)
@click.option(
    "--limit", default=50, show_default=True, help="At most this many runs, newest first."
)
@json_option
def runs_list(
    config: Path | None, deployment: str | None, state: str | None, limit: int, as_json: bool
) -> None:
    """List flow runs, newest first.

    \b
    Example:
      gnomon runs list --deployment nightly-report --state Failed --limit 10
    """
    from gnomon.store import get_store

    if limit < 1:
        raise click.BadParameter(f"--limit must be at least 1, got {limit}", param_hint="--limit")
    settings()  # a config that cannot be read is reported, not a traceback
    runs = [_run_view(row) for row in get_store().read_runs(deployment, state, limit=limit)]
    if as_json:
        print_json(runs)
        return
    if not runs:
        click.echo("no runs", err=True)
        sys.exit(0)
    print_table(
        runs,
        ["id", "deployment", "flow", "state", "trigger", "scheduled_for", "started_at", "ended_at"],
    )


def _run_view(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "deployment": row["deployment_name"],
        "flow": row["flow_name"],
        "state": row["state_name"],
        "trigger": row["trigger"],
        "scheduled_for": iso(row["scheduled_for"]),
        "started_at": iso(row["start_time"]),
        "ended_at": iso(row["end_time"]),
    }
