"""``gnomon logs``: run and daemon logs from the store, and following them as they come."""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from gnomon.cli._common import LEVEL, config_option, reports_errors, since_option
from gnomon.control import MAX_COUNT

if TYPE_CHECKING:
    from gnomon.store.rows import LogRow

FOLLOW_POLL = 0.25  # seconds between polls with -f: a new line shows within a second


@click.command("logs")
@config_option
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until Ctrl-C.")
@click.option("--deployment", help="Only lines about this deployment (its runs and decisions).")
@click.option("--run", "run_id", metavar="RUN", help="Only lines of this run (id or prefix).")
@click.option(
    "--level",
    type=LEVEL,
    help="Only lines at this level or above (INFO, WARNING, ERROR, ... or a number).",
)
@since_option
@click.option(
    "-n",
    "--lines",
    "count",
    type=click.IntRange(0, MAX_COUNT),
    help="Print the last N lines (default 100; with --since, every line since).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line, for scripts.")
@reports_errors
def logs_command(
    config: Path | None,
    follow: bool,
    deployment: str | None,
    run_id: str | None,
    level: int | None,
    since: datetime | None,
    count: int | None,
    as_json: bool,
) -> None:
    """Print run and daemon logs from the store in time order, oldest first; -f follows new
    ones, also from runs that start later.

    \b
    Examples:
      gnomon logs -f --deployment nightly-report
      gnomon logs --run 3f2a9c --level WARNING
      gnomon logs --since 1h --json | jq .message
    """
    from gnomon.cli._common import fast_operations
    from gnomon.control import check_name
    from gnomon.store import LogQuery, in_time_order

    if count is None and since is None:
        count = 100
    ops = fast_operations()
    if deployment is not None:
        check_name("deployment", deployment)
    flow_run_id = ops.run(run_id).id if run_id is not None else None
    query = LogQuery(deployment, flow_run_id, level, since)
    store = ops.store
    rows = store.search_logs(query, count, newest=True) if count != 0 else []
    last_id = rows[-1].id if rows else store.last_log_id()
    _print(rows, as_json)
    if not follow:
        return
    try:
        while True:
            time.sleep(FOLLOW_POLL)
            rows = store.search_logs(_after(query, last_id), 1000, newest=False)
            if rows:
                last_id = rows[-1].id  # id order: the cursor
                # Each batch in time order; a line stored late shows when it arrives.
                _print(in_time_order(rows), as_json)
    except KeyboardInterrupt:
        return


def _after(query: Any, last_id: int) -> Any:
    import dataclasses

    return dataclasses.replace(query, after_id=last_id)


def _print(rows: list[LogRow], as_json: bool) -> None:
    from gnomon.control import log_view

    for row in rows:
        view = log_view(row)
        if as_json:
            click.echo(json.dumps(view, default=str))
            continue
        where = " ".join(part for part in (view["deployment"], (view["run_id"] or "")[:8]) if part)
        prefix = f"{view['timestamp']} {view['level']:<7} " + (f"{where} " if where else "")
        click.echo(prefix + view["message"])
    if rows:
        sys.stdout.flush()  # a pipe (| grep) sees followed lines as they come
