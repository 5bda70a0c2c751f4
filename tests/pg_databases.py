"""Databases of their own for tests on PostgreSQL.

Each test gets a database at the schema head, copied from a template migrated once per
process and per schema revision (``CREATE DATABASE ... TEMPLATE``; migrating takes ~1 s).
The copy is reused by the process's next test once it is clean again: every other
connection to it ended (daemons a test left behind), its rows deleted and its sequences
reset. Creating and dropping a database per test was a quarter of the suite's time. A
test that changed the schema (a migration test, a downgrade) leaves a database whose
schema no longer matches the template's: it is dropped and the next test gets a new
copy. ``empty`` databases (never migrated) are always new and always dropped.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import uuid
from collections.abc import Iterator

from sqlalchemy import Connection, Engine, create_engine, make_url, text
from sqlalchemy.pool import NullPool

_templates: set[str] = set()
_fingerprints: dict[str, str] = {}  # template name -> its schema's fingerprint
_reusable: list[str] = []  # clean copies of the template, ready for this process's next test


def _admin(server_url: str) -> Engine:
    return create_engine(server_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)


def _url(server_url: str, database: str) -> str:
    return make_url(server_url).set(database=database).render_as_string(hide_password=False)


def _worker_tag() -> str:
    # One per xdist worker: workers must not share a template (a template cannot be copied
    # while another connection uses it). Named by the worker, not the process, so each run
    # replaces the last run's rather than leaving one more behind. GNOMON_TEST_DB_TAG keeps
    # suites run side by side from different trees apart.
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return f"{os.environ.get('GNOMON_TEST_DB_TAG', '')}{worker}"


def _template(server_url: str) -> str:
    """The name of a database at the code's schema head, made on first use."""
    from gnomon.store import HEAD_REVISION, upgrade

    name = f"gnomon_template_{HEAD_REVISION}_{_worker_tag()}"
    if name in _templates:
        return name
    admin = _admin(server_url)
    try:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    url = _url(server_url, name)
    upgrade(url)
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            _fingerprints[name] = _fingerprint(connection)
    finally:
        engine.dispose()
    _templates.add(name)
    return name


def _fingerprint(connection: Connection) -> str:
    """The schema of the connected database in one string: its revision, tables, columns
    with their types and defaults, indexes, constraints and sequences."""
    return str(
        connection.execute(
            text(
                """
                SELECT md5(concat_ws('|',
                  (SELECT string_agg(version_num, ',') FROM alembic_version),
                  (SELECT string_agg(concat_ws(':', table_name, column_name, data_type,
                                               is_nullable, column_default), ','
                                     ORDER BY table_name, column_name)
                     FROM information_schema.columns WHERE table_schema = 'public'),
                  (SELECT string_agg(indexdef, ',' ORDER BY indexdef)
                     FROM pg_indexes WHERE schemaname = 'public'),
                  (SELECT string_agg(conname || ':' || pg_get_constraintdef(oid), ','
                                     ORDER BY conname)
                     FROM pg_constraint WHERE connamespace = 'public'::regnamespace),
                  (SELECT string_agg(sequencename, ',' ORDER BY sequencename)
                     FROM pg_sequences WHERE schemaname = 'public')))
                """
            )
        ).scalar_one()
    )


def _clean(server_url: str, name: str, template: str) -> bool:
    """Make the database ``name`` as its template left it, if its schema is still the
    template's: end every other connection to it, delete every row but the schema
    revision, and restart its sequences. False if it cannot be reused."""
    admin = _admin(server_url)
    try:
        with admin.connect() as connection:
            connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
    finally:
        admin.dispose()
    from gnomon.store._schema import metadata

    engine = create_engine(_url(server_url, name), poolclass=NullPool)
    try:
        with engine.begin() as connection:
            if _fingerprint(connection) != _fingerprints[template]:
                return False
            listed = connection.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            ).scalars()
            present = set(listed) - {"alembic_version"}
            # Children before parents (the schema's order; any table it does not know of
            # first): DELETE is ten times faster than TRUNCATE on a database this small.
            known = [table.name for table in reversed(metadata.sorted_tables)]
            for table in sorted(present - set(known)) + [t for t in known if t in present]:
                connection.execute(text(f'DELETE FROM "{table}"'))
            sequences = connection.execute(
                text("SELECT quote_ident(sequencename) FROM pg_sequences WHERE schemaname = :s"),
                {"s": "public"},
            ).scalars()
            for sequence in list(sequences):
                connection.execute(text(f"ALTER SEQUENCE {sequence} RESTART"))
        return True
    except Exception:
        return False  # whatever the test left, a new copy is the safe answer
    finally:
        engine.dispose()


def _create(server_url: str, name: str, template: str) -> None:
    admin = _admin(server_url)
    try:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            connection.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    finally:
        admin.dispose()


def _drop(server_url: str, name: str) -> None:
    admin = _admin(server_url)
    try:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@contextlib.contextmanager
def fresh_database(server_url: str, empty: bool = False) -> Iterator[str]:
    """The URL of a database at the schema head with no rows (``empty``: never migrated),
    to itself for the block."""
    if empty:
        name = f"gnomon_test_{uuid.uuid4().hex[:12]}"
        _create(server_url, name, "template0")
        try:
            yield _url(server_url, name)
        finally:
            _drop(server_url, name)
        return
    template = _template(server_url)
    if _reusable:
        name = _reusable.pop()
    else:
        name = f"gnomon_test_{_worker_tag()}_{uuid.uuid4().hex[:8]}"
        _create(server_url, name, template)
        atexit.register(_drop, server_url, name)
    try:
        yield _url(server_url, name)
    finally:
        if _clean(server_url, name, template):
            _reusable.append(name)
        else:
            _drop(server_url, name)
