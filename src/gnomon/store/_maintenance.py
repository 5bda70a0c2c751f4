"""Maintenance windows in the store: an operator's, added and removed with their audit
rows in one transaction, and the config's, which the daemon's sync replaces as a whole
when the file's change. Reads are bounded by ``ends_at``'s index: the windows not over
yet (or over since a given time), which a daemon has few of.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select

from gnomon.store._calls import audit_call
from gnomon.store._codecs import as_utc
from gnomon.store._kinds import AuditAction, MaintenanceSource, Nudge
from gnomon.store._queries import Queries, execute_call, notify_in
from gnomon.store._schema import maintenance_windows
from gnomon.store.rows import MaintenanceRow

if TYPE_CHECKING:
    from gnomon.store._values import Actor
    from gnomon.store.rows import NewMaintenance

# What a config window is compared by when the sync decides whether the file changed it.
_SPAN = ("starts_at", "ends_at", "reason", "deployments", "tags", "name")


class MaintenanceQueries(Queries):
    """The maintenance_windows table's reads and writes."""

    def add_maintenance(self, row: NewMaintenance, actor: Actor) -> MaintenanceRow:
        """Add an operator's window, audited in the same transaction; the row added."""
        table = maintenance_windows
        with self.engine.begin() as connection:
            values = {**row, "source": MaintenanceSource.OPERATOR, "created_by": actor.name}
            found = connection.execute(table.insert().values(values).returning(*table.c)).one()
            added = MaintenanceRow(*found)
            detail = _detail(added)
            call = audit_call(
                actor, AuditAction.MAINTENANCE_ADD, str(added.id), row.get("reason"), detail
            )
            execute_call(connection, call)
            notify_in(connection, Nudge.POLL)
        return added

    def remove_maintenance(
        self, window_id: int, actor: Actor, reason: str | None = None
    ) -> MaintenanceRow | None:
        """Remove an operator's window, audited; the row removed, None if there was none
        (a config window is the file's: not removed here, and returned as it is)."""
        table = maintenance_windows
        with self.engine.begin() as connection:
            found = connection.execute(select(table).where(table.c.id == window_id)).first()
            if found is None:
                return None
            row = MaintenanceRow(*found)
            if row.source != MaintenanceSource.OPERATOR:
                return row
            connection.execute(delete(table).where(table.c.id == window_id))
            call = audit_call(
                actor, AuditAction.MAINTENANCE_RM, str(window_id), reason, _detail(row)
            )
            execute_call(connection, call)
            notify_in(connection, Nudge.POLL)
        return row

    def read_maintenance(self, ending_after: datetime | None = None) -> list[MaintenanceRow]:
        """The windows that end after ``ending_after`` (every one if None), by start."""
        statement = select(maintenance_windows)
        if ending_after is not None:
            statement = statement.where(maintenance_windows.c.ends_at > ending_after)
        order = (maintenance_windows.c.starts_at, maintenance_windows.c.id)
        return self._all(statement.order_by(*order), MaintenanceRow)

    def sync_config_maintenance(self, rows: Sequence[NewMaintenance]) -> bool:
        """Make the config's windows these (the file's [[maintenance]] entries); whether
        anything changed. Unchanged ones keep their rows and ids."""
        table = maintenance_windows
        source = MaintenanceSource.CONFIG
        with self.engine.begin() as connection:
            stored = connection.execute(select(table).where(table.c.source == source)).all()
            have = sorted(_key(MaintenanceRow(*found).__getattribute__) for found in stored)
            want = sorted(_key(functools.partial(dict.get, row)) for row in rows)
            if have == want:
                return False
            connection.execute(delete(table).where(table.c.source == source))
            if rows:
                connection.execute(table.insert(), [{**row, "source": source} for row in rows])
        return True


def _key(value: Callable[[str], Any]) -> str:
    """A window's span, reason and targets as comparable text."""
    return json.dumps(
        [as_utc(v).isoformat() if isinstance(v, datetime) else v for v in map(value, _SPAN)]
    )


def _detail(row: MaintenanceRow) -> dict[str, object]:
    """What the audit entry keeps of a window."""
    return {
        "starts_at": row.starts_at.isoformat(),
        "ends_at": row.ends_at.isoformat(),
        "deployments": row.deployments or [],
        "tags": row.tags or [],
    }
