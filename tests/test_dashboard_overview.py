"""The overview page: the timeline of runs by deployment and time bin with the next fires,
the runs of the last day by state, what is failing, late or missed, and the daemon's health;
in a real browser against a real HTTP server on a real store. And the contract of the
store's run bins (``run_bins``, kept by triggers), which the timeline reads, on each backend.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from conftest import create_run
from gnomon.states import StateName, StateType
from gnomon.store import Store

pytestmark = pytest.mark.backends

TEN = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def new_id() -> str:
    return uuid.uuid4().hex


def scheduled(store: Store, deployment: str, at: datetime, **values: Any) -> str:
    """A run of ``deployment`` for the nominal time ``at`` (Scheduled unless ``values`` say)."""
    run_id = new_id()
    row = {"id": run_id, "name": f"run-{run_id[:6]}", "flow_name": "report"}
    create_run(store, {**row, "deployment_name": deployment, "scheduled_for": at, **values})
    return run_id


def settle(store: Store, run_id: str, state_type: StateType, state_name: str) -> None:
    """The run's final state as a worker records it (the batched writer), committed."""
    moment = datetime.now(UTC)
    values = {"state_type": state_type, "state_name": state_name, "end_time": moment}
    state = {"flow_run_id": run_id, "timestamp": moment, "type": state_type, "name": state_name}
    store.settle_flow_run(run_id, values, state)  # type: ignore[arg-type]
    store.flush()


def counts(store: Store, start: datetime, minutes: int, width: int) -> dict[tuple, int]:
    rows = store.read_run_bins(["d", "e"], start, start + timedelta(minutes=minutes), width)
    return {
        (row.deployment_name, row.bin_start - int(start.timestamp()), row.state_name): row.runs
        for row in rows
        if row.runs
    }


def test_a_run_is_counted_once_in_the_bin_of_its_nominal_time_when_it_finishes(
    store: Store,
) -> None:
    run_id = scheduled(store, "d", TEN + timedelta(minutes=4, seconds=59))
    assert counts(store, TEN, 10, 300) == {}
    assert store.set_run_state(run_id, StateType.RUNNING, StateName.RUNNING)
    assert counts(store, TEN, 10, 300) == {}  # not finished: not counted
    settle(store, run_id, StateType.COMPLETED, StateName.COMPLETED)
    assert counts(store, TEN, 10, 300) == {("d", 0, "Completed"): 1}
    # A second final state is refused, and counted nowhere.
    assert not store.set_run_state(run_id, StateType.CRASHED, StateName.CRASHED)
    assert counts(store, TEN, 10, 300) == {("d", 0, "Completed"): 1}


def test_a_retried_run_leaves_its_failed_bin_and_counts_where_it_ends(store: Store) -> None:
    run_id = scheduled(store, "d", TEN + timedelta(minutes=5))  # the second 5-minute bin
    settle(store, run_id, StateType.FAILED, StateName.FAILED)
    assert counts(store, TEN, 10, 300) == {("d", 300, "Failed"): 1}
    # The deployment's retries reopen the run: Failed -> AwaitingRetry -> Running -> done.
    assert store.set_run_state(run_id, StateType.SCHEDULED, StateName.AWAITING_RETRY)
    assert counts(store, TEN, 10, 300) == {}
    assert store.set_run_state(run_id, StateType.RUNNING, StateName.RETRYING)
    settle(store, run_id, StateType.COMPLETED, StateName.COMPLETED)
    assert counts(store, TEN, 10, 300) == {("d", 300, "Completed"): 1}


def test_bins_split_at_their_boundaries_and_sum_into_wider_bins(store: Store) -> None:
    for minute, deployment in ((0, "d"), (4, "d"), (5, "d"), (14, "d"), (15, "d"), (3, "e")):
        run_id = scheduled(store, deployment, TEN + timedelta(minutes=minute))
        settle(store, run_id, StateType.COMPLETED, StateName.COMPLETED)
    missed = TEN + timedelta(minutes=9, seconds=59, microseconds=999_999)
    scheduled(store, "d", missed, state_type=StateType.CANCELLED, state_name=StateName.MISSED)

    assert counts(store, TEN, 20, 300) == {
        ("d", 0, "Completed"): 2,
        ("d", 300, "Completed"): 1,
        ("d", 300, "Missed"): 1,
        ("d", 600, "Completed"): 1,
        ("d", 900, "Completed"): 1,
        ("e", 0, "Completed"): 1,
    }
    assert counts(store, TEN, 20, 900) == {
        ("d", 0, "Completed"): 4,
        ("d", 0, "Missed"): 1,
        ("d", 900, "Completed"): 1,
        ("e", 0, "Completed"): 1,
    }
    # [start, end): the bin at the end is not in the window.
    assert counts(store, TEN, 15, 900) == {
        ("d", 0, "Completed"): 4,
        ("d", 0, "Missed"): 1,
        ("e", 0, "Completed"): 1,
    }
    totals = store.read_run_totals(TEN, TEN + timedelta(minutes=20))
    by_key = {(row.deployment_name, row.state_name): row.runs for row in totals}
    assert by_key == {("d", "Completed"): 5, ("d", "Missed"): 1, ("e", "Completed"): 1}
