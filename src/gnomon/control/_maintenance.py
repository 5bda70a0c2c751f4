"""Maintenance windows as operators change and see them: ``gnomon maintenance add | ls |
rm``, ``/api/v1/maintenance`` and the dashboard.

An operator's window is written with its audit entry in one transaction, then the daemon
is nudged; it also finds the change at its next poll, within a second. A window stops
fires: a run already running when it starts goes on, and a run a fire before it queued
still starts. The config's [[maintenance]] windows are listed too, and are the file's to
change (``rm`` refuses them).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from gnomon.control._operations import Conflict, UnknownName, check_name, check_text
from gnomon.control._views import iso
from gnomon.store import MaintenanceSource

if TYPE_CHECKING:
    from gnomon.control._operations import Operations
    from gnomon.scheduling import MaintenanceWindow
    from gnomon.store import ControlStore
    from gnomon.store.rows import MaintenanceRow


def add_window(
    ops: Operations,
    start: datetime,
    end: datetime,
    *,
    deployments: Sequence[str] = (),
    tags: Sequence[str] = (),
    reason: str | None = None,
) -> MaintenanceRow:
    """Add a window (``parse_window`` gives its span) for these deployments or tags (none:
    every deployment); UnknownName for a deployment that is not registered."""
    check_text("reason", reason)
    for tag in tags:
        check_name("tag", tag)
    if deployments:
        ops.select(deployments)  # each must exist
    row = ops.store.add_maintenance(
        {
            "starts_at": start,
            "ends_at": end,
            "reason": reason,
            "deployments": list(dict.fromkeys(deployments)),
            "tags": list(dict.fromkeys(tags)),
            "source": MaintenanceSource.OPERATOR,
        },
        ops.actor,
    )
    ops.nudge("poll")
    return row


def remove_window(ops: Operations, window_id: int, reason: str | None = None) -> MaintenanceRow:
    """Remove an operator's window; UnknownName if there is none by that id, Conflict for
    a config file's."""
    check_text("reason", reason)
    row = ops.store.remove_maintenance(window_id, ops.actor, reason)
    if row is None:
        known = [str(each.id) for each in ops.store.read_maintenance()]
        raise UnknownName("maintenance window", str(window_id), known)
    if row.source != MaintenanceSource.OPERATOR:
        raise Conflict(
            f"maintenance window {window_id} is the config file's [[maintenance]] entry"
            f" {row.name!r}: remove it there and reload"
        )
    ops.nudge("poll")
    return row


def list_windows(store: ControlStore, now: datetime, every: bool = False) -> list[MaintenanceRow]:
    """The windows not over yet by start (every one, the past ones too, with ``every``)."""
    return store.read_maintenance(None if every else now)


def current_windows(store: ControlStore, now: datetime) -> list[MaintenanceWindow]:
    """The windows not over at ``now``, as schedules take them (for the next fires the
    views show)."""
    from gnomon.deployments import stored_window

    return [stored_window(row) for row in store.read_maintenance(now)]


def window_view(row: MaintenanceRow, now: datetime) -> dict[str, Any]:
    """A window as the CLI's --json and the API print it; ``state``: upcoming, active or
    past at ``now``."""
    state = "upcoming" if now < row.starts_at else "active" if now < row.ends_at else "past"
    return {
        "id": row.id,
        "start": iso(row.starts_at),
        "end": iso(row.ends_at),
        "state": state,
        "reason": row.reason,
        "deployments": row.deployments or [],
        "tags": row.tags or [],
        "source": row.source.value,
        "name": row.name,
        "created": iso(row.created),
        "created_by": row.created_by,
    }
