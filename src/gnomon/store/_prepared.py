"""Core statements compiled once, with their parameters converted before a transaction
begins, so that a write transaction holds the store's write lock only while the driver runs.

A flow run's claim and its final state are the store's hottest writes: a trivial run makes
two, and every process writing the store queues behind whoever holds the lock. Executed the
usual way, SQLAlchemy compiles (or looks up) the statement, converts each parameter and
processes the returned rows *inside* the transaction: a claim held the lock 0.49 ms, of
which the driver needed 0.11. ``Prepared`` does the compiling once and the converting up
front; in the transaction, ``execute`` hands ready SQL and values to a driver cursor of the
transaction's connection (0.15 ms held). Those transactions are the driver's own too
(``_db.driver_transaction``): the engine's pool and SQLite settings still apply, and errors
are still SQLAlchemy's.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import Dialect, Table
from sqlalchemy.exc import DBAPIError, InvalidRequestError
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.sql.schema import ColumnDefault

Row = dict[str, Any]


class Prepared:
    """One statement compiled for one dialect and one set of parameter names."""

    def __init__(self, statement: ClauseElement, dialect: Dialect, keys: Sequence[str]) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=list(keys))
        assert isinstance(compiled, SQLCompiler)
        if compiled.has_out_parameters or "POSTCOMPILE" in compiled.string:
            raise ValueError(f"cannot prepare a statement expanded per execution: {compiled}")
        self.sql = compiled.string
        self._dbapi = dialect.loaded_dbapi
        # Columns left out of ``keys`` whose Python-side default SQLAlchemy would compute.
        defaults = {
            column.key: column.default
            for column in (*compiled.insert_prefetch, *compiled.update_prefetch)
            if isinstance(column.default, ColumnDefault)
        }
        # Per bind parameter, what SQLCompiler.construct_params looks up and what converts
        # it, worked out once: building parameters that way took a tenth of a worker's run.
        escaped = compiled.escaped_bind_names
        self._binds = [
            _Bind(
                escaped.get(name, name),
                name,
                bind,
                defaults.pop(bind.key, None),
                bind.type.dialect_impl(dialect).bind_processor(dialect),
            )
            for bind, name in compiled.bind_names.items()
        ]
        if defaults:  # a default for a column the statement has no parameter for
            raise ValueError(f"cannot prepare defaults for {sorted(defaults)}: {compiled}")
        self._names = list(compiled.positiontup or []) if compiled.positional else None

    def parameters(self, rows: Iterable[Row]) -> list[Any]:
        """The driver's parameters for ``rows``: defaults filled in, values converted."""
        converted: list[Any] = []
        for row in rows:
            values = {bind.escaped: bind.value(row) for bind in self._binds}
            if self._names is not None:
                converted.append(tuple(values[name] for name in self._names))
            else:
                converted.append(values)
        return converted

    def execute(self, connection: Any, parameters: list[Any]) -> Any:
        """Run the statement once per parameter set, on a cursor of the driver
        ``connection`` in its transaction (see ``_db.driver_transaction``); returns the
        cursor, for RETURNING rows. The driver's errors are raised as SQLAlchemy's
        (``OperationalError``, ``IntegrityError``, ...), as ``execute`` would."""
        cursor = connection.cursor()
        try:
            if len(parameters) == 1:
                cursor.execute(self.sql, parameters[0])
            else:
                cursor.executemany(self.sql, parameters)
        except self._dbapi.Error as error:
            raise DBAPIError.instance(self.sql, parameters, error, self._dbapi.Error) from error
        return cursor


class _Bind:
    """One bind parameter of a prepared statement: where its value comes from, as
    ``SQLCompiler.construct_params`` finds it, and how the driver gets it."""

    __slots__ = ("bind", "default", "escaped", "key", "name", "processor")

    def __init__(
        self,
        escaped: str,
        name: str,
        bind: BindParameter[Any],
        default: ColumnDefault | None,
        processor: Callable[[Any], Any] | None,
    ) -> None:
        self.escaped, self.name, self.key, self.bind = escaped, name, bind.key, bind
        self.default, self.processor = default, processor

    def value(self, row: Row) -> Any:
        if self.key in row:
            value = row[self.key]
        elif self.name in row:
            value = row[self.name]
        elif self.default is not None:
            default = self.default
            value = default.arg(None) if default.is_callable else default.arg
        elif self.bind.required:
            raise InvalidRequestError(f"A value is required for bind parameter {self.key!r}")
        else:
            value = self.bind.effective_value if self.bind.callable else self.bind.value
        return value if self.processor is None else self.processor(value)


def prepare_rows(
    statement: ClauseElement, dialect: Dialect, rows: Iterable[Row]
) -> list[tuple[Prepared, list[Row], list[Any]]]:
    """``rows`` grouped by their columns (every row of one executemany binds the same), each
    group with ``statement`` prepared for those columns and the group's parameters."""
    groups: dict[tuple[str, ...], list[Row]] = {}
    for row in rows:
        groups.setdefault(tuple(row), []).append(row)
    prepared = []
    for keys, group in groups.items():
        statement_for_keys = prepare(statement, dialect, keys)
        prepared.append((statement_for_keys, group, statement_for_keys.parameters(group)))
    return prepared


@functools.lru_cache(maxsize=256)
def prepare(statement: ClauseElement, dialect: Dialect, keys: tuple[str, ...]) -> Prepared:
    """``statement`` compiled for ``dialect`` and the parameter names ``keys``, cached by
    the statement object: build statements once (module constants), not per call."""
    return Prepared(statement, dialect, keys)


def result_row(table: Table, dialect: Dialect, names: Sequence[str], values: Sequence[Any]) -> Row:
    """A raw row of ``table`` (its column ``names`` and driver ``values``) as Python values."""
    row: Row = {}
    for name, value in zip(names, values, strict=True):
        processor = _result_processor(table, dialect, name)
        row[name] = processor(value) if processor is not None else value
    return row


@functools.lru_cache(maxsize=512)
def _result_processor(table: Table, dialect: Dialect, name: str) -> Callable[[Any], Any] | None:
    return table.c[name].type.dialect_impl(dialect).result_processor(dialect, None)
