"""``gnomon breaches ls``: deployments' deadline and freshness breaches (late,
deadline_missed, too_fast, stale), open and cleared, as the dashboard's deployment page and
the API list them."""

from __future__ import annotations

from pathlib import Path

import click

from gnomon.cli._common import (
    config_option,
    json_option,
    open_store,
    print_json,
    print_table,
    reports_errors,
)
from gnomon.control import MAX_BREACHES

COLUMNS = ["deployment", "kind", "run", "nominal_time", "policy", "detected_at", "cleared_at"]


@click.group("breaches")
def breaches_group() -> None:
    """List breaches of deployments' late_after, deadline, min_duration and fresh_within.

    \b
    Examples:
      gnomon breaches ls --open
      gnomon breaches ls --deployment nightly-report --json
    """


@breaches_group.command("ls")
@config_option
@click.option("--open", "open_only", is_flag=True, help="Only those not cleared yet.")
@click.option("--deployment", metavar="NAME", help="Only this deployment's.")
@click.option(
    "--limit",
    type=click.IntRange(1, MAX_BREACHES),
    default=50,
    show_default=True,
    help="At most this many, newest first.",
)
@json_option
@reports_errors
def breaches_ls(
    config: Path | None, open_only: bool, deployment: str | None, limit: int, as_json: bool
) -> None:
    """List breaches, newest first: which deployment, which kind, its run, its nominal time
    (for stale: when it went stale), the policy it broke, when it was found and cleared.

    \b
    Examples:
      gnomon breaches ls --open
      gnomon breaches list --deployment nightly-report --limit 10
    """
    from gnomon.control import breach_view, check_name

    if deployment is not None:
        check_name("deployment", deployment)
    rows = open_store().read_breaches(deployment, open_only=open_only, limit=limit)
    views = [breach_view(row) for row in rows]
    if as_json:
        print_json(views)
        return
    if not views:
        click.echo("no open breaches" if open_only else "no breaches", err=True)
        return
    print_table([_row(view) for view in views], COLUMNS)


breaches_group.add_command(breaches_ls, "list")


def _row(view: dict[str, object]) -> dict[str, object]:
    """A breach as a table row: its run's short id, its policy with the limit then."""
    run = view["run_id"]
    cleared = view["cleared_at"] or "open"
    policy = f"{view['policy']} = {view['limit']}"
    return {**view, "run": str(run)[:8] if run else None, "policy": policy, "cleared_at": cleared}
