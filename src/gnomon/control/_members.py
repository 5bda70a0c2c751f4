"""The daemons sharing a PostgreSQL database, as operators see them (``gnomon daemon
status``, ``GET /api/v1/daemons``, the dashboard's overview): each member's host, pid,
version, workers busy and idle, last heartbeat, whether it schedules, and the deployments
whose definition it loaded otherwise than the scheduler did (a config change rolling
across the hosts; it runs none of their runs until they agree)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gnomon.store import Store


def member_views(store: Store) -> list[dict[str, Any]]:
    """Every member, oldest first; none on SQLite (one daemon, no cluster)."""
    if store.engine.dialect.name != "postgresql":
        return []
    now, rows = store.read_member_leases()
    holder, _, _ = store.read_leader()
    agreed = {row.name: row.definition_hash for row in store.read_deployments()}
    views = []
    for row in rows:
        definitions = row.definitions or {}
        differing = sorted(
            name
            for name, value in definitions.items()
            if agreed.get(name) is not None and agreed[name] != value
        )
        views.append(
            {
                "id": row.id,
                "host": row.host,
                "pid": row.pid,
                "version": row.version,
                "scheduler": row.id == holder,
                "workers": row.workers,
                "busy": row.busy,
                "idle": row.idle,
                "heartbeat_at": row.heartbeat_at,
                "heartbeat_age": round((now - row.heartbeat_at).total_seconds(), 1),
                "lease_left": round((row.lease_until - now).total_seconds(), 1),
                "differing": differing,
                "missing": sorted(set(agreed) - set(definitions)),
            }
        )
    return views
