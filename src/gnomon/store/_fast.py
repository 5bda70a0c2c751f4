"""The command line's fast path to the store: ``gnomon pause``, ``resume``, ``runs list``
and ``logs`` on the bare driver (the standard library's sqlite3, or psycopg), without
SQLAlchemy.

Importing SQLAlchemy takes about as long as those commands may take end to end (see
``docs/benchmarks.md``). So they use ``FastStore``, which plays ``abc.FastControl`` with
``Store``'s own methods (``_calls``) and queries: the statements of ``_statements``,
compiled for each dialect ahead of time into ``_compiled`` (``python -m
gnomon.store._compile``), with what the generator read from the schema about converting
each value. ``_driver`` binds the values and decodes the rows as ``Store`` returns them;
this module opens the connection and runs the SQL. A contract test runs every method on
both stores and both databases.

``open_fast`` opens only a store at ``HEAD_REVISION`` that it reaches exactly as ``Store``
would (the same file, or the same libpq settings); anything else (a store to migrate, URL
options it does not apply) is left to ``Store``. A store a newer gnomon migrated is
refused here as ``Store`` refuses it (``StoreSchemaTooNew``).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from gnomon._location import existing_file_uri, sqlite_file
from gnomon._text import loads
from gnomon.store._calls import Call, Execute, FastControlQueries
from gnomon.store._connect import BUSY_TIMEOUT_MS, libpq_parameters
from gnomon.store._driver import DriverQueries, driver_queries
from gnomon.store._faults import refuse_unknown_revision
from gnomon.store._revision import HEAD_REVISION

if TYPE_CHECKING:
    import psycopg

    from gnomon.store.abc import FastControl


class FastStore(FastControlQueries):
    """``FastControl`` on one connection of the driver, running compiled SQL."""

    def __init__(self, connection: Any, dialect: str) -> None:
        self._connection = connection
        self._dialect = dialect
        self.queries: DriverQueries = driver_queries(dialect)  # from ``_compiled``

    @property
    def dialect(self) -> str:
        return self._dialect

    def close(self) -> None:
        self._connection.close()

    def revision(self) -> str | None:
        """The schema revision the store is at; None if it has none (never migrated)."""
        revisions = self._column(Call("revision"))
        return str(revisions[0]) if revisions else None

    def _tuples(self, call: Call) -> Sequence[Sequence[Any]]:
        return self.queries.decode(call.query, self._execute(call).fetchall())

    def _execute(self, call: Call) -> Any:
        """Run ``call``'s SQL with its values bound; the driver's cursor."""
        bound = self.queries.bind(call)
        return self._connection.execute(bound.sql, bound.parameters[0])


class SQLiteFastStore(FastStore):
    """A SQLite file, through the standard library's sqlite3."""

    def __init__(self, path: Path) -> None:
        # isolation_level=None: transactions are begun explicitly, IMMEDIATE for writes
        # (as ``Store`` begins them: see ``_db``).
        connection = sqlite3.connect(
            existing_file_uri(path), isolation_level=None, check_same_thread=False, uri=True
        )
        connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        connection.execute("PRAGMA foreign_keys = ON")
        super().__init__(connection, "sqlite")

    @contextlib.contextmanager
    def _writing(self) -> Iterator[Execute]:
        connection = self._connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield lambda call: int(self._execute(call).rowcount)
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise


class ServerFastStore(FastStore):
    """A PostgreSQL database, through psycopg, in autocommit: each read is a statement of
    its own, each write a transaction (``_writing``)."""

    def __init__(self, parameters: dict[str, Any]) -> None:
        import psycopg
        from psycopg.types.json import set_json_loads

        connection = psycopg.connect(autocommit=True, **parameters)
        # JSON values decoded by psycopg, through the loader ``Store``'s engine gives it.
        set_json_loads(loads, connection)
        super().__init__(connection, "postgresql")

    @contextlib.contextmanager
    def _writing(self) -> Iterator[Execute]:
        connection: psycopg.Connection[Any] = self._connection
        with connection.transaction():
            yield lambda call: int(self._execute(call).rowcount)


def open_fast(url: str) -> FastStore | None:
    """A ``FastStore`` for the store at ``url`` if it is at ``HEAD_REVISION`` and reached
    as ``Store`` would reach it; else None, and the caller opens ``Store``."""
    store: FastStore
    path = sqlite_file(url)
    if path is not None:
        # Options in the URL (``?timeout=...``) are left to ``Store``, which applies them.
        if "?" in url or not path.is_file():
            return None
        store = SQLiteFastStore(path)
        undetermined: type[Exception] = sqlite3.DatabaseError
    else:
        parameters = libpq_parameters(url)
        if parameters is None:
            return None
        import psycopg

        store = ServerFastStore(parameters)  # a server that cannot be reached: its error
        undetermined = psycopg.ProgrammingError  # no alembic_version table
    try:
        revision = store.revision()
    except undetermined:
        revision = None
    except BaseException:
        store.close()
        raise
    if revision != HEAD_REVISION:
        store.close()
        refuse_unknown_revision(revision, url)  # a newer gnomon's: refused here as by ``Store``
        return None
    return store


if TYPE_CHECKING:
    # Never run: mypy fails here, naming the method, if ``FastStore`` stops playing
    # ``FastControl`` as ``Store`` does.
    _fast_control: FastControl = cast(FastStore, None)
