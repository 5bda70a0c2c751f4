"""The process-pool task runner: tasks run in spawned processes and report to the same store."""

from __future__ import annotations

import os
import threading
from typing import Any

import pytest

from conftest import logs_of
from gnomon import flow, get_run_logger, task
from gnomon.futures import PrefectFuture
from gnomon.task_runners import ProcessPoolTaskRunner


class InventoryError(Exception):
    """Raised by a task in a worker process; the flow's process must see this very type."""


@task
def square_with_pid(x: int) -> tuple[int, int]:
    return x * x, os.getpid()


@task
def fail_in_worker(item: str) -> None:
    raise InventoryError(f"{item} is out of stock")


@task
def log_from_worker(item: str) -> int:
    get_run_logger().info("counting %s in pid %d", item, os.getpid())
    return os.getpid()


@task
def make_lock() -> threading.Lock:
    return threading.Lock()


@task(log_prints=True)
def print_from_worker(item: str) -> None:
    print(f"printed {item}")


def _state_names(store: Any, task_run_id: str) -> list[str]:
    return [row.name for row in store.read_states(task_run_id=task_run_id)]


def test_process_pool_runs_tasks_in_other_processes_and_returns_their_results(store) -> None:
    futures: list[PrefectFuture[Any]] = []

    @flow(task_runner=ProcessPoolTaskRunner(max_workers=2))
    def squares() -> list[tuple[int, int]]:
        futures.extend(square_with_pid.map([1, 2, 3, 4]))
        return [future.result() for future in futures]

    results = squares()

    assert [value for value, _ in results] == [1, 4, 9, 16]
    pids = {pid for _, pid in results}
    assert os.getpid() not in pids
    assert len(pids) <= 2
    flow_run = store.read_runs()[0]
    assert flow_run.state_name == "Completed"
    task_runs = store.read_task_runs(flow_run.id)
    assert {run.id for run in task_runs} == {future.task_run_id for future in futures}
    for future in futures:
        assert _state_names(store, future.task_run_id) == ["Pending", "Running", "Completed"]
        assert store.read_task_run(future.task_run_id).state_type == "COMPLETED"


def test_task_failing_in_a_worker_process_raises_its_own_exception_in_the_flow(store) -> None:
    @flow(task_runner=ProcessPoolTaskRunner(max_workers=1))
    def restock() -> str:
        future = fail_in_worker.submit("widget")
        with pytest.raises(InventoryError, match="widget is out of stock"):
            future.result()
        assert future.state.is_failed()
        return future.task_run_id

    task_run_id = restock()

    run = store.read_task_run(task_run_id)
    assert (run.state_type, run.state_name) == ("FAILED", "Failed")
    assert run.error_type == f"{__name__}.InventoryError"
    assert "widget is out of stock" in run.error_traceback
    assert _state_names(store, task_run_id) == ["Pending", "Running", "Failed"]


def test_task_defined_inside_a_test_function_runs_in_a_worker_process() -> None:
    offset = 100

    @task
    def shifted(x: int) -> tuple[int, int]:
        return x + offset, os.getpid()

    @flow(task_runner=ProcessPoolTaskRunner(max_workers=1))
    def shift() -> tuple[int, int]:
        return shifted.submit(5).result()

    value, pid = shift()
    assert value == 105
    assert pid != os.getpid()


def test_upstream_results_are_passed_to_process_tasks_and_failures_make_them_not_ready() -> None:
    @flow(task_runner=ProcessPoolTaskRunner(max_workers=2))
    def chain() -> tuple[int, str]:
        first = square_with_pid.submit(3)
        second = square_with_pid.submit(first.result()[0])
        blocked = square_with_pid.submit(fail_in_worker.submit("bolt"))
        blocked.wait()
        return second.result()[0], blocked.state.name

    assert chain() == (81, "NotReady")


def test_logs_from_a_process_task_are_stored_with_its_task_run(store) -> None:
    @flow(task_runner=ProcessPoolTaskRunner(max_workers=1))
    def audit() -> tuple[str, int]:
        future = log_from_worker.submit("apples")
        return future.task_run_id, future.result()

    task_run_id, worker_pid = audit()

    messages = [row.message for row in logs_of(store, task_run_id=task_run_id)]
    assert f"counting apples in pid {worker_pid}" in messages
    assert worker_pid != os.getpid()


def test_prints_of_a_log_prints_process_task_are_stored_with_its_task_run(store) -> None:
    @flow(task_runner=ProcessPoolTaskRunner(max_workers=1))
    def audit() -> str:
        future = print_from_worker.submit("pears")
        future.result()
        return future.task_run_id

    task_run_id = audit()

    messages = [row.message for row in logs_of(store, task_run_id=task_run_id)]
    assert "printed pears" in messages


def test_result_that_cannot_leave_the_worker_process_raises_instead_of_being_returned() -> None:
    @flow(task_runner=ProcessPoolTaskRunner(max_workers=1))
    def locks() -> str:
        future = make_lock.submit()
        with pytest.raises(RuntimeError, match="unpicklable lock"):
            future.result()
        assert future.state.is_failed()
        return "raised"

    assert locks() == "raised"
