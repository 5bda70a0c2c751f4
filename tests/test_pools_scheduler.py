"""Priorities and run pools in the scheduler, against a real store, at literal times.

The worker pool is the recorder of ``test_scheduler`` (tests decide when runs end); the
pools' slots are the store's, so two schedulers on one store (two daemons, issue 19) share
them.
"""

from __future__ import annotations

import itertools
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import create_run
from faults import location
from gnomon.daemon._metrics import DaemonMetrics
from gnomon.daemon._scheduler import Scheduler
from gnomon.deployments import RunPool
from gnomon.states import StateName, StateType
from test_metrics import scrape
from test_scheduler import SECOND, Workers, at, every_minute, make_scheduler

pytestmark = pytest.mark.backends


def declared(**slots: int) -> list[RunPool]:
    """``[[pools]]`` entries: slots by name."""
    return [RunPool(name=name, slots=count) for name, count in slots.items()]


def only_run(store, name: str):
    [row] = store.read_runs(deployment=name, limit=10)
    return row


def test_with_one_worker_waiting_runs_start_by_priority_then_nominal_time(tmp_path, store) -> None:
    toml = (
        every_minute("usual", overlap="queue")
        + every_minute("urgent", priority=5)
        + every_minute("whenever", priority=-2)
    )
    scheduler, workers = make_scheduler(tmp_path, store, toml, Workers(size=1))
    fires = [("whenever", at(0)), ("usual", at(1)), ("usual", at(0)), ("urgent", at(1))]
    decisions = scheduler.fire_many(fires, at(1))
    run_of = {(d.deployment, d.nominal): d.flow_run_id for d in decisions}

    order = []
    scheduler.dispatch(at(1))
    for minute in range(2, 6):
        [running] = workers.running
        order.append(next(key for key, run in run_of.items() if run == running))
        workers.finish(scheduler, running, at(minute))

    assert order == [
        ("urgent", at(1)),
        ("usual", at(0)),  # the same priority: the older nominal time first
        ("usual", at(1)),
        ("whenever", at(0)),
    ]


POOL_MEMBERS = every_minute("load-a", pool="warehouse") + every_minute("load-b", pool="warehouse")
POOLS = """
    [[pools]]
    name = "warehouse"
    slots = 1
    """


def two_runs_one_slot(tmp_path, store) -> tuple[Scheduler, Workers]:
    """load-a and load-b fired at once in a pool of one slot, dispatched: one runs."""
    scheduler, workers = make_scheduler(tmp_path, store, POOLS + POOL_MEMBERS)
    scheduler.pools.configure(declared(warehouse=1))
    scheduler.fire_many([("load-a", at(0)), ("load-b", at(0))], at(0))
    scheduler.dispatch(at(0))
    return scheduler, workers


def test_a_full_pool_holds_a_run_awaiting_a_slot_and_records_how_long_it_waited(
    tmp_path, store
) -> None:
    scheduler, workers = two_runs_one_slot(tmp_path, store)

    [running] = workers.running  # four idle workers, one slot
    waiting = only_run(store, "load-b" if running == only_run(store, "load-a").id else "load-a")
    assert (waiting.state_name, waiting.state_message) == (
        StateName.AWAITING_POOL,
        "waiting for pool warehouse (1/1 slots taken)",
    )
    scheduler.dispatch(at(0) + timedelta(seconds=30))  # still full: still waiting
    assert workers.running == [running]

    workers.finish(scheduler, running, at(1) + timedelta(seconds=2.5))

    assert workers.running == [waiting.id]
    history = [(s.name, s.message) for s in store.read_states(flow_run_id=waiting.id)]
    assert history[-2:] == [
        (StateName.AWAITING_POOL, "waiting for pool warehouse (1/1 slots taken)"),
        (StateName.PENDING, "waited 62.5 s for pool warehouse"),
    ]
    assert store.count_active_slots() == {"pool:warehouse": 1}
    workers.finish(scheduler, waiting.id, at(2))
    assert store.count_active_slots() == {}


def test_a_pool_given_more_slots_starts_a_waiting_run_at_the_next_dispatch(tmp_path, store) -> None:
    scheduler, workers = two_runs_one_slot(tmp_path, store)
    assert len(workers.running) == 1

    scheduler.pools.configure(declared(warehouse=2))  # what a reload does
    scheduler.dispatch(at(0) + timedelta(seconds=1))

    assert len(workers.running) == 2
    assert store.read_concurrency_limits() == {"pool:warehouse": 2}


def test_a_pool_made_smaller_lets_its_runs_finish_and_starts_none_until_below_its_slots(
    tmp_path, store
) -> None:
    members = POOL_MEMBERS + every_minute("load-c", pool="warehouse")
    scheduler, workers = make_scheduler(tmp_path, store, POOLS + members)
    scheduler.pools.configure(declared(warehouse=2))
    scheduler.fire_many([(name, at(0)) for name in ("load-a", "load-b", "load-c")], at(0))
    scheduler.dispatch(at(0))
    first, second = workers.running

    scheduler.pools.configure(declared(warehouse=1))
    workers.finish(scheduler, first, at(1))
    assert workers.running == [second]  # one slot taken of one: the third still waits

    workers.finish(scheduler, second, at(2))
    assert len(workers.running) == 1


def test_two_schedulers_on_one_store_share_a_pools_slots(tmp_path, store) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    one, one_workers = make_scheduler(
        tmp_path / "one", store, POOLS + every_minute("load-a", pool="warehouse")
    )
    two, two_workers = make_scheduler(
        tmp_path / "two", store, POOLS + every_minute("load-b", pool="warehouse")
    )
    for scheduler in (one, two):
        scheduler.pools.configure(declared(warehouse=1), kept={"warehouse"})
    one.fire_many([("load-a", at(0))], at(0))
    two.fire_many([("load-b", at(0))], at(0))

    one.dispatch(at(0))
    two.dispatch(at(0))
    assert (len(one_workers.running), two_workers.running) == (1, [])
    assert only_run(store, "load-b").state_name == StateName.AWAITING_POOL

    one_workers.finish(one, one_workers.running[0], at(1))
    two.dispatch(at(1))
    assert len(two_workers.running) == 1


def test_a_pool_no_longer_in_the_config_is_removed_unless_a_kept_deployment_names_it(
    tmp_path, store
) -> None:
    scheduler, _ = make_scheduler(tmp_path, store, POOLS + POOL_MEMBERS)
    scheduler.pools.configure(declared(warehouse=1, lake=3))

    scheduler.pools.configure(declared(lake=3), kept={"warehouse"})
    assert store.read_concurrency_limits() == {"pool:lake": 3, "pool:warehouse": 1}

    scheduler.pools.configure(declared(lake=4))
    assert store.read_concurrency_limits() == {"pool:lake": 4}


@contextmanager
def locked(store) -> Iterator[None]:
    """Another program holds the SQLite database; the loop's waits are bounded."""
    from gnomon.store import bound_write_waits

    holder = sqlite3.connect(location(store), isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    bound_write_waits(threading.get_ident())  # as in the daemon's loop
    try:
        yield
    finally:
        bound_write_waits(None)
        holder.execute("ROLLBACK")
        holder.close()


@pytest.mark.sqlite_only
def test_a_store_failing_while_a_run_asks_its_pool_leaves_the_run_waiting(tmp_path, store) -> None:
    scheduler, workers = make_scheduler(tmp_path, store, POOLS + POOL_MEMBERS)
    scheduler.pools.configure(declared(warehouse=1))
    scheduler.fire_many([("load-a", at(0))], at(0))

    with locked(store), pytest.raises(Exception, match="locked"):
        scheduler.dispatch(at(0))

    assert (workers.running, scheduler.waiting_count()) == ([], 1)
    assert scheduler.dispatch(at(0) + SECOND) == 1  # the store is back: it starts


@pytest.mark.sqlite_only
def test_a_slot_the_failing_store_would_not_take_back_is_given_back_once_it_works(
    tmp_path, store
) -> None:
    scheduler, workers = two_runs_one_slot(tmp_path, store)
    [first] = workers.running

    workers.running.remove(first)
    scheduler.run_finished(first, "COMPLETED")
    # The slot is not given back, and the tick's own writes fail too.
    with locked(store), pytest.raises(Exception, match="locked"):
        scheduler.tick(at(1))
    assert store.count_active_slots() == {"pool:warehouse": 1}  # not given back yet

    scheduler.dispatch(at(1) + SECOND)

    assert len(workers.running) == 1  # the slot came back, and the other run took it
    assert store.count_active_slots() == {"pool:warehouse": 1}


PRIORITIES = {"p-minus-2": -2, "p-minus-1": -1, "p-0": 0, "p-1": 1, "p-7": 7}


@pytest.mark.sqlite_only  # a property over many examples: one store is enough
def test_runs_always_start_by_priority_then_nominal_time_whatever_order_they_fired_in(
    tmp_path, store
) -> None:
    toml = "".join(
        every_minute(name, priority=priority, overlap="queue", max_queued=100)
        for name, priority in PRIORITIES.items()
    )
    scheduler, workers = make_scheduler(tmp_path, store, toml, Workers(size=1))
    examples = itertools.count(1)

    @settings(max_examples=40, deadline=None, database=None)
    @given(
        st.lists(
            st.tuples(st.sampled_from(sorted(PRIORITIES)), st.integers(0, 59)),
            min_size=1,
            max_size=12,
            unique=True,
        )
    )
    def starts_in_order(fires: list[tuple[str, int]]) -> None:
        base = at(0) + timedelta(days=next(examples))  # fresh nominal times each example
        timed = [(name, base + timedelta(minutes=minute)) for name, minute in fires]
        decisions = scheduler.fire_many(timed, base + timedelta(hours=1))
        fired = {d.flow_run_id: (d.deployment, d.nominal) for d in decisions}
        started = []
        scheduler.dispatch(base + timedelta(hours=1))
        while workers.running:
            [running] = workers.running
            started.append(fired[running])
            workers.finish(scheduler, running, base + timedelta(hours=2))

        assert started == sorted(timed, key=lambda fire: (-PRIORITIES[fire[0]], fire[1]))

    starts_in_order()


def test_metrics_show_a_pools_slots_and_this_daemons_runs_holding_and_waiting(
    tmp_path, store
) -> None:
    scheduler, _ = two_runs_one_slot(tmp_path, store)
    metrics = DaemonMetrics(pending=lambda: 1, busy=lambda: 1, idle=lambda: 3)

    def counts() -> dict[str, tuple[int, int, int]]:  # as the daemon reads them
        held, waiting = scheduler.pools.counts()
        return {"warehouse": (1, held["warehouse"], waiting["warehouse"])}

    metrics.watch_pools(counts)
    samples = scrape(metrics)

    pool = (("pool", "warehouse"),)
    assert samples["gnomon_pool_slots", pool] == 1
    assert samples["gnomon_pool_slots_held", pool] == 1
    assert samples["gnomon_pool_runs_waiting", pool] == 1


def test_at_start_pool_slots_are_freed_unless_a_live_daemon_runs_their_run(tmp_path, store) -> None:
    scheduler, _ = make_scheduler(tmp_path, store, POOLS + POOL_MEMBERS)
    scheduler.pools.configure(declared(warehouse=10))
    other = "otherhost:4242"  # a daemon on another host, as on a shared PostgreSQL
    runs = {
        "running elsewhere": (StateType.RUNNING, StateName.RUNNING, f"{other}:d4e5f6a7"),
        "crashed": (StateType.CRASHED, StateName.CRASHED, f"{other}:d4e5f6a7"),
        "queued again here": (StateType.PENDING, StateName.PENDING, "thishost:1:a1b2c3d4"),
    }
    ids = {}
    for what, (kind, name, daemon_id) in runs.items():
        ids[what] = uuid.uuid4().hex
        create_run(
            store,
            {
                "id": ids[what],
                "name": what,
                "flow_name": "job",
                "deployment_name": "load-a",
                "state_type": kind,
                "state_name": name,
                "daemon_id": daemon_id,
            },
        )
    ids["gone"] = uuid.uuid4().hex  # no such run any more
    for run_id in ids.values():
        assert store.try_acquire_slots(["pool:warehouse"], 1, f"{other}:{run_id}")

    scheduler.pools.reap()

    assert store.count_active_slots() == {"pool:warehouse": 1}
    assert store.read_slot_holders("pool:") == [f"{other}:{ids['running elsewhere']}"]
