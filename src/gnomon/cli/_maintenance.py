"""``gnomon maintenance add | ls | rm``: ad-hoc maintenance windows, in which the
deployments named or tagged (or all) do not fire; audited, seen by a running daemon within
a second (at once: the command nudges it)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from gnomon.cli._common import (
    BadInput,
    changes_store,
    complete_deployments,
    config_option,
    json_option,
    open_store,
    operations,
    print_json,
    print_table,
    reports_errors,
)

COLUMNS = ["id", "start", "end", "state", "applies_to", "reason", "source"]


@click.group("maintenance")
def maintenance_group() -> None:
    """Maintenance windows: fires inside one do not run (no run, no row); a run already
    running when it starts goes on. The config's [[maintenance]] entries are listed too.

    \b
    Examples:
      gnomon maintenance add --for 2h --tag warehouse --reason "database upgrade"
      gnomon maintenance add --start 2026-12-08T01:00 --end 2026-12-08T03:00
      gnomon maintenance ls --all
      gnomon maintenance rm 3
    """


@maintenance_group.command("add")
@config_option
@click.option("--start", metavar="TIME", help="ISO 8601 (no offset: this machine's zone); now.")
@click.option("--end", metavar="TIME", help="ISO 8601 (no offset: this machine's zone).")
@click.option("--for", "duration", metavar="DURATION", help="Its length instead (2h, 30m).")
@click.option(
    "--deployment",
    "deployments",
    multiple=True,
    metavar="NAME",
    shell_complete=complete_deployments,
    help="Only this deployment (repeatable).",
)
@click.option("--tag", "tags", multiple=True, metavar="TAG", help="Only deployments tagged so.")
@click.option("--reason", help="Why, shown beside the fires it stops and in the audit log.")
@json_option
@reports_errors
@changes_store
def maintenance_add(
    config: Path | None,
    start: str | None,
    end: str | None,
    duration: str | None,
    deployments: tuple[str, ...],
    tags: tuple[str, ...],
    reason: str | None,
    as_json: bool,
) -> None:
    """Add a window: from --start (default now) until --end, or for --for; for the
    deployments named or tagged, every deployment if neither is given.

    \b
    Examples:
      gnomon maintenance add --for 2h --reason "network work"
      gnomon maintenance add --start 2026-12-08T01:00 --end 2026-12-08T03:00 --tag crm
    """
    from gnomon.control import add_window, local_text, parse_window, window_view
    from gnomon.exceptions import InvalidInput

    now = datetime.now(UTC)
    try:
        first, last = parse_window(start, end, duration, now)
    except InvalidInput as error:
        raise BadInput(str(error)) from None
    row = add_window(operations(), first, last, deployments=deployments, tags=tags, reason=reason)
    if as_json:
        print_json(window_view(row, now))
        return
    click.echo(
        f"maintenance window {row.id}: {local_text(row.starts_at)} to"
        f" {local_text(row.ends_at)}, {_applies_to(row.deployments, row.tags)}"
    )


@maintenance_group.command("ls")
@config_option
@click.option("--all", "every", is_flag=True, help="The past windows too.")
@json_option
@reports_errors
def maintenance_ls(config: Path | None, every: bool, as_json: bool) -> None:
    """List the windows not over yet (with --all, the past ones too), by start.

    \b
    Examples:
      gnomon maintenance ls
      gnomon maintenance list --all --json
    """
    from gnomon.control import list_windows, window_view

    now = datetime.now(UTC)
    views = [window_view(row, now) for row in list_windows(open_store(), now, every)]
    if as_json:
        print_json(views)
        return
    if not views:
        click.echo("no maintenance windows" if every else "no current or coming windows", err=True)
        return
    print_table([_row(view) for view in views], COLUMNS)


maintenance_group.add_command(maintenance_ls, "list")


@maintenance_group.command("rm")
@config_option
@click.argument("window_id", metavar="ID", type=click.IntRange(1, 2**31 - 1))
@click.option("--reason", help="Why, for the audit log.")
@reports_errors
@changes_store
def maintenance_rm(config: Path | None, window_id: int, reason: str | None) -> None:
    """Remove an ad-hoc window (a config file's is removed from the file).

    \b
    Example:
      gnomon maintenance rm 3 --reason "upgrade done early"
    """
    from gnomon.control import remove_window

    row = remove_window(operations(), window_id, reason)
    click.echo(f"removed maintenance window {row.id}")


def _applies_to(deployments: list[str] | None, tags: list[str] | None) -> str:
    parts = [*(deployments or []), *(f"tag {tag}" for tag in tags or [])]
    return ", ".join(parts) if parts else "every deployment"


def _row(view: dict[str, Any]) -> dict[str, Any]:
    source = view["source"] if view["name"] is None else f"{view['source']} {view['name']}"
    return {
        **view,
        "applies_to": _applies_to(view["deployments"], view["tags"]),
        "reason": view["reason"] or "-",
        "source": source,
    }
