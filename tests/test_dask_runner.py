"""``DaskTaskRunner`` on a real dask.distributed cluster: worker processes run the task
runs, and their states, retries, timeouts and cache records land in the flow's store.

One ``LocalCluster`` (two worker processes, one thread each) serves the module's tests,
which connect to it by its scheduler's address; the test of ``address=None`` lets the
runner start and close a cluster of its own.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import distributed
import pytest

from conftest import logs_of
from gnomon import flow, task
from gnomon.cache_policies import INPUTS
from gnomon.context import get_run_context
from gnomon.futures import PrefectFuture
from gnomon.states import FINAL_TYPES
from gnomon.task_runners import DaskTaskRunner


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """A running cluster the tests connect to by address, as to one started elsewhere."""
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as local:
        yield local


def _worker_pids(cluster: Any) -> set[int]:
    with distributed.Client(cluster.scheduler_address, set_as_default=False) as client:
        return set(client.run(os.getpid).values())


def _state_names(store: Any, task_run_id: str) -> list[str]:
    return [row.name for row in store.read_states(task_run_id=task_run_id)]


def _task_runs(store: Any) -> list[Any]:
    (flow_run,) = store.read_runs()
    return _runs_of(store, flow_run)


def _runs_of(store: Any, flow_run: Any) -> list[Any]:
    return store.read_task_runs(flow_run.id)


@task
def square_with_pid(x: int) -> tuple[int, int]:
    return x * x, os.getpid()


@pytest.mark.backends
def test_submit_and_map_run_on_the_clusters_workers_with_states_in_the_store(
    store, cluster
) -> None:
    futures: list[PrefectFuture[Any]] = []

    @flow(task_runner=DaskTaskRunner(address=cluster.scheduler_address))
    def squares() -> list[tuple[int, int]]:
        futures.append(square_with_pid.submit(5))
        futures.extend(square_with_pid.map([1, 2, 3]))
        return [future.result() for future in futures]

    results = squares()

    assert [value for value, _ in results] == [25, 1, 4, 9]
    assert {pid for _, pid in results} <= _worker_pids(cluster)
    (flow_run,) = store.read_runs()
    assert flow_run.state_name == "Completed"
    assert {run.id for run in _task_runs(store)} == {future.task_run_id for future in futures}
    for future in futures:
        assert future.state.is_completed()
        assert _state_names(store, future.task_run_id) == ["Pending", "Running", "Completed"]


@task(retries=2, retry_delay_seconds=0)
def fail_once(marker: str) -> str:
    path = Path(marker)
    if not path.exists():
        path.write_text(str(os.getpid()))
        raise ConnectionError("the warehouse API is down")
    return "restocked"


def test_a_task_failing_on_a_worker_is_retried_there_and_succeeds(
    store, cluster, tmp_path: Path
) -> None:
    @flow(task_runner=DaskTaskRunner(address=cluster.scheduler_address))
    def restock() -> tuple[str, str]:
        future = fail_once.submit(str(tmp_path / "failed-once"))
        return future.result(), future.task_run_id

    value, task_run_id = restock()

    assert value == "restocked"
    assert int((tmp_path / "failed-once").read_text()) in _worker_pids(cluster)
    assert _state_names(store, task_run_id) == [
        "Pending",
        "Running",
        "Failed",
        "AwaitingRetry",
        "Retrying",
        "Completed",
    ]
    assert store.read_task_run(task_run_id).run_count == 2


@task(timeout_seconds=0.5)
def overrun() -> None:
    for _ in range(600):  # stopped at the deadline, between two sleeps
        time.sleep(0.05)


def test_a_task_overrunning_its_timeout_on_a_worker_is_recorded_timed_out(store, cluster) -> None:
    @flow(task_runner=DaskTaskRunner(address=cluster.scheduler_address))
    def audit() -> tuple[str, str]:
        future = overrun.submit()
        with pytest.raises(TimeoutError, match=r"exceeded timeout of 0\.5 second"):
            future.result()
        return future.task_run_id, future.state.name

    task_run_id, state_name = audit()

    assert state_name == "TimedOut"
    run = store.read_task_run(task_run_id)
    assert (run.state_type, run.state_name) == ("FAILED", "TimedOut")
    assert _state_names(store, task_run_id) == ["Pending", "Running", "TimedOut"]


@task(cache_policy=INPUTS, persist_result=True)
def count_calls(x: int, log: str) -> int:
    with Path(log).open("a") as calls:
        calls.write(f"{os.getpid()}\n")
    return x * 10


def test_a_result_cached_on_a_worker_is_a_cache_hit_in_the_next_flow_run(
    store, cluster, tmp_path: Path
) -> None:
    log = tmp_path / "calls"

    @flow(task_runner=DaskTaskRunner(address=cluster.scheduler_address))
    def tally() -> tuple[int, str]:
        future = count_calls.submit(7, str(log))
        return future.result(), future.state.name

    assert tally() == (70, "Completed")
    assert tally() == (70, "Cached")
    assert len(log.read_text().splitlines()) == 1  # the second run did not call the body
    names = [run.state_name for flow_run in store.read_runs() for run in _runs_of(store, flow_run)]
    assert sorted(names) == ["Cached", "Completed"]


@task
def report_pid() -> int:
    return os.getpid()


@pytest.mark.slow
def test_without_an_address_a_local_cluster_lives_for_the_flow_run_only(store) -> None:
    runner = DaskTaskRunner(
        cluster_kwargs={"n_workers": 1, "threads_per_worker": 1, "dashboard_address": ":0"}
    )

    @flow(task_runner=runner)
    def where() -> tuple[int, str]:
        client = get_run_context().task_runner.client
        return report_pid.submit().result(), client.scheduler.address

    pid, scheduler = where()

    assert pid != os.getpid()
    assert _task_runs(store)[0].state_name == "Completed"
    _wait_until(lambda: not _alive(pid), "the flow run's cluster closed its worker")
    with pytest.raises(OSError):  # nothing listens at its scheduler's address any more
        distributed.Client(scheduler, timeout=2, set_as_default=False)


@task
def kill_own_worker() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@pytest.mark.slow
def test_a_run_whose_workers_keep_dying_is_recorded_crashed(store) -> None:
    # The cluster's scheduler gives up on a task the first time its worker dies.
    runner = DaskTaskRunner(
        cluster_kwargs={
            "n_workers": 1,
            "threads_per_worker": 1,
            "dashboard_address": ":0",
            "scheduler_kwargs": {"allowed_failures": 0},
        }
    )

    @flow(task_runner=runner)
    def doomed() -> tuple[str, str | None]:
        future = kill_own_worker.submit()
        future.wait()
        return future.state.name, future.task_run_id

    state_name, task_run_id = doomed()

    assert state_name == "Crashed"
    run = store.read_task_run(task_run_id)
    assert run.state_name == "Crashed"
    assert "KilledWorker" in run.state_message
    assert [name for name in _state_names(store, task_run_id) if name in _FINAL_NAMES] == [
        "Crashed"
    ]


def test_an_unreachable_scheduler_crashes_the_flow_run_naming_its_address(store) -> None:
    @flow(task_runner=DaskTaskRunner("tcp://127.0.0.1:9", client_kwargs={"timeout": 1}))
    def stranded() -> int:
        return report_pid.submit().result()

    with pytest.raises(ConnectionError, match=r"Dask scheduler at 'tcp://127.0.0.1:9'"):
        stranded()
    (flow_run,) = store.read_runs()
    assert flow_run.state_name == "Crashed"


@pytest.mark.parametrize(
    ("arguments", "refusal"),
    [
        ({"address": "tcp://h:8786", "cluster_kwargs": {"n_workers": 2}}, "either address="),
        ({"cluster_kwargs": {"asynchronous": True}}, "cannot set 'asynchronous'"),
        ({"client_kwargs": {"asynchronous": True}}, "cannot set 'asynchronous'"),
    ],
)
def test_contradictory_arguments_are_refused_in_words(
    arguments: dict[str, Any], refusal: str
) -> None:
    with pytest.raises(ValueError, match=refusal):
        DaskTaskRunner(**arguments)


def test_a_cluster_class_that_names_nothing_crashes_the_flow_run_naming_it(store) -> None:
    @flow(task_runner=DaskTaskRunner(cluster_class="distributed.NoSuchCluster"))
    def nowhere() -> None:
        return None

    with pytest.raises(ValueError, match=r"cluster_class 'distributed\.NoSuchCluster'"):
        nowhere()


@task
def long_haul() -> None:
    for _ in range(12000):  # ten minutes, unless stopped
        time.sleep(0.05)


def test_a_flow_run_ending_abruptly_cancels_its_runs_and_frees_the_workers(store, cluster) -> None:
    hauls: list[str] = []
    waiting: list[str] = []

    @flow(task_runner=DaskTaskRunner(address=cluster.scheduler_address))
    def abandon() -> None:
        futures = [long_haul.submit() for _ in range(3)]  # two run, one waits for a worker
        hauls.extend(future.task_run_id for future in futures)
        waiting.append(square_with_pid.submit(2, wait_for=futures[:1]).task_run_id)
        _wait_until(lambda: _count_running(store, hauls) == 2, "both workers run a task")
        raise SystemExit("the operator stopped the flow")

    with pytest.raises(SystemExit):
        abandon()

    (flow_run,) = store.read_runs()
    assert flow_run.state_name == "Crashed"
    for task_run_id in hauls:
        assert store.read_task_run(task_run_id).state_name == "Cancelled"
        names = _state_names(store, task_run_id)
        assert [name for name in names if name in _FINAL_NAMES] == ["Cancelled"]
    # The run waiting for a cancelled one ends as any whose upstream did not complete.
    assert _state_names(store, waiting[0]) == ["Pending", "NotReady"]
    with distributed.Client(cluster.scheduler_address, set_as_default=False) as client:
        _wait_until(
            lambda: not any(client.run(_executing).values()),
            "the workers stopped the runs",
            deadline=30,
        )


def _executing(dask_worker: Any) -> int:
    """How many tasks a Dask worker's threads are running (``Client.run`` passes it)."""
    return len(dask_worker.state.executing)


_FINAL_NAMES = {"Completed", "Cached", "Failed", "TimedOut", "Crashed", "Cancelled"}


def _count_running(store: Any, task_run_ids: list[str]) -> int:
    runs = [store.read_task_run(task_run_id) for task_run_id in task_run_ids]
    return sum(run is not None and run.state_name == "Running" for run in runs)


@task
def outlive_first_worker(started: str) -> int:
    """The first worker to run it sleeps until it is killed; the next returns at once."""
    marker = Path(started)
    if not marker.exists():
        partial = marker.with_suffix(".partial")
        partial.write_text(str(os.getpid()))
        partial.rename(marker)
        for _ in range(1200):
            time.sleep(0.05)
    return os.getpid()


@pytest.mark.slow
def test_a_worker_killed_mid_task_does_not_lose_the_run(store, cluster, tmp_path: Path) -> None:
    started = tmp_path / "started"
    outcome: dict[str, Any] = {}

    @flow(task_runner=DaskTaskRunner(address=cluster.scheduler_address))
    def survive() -> int:
        future = outlive_first_worker.submit(str(started))
        quick = square_with_pid.map([1, 2])
        outcome["task_run_ids"] = [future.task_run_id, *(each.task_run_id for each in quick)]
        return future.result()

    thread = threading.Thread(target=lambda: outcome.update(pid=survive()))
    thread.start()
    _wait_until(started.exists, "the task started on a worker")
    # Killed once its Running state is stored: the store must not keep it Running.
    _wait_until(
        lambda: (
            "task_run_ids" in outcome
            and store.read_task_run(outcome["task_run_ids"][0]).state_name == "Running"
        ),
        "the task run recorded Running",
    )
    killed = int(started.read_text())
    os.kill(killed, signal.SIGKILL)
    thread.join(timeout=90)

    assert not thread.is_alive()
    assert outcome["pid"] != killed  # it ran again, on another worker
    (flow_run,) = store.read_runs()
    assert flow_run.state_name == "Completed"
    slept, *quick = outcome["task_run_ids"]
    assert _state_names(store, slept) == ["Pending", "Running", "Running", "Completed"]
    for task_run_id in quick:
        assert _state_names(store, task_run_id) == ["Pending", "Running", "Completed"]
    assert all(run.state_type in FINAL_TYPES for run in _task_runs(store))
    messages = [row.message for row in logs_of(store, flow_run.id)]
    assert "task run started again: the worker running it was lost" in messages


@pytest.mark.slow
def test_a_run_finished_by_a_worker_that_died_before_answering_is_not_run_twice(
    store, cluster, tmp_path: Path
) -> None:
    calls, died = tmp_path / "calls", tmp_path / "died"

    def die_once_finished(task: Any, task_run: Any, state: Any) -> None:
        """The first worker to finish the run dies before answering."""
        from gnomon.store import get_store

        if not died.exists():
            died.touch()
            get_store().flush()  # its Completed state is in the store
            os.kill(os.getpid(), signal.SIGKILL)

    @task(persist_result=True, on_completion=[die_once_finished])
    def weigh(parcel: str) -> str:
        with calls.open("a") as log:
            log.write(f"{parcel}\n")
        return f"{parcel}: 2 kg"

    @flow(task_runner=DaskTaskRunner(address=cluster.scheduler_address))
    def dispatch() -> tuple[str, str]:
        future = weigh.submit("crate")
        return future.result(), future.task_run_id

    value, task_run_id = dispatch()

    assert value == "crate: 2 kg"  # read back from its persisted result
    assert calls.read_text().splitlines() == ["crate"]
    assert _state_names(store, task_run_id) == ["Pending", "Running", "Completed"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_until(condition: Any, what: str, deadline: float = 60) -> None:
    give_up = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > give_up:
            pytest.fail(f"waited {deadline} s in vain for: {what}")
        time.sleep(0.05)


def test_a_worker_that_cannot_see_the_flows_database_creates_none(tmp_path: Path) -> None:
    """A worker on another host gets the flow's settings, whose SQLite file is not there:
    it refuses rather than record the run in a new database. (Reaches the private entry
    point Dask calls: one host cannot hide a file from its own workers.)"""
    import cloudpickle

    from gnomon._settings import Settings
    from gnomon.exceptions import StoreFileGone
    from gnomon.flows._process_tasks import run_payload

    elsewhere = tmp_path / "flow-host-home"
    payload = cloudpickle.dumps({"settings": Settings(home=elsewhere)})

    with pytest.raises(StoreFileGone, match="does not exist"):
        run_payload(payload, once=True)
    assert not elsewhere.exists()
