"""Alembic environment for the gnomon store.

gnomon runs its migrations in-process (``gnomon.store.upgrade``), handing over an open
connection in ``config.attributes["connection"]`` so that the version check and the DDL run
in the caller's transaction. Without one (the ``alembic`` command line, when writing a new
revision) it connects to ``sqlalchemy.url`` itself.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from gnomon.store._db import create_engine
from gnomon.store._schema import metadata


def _run(connection: Connection) -> None:
    # Batch mode: SQLite cannot ALTER most things, so later migrations recreate tables.
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    """Emit the migrations as SQL text (``alembic upgrade --sql``)."""
    context.configure(
        url=context.config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Migrate over the caller's connection, or over a new one to ``sqlalchemy.url``."""
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(context.config.get_main_option("sqlalchemy.url") or "")
    try:
        with engine.begin() as own_connection:
            _run(own_connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
