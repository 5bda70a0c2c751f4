"""``gnomon pools ls``: the run pools (``[[pools]]``), their slots, the slots their runs
hold now and the runs waiting for one, as the daemons count them in the store."""

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

COLUMNS = ["name", "slots", "taken", "waiting", "deployments"]


@click.group("pools")
def pools_group() -> None:
    """Run pools: at most a pool's slots runs of its deployments run at once.

    Pools are declared in the config ([[pools]] with a name and slots; pool = "NAME" on
    deployments) and changed by a reload.

    \b
    Examples:
      gnomon pools ls
      gnomon pools ls --json
    """


@pools_group.command("ls")
@config_option
@json_option
@reports_errors
def pools_ls(config: Path | None, as_json: bool) -> None:
    """List pools: slots, slots taken now, runs waiting (AwaitingPool) and deployments.

    \b
    Example:
      gnomon pools ls --json
    """
    from gnomon.control import pool_views

    pools = pool_views(open_store())
    if as_json:
        print_json(pools)
        return
    if not pools:
        click.echo("no run pools (declare them in the config with [[pools]])", err=True)
        return
    rows = [{**pool, "deployments": ", ".join(pool["deployments"])} for pool in pools]
    print_table(rows, COLUMNS)
