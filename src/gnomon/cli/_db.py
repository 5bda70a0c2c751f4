"""``gnomon db``: the state store's schema, and its backups."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import click

from gnomon.cli._common import (
    StoreFailure,
    changes_store,
    config_option,
    json_option,
    print_json,
    store_url,
)


@click.group("db")
def db_group() -> None:
    """Manage the state store (SQLite under GNOMON_HOME, or GNOMON_DATABASE_URL).

    \b
    Examples:
      gnomon db status
      gnomon db upgrade
      gnomon db backup /var/backups/gnomon.db
      gnomon db prune --older-than 90d --logs-older-than 30d --dry-run
      gnomon db vacuum
    """


@db_group.command("upgrade")
@changes_store
@config_option
def db_upgrade(config: Path | None) -> None:
    """Apply pending schema migrations to the store.

    \b
    Example:
      GNOMON_HOME=/var/lib/gnomon gnomon db upgrade
    """
    from gnomon.store import current_revision, upgrade

    url = store_url()
    before = current_revision(url)
    upgrade(url)
    after = current_revision(url)
    if before == after:
        click.echo(f"store is up to date at revision {after}")
    else:
        click.echo(f"store migrated from {before or 'empty'} to {after}")


@db_group.command("status")
@config_option
@json_option
def db_status(config: Path | None, as_json: bool) -> None:
    """Show the store's schema revision against the newest this gnomon knows; migrates
    nothing.

    A store behind is migrated by `gnomon db upgrade` or the next command or daemon to use
    it. One ahead was migrated by a newer gnomon (another host's, during a rolling
    upgrade): this gnomon refuses it; upgrade gnomon on this host.

    Exit codes: 0 when this gnomon can use the store (up to date, behind, or not made
    yet), 1 when a newer gnomon migrated it.

    \b
    Examples:
      gnomon db status
      gnomon db status --json
    """
    from gnomon._location import sqlite_file
    from gnomon._version import __version__
    from gnomon.exceptions import StoreSchemaTooNew
    from gnomon.store import HEAD_REVISION, current_revision, refuse_unknown_revision, store_name

    url = store_url()
    database = sqlite_file(url)
    missing = database is not None and not database.exists()
    revision = None if missing else current_revision(url)
    try:
        refuse_unknown_revision(revision, url)
    except StoreSchemaTooNew as error:
        status, line = "ahead", error.reason
    else:
        status, line = _schema_status(revision, missing, HEAD_REVISION, __version__)
    if as_json:
        print_json(
            {
                "store": store_name(url),
                "revision": revision,
                "newest_known": HEAD_REVISION,
                "version": __version__,
                "status": status,
            }
        )
    else:
        click.echo(f"store {store_name(url)}: {line}")
    if status == "ahead":
        raise SystemExit(1)


def _schema_status(revision: str | None, missing: bool, head: str, version: str) -> tuple[str, str]:
    """The status word and line of ``db status`` for a store this gnomon can use."""
    if missing:
        return "missing", "does not exist yet (gnomon db upgrade, or the daemon, creates it)"
    if revision is None:
        return "empty", f"never migrated; gnomon db upgrade migrates it to revision {head}"
    if revision == head:
        return "current", f"schema revision {revision}, the newest gnomon {version} knows"
    return (
        "behind",
        f"schema revision {revision}, behind the newest gnomon {version} knows ({head});"
        " gnomon db upgrade migrates it (so does the next command or daemon that opens it)",
    )


@db_group.command("backup")
@config_option
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite PATH if it exists.")
def db_backup(config: Path | None, path: Path, force: bool) -> None:
    """Copy the SQLite store to PATH: consistent, and safe while the daemon runs.

    The copy is readable by its owner only (0600). To restore it, stop the daemon, put the
    copy in place of the database file, remove the database's -wal and -shm files if they
    are left, and start the daemon (README, "Backups").

    \b
    Examples:
      gnomon db backup /var/backups/gnomon-$(date +%F).db
      gnomon db backup /var/backups/gnomon-latest.db --force
    """
    import sqlite3

    from gnomon._location import sqlite_file
    from gnomon.exceptions import StoreFileGone
    from gnomon.store import BackupExists, backup_database, store_fault

    url = store_url()
    source = sqlite_file(url)
    if source is None:
        raise StoreFailure(
            "gnomon db backup copies a SQLite store; back up this database with its own tools"
        )
    try:
        size = backup_database(source, path, overwrite=force)
    except StoreFileGone:
        raise StoreFailure(f"no store to back up: {source} does not exist") from None
    except BackupExists as error:
        raise StoreFailure(str(error)) from None
    except OSError as error:  # the target's directory: missing, read-only, full
        raise StoreFailure(f"cannot write the backup {path}: {error.strerror or error}") from None
    except sqlite3.Error as error:  # reading the store or writing the copy
        cause = store_fault(error, url) or str(error)
        raise StoreFailure(f"backing up {source} to {path} failed: {cause}") from None
    click.echo(f"backed up {source} to {path} ({size:,} bytes)")


class Age(click.ParamType):
    """A duration (90d, 12h, P30D), positive."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, timedelta):
            return value
        from gnomon.scheduling import ScheduleError, parse_interval

        try:
            return parse_interval(value)
        except ScheduleError as error:
            self.fail(str(error).replace("interval ", "", 1), param, ctx)


@db_group.command("prune")
@changes_store
@config_option
@click.option(
    "--older-than",
    "runs",
    type=Age(),
    metavar="AGE",
    help="Delete runs that ended longer ago than AGE (90d), with their task runs, states,"
    " log lines, artifacts and result files.",
)
@click.option(
    "--logs-older-than",
    "logs",
    type=Age(),
    metavar="AGE",
    help="Delete log lines older than AGE (30d), whatever their run.",
)
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@json_option
def db_prune(
    config: Path | None,
    runs: timedelta | None,
    logs: timedelta | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Delete old runs and log lines now, in small transactions (safe while the daemon runs).

    A run's age counts from its end. Runs a deployment's catch-up could still reach stay
    (their rows are what keeps a fire from running twice), and so do result files that
    unexpired cache entries hold. The daemon does the same by itself with [daemon]
    retain_runs and retain_logs. Audited (action "prune", with the counts).

    \b
    Examples:
      gnomon db prune --older-than 90d --dry-run
      gnomon db prune --older-than 90d --logs-older-than 30d
    """
    from datetime import UTC, datetime

    from gnomon.cli._common import cli_actor_name
    from gnomon.daemon import Retention, prune_store
    from gnomon.store import Actor, Origin, store_at

    if runs is None and logs is None:
        raise click.UsageError("give --older-than, --logs-older-than or both")
    store = store_at(store_url())
    actor = Actor(cli_actor_name(), Origin.CLI)
    report = prune_store(store, Retention(runs, logs), datetime.now(UTC), actor, dry_run=dry_run)
    if as_json:
        print_json({"dry_run": dry_run, **report.detail()})
    else:
        click.echo(report.summary())


@db_group.command("vacuum")
@changes_store
@config_option
def db_vacuum(config: Path | None) -> None:
    """Shrink the SQLite store's file to its data, and let the daemon's pruner give freed
    space back from then on (auto_vacuum = incremental). Needs the daemon stopped: the file
    is rewritten, which takes as much free disk as its size, and a while for a large one.

    \b
    Example:
      systemctl stop gnomon && gnomon db vacuum && systemctl start gnomon
    """
    from gnomon._location import sqlite_file
    from gnomon.cli._common import cli_actor_name, store_lock
    from gnomon.daemon import DaemonAlreadyRunning
    from gnomon.store import Actor, AuditAction, Origin, store_at, vacuum_database

    url = store_url()
    path = sqlite_file(url)
    if path is None:
        raise StoreFailure(
            "gnomon db vacuum rewrites a SQLite store; PostgreSQL's autovacuum makes the"
            " space of deleted rows reusable (VACUUM FULL returns it, with the daemon stopped)"
        )
    try:
        with store_lock():
            store = store_at(url)  # migrated, so the audit entry has its table
            store.close()
            before, after = vacuum_database(path)
            store_at(url).record_audit(
                Actor(cli_actor_name(), Origin.CLI),
                AuditAction.VACUUM,
                str(path),
                detail={"bytes_before": before, "bytes_after": after},
            )
    except DaemonAlreadyRunning as error:
        raise StoreFailure(f"stop the daemon first: {error}") from None
    click.echo(
        f"vacuumed {path}: {before:,} bytes -> {after:,} bytes; the daemon's pruner gives"
        " freed space back from now on"
    )
