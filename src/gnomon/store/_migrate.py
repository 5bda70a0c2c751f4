"""Applying the Alembic migrations, safely when several processes start at once.

Every process checks the schema revision on first use of the store; that check is one SELECT
and does not load Alembic. Only a database behind ``HEAD_REVISION`` is migrated, inside one
transaction (``BEGIN IMMEDIATE`` on SQLite; PostgreSQL's DDL is transactional too), so a
half-applied migration is never visible, and under a lock that processes starting together
queue on: an exclusive file lock beside a SQLite file (one process creates the file,
switches it to WAL and migrates while the others wait), a transaction-scoped advisory lock
on PostgreSQL. The process that gets the lock second finds the database at head and
migrates nothing.

A database at a revision this code does not know was migrated by a newer gnomon (another
host's, during a rolling upgrade): it is refused with ``StoreSchemaTooNew``, in one line an
operator can act on, rather than with Alembic's "Can't locate revision". Migrations are
additive within a minor version (docs/design.md, "Rolling upgrades"), so a daemon started
before the newer one migrated goes on working beside it; only new processes refuse.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import DBAPIError

from gnomon._files import open_private
from gnomon.store._db import create_engine, read_engine, sqlite_path
from gnomon.store._faults import refuse_unknown_revision
from gnomon.store._revision import HEAD_REVISION
from gnomon.store._statements import statement

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).with_name("migrations")

# PostgreSQL's advisory lock key for migrations: "gnomon" in ASCII, then 1 (the daemon's
# lock is 2). Any bigint would do; this one is unlikely to be another program's.
MIGRATION_LOCK_KEY = 0x676E6F6D6F6E_01


def alembic_config(url: str) -> Config:
    """An Alembic config for the store at ``url``, built in code (no alembic.ini needed)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation would read '%' in a URL (an escaped password) as a reference.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def read_revision(engine: Engine) -> str | None:
    """The revision the database is at; None for a database never migrated. A database
    that cannot be reached raises its error (it is not one never migrated)."""
    with read_engine(engine).connect() as connection:
        looked_again = False
        while True:
            try:
                revision = connection.execute(statement("revision")).scalar_one_or_none()
            except DBAPIError:
                connection.rollback()
                if not inspect(connection).has_table("alembic_version"):
                    return None
                if looked_again:
                    raise  # a corrupt file, a table this user may not read: not "never migrated"
                # Another process's first migration committed the table between the two
                # looks: read it again rather than fail.
                looked_again = True
                continue
            connection.rollback()
            return revision


def current_revision(url: str) -> str | None:
    """The revision of the database at ``url``; None if it has not been migrated."""
    engine = create_engine(url)
    try:
        return read_revision(engine)
    finally:
        engine.dispose()


def ensure_current(engine: Engine) -> None:
    """Migrate the database behind ``engine`` to head unless it is there already; refuse
    one a newer gnomon migrated (``StoreSchemaTooNew``)."""
    if read_revision(engine) != HEAD_REVISION:
        migrate(engine)


def upgrade(url: str) -> None:
    """Apply every pending migration to the database at ``url``."""
    engine = create_engine(url)
    try:
        migrate(engine)
    finally:
        engine.dispose()


def migrate(engine: Engine) -> None:
    """Upgrade to head over ``engine``, serialised against other processes doing the same;
    ``StoreSchemaTooNew`` if a newer gnomon migrated it past head."""
    url = engine.url.render_as_string(hide_password=False)
    refuse_unknown_revision(read_revision(engine), url)
    from alembic import command
    from alembic.util import CommandError

    config = alembic_config(url)
    try:
        with _migration_lock(engine), engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
                )
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except CommandError:
        # A newer gnomon migrated it while this process waited for the lock.
        refuse_unknown_revision(read_revision(engine), url)
        raise


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """Hold ``<database>.migrate.lock`` exclusively, for SQLite files; no-op otherwise (a
    server database locks inside the migration's transaction)."""
    path = sqlite_path(engine.url)
    if path is None:
        yield
        return
    descriptor = open_private(f"{path}.migrate.lock")
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # closing releases the lock
