"""``gnomon backfill NAME --from T1 --to T2``: runs of a deployment's nominal times that
have passed, made by the daemon under the backfill's own ``--max-concurrent``; and
``gnomon backfill ls | show ID [--follow] | cancel ID``."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click

from gnomon.cli._common import (
    changes_store,
    complete_deployments,
    config_option,
    daemon_holder,
    json_option,
    open_store,
    operations,
    print_json,
    print_table,
    reports_errors,
)

COLUMNS = ["id", "deployment", "status", "from", "to", "progress", "runs", "requested_by"]
BAR_WIDTH = 30
FOLLOW_EVERY = 0.5  # seconds between two looks at a followed backfill


class BackfillGroup(click.Group):
    """``gnomon backfill NAME ...`` starts one; ``ls``, ``show`` and ``cancel`` are its
    other commands (a deployment named like one of them: ``gnomon backfill start NAME``)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["start", *args]
        return super().parse_args(ctx, args)


@click.group("backfill", cls=BackfillGroup)
def backfill_group() -> None:
    """Run a deployment's nominal times that have passed; list, follow and cancel backfills.

    \b
    Examples:
      gnomon backfill nightly-report --from 2026-11-01 --to 2026-11-30 --dry-run
      gnomon backfill nightly-report --from 2026-11-01 --to 2026-11-30 --max-concurrent 4
      gnomon backfill ls
      gnomon backfill show 3 --follow
      gnomon backfill cancel 3 --reason "wrong range"
    """


@backfill_group.command("start")
@config_option
@click.argument("name", shell_complete=complete_deployments)
@click.option("--from", "start", required=True, metavar="TIME", help="The first nominal time.")
@click.option("--to", "end", required=True, metavar="TIME", help="The last nominal time.")
@click.option(
    "--dry-run", is_flag=True, help="Say what it would do with each time; change nothing."
)
@click.option(
    "--max-concurrent",
    type=click.IntRange(1, 1000),
    default=1,
    show_default=True,
    help="At most this many of its runs unfinished at once.",
)
@click.option(
    "--reprocess",
    type=click.Choice(["none", "failed", "all"]),
    default="none",
    show_default=True,
    help="Run again the times whose newest run failed, or every time that has a run.",
)
@click.option("--reverse", is_flag=True, help="Newest time first.")
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="A parameter for its runs (repeatable), over the deployment's; VALUE read as JSON"
    " if it parses.",
)
@json_option
@reports_errors
@changes_store
def backfill_start(
    config: Path | None,
    name: str,
    start: str,
    end: str,
    dry_run: bool,
    max_concurrent: int,
    reprocess: str,
    reverse: bool,
    params: tuple[str, ...],
    as_json: bool,
) -> None:
    """Run deployment NAME's nominal times from --from to --to (both included).

    A time without an offset is in the deployment's zone; a date alone is its first
    moment, and for --to the whole day. A time gets a run if it has none or its newest
    run was Missed or Skipped; with --reprocess failed|all, also the next generation of
    a time whose newest run failed (or any). A time with a run under way is left. The
    daemon runs them, at most --max-concurrent at once, whatever the deployment's
    overlap policy; `gnomon backfill show ID --follow` shows its progress.

    \b
    Examples:
      gnomon backfill nightly-report --from 2026-11-01 --to 2026-11-07 --dry-run
      gnomon backfill sync-crm --from 2026-12-01T00:00 --to 2026-12-01T06:00 \\
          --max-concurrent 4 --reprocess failed --reverse --param full=true
      gnomon backfill start ls --from 2026-11-01 --to 2026-11-02   # a deployment named ls
    """
    from datetime import UTC, datetime

    from gnomon.cli._runs import parse_params
    from gnomon.control import BackfillOperations, iso
    from gnomon.store import Reprocess

    backfills = BackfillOperations(operations())
    plan = backfills.plan(name, start, end, datetime.now(UTC), reverse)
    chosen = Reprocess(reprocess)
    if dry_run:
        planned = backfills.dry_run(plan, chosen)
        if as_json:
            print_json(
                [
                    {"nominal": iso(p.nominal), "generation": p.generation, "reason": p.reason}
                    for p in planned
                ]
            )
            return
        creates = sum(1 for p in planned if p.generation is not None)
        click.echo(
            f"{name}: {len(planned)} nominal times from {iso(plan.start)} to {iso(plan.end)}"
            f" ({plan.zone}); {creates} would run"
        )
        for p in planned:
            what = f"run (generation {p.generation})" if p.generation is not None else "leave"
            click.echo(f"  {iso(p.nominal)}  {what:<20}  {p.reason}")
        return
    row = backfills.start(
        plan,
        max_concurrent=max_concurrent,
        reprocess=chosen,
        reverse=reverse,
        parameters=parse_params(params),
    )
    if as_json:
        from gnomon.control import backfill_view

        print_json(backfill_view(row))
        return
    click.echo(
        f"backfill {row.id} of {name}: {row.total} nominal times from {iso(plan.start)}"
        f" to {iso(plan.end)}, at most {max_concurrent} at once"
    )
    click.echo(f"follow it: gnomon backfill show {row.id} --follow")
    if daemon_holder() is None:
        click.echo("no daemon is running on this store: it starts when one does", err=True)


@backfill_group.command("ls")
@config_option
@click.option("--deployment", metavar="NAME", help="Only this deployment's.")
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
@json_option
@reports_errors
def backfill_ls(config: Path | None, deployment: str | None, limit: int, as_json: bool) -> None:
    """List backfills, newest first, with their progress.

    \b
    Examples:
      gnomon backfill ls --deployment nightly-report
      gnomon backfill list --json
    """
    from gnomon.control import BackfillOperations, backfill_view

    rows = BackfillOperations(operations()).backfills(deployment, limit)
    views = [backfill_view(row) for row in rows]
    if as_json:
        print_json(views)
        return
    if not views:
        click.echo("no backfills", err=True)
        return
    print_table([_row(view) for view in views], COLUMNS)


backfill_group.add_command(backfill_ls, "list")


@backfill_group.command("show")
@config_option
@click.argument("backfill_id", metavar="ID")
@click.option("--follow", "-f", is_flag=True, help="Show its progress until it ends.")
@json_option
@reports_errors
def backfill_show(config: Path | None, backfill_id: str, follow: bool, as_json: bool) -> None:
    """Show a backfill: its range, settings, and progress (its runs by state).

    With --follow, a progress bar until it ends; exit 0 if every run it made completed.

    \b
    Examples:
      gnomon backfill show 3
      gnomon backfill show 3 --follow
    """
    view = _view(backfill_id)
    if as_json:
        print_json(view)
        return
    for label in ("deployment", "status", "from", "to", "reverse", "max_concurrent", "reprocess"):
        click.echo(f"{label:<15} {view[label]}")
    click.echo(f"{'requested by':<15} {view['requested_by']} at {view['created']}")
    if view["parameters"]:
        click.echo(f"{'parameters':<15} {view['parameters']}")
    if not follow:
        click.echo(f"{'progress':<15} {_progress(view)}")
        click.echo(f"{'runs':<15} {_states(view)}")
        return
    sys.exit(_follow(backfill_id, view))


@backfill_group.command("cancel")
@config_option
@click.argument("backfill_id", metavar="ID")
@click.option("--reason", help="Why (kept in the audit log).")
@reports_errors
@changes_store
def backfill_cancel(config: Path | None, backfill_id: str, reason: str | None) -> None:
    """Cancel a backfill: no more runs; its waiting runs cancelled, its running ones stopped.

    \b
    Example:
      gnomon backfill cancel 3 --reason "wrong range"
    """
    from gnomon.control import BackfillOperations

    row, cancelled = BackfillOperations(operations()).cancel(backfill_id, reason)
    click.echo(f"backfill {row.id} cancelled; {cancelled} of its runs cancelled")


def _view(backfill_id: str) -> dict[str, Any]:
    from gnomon.control import BackfillOperations, backfill_view

    backfills = BackfillOperations(operations())
    row = backfills.backfill(backfill_id)
    return backfill_view(row, open_store().read_backfill_states(row.id))


def _follow(backfill_id: str, view: dict[str, Any]) -> int:
    """A progress bar, redrawn in place on a terminal (a line per change elsewhere), until
    the backfill ends; 0 if every run it made completed."""
    terminal = sys.stdout.isatty()
    shown = None
    while True:
        line = f"{_bar(view)} {_states(view)}"
        if line != shown:
            click.echo(f"\r{line}\033[K" if terminal else line, nl=not terminal)
            shown = line
        if view["status"] != "running":
            break
        time.sleep(FOLLOW_EVERY)
        view = _view(backfill_id)
    if terminal:
        click.echo()
    click.echo(f"backfill {view['id']} {view['status']}")
    runs = view.get("runs") or {}
    from gnomon.states import StateName

    completed = set(runs) <= {StateName.COMPLETED}
    return 0 if view["status"] == "completed" and completed else 1


def _bar(view: dict[str, Any]) -> str:
    """[#####.....] 1,234/10,000 times: times decided and runs finished, of the total."""
    total = max(1, view["total"])
    done = min(total, view["decided"] - view.get("waiting", 0) - view.get("running", 0))
    filled = round(BAR_WIDTH * max(0, done) / total)
    return f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {max(0, done):,}/{view['total']:,} times"


def _progress(view: dict[str, Any]) -> str:
    made = view["created_runs"]
    return f"{view['decided']:,} of {view['total']:,} times decided, {made:,} runs made"


def _states(view: dict[str, Any]) -> str:
    runs = view.get("runs") or {}
    return ", ".join(f"{count} {state}" for state, count in runs.items()) or "no runs yet"


def _row(view: dict[str, Any]) -> dict[str, Any]:
    return {**view, "progress": f"{view['decided']}/{view['total']}", "runs": view["created_runs"]}
