"""``gnomon db``: the state store's schema."""

from __future__ import annotations

import click

from gnomon.cli._common import changes_store


@click.group("db")
def db_group() -> None:
    """Manage the state store (SQLite under GNOMON_HOME, or GNOMON_DATABASE_URL).

    \b
    Example:
      gnomon db upgrade
    """


@db_group.command("upgrade")
@changes_store
def db_upgrade() -> None:
    """Apply pending schema migrations to the store.

    \b
    Example:
      GNOMON_HOME=/var/lib/gnomon gnomon db upgrade
    """
    from gnomon._settings import get_settings
    from gnomon.store import current_revision, upgrade

    url = get_settings().effective_database_url
    before = current_revision(url)
    upgrade(url)
    after = current_revision(url)
    if before == after:
        click.echo(f"store is up to date at revision {after}")
    else:
        click.echo(f"store migrated from {before or 'empty'} to {after}")
