"""``gnomon db``: the state store's schema, and its backups."""

from __future__ import annotations

from pathlib import Path

import click

from gnomon.cli._common import StoreFailure, changes_store, config_option, store_url


@click.group("db")
def db_group() -> None:
    """Manage the state store (SQLite under GNOMON_HOME, or GNOMON_DATABASE_URL).

    \b
    Examples:
      gnomon db upgrade
      gnomon db backup /var/backups/gnomon.db
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
