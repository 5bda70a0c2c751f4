"""Run pools (``[[pools]]``): at most a pool's ``slots`` runs of its deployments at once.

A pool's slots are counted in the store, as the concurrency limit ``pool:<name>``
(``flows/_concurrency``'s rows): a run takes a slot when the scheduler hands it to the
workers and gives it back when it ends. Counted there rather than in the daemon so that
several daemons sharing one PostgreSQL store (issue 19) share each pool's slots too, and so
that ``gnomon pools ls`` and the API read the slots taken from the store. A slot's holder is
``host:pid:run id``: the slots of a daemon killed without giving them back are freed by the
next daemon on its host (``reap_stale_slots``, at start), and by any waiter for a
concurrency limit there.

A run whose pool is full waits in the scheduler, Pending: its state becomes AwaitingPool
with the message "waiting for pool warehouse (3/3 slots taken)" once, and when it gets a
slot, Pending again with how long it waited ("waited 12.4 s for pool warehouse"), a state
row each, so ``runs show``, the API and the dashboard show the wait and its length; a log
line says the same. A pool that refused a run is not asked again in the same dispatch pass:
a full pool costs one store write per pass, not one per waiting run.
"""

from __future__ import annotations

import logging
import os
import socket
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from gnomon.deployments import POOL_LIMIT_PREFIX, pool_limit, sync_pools
from gnomon.states import FINAL_TYPES, StateName, StateType
from gnomon.store import store_fault

if TYPE_CHECKING:
    from gnomon.deployments import RunPool
    from gnomon.store import ScheduleStore

log = logging.getLogger("gnomon.daemon")


@dataclass(frozen=True, slots=True)
class PoolWait:
    """A run waiting for a slot of ``pool`` since ``since``."""

    pool: str
    since: datetime


class PoolSlots:
    """The pools' slots as this daemon takes and gives them back (in the store)."""

    def __init__(self, store: ScheduleStore) -> None:
        self.store = store
        self._prefix = f"{socket.gethostname()}:{os.getpid()}:"
        self._held: dict[str, str] = {}  # run id -> pool whose slot it holds
        self._waits: dict[str, PoolWait] = {}  # run id -> its wait
        self._full: set[str] = set()  # pools that refused a run in this dispatch pass
        # Slots of ended runs whose release the store refused (it failed): retried.
        self._unreleased: set[str] = set()

    def configure(self, pools: Iterable[RunPool], kept: Iterable[str] = ()) -> None:
        """Make the store's pool limits the config's (``deployments.sync_pools``)."""
        sync_pools(self.store, pools, kept)

    def reap(self) -> None:
        """Free the slots no daemon holds any more (at start, after the recovery): those
        of processes of this host that are gone, and pool slots whose run has ended, is
        gone, or was taken over by another daemon (a recovered run queued again here has
        this daemon's id; its dead daemon's slot is no one's) - also when that daemon ran
        on another host."""
        freed = self.store.reap_stale_slots()
        for holder in self.store.read_slot_holders(POOL_LIMIT_PREFIX):
            owner, _, flow_run_id = holder.rpartition(":")
            run = self.store.read_flow_run(flow_run_id)
            # A run this daemon holds a slot for may run on another member of a cluster
            # (``_cluster``): its daemon_id is that member's.
            ours = holder == self._holder(flow_run_id) and flow_run_id in self._held
            held = (
                run is not None
                and run.state_type not in FINAL_TYPES
                and (ours or (run.daemon_id or "").startswith(f"{owner}:"))
            )
            if not held:
                freed += self.store.release_slots(holder)
        if freed:
            log.info("freed %d pool or concurrency slots no process holds any more", freed)

    def new_pass(self) -> None:
        """A dispatch pass begins: every pool may be asked again, and slots a failing
        store kept are given back."""
        self._full.clear()
        self._release()

    def take(self, flow_run_id: str, pool: str, deployment: str, now: datetime) -> bool:
        """Take a slot of ``pool`` for the run; False if the pool is full (the run's wait
        is recorded when it begins)."""
        if pool not in self._full and self.store.try_acquire_slots(
            [pool_limit(pool)], 1, self._holder(flow_run_id)
        ):
            self._held[flow_run_id] = pool
            wait = self._waits.pop(flow_run_id, None)
            if wait is not None:
                self._record_end_of_wait(flow_run_id, deployment, wait, now)
            return True
        self._full.add(pool)
        if flow_run_id not in self._waits:
            self._waits[flow_run_id] = PoolWait(pool, now)
            self._record_wait(flow_run_id, deployment, pool)
        return False

    def give_back(self, flow_run_id: str) -> None:
        """The run ended (or will not start): free its slot and forget its wait. Never
        raises for a store fault: the tick that calls it must go on with the other runs
        that ended; the release is retried at the next dispatch pass."""
        self._waits.pop(flow_run_id, None)
        pool = self._held.pop(flow_run_id, None)
        if pool is not None:
            self._full.discard(pool)
            self._unreleased.add(self._holder(flow_run_id))
            self._release()

    def give_back_all(self) -> None:
        """The daemon stops: free every slot it holds (its runs have ended, or are given
        back to be run by the next daemon; what a failing store keeps, the next daemon on
        this host frees)."""
        for flow_run_id in list(self._held):
            self.give_back(flow_run_id)
        self._waits.clear()

    def _release(self) -> None:
        for holder in sorted(self._unreleased):
            try:
                self.store.release_slots(holder)
            except Exception as error:
                if (fault := store_fault(error, self.store.url)) is None:
                    raise
                log.warning("pool slot of %s not given back yet: %s", holder, fault)
                return
            self._unreleased.discard(holder)

    def counts(self) -> tuple[Counter[str], Counter[str]]:
        """By pool, the slots this daemon's runs hold and its runs waiting for one (read
        from another thread, the metrics' scrape: copied whole first)."""
        held = tuple(self._held.values())
        waiting = tuple(wait.pool for wait in tuple(self._waits.values()))
        return Counter(held), Counter(waiting)

    def holds(self, flow_run_id: str) -> bool:
        return flow_run_id in self._held

    def _holder(self, flow_run_id: str) -> str:
        return self._prefix + flow_run_id

    def _record_wait(self, flow_run_id: str, deployment: str, pool: str) -> None:
        limit = pool_limit(pool)
        slots = self.store.read_concurrency_limits([limit]).get(limit, 0)
        taken = self.store.count_active_slots().get(limit, 0)
        message = f"waiting for pool {pool} ({taken}/{slots} slots taken)"
        self._record(flow_run_id, deployment, pool, StateName.AWAITING_POOL, message)

    def _record_end_of_wait(
        self, flow_run_id: str, deployment: str, wait: PoolWait, now: datetime
    ) -> None:
        seconds = max(0.0, (now - wait.since).total_seconds())
        message = f"waited {seconds:.1f} s for pool {wait.pool}"
        self._record(
            flow_run_id, deployment, wait.pool, StateName.PENDING, message, round(seconds, 3)
        )

    def _record(
        self,
        flow_run_id: str,
        deployment: str,
        pool: str,
        state: StateName,
        message: str,
        waited: float | None = None,
    ) -> None:
        """The run's new state (still Pending-type) with ``message``, and a log line."""
        self.store.set_run_state(
            flow_run_id, StateType.PENDING, state, message, only_if_active=True
        )
        log.info(
            "run %s of %s: %s",
            flow_run_id,
            deployment,
            message,
            extra={
                "flow_run_id": flow_run_id,
                "deployment": deployment,
                "pool": pool,
                "pool_wait_seconds": waited,
            },
        )
