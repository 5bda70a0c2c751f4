"""Statements compiled ahead of time (``_compiled``), bound to their values and run on a
driver's own connection, without SQLAlchemy: the command line's queries (``FastStore``,
``_fast``) and ``Store``'s hot writes (a worker's claim, the batched writer's rows, a fire's
runs, a run's new state; ``_writes``).

``_compile`` wrote, for each query and dialect, the SQL of each variant and the order of its
parameters, and by name what SQLAlchemy would have made of each value on its way in and out
(a datetime's text, JSON, a boolean) and of a value left out (an insert's column defaults).
``DriverQueries`` applies that for one dialect: all of it is worked out once per statement
shape (``_Plan``), so binding a row is one pass over its values. A hot write's values are
bound before its transaction begins, so the write lock is held only while the driver runs.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from gnomon._text import loads
from gnomon.store._codecs import as_utc, aware, from_utc_text, utc_text, utcnow

if TYPE_CHECKING:
    from gnomon.store._calls import Call

# Where a statement's SET list goes, in its SQL and among its parameters (see ``Compiled``).
ASSIGNMENTS = "__[ASSIGNMENTS]"


class Statement(NamedTuple):
    """One variant of a query, in one dialect's SQL."""

    sql: str
    parameters: tuple[str, ...]  # the names of the values it binds, in order


class Compiled(NamedTuple):
    """A query compiled for one dialect, with how its values cross (see ``_compile``)."""

    variants: dict[tuple[str, ...], Statement]  # by the options that are in, sorted
    columns: tuple[tuple[str, str | None], ...]  # its rows' columns; how each is decoded
    encode: dict[str, str]  # the parameters converted on their way in, and how
    # List parameters: the placeholder the SQL holds for one, the SQL of each of its
    # elements, and that of an empty list.
    expanding: dict[str, tuple[str, str, str]]
    constants: dict[str, Any]  # values the statement binds itself (SQLite's OFFSET 0)
    # An insert's columns that a row may leave out: the value they then take, or the name
    # of what makes it (the schema's defaults; NULL for a column without one).
    defaults: dict[str, Any]
    generated: dict[str, str]
    # An update whose SET list is the columns a row gives: each column's assignment, joined
    # by ", " in place of ASSIGNMENTS, its values bound where ASSIGNMENTS is a parameter.
    assignments: dict[str, str]


Codec = Callable[[Any], Any]

# What makes a left-out value, by the name ``_compile`` gives it.
GENERATORS: Mapping[str, Callable[[], Any]] = {"utcnow": utcnow}

_REQUIRED = object()  # a parameter every row must give
_MOST_PLANS = 1024
_Slot = tuple[str | None, Any, Codec | None]


class _Plan(NamedTuple):
    """A statement in one shape (variant, SET list), ready to bind rows: its SQL, and per
    parameter its name (None: a constant), what a row leaving it out gets (``_REQUIRED``:
    nothing, it must give it), and its encoder."""

    sql: str
    slots: tuple[_Slot, ...]
    names: frozenset[str]  # every name a row may give
    generated: tuple[tuple[int, str], ...]  # slots whose default is made at bind time


class Bound(NamedTuple):
    """A statement with the values of one or more rows, for one ``execute``."""

    sql: str
    parameters: list[list[Any]]
    rows: list[Mapping[str, Any]]  # the rows the parameters were bound from, in order

    def keeping(self, keep: Callable[[Mapping[str, Any]], bool]) -> Bound:
        """This statement with only the rows ``keep`` accepts (and their values)."""
        pairs = [pair for pair in zip(self.rows, self.parameters, strict=True) if keep(pair[0])]
        return Bound(self.sql, [values for _, values in pairs], [row for row, _ in pairs])

    def execute(self, connection: Any) -> Any:
        """Run on a cursor of the driver ``connection`` (in its transaction, if one is
        open), once per row; the cursor, for rows and the rowcount."""
        cursor = connection.cursor()
        if len(self.parameters) == 1:
            cursor.execute(self.sql, self.parameters[0])
        else:
            cursor.executemany(self.sql, self.parameters)
        return cursor


class DriverQueries:
    """One dialect's compiled queries, bound and decoded with its driver's conversions."""

    def __init__(
        self,
        queries: Mapping[str, Compiled],
        encoders: Mapping[str, Codec],
        decoders: Mapping[str, Codec],
    ) -> None:
        self.queries = queries
        self.encoders = encoders
        self.decoders = decoders
        self._plans: dict[tuple[str, tuple[str, ...], tuple[str, ...]], _Plan] = {}

    def has(self, query: str) -> bool:
        """Whether ``query`` is compiled for this dialect (see ``Query.dialects``)."""
        return query in self.queries

    def bind(self, call: Call) -> Bound:
        """``call``'s SQL and values, list parameters spread into their ``IN (...)``."""
        compiled = self.queries[call.query]
        if not compiled.expanding:
            [bound] = self.bind_rows(call.query, [call.parameters], call.variant)
            return bound
        statement = compiled.variants[tuple(sorted(call.variant))]
        sql, values = statement.sql, []
        for name in statement.parameters:
            if name in compiled.constants:
                values.append(compiled.constants[name])
                continue
            value = call.parameters[name]
            encode = self.encoders[compiled.encode[name]] if name in compiled.encode else None
            if name in compiled.expanding:
                placeholder, element, empty = compiled.expanding[name]
                sql = sql.replace(placeholder, ", ".join([element] * len(value)) or empty, 1)
                values.extend(item if encode is None else encode(item) for item in value)
            else:
                values.append(value if encode is None or value is None else encode(value))
        return Bound(sql, [values], [call.parameters])

    def bind_rows(
        self, query: str, rows: Iterable[Mapping[str, Any]], variant: Iterable[str] = ()
    ) -> list[Bound]:
        """The statements that write ``rows`` with query ``query`` in ``variant``: one per
        SET list among them (an insert's rows share one), each with its rows' values."""
        options = tuple(sorted(variant))
        groups: dict[tuple[str, ...], tuple[_Plan, list[Mapping[str, Any]]]] = {}
        for row in rows:
            keys = tuple(row)
            group = groups.get(keys)
            if group is None:
                group = groups[keys] = (self._plan(query, options, keys), [])
            group[1].append(row)
        merged: dict[str, Bound] = {}
        for plan, members in groups.values():
            slots = plan.slots
            if plan.generated:  # made once per statement, as the database would
                made = list(slots)
                for index, generator in plan.generated:
                    name, _, encode = made[index]
                    made[index] = (name, GENERATORS[generator](), encode)
                slots = tuple(made)
            bound = merged.get(plan.sql)
            if bound is None:
                bound = merged[plan.sql] = Bound(plan.sql, [], [])
            bound.parameters.extend(_values(slots, row) for row in members)
            bound.rows.extend(members)
        return list(merged.values())

    def decode(self, query: str, rows: Sequence[Sequence[Any]]) -> Sequence[Sequence[Any]]:
        """The driver's ``rows`` of query ``query`` with their values converted to Python's
        (a row class takes them in order); ``rows`` themselves if nothing converts."""
        columns = self.queries[query].columns
        decoders = [None if kind is None else self.decoders[kind] for _, kind in columns]
        if not any(decoders):
            return rows
        return [
            tuple(
                value if decode is None or value is None else decode(value)
                for decode, value in zip(decoders, row, strict=True)
            )
            for row in rows
        ]

    def _plan(self, query: str, options: tuple[str, ...], keys: tuple[str, ...]) -> _Plan:
        """The plan for rows of ``query`` in variant ``options`` that give ``keys``, in
        that order (which orders an update's SET list)."""
        cached = (query, options, keys)
        plan = self._plans.get(cached)
        if plan is None:
            compiled = self.queries[query]
            columns = tuple(key for key in keys if key in compiled.assignments)
            plan = self._make_plan(compiled, options, columns)
            unknown = set(keys) - plan.names
            if unknown:
                raise ValueError(f"query {query!r} has no parameters {sorted(unknown)}")
            if ASSIGNMENTS in plan.sql:
                raise ValueError(f"query {query!r} is given no column to set")
            if len(self._plans) >= _MOST_PLANS:  # rows whose keys come in ever new orders
                self._plans.clear()
            self._plans[cached] = plan
        return plan

    def _make_plan(
        self, compiled: Compiled, options: tuple[str, ...], columns: tuple[str, ...]
    ) -> _Plan:
        statement = compiled.variants[options]
        sql = statement.sql
        slots: list[_Slot] = []
        generated: list[tuple[int, str]] = []

        def encoder(name: str) -> Codec | None:
            kind = compiled.encode.get(name)
            return None if kind is None else self.encoders[kind]

        for name in statement.parameters:
            if name == ASSIGNMENTS:  # with no columns, left in the SQL: refused when bound
                joined = ", ".join(compiled.assignments[column] for column in columns)
                sql = sql.replace(ASSIGNMENTS, joined or ASSIGNMENTS, 1)
                slots.extend((column, _REQUIRED, encoder(column)) for column in columns)
            elif name in compiled.constants:
                slots.append((None, compiled.constants[name], None))
            elif name in compiled.expanding:
                raise ValueError(f"{name} is a list, spread per call: bind it with bind()")
            elif name in compiled.generated:
                generated.append((len(slots), compiled.generated[name]))
                slots.append((name, None, encoder(name)))
            else:
                slots.append((name, compiled.defaults.get(name, _REQUIRED), encoder(name)))
        names = frozenset(name for name, _, _ in slots if name is not None)
        return _Plan(sql, tuple(slots), names, tuple(generated))


def _values(slots: tuple[_Slot, ...], row: Mapping[str, Any]) -> list[Any]:
    """A row's values for a plan's parameters, in order, converted for the driver."""
    values = []
    for name, fallback, encode in slots:
        if name is None:  # a value the statement binds itself
            value = fallback
        elif fallback is _REQUIRED:
            value = row[name]
        else:
            value = row.get(name, fallback)
        values.append(value if encode is None or value is None else encode(value))
    return values


# Each dialect's conversions, by the names ``_compile`` gives them: what SQLAlchemy's types
# make of a value for sqlite3 and psycopg, and of what they return. (psycopg decodes JSON
# itself, with the loader the connection is given.)
def strict_bool(value: Any) -> bool:
    """A boolean column's value as SQLAlchemy's Boolean takes it: True, False, 1 or 0;
    anything else ("false", 2) is refused, never stored as whatever it is truthy as."""
    if value is True or value is False:
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise TypeError(f"not a boolean: {value!r}")


SQLITE_ENCODERS: Mapping[str, Codec] = {
    "datetime": utc_text,
    "json": json.dumps,
    "bool": lambda value: int(strict_bool(value)),
}
SQLITE_DECODERS: Mapping[str, Codec] = {"datetime": from_utc_text, "json": loads, "bool": bool}
POSTGRESQL_DECODERS: Mapping[str, Codec] = {"datetime": as_utc}


@functools.cache
def driver_queries(dialect: str) -> DriverQueries:
    """The compiled queries of ``dialect`` (SQLAlchemy's name for it), for its driver."""
    from gnomon.store import _compiled

    if dialect == "sqlite":
        return DriverQueries(_compiled.SQLITE, SQLITE_ENCODERS, SQLITE_DECODERS)
    if dialect == "postgresql":
        from psycopg.types.json import Json

        encoders: dict[str, Codec] = {"datetime": aware, "bool": strict_bool, "json": Json}
        return DriverQueries(_compiled.POSTGRESQL, encoders, POSTGRESQL_DECODERS)
    raise NotImplementedError(f"no compiled queries for the {dialect} dialect")
