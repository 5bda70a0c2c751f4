"""Databases of a benchmark's own on the PostgreSQL server that GNOMON_BENCH_POSTGRES_URL
names (``postgresql+psycopg://...``): made new for a measurement, dropped after it."""

from __future__ import annotations

import os

SERVER_URL_ENV = "GNOMON_BENCH_POSTGRES_URL"


def server_url() -> str | None:
    """The server benchmarks use instead of a SQLite file, if one is named."""
    return os.environ.get(SERVER_URL_ENV) or None


def new_database(server: str, name: str) -> str:
    """The URL of a new, empty database ``name`` on ``server`` (dropped first if it exists)."""
    from sqlalchemy import make_url

    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    drop_database(server, url)
    _admin(server, f'CREATE DATABASE "{name}"')
    return url


def drop_database(server: str, url: str) -> None:
    """Drop the database at ``url``, whatever connections it still has."""
    from sqlalchemy import make_url

    _admin(server, f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')


def _admin(server: str, statement: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(server, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(text(statement))
    finally:
        engine.dispose()
