"""Runs a daemon leaves behind, settled at its start and at its stop.

At start, this daemon holds the store's lock, so any daemon that owned the unfinished runs
is gone: Running ones ended with it (Crashed, or Cancelled if an operator had asked), and
waiting ones queue again. At stop, runs it queued but never started go back to Scheduled,
so nothing stays Pending once it is gone and the next daemon starts them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from gnomon.states import HELD_NAMES, StateName, StateType

if TYPE_CHECKING:
    from gnomon.daemon._scheduler import Scheduler
    from gnomon.store import RunStore, ScheduleStore
    from gnomon.store.rows import FlowRunRow

log = logging.getLogger("gnomon.daemon")


def recover(
    store: ScheduleStore,
    scheduler: Scheduler,
    daemon_id: str,
    now: datetime,
    held_elsewhere: Callable[[FlowRunRow], bool] | None = None,
) -> None:
    """Settle the runs a dead daemon left (see the module's docstring). In a cluster
    (``_cluster``), ``held_elsewhere`` takes the runs a live member holds, or that wait
    released: they are that member's, not left behind."""
    waiting = []
    for row in store.read_unfinished_deployment_runs():
        if held_elsewhere is not None and held_elsewhere(row):
            continue
        scheduler.note_fire(row)
        # A paused run waited in its worker, which ended with the daemon; a suspended one
        # holds no process and stays suspended (it is not read here).
        live = row.state_type == StateType.RUNNING or row.state_name in HELD_NAMES
        if live and row.cancel_requested_at is not None:
            # An operator asked for it to end; the daemon's death ended it.
            store.set_run_state(
                row.id,
                StateType.CANCELLED,
                StateName.CANCELLED,
                row.state_message,
                only_if_active=True,
                end_time=now,
            )
        elif live:
            _crashed(store, scheduler, row, now)
        elif store.set_run_state(
            row.id,
            StateType.PENDING,
            StateName.PENDING,
            "queued again after a daemon restart",
            only_if_active=True,  # not a run cancelled since it was read
            daemon_id=daemon_id,
        ):
            waiting.append(row)
    scheduler.requeue(waiting)
    scheduler.pools.reap()  # the runs settled: the slots their dead daemon held are free


def _crashed(store: RunStore, scheduler: Scheduler, row: FlowRunRow, now: datetime) -> None:
    message = f"the daemon running it ({row.daemon_id}) stopped before the run finished"
    if not store.set_run_state(
        row.id, StateType.CRASHED, StateName.CRASHED, message, only_if_active=True, end_time=now
    ):
        return  # it ended meanwhile: its final state stands, and no retry
    log.warning(
        "recovered run marked Crashed: %s",
        row.id,
        extra={"flow_run_id": row.id, "deployment": row.deployment_name},
    )
    if row.deployment_name is not None:
        scheduler.ended_while_away(row.deployment_name, row.id, StateType.CRASHED)


def release_waiting(store: ScheduleStore, daemon_id: str) -> None:
    """Runs ``daemon_id`` queued but never started go back to Scheduled."""
    for row in store.read_unfinished_deployment_runs():
        if row.state_type == StateType.PENDING and row.daemon_id == daemon_id:
            store.set_run_state(
                row.id,
                StateType.SCHEDULED,
                StateName.SCHEDULED,
                "not started before the daemon stopped: the next daemon starts it",
                only_if_active=True,
            )
