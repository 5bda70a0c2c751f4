"""Engine creation, with the SQLite settings that let many processes share one file.

On SQLite every transaction starts with ``BEGIN IMMEDIATE``: a writer takes the write lock up
front and, if another process holds it, waits on ``busy_timeout``. A deferred transaction that
reads first and writes later cannot wait like that: SQLite fails its read-to-write upgrade at
once with "database is locked". Reads that never write can use ``read_engine`` instead,
whose transactions begin with a plain deferred ``BEGIN`` and so never wait for writers (WAL
lets readers and one writer work at the same time).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy
from sqlalchemy import Connection, Engine, event
from sqlalchemy.engine import URL, make_url

BUSY_TIMEOUT_MS = 30_000

# Execution option naming the BEGIN statement a SQLite transaction starts with.
_BEGIN_OPTION = "gnomon_sqlite_begin"


def sqlite_path(url: str | URL) -> Path | None:
    """The file behind a SQLite URL, or None for other databases and in-memory SQLite."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database
    if not database or database == ":memory:" or parsed.query.get("mode") == "memory":
        return None
    return Path(database)


def create_engine(url: str | URL) -> Engine:
    """An engine for the store at ``url``; SQLite files get WAL and ``BEGIN IMMEDIATE``."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return sqlalchemy.create_engine(parsed, pool_pre_ping=True)
    path = sqlite_path(parsed)
    if path is not None:
        # 0700: the database holds run parameters and error tracebacks.
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    engine = sqlalchemy.create_engine(parsed)
    event.listen(engine, "connect", _configure_sqlite_connection)
    event.listen(engine, "begin", _begin_sqlite_transaction)
    return engine


def read_engine(engine: Engine) -> Engine:
    """A view of ``engine`` (same pool) whose SQLite transactions begin deferred."""
    return engine.execution_options(**{_BEGIN_OPTION: "BEGIN"})


def _configure_sqlite_connection(dbapi_connection: Any, _record: Any) -> None:
    # Stop pysqlite from issuing its own BEGIN; _begin_sqlite_transaction issues ours.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        # busy_timeout first, so that switching to WAL waits for other processes too.
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA synchronous = NORMAL")
        (mode,) = cursor.execute("PRAGMA journal_mode").fetchone()
        if mode.lower() not in {"wal", "memory"}:
            cursor.execute("PRAGMA journal_mode = WAL")
    finally:
        cursor.close()


def _begin_sqlite_transaction(connection: Connection) -> None:
    begin = connection.get_execution_options().get(_BEGIN_OPTION, "BEGIN IMMEDIATE")
    connection.exec_driver_sql(begin)
