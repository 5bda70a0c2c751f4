"""The run pools as operators see them (``gnomon pools ls``, ``GET /api/v1/pools``): each
pool's slots, the slots its runs hold now and the runs waiting for one, all read from the
store, where the daemons count them (see daemon/_pools)."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from gnomon.deployments import POOL_LIMIT_PREFIX

if TYPE_CHECKING:
    from gnomon.store import ControlStore


def pool_views(store: ControlStore) -> list[dict[str, Any]]:
    """Each pool, by name: ``slots``, ``taken``, ``waiting`` and the active
    ``deployments`` that name it."""
    members: dict[str, list[str]] = defaultdict(list)
    pool_of: dict[str, str] = {}
    for row in store.read_deployments():
        pool = (row.policies or {}).get("pool")
        if isinstance(pool, str):
            members[pool].append(row.name)
            pool_of[row.name] = pool
    waiting: dict[str, int] = defaultdict(int)
    for deployment, count in store.count_pool_waits().items():
        if deployment in pool_of:
            waiting[pool_of[deployment]] += count
    taken = store.count_active_slots()
    return [
        {
            "name": (name := row.name.removeprefix(POOL_LIMIT_PREFIX)),
            "slots": row.slot_limit,
            "taken": taken.get(row.name, 0),
            "waiting": waiting.get(name, 0),
            "deployments": sorted(members.get(name, [])),
        }
        for row in store.read_limit_rows()
        if row.name.startswith(POOL_LIMIT_PREFIX)
    ]
