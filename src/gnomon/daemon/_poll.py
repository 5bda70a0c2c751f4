"""What other processes change in the store, applied by the daemon: pauses (with when they
end) and resumes, manual runs and retries, cancellations, and maintenance windows, made
through the CLI or the HTTP API.

The store is the channel (see ``gnomon.control._operations``). The daemon polls it once a
second, and at once when the CLI sends SIGUSR1 after a change or, on PostgreSQL, when the
change's NOTIFY reaches it (``_listen``: from any host); each poll first checks that
the database file is still the one the daemon opened (``_storefile``). Each poll reads what changed
since a little before the previous one, so a change committed while a poll ran is not
missed; applying a change twice does nothing.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from gnomon.daemon._storefile import StoreFileGuard
from gnomon.states import StateType

if TYPE_CHECKING:
    from gnomon.daemon._scheduler import Scheduler
    from gnomon.daemon._tracking import Decision
    from gnomon.store import Store
    from gnomon.store.rows import MaintenanceRow

log = logging.getLogger("gnomon.daemon")

POLL_OVERLAP = timedelta(seconds=5)
# Windows that ended longer ago than this no longer matter to the daemon: a catch-up after
# a longer downtime runs fires such a window held (but see the catch-up policy's limits).
WINDOWS_LOOKBACK = timedelta(days=31)


class StorePoll:
    """Applies the store's changes since the last poll to the scheduler."""

    def __init__(self, store: Store, scheduler: Scheduler, now: datetime) -> None:
        self.store = store
        self.scheduler = scheduler
        self._polled_at = now
        self.file_guard = StoreFileGuard(store)
        self._windows: list[MaintenanceRow] | None = None

    def poll(self, now: datetime) -> list[Decision]:
        """Apply pauses, cancellations and requested runs; returns the runs' decisions.

        First, it checks that the database is still the file the daemon opened; raises
        ``StoreFileChanged`` (see ``_storefile``) if it is not.
        """
        self.file_guard.check()
        since = self._polled_at - POLL_OVERLAP
        self._polled_at = now
        for change in self.store.read_pause_changes(since):
            self.scheduler.set_paused(change.name, change.paused, now, change.paused_until)
        for request in self.store.read_cancel_requests(since):
            reason = request.state_message or "cancelled by an operator"
            if self.scheduler.cancel_requested(request.id, reason) and request.state_type in (
                StateType.RUNNING,
                StateType.CANCELLING,
                StateType.PAUSED,  # in its worker; a suspended run is cancelled at once
            ):
                log.info(
                    "cancelling run: %s",
                    reason,
                    extra={"flow_run_id": request.id, "event_kind": "cancel_requested"},
                )
        decisions = []
        for run in self.store.read_requested_runs(since):
            decision = self.scheduler.admit(run, now)
            if decision is not None:
                decisions.append(decision)
        for run in self.store.read_resumed_runs(since):
            decision = self.scheduler.resume(run, now)
            if decision is not None:
                decisions.append(decision)
        self.poll_windows(now)
        for flow_run_id in self.store.fail_expired_suspensions(now):
            log.warning(
                "suspended run failed: it was not resumed before its pause timed out",
                extra={"flow_run_id": flow_run_id, "event_kind": "pause_expired"},
            )
        return decisions

    def poll_windows(self, now: datetime) -> None:
        """Hand the scheduler the maintenance windows if they changed since the last look
        (one indexed read: windows are few)."""
        from gnomon.deployments import stored_window

        rows = self.store.read_maintenance(ending_after=now - WINDOWS_LOOKBACK)
        if rows == self._windows:
            return
        self._windows = rows
        self.scheduler.set_windows([stored_window(row) for row in rows], now)
        log.info(
            "maintenance windows: %d",
            len(rows),
            extra={"event_kind": "maintenance_windows", "windows": [row.id for row in rows]},
        )
