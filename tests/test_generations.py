"""Run generations: a run is (deployment, nominal time, generation). A fire creates the
first generation of its time, once; `runs retry` creates the next one of the same nominal
time, only once every earlier one has finished; migration 0019 keeps what was stored."""

from __future__ import annotations

import dataclasses
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from gnomon._settings import get_settings
from gnomon.control import Conflict, Operations
from gnomon.daemon._breach_rules import RunFacts, run_findings
from gnomon.deployments import Deployment
from gnomon.states import StateName, StateType
from gnomon.store import (
    HEAD_REVISION,
    Actor,
    BreachKind,
    Store,
    current_revision,
    get_store,
    reset_store,
    run_on_its_time,
)
from gnomon.store._db import create_engine
from gnomon.store._migrate import alembic_config
from test_daemon import write_config
from test_scheduler import at, every_minute, make_scheduler

pytestmark = pytest.mark.backends

NOMINAL = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
DEPLOYMENTS = """
[[deployments]]
name = "nightly"
flow = "flows.py:tick"
cron = "30 1 * * *"
"""
OPERATOR = Actor("alice", "cli")


@pytest.fixture
def ops(store: Store, tmp_path: Path) -> Operations:
    operations = Operations(store, OPERATOR)
    operations.apply(write_config(tmp_path, DEPLOYMENTS))
    return operations


@pytest.fixture
def url(backend: str) -> str:
    return get_settings().effective_database_url


def fired(store: Store, nominal: datetime = NOMINAL, **columns: object) -> str:
    """A run of the nightly deployment as the daemon's fire creates it; its id."""
    run_id = uuid.uuid4().hex
    row = {
        "id": run_id,
        "name": f"nightly@{nominal:%Y%m%dT%H%M}",
        "flow_name": "tick",
        "entrypoint": "flows.py:tick",
        "parameters": {},
        "tags": [],
        "state_type": StateType.SCHEDULED,
        "state_name": StateName.SCHEDULED,
        "run_count": 0,
        "deployment_name": "nightly",
        "scheduled_for": nominal,
        "trigger": "schedule",
        "created": datetime.now(UTC),
        **columns,
    }
    return next(iter(store.create_runs([row])), "")


def finish(store: Store, run_id: str, state: StateName = StateName.FAILED) -> None:
    assert store.set_run_state(run_id, StateType(state.upper()), state, "done")


def test_a_fire_creates_the_first_generation_once(ops: Operations, store: Store) -> None:
    first = fired(store)
    again = fired(store)

    assert first
    assert again == ""  # the second fire of the same time meets the key
    assert store.read_flow_run(first).generation == 1


def failed_and_retried(ops: Operations, store: Store) -> tuple[str, dict[str, object]]:
    """A fired run that failed, and its retry's row."""
    first = fired(store)
    finish(store, first)
    return first, dict(ops.retry(first))


def test_a_retry_is_the_next_generation_of_the_same_nominal_time(
    ops: Operations, store: Store
) -> None:
    first, second = failed_and_retried(ops, store)
    finish(store, second["id"], StateName.COMPLETED)
    third = ops.retry(first)  # of an older generation: still the next one

    rows = [store.read_flow_run(run["id"]) for run in (second, third)]
    assert [(row.scheduled_for, row.generation, row.retry_of) for row in rows] == [
        (NOMINAL, 2, first),
        (NOMINAL, 3, first),
    ]
    assert second["generation"] == 2
    # A fire of that time after the retries still creates nothing: generation 1 exists.
    assert fired(store) == ""


def test_no_generation_starts_while_another_of_its_time_is_unfinished(
    ops: Operations, store: Store
) -> None:
    first, second = failed_and_retried(ops, store)

    with pytest.raises(Conflict, match=rf"run {second['id']} \(generation 2 of .*\) is Scheduled"):
        ops.retry(first)
    finish(store, second["id"], StateName.CRASHED)
    assert ops.retry(second["id"])["generation"] == 3


def test_retries_at_once_create_one_next_generation(ops: Operations, store: Store) -> None:
    """Retries of one run racing (threads, each its own transaction): one creates
    generation 2, the others are refused, whichever wins."""
    first = fired(store)
    finish(store, first)
    outcomes: list[object] = []
    barrier = threading.Barrier(4)

    def retry() -> None:
        barrier.wait()
        try:
            outcomes.append(Operations(store, OPERATOR).retry(first)["generation"])
        except Conflict as error:
            outcomes.append(type(error))

    threads = [threading.Thread(target=retry) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(outcomes, key=str) == sorted([2, Conflict, Conflict, Conflict], key=str)
    runs = store.read_runs("nightly")
    assert sorted(run.generation for run in runs) == [1, 2]


def test_a_manual_run_is_the_first_generation_of_its_request_time(
    ops: Operations, store: Store
) -> None:
    run = ops.trigger("nightly")
    row = store.read_flow_run(run["id"])

    assert (row.generation, row.scheduled_for) == (1, run["scheduled_for"])


@pytest.mark.empty_database
def test_runs_of_revision_0017_are_the_first_generation_and_downgrade_keeps_every_run(
    url: str,
) -> None:
    """0019 gives stored runs generation 1 and a 0017 daemon's inserts (without the
    column) still meet the key; downgrading keeps later generations, at their creation
    time as retries were before, and drops the backfills."""
    from alembic import command

    command.upgrade(alembic_config(url), "0017")
    insert = text(
        "INSERT INTO flow_runs (id, name, flow_name, run_count, created, deployment_name,"
        " scheduled_for, force) VALUES (:id, 'r', 'tick', 0, :created, 'nightly', :nominal,"
        " :no) ON CONFLICT DO NOTHING"
    )
    created = datetime(2026, 3, 29, 9, tzinfo=UTC)
    values = {"created": created, "nominal": NOMINAL, "no": False}
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(insert, {**values, "id": "old"})
        store = get_store()  # first use migrates to head
        assert current_revision(url) == HEAD_REVISION
        with engine.begin() as connection:  # a 0017 daemon firing the same time again
            assert connection.execute(insert, {**values, "id": "dup"}).rowcount == 0
        assert store.read_flow_run("old").generation == 1
        finish(store, "old")
        second = {**store_row(store, "old"), "id": "new", "generation": 2, "created": created}
        assert store.create_runs([second]) == {"new"}

        command.downgrade(alembic_config(url), "0017")
        reset_store()
        with engine.connect() as connection:
            columns = {column["name"] for column in inspect(connection).get_columns("flow_runs")}
            tables = set(inspect(connection).get_table_names())
            rows = dict(connection.execute(text("SELECT id, scheduled_for FROM flow_runs")).all())
    finally:
        engine.dispose()
    assert {"generation", "backfill_id"}.isdisjoint(columns)
    assert "backfills" not in tables
    assert set(rows) == {"old", "new"}
    assert rows["new"] != rows["old"]  # the later generation moved to its creation time


def store_row(store: Store, run_id: str) -> dict[str, object]:
    row = store.read_flow_run(run_id)
    assert row is not None
    return {
        "id": row.id,
        "name": row.name,
        "flow_name": row.flow_name,
        "parameters": {},
        "tags": [],
        "state_type": StateType.SCHEDULED,
        "state_name": StateName.SCHEDULED,
        "run_count": 0,
        "deployment_name": row.deployment_name,
        "scheduled_for": row.scheduled_for,
        "created": row.created,
    }


def test_a_later_generation_is_neither_late_nor_past_its_deadline() -> None:
    """A retry runs after its nominal time on purpose: the deadline watch judges the first
    generation of a time only (a breach is keyed by the nominal time)."""
    rules = Deployment(
        name="nightly", flow="flows:tick", cron="30 1 * * *", late_after="10m", deadline="1h"
    )
    waiting = RunFacts(
        "r2", "nightly", NOMINAL, StateType.SCHEDULED, StateName.SCHEDULED, None, None
    )
    later = dataclasses.replace(waiting, on_its_time=False)
    now = NOMINAL + timedelta(hours=2)

    assert [finding.kind for finding in run_findings(rules, waiting, now)] == [
        BreachKind.LATE,
        BreachKind.DEADLINE_MISSED,
    ]
    assert run_findings(rules, later, now) == []
    assert run_on_its_time("retry", 2) is False
    assert run_on_its_time("schedule", 1) is True


def test_the_deadline_watch_reads_the_first_generation_of_each_time(
    ops: Operations, store: Store
) -> None:
    first, second = failed_and_retried(ops, store)
    waiting = fired(store, NOMINAL + timedelta(days=1))

    watched = store.read_watched_runs(NOMINAL + timedelta(days=2), ["nightly"])

    assert [row.id for row in watched] == [waiting]  # not the retry, waiting too
    assert store.read_flow_run(str(second["id"])).state_name == StateName.SCHEDULED
    assert first not in {row.id for row in watched}


def test_a_deployment_retry_does_not_reopen_a_run_an_operator_retried(
    tmp_path: Path, store: Store
) -> None:
    """The run failed and, before the daemon's next tick reopened it (its deployment's
    `retries`), an operator retried it: the next generation is the retry, and the failed
    run stays failed, so two generations of the time never run at once."""
    scheduler, workers = make_scheduler(tmp_path, store, every_minute(retries=2))
    [decision] = scheduler.fire_many([("job", at(0))], at(0))
    scheduler.dispatch(at(0))
    assert decision.flow_run_id is not None
    store.set_run_state(decision.flow_run_id, "FAILED", "Failed", "boom")
    retry = Operations(store, OPERATOR).retry(decision.flow_run_id)

    workers.finish(scheduler, decision.flow_run_id, at(1), state_type="FAILED")

    assert workers.running == []
    assert store.read_flow_run(decision.flow_run_id).state_name == StateName.FAILED
    assert store.read_flow_run(retry["id"]).generation == 2
