"""``gnomon concurrency-limit`` (tag limits: how many tagged task runs run at once) and
``gnomon global-concurrency-limit`` (alias ``gcl``: Prefect's global limits, which
``concurrency()`` holds and ``rate_limit()`` drains at their slot decay). Each change is
audited with the OS user as the actor."""

from __future__ import annotations

from pathlib import Path

import click

from gnomon.cli._common import (
    changes_store,
    config_option,
    json_option,
    open_store,
    operations,
    print_json,
    print_table,
    reports_errors,
)


@click.group("concurrency-limit")
def limits_group() -> None:
    """Limit how many tasks with a tag run at once, across every flow run and worker.

    \b
    Examples:
      gnomon concurrency-limit set crm-api 2
      gnomon concurrency-limit ls
      gnomon concurrency-limit rm crm-api
    """


@limits_group.command("set")
@config_option
@click.argument("tag")
@click.argument("limit", type=int)
@reports_errors
@changes_store
def limit_set(config: Path | None, tag: str, limit: int) -> None:
    """Allow at most LIMIT running tasks tagged TAG (0 blocks them).

    \b
    Example:
      gnomon concurrency-limit set crm-api 2
    """
    operations().set_limit(tag, limit)
    click.echo(f"tag {tag}: at most {limit} at once")


@limits_group.command("ls")
@config_option
@json_option
def limit_ls(config: Path | None, as_json: bool) -> None:
    """List tag concurrency limits and the slots taken now.

    \b
    Example:
      gnomon concurrency-limit ls --json
    """
    store = open_store()
    limits = store.read_concurrency_limits()
    active = store.count_active_slots()
    rows = [
        {"tag": name[4:], "limit": limit, "active": active.get(name, 0)}
        for name, limit in sorted(limits.items())
        if name.startswith("tag:")
    ]
    if as_json:
        print_json(rows)
        return
    if not rows:
        click.echo("no concurrency limits", err=True)
        return
    print_table(rows, ["tag", "limit", "active"])


@limits_group.command("rm")
@config_option
@click.argument("tag")
@reports_errors
@changes_store
def limit_rm(config: Path | None, tag: str) -> None:
    """Remove the limit on TAG.

    \b
    Example:
      gnomon concurrency-limit rm crm-api
    """
    operations().remove_limit(tag)
    click.echo(f"tag {tag}: no limit")


@click.group("global-concurrency-limit")
def global_limits_group() -> None:
    """Global concurrency limits (alias: gcl), as Prefect's `global-concurrency-limit`.

    `concurrency("NAME")` holds a limit's slots for its block; `rate_limit("NAME")` takes
    slots that free themselves at the limit's slot decay (slots a second), so a limit of N
    admits a burst of N and then D a second. Shared by every process using this store.

    \b
    Examples:
      gnomon global-concurrency-limit set database 5
      gnomon gcl set openai-api 10 --slot-decay-per-second 2
      gnomon gcl ls
      gnomon gcl rm database
    """


@global_limits_group.command("set")
@config_option
@click.argument("name")
@click.argument("limit", type=int)
@click.option(
    "--slot-decay-per-second",
    "decay",
    type=float,
    default=0.0,
    show_default=True,
    help="Slots freed a second, for rate_limit() (0: none; rate_limit refuses the limit).",
)
@reports_errors
@changes_store
def global_limit_set(config: Path | None, name: str, limit: int, decay: float) -> None:
    """Create or change the global limit NAME: at most LIMIT slots taken at once.

    Setting a limit sets its decay too: without --slot-decay-per-second it has none.

    \b
    Examples:
      gnomon global-concurrency-limit set database 5
      gnomon gcl set openai-api 10 --slot-decay-per-second 2
    """
    operations().set_global_limit(name, limit, decay)
    rate = f", {decay:g} freed a second" if decay else ""
    click.echo(f"{name}: at most {limit} slots{rate}")


@global_limits_group.command("ls")
@config_option
@json_option
def global_limit_ls(config: Path | None, as_json: bool) -> None:
    """List global limits, the slots taken now and their slot decay.

    \b
    Example:
      gnomon global-concurrency-limit ls --json
    """
    from gnomon.deployments import POOL_LIMIT_PREFIX  # not at import: the fast commands'

    store = open_store()
    active = store.count_active_slots()
    rows = [
        {
            "name": row.name,
            "limit": row.slot_limit,
            "active": active.get(row.name, 0),
            "slot_decay_per_second": row.slot_decay_per_second,
        }
        for row in store.read_limit_rows()
        # Tag limits are concurrency-limit's; run pools' are `gnomon pools ls`'s.
        if not row.name.startswith(("tag:", POOL_LIMIT_PREFIX))
    ]
    if as_json:
        print_json(rows)
        return
    if not rows:
        click.echo("no global concurrency limits", err=True)
        return
    print_table(rows, ["name", "limit", "active", "slot_decay_per_second"])


@global_limits_group.command("rm")
@config_option
@click.argument("name")
@reports_errors
@changes_store
def global_limit_rm(config: Path | None, name: str) -> None:
    """Remove the global limit NAME (its slots go with it).

    \b
    Example:
      gnomon global-concurrency-limit rm database
    """
    operations().remove_global_limit(name)
    click.echo(f"{name}: no limit")
