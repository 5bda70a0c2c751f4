"""The command line's fast path to a SQLite store: what ``gnomon pause``, ``resume``, ``runs
list`` and ``logs`` run, on the standard library's sqlite3 instead of SQLAlchemy.

Importing SQLAlchemy takes about 250 ms on the machines gnomon is measured on, most of the
300 ms those commands may take end to end. So they use ``LiteStore``, which offers the same
methods as ``Store`` for what they need and reads and writes the same rows in the same
formats. It opens only a SQLite store already at ``HEAD_REVISION``; anything else (a store to
migrate, PostgreSQL) goes through ``Store``. A contract test runs the same calls against
both and compares the results.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gnomon._location import existing_file_uri, sqlite_file
from gnomon._text import loads
from gnomon.store._codecs import utc_text
from gnomon.store._connect import BUSY_TIMEOUT_MS
from gnomon.store._revision import HEAD_REVISION
from gnomon.store._values import newest_in_time_order, newest_window, pause_values

if TYPE_CHECKING:
    from gnomon.states import StateFilter

Row = dict[str, Any]

# Columns by how they are stored: UTCDateTime as naive UTC text, JSON as text, Boolean as int.
_DATETIMES = frozenset(
    {
        "timestamp",
        "created",
        "updated",
        "start_time",
        "end_time",
        "expected_start_time",
        "scheduled_for",
        "cancel_requested_at",
        "anchor",
        "paused_at",
        "last_fire",
        "fires_from",
        "registered_at",
    }
)
_JSONS = frozenset(
    {"parameters", "tags", "result_ref", "policies", "extra", "detail", "parameter_schema"}
)
_BOOLEANS = frozenset({"paused", "active", "force", "read_only"})


def open_lite(url: str) -> LiteStore | None:
    """A ``LiteStore`` for a SQLite store at ``url`` that is at ``HEAD_REVISION``, else None."""
    path = sqlite_file(url)
    # Options in the URL (``?timeout=...``) are left to ``Store``, which applies them.
    if path is None or "?" in url or not path.is_file():
        return None
    store = LiteStore(path)
    try:
        revision = store.revision()
    except sqlite3.DatabaseError:
        revision = None
    if revision != HEAD_REVISION:
        store.close()
        return None
    return store


class LiteStore:
    """The few queries of the fast commands, on one sqlite3 connection."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # isolation_level=None: transactions are begun explicitly, IMMEDIATE for writes.
        self._connection = sqlite3.connect(
            existing_file_uri(path), isolation_level=None, check_same_thread=False, uri=True
        )
        self._connection.row_factory = sqlite3.Row
        self._connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        self._connection.execute("PRAGMA foreign_keys = ON")

    def close(self) -> None:
        self._connection.close()

    def revision(self) -> str | None:
        row = self._connection.execute("SELECT version_num FROM alembic_version").fetchone()
        return None if row is None else str(row[0])

    def _all(self, sql: str, parameters: Sequence[Any] = ()) -> list[Row]:
        return [_decode(row) for row in self._connection.execute(sql, parameters)]

    # Deployments.

    def read_deployment_names(self) -> list[str]:
        return [
            row[0]
            for row in self._connection.execute(
                "SELECT name FROM deployments WHERE active = 1 ORDER BY name"
            )
        ]

    def read_deployment(self, name: str) -> Row | None:
        rows = self._all("SELECT * FROM deployments WHERE name = ?", (name,))
        return rows[0] if rows else None

    def read_deployments(self, active_only: bool = True) -> list[Row]:
        where = " WHERE active = 1" if active_only else ""
        return self._all(f"SELECT * FROM deployments{where} ORDER BY name")

    def set_paused(
        self, names: Sequence[str], paused: bool, actor: Any, reason: str | None
    ) -> list[str]:
        """As ``Store.set_paused``: the flags and their audit rows in one transaction."""
        now = utc_text(datetime.now(UTC))
        values = _encode(pause_values(paused, actor.name, reason, datetime.now(UTC)))
        values["updated"] = now
        assignments = ", ".join(f"{column} = ?" for column in values)
        changed: list[str] = []
        connection = self._connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            for name in names:
                cursor = connection.execute(
                    f"UPDATE deployments SET {assignments} WHERE name = ? AND paused = ?",
                    (*values.values(), name, 0 if paused else 1),
                )
                if cursor.rowcount:
                    changed.append(name)
                    connection.execute(
                        "INSERT INTO audit_log (timestamp, actor, origin, action, target,"
                        " reason, detail) VALUES (?, ?, ?, ?, ?, ?, NULL)",
                        (
                            now,
                            actor.name,
                            actor.origin,
                            "pause" if paused else "resume",
                            name,
                            reason,
                        ),
                    )
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        return changed

    # Runs.

    def read_flow_run(self, id: str) -> Row | None:
        rows = self._all("SELECT * FROM flow_runs WHERE id = ?", (id,))
        return rows[0] if rows else None

    def find_runs_by_prefix(self, prefix: str, limit: int = 2) -> list[str]:
        return [
            row[0]
            for row in self._connection.execute(
                "SELECT id FROM flow_runs WHERE id >= ? AND id < ? ORDER BY id LIMIT ?",
                (prefix, prefix + "\uffff", limit),
            )
        ]

    def read_runs(
        self,
        deployment: str | None = None,
        state: StateFilter | None = None,
        since: datetime | None = None,
        limit: int = 50,
    ) -> list[Row]:
        """As ``Store.read_runs``: newest first, by deployment, state filter, age."""
        where, parameters = _conditions(
            [
                ("deployment_name = ?", deployment),
                ("created >= ?", utc_text(since) if since else None),
            ]
        )
        if state is not None:
            types, names = sorted(state.types), sorted(state.names)
            marks = ", ".join("?" * len(types)), ", ".join("?" * len(names))
            where += (" AND " if where else " WHERE ") + (
                f"(state_type IN ({marks[0]}) OR state_name IN ({marks[1]}))"
            )
            parameters += [*types, *names]
        return self._all(
            f"SELECT * FROM flow_runs{where} ORDER BY created DESC LIMIT ?", (*parameters, limit)
        )

    # Logs.

    def search_logs(self, query: Any, limit: int | None, newest: bool) -> list[Row]:
        """As ``Store.search_logs``."""
        where, parameters = _conditions(
            [
                ("id > ?", query.after_id),
                ("flow_run_id = ?", query.flow_run_id),
                ("deployment_name = ?", query.deployment),
                ("level >= ?", query.min_level),
                ("timestamp >= ?", utc_text(query.since) if query.since else None),
            ]
        )
        order = "DESC" if newest else "ASC"
        sql = f"SELECT * FROM run_logs{where} ORDER BY id {order}"
        if limit is not None:
            sql += " LIMIT ?"
            parameters.append(newest_window(limit) if newest else limit)
        rows = self._all(sql, parameters)
        return newest_in_time_order(rows, limit) if newest else rows

    def last_log_id(self) -> int:
        row = self._connection.execute("SELECT max(id) FROM run_logs").fetchone()
        return int(row[0] or 0)


def _encode(values: dict[str, Any]) -> dict[str, Any]:
    """Column values as the store keeps them on SQLite (datetimes as text, booleans as int)."""
    return {
        column: utc_text(value)
        if isinstance(value, datetime)
        else int(value)
        if isinstance(value, bool)
        else value
        for column, value in values.items()
    }


def _conditions(pairs: Iterable[tuple[str, Any]]) -> tuple[str, list[Any]]:
    """A WHERE clause of the conditions whose value is not None, and their parameters."""
    clauses = [(sql, value) for sql, value in pairs if value is not None]
    if not clauses:
        return "", []
    return " WHERE " + " AND ".join(sql for sql, _ in clauses), [value for _, value in clauses]


def _decode(row: sqlite3.Row) -> Row:
    decoded: Row = {}
    for key in row.keys():  # noqa: SIM118 (sqlite3.Row iterates over values)
        value = row[key]
        if value is not None:
            if key in _DATETIMES:
                value = datetime.fromisoformat(value).replace(tzinfo=UTC)
            elif key in _JSONS:
                value = loads(value)
            elif key in _BOOLEANS:
                value = bool(value)
        decoded[key] = value
    return decoded
