"""Task and flow timeouts: the caller gets control back at the deadline, even from a body
that ignores interruption, and the run ends TimedOut (a FAILED state), retried if it may be.

The bodies here block in C code on an event the test holds, so nothing can interrupt them
before the test releases it; pytest-timeout, not a timing assertion, catches a hang.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from conftest import logs_of
from gnomon import flow, get_run_logger, task
from gnomon.exceptions import FlowRunTimeoutError, TaskRunTimeoutError
from gnomon.states import StateType
from gnomon.store.rows import FlowRunRow

pytestmark = pytest.mark.backends


class Blocker:
    """Blocks the bodies that call ``block()`` until the test releases them."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.returned = threading.Event()
        self.threads: list[threading.Thread] = []

    def block(self) -> str:
        self.threads.append(threading.current_thread())
        self.entered.set()
        self.release.wait()  # a C-level wait: an asynchronous exception cannot land in it
        self.returned.set()
        return "too late"

    def still_blocked(self) -> bool:
        return (
            self.entered.is_set()
            and not self.returned.is_set()
            and all(thread.is_alive() for thread in self.threads)
        )

    def finish(self) -> None:
        self.release.set()
        for thread in self.threads:
            thread.join(10)
            assert not thread.is_alive(), "a released body did not end"


@pytest.fixture
def blocker() -> Iterator[Blocker]:
    blocking = Blocker()
    try:
        yield blocking
    finally:
        blocking.finish()


def only_flow_run(store: Any) -> FlowRunRow:
    [run] = store.read_runs()
    return run


def test_task_call_returns_timed_out_while_the_body_is_still_blocked(blocker):
    @task(timeout_seconds=0.2)
    def stuck() -> str:
        return blocker.block()

    state = stuck(return_state=True)

    assert blocker.still_blocked(), "the caller got control back before the body returned"
    assert state.name == "TimedOut"
    assert state.message == "Task run exceeded timeout of 0.2 second(s)"


def test_timed_out_is_a_failed_state(blocker):
    @task(timeout_seconds=0.2)
    def stuck() -> str:
        return blocker.block()

    state = stuck(return_state=True)
    assert state.is_failed()
    assert state.type is StateType.FAILED
    assert state.is_final()
    assert not state.is_completed()
    assert not state.is_crashed()


def test_direct_call_of_a_timed_out_task_raises_timeout_error(blocker):
    @task(timeout_seconds=0.2)
    def stuck() -> str:
        return blocker.block()

    with pytest.raises(
        TimeoutError, match=r"Task run exceeded timeout of 0\.2 second\(s\)"
    ) as info:
        stuck()
    assert isinstance(info.value, TaskRunTimeoutError)
    assert blocker.still_blocked()


def test_timed_out_task_run_is_recorded_timed_out_with_its_error(blocker, store):
    @task(timeout_seconds=0.2)
    def stuck() -> str:
        return blocker.block()

    @flow
    def pipeline() -> Any:
        return stuck(return_state=True)

    state = pipeline(return_state=True)
    assert state.is_failed(), "a flow returning a failed state fails"
    run = only_flow_run(store)
    [task_run] = store.read_task_runs(run.id)
    assert task_run.state_type == "FAILED"
    assert task_run.state_name == "TimedOut"
    assert task_run.state_message == "Task run exceeded timeout of 0.2 second(s)"
    assert task_run.error_type == "gnomon.exceptions.TaskRunTimeoutError"
    assert task_run.end_time is not None


def test_timed_out_attempt_is_retried_and_every_attempt_recorded(blocker, clock, store):
    attempts: list[int] = []

    @task(timeout_seconds=0.5, retries=1, retry_delay_seconds=3)
    def slow_then_fast() -> str:
        attempts.append(len(attempts) + 1)
        if len(attempts) == 1:
            return blocker.block()
        return "fast"

    @flow
    def pipeline() -> str:
        return slow_then_fast()

    assert pipeline() == "fast"
    assert attempts == [1, 2]
    assert clock.sleeps == [3]
    assert blocker.still_blocked(), "the first attempt is abandoned, not waited for"
    [task_run] = store.read_task_runs(only_flow_run(store).id)
    assert task_run.run_count == 2
    states = [
        (row.name, row.type, row.attempt, row.message)
        for row in store.read_states(task_run_id=task_run.id)
    ]
    assert states == [
        ("Pending", "PENDING", 0, None),
        ("Running", "RUNNING", 1, None),
        ("TimedOut", "FAILED", 1, "Task run exceeded timeout of 0.5 second(s)"),
        ("AwaitingRetry", "SCHEDULED", 1, "Retry 1/1 will start 3 second(s) from now"),
        ("Retrying", "RUNNING", 2, None),
        ("Completed", "COMPLETED", 2, None),
    ]


def test_task_timing_out_on_every_attempt_ends_timed_out_and_hooks_run_once(blocker, clock):
    failures: list[tuple[str, int]] = []

    @task(
        timeout_seconds=0.2,
        retries=1,
        on_failure=[lambda task_, run, state: failures.append((state.name, run.run_count))],
    )
    def stuck() -> str:
        return blocker.block()

    state = stuck(return_state=True)
    assert state.name == "TimedOut"
    assert len(blocker.threads) == 2, "both attempts ran"
    assert failures == [("TimedOut", 2)]


def test_task_finishing_before_its_timeout_completes_in_its_run(store):
    @task(timeout_seconds=30)
    def quick(x: int) -> int:
        get_run_logger().info("computing inside the task run")
        return x * 2

    @flow
    def pipeline() -> int:
        return quick(21)

    assert pipeline() == 42
    run = only_flow_run(store)
    [task_run] = store.read_task_runs(run.id)
    assert task_run.state_name == "Completed"
    [log] = [
        row for row in logs_of(store, run.id) if row.message == "computing inside the task run"
    ]
    assert log.task_run_id == task_run.id, "the body's thread kept the run context"


def test_flow_timeout_ends_the_run_timed_out_without_blocking_the_caller(blocker, store):
    @flow(timeout_seconds=1)
    def stuck_flow() -> str:
        return blocker.block()

    with pytest.raises(
        TimeoutError, match=r"Flow run exceeded timeout of 1\.0 second\(s\)"
    ) as info:
        stuck_flow()

    assert blocker.still_blocked(), "the caller got control back before the body returned"
    assert isinstance(info.value, FlowRunTimeoutError)
    run = only_flow_run(store)
    assert run.state_type == "FAILED"
    assert run.state_name == "TimedOut"
    assert run.state_message == "Flow run exceeded timeout of 1.0 second(s)"
    assert run.error_type == "gnomon.exceptions.FlowRunTimeoutError"
    assert run.end_time is not None


def test_flow_timeout_returns_a_timed_out_state(blocker):
    @flow(timeout_seconds=0.2)
    def stuck_flow() -> str:
        return blocker.block()

    state = stuck_flow(return_state=True)
    assert blocker.still_blocked()
    assert state.name == "TimedOut"
    assert state.is_failed()


def test_task_blocked_in_a_timed_out_flow_is_not_left_running(blocker, store):
    @task
    def stuck() -> str:
        return blocker.block()

    @flow(timeout_seconds=0.2)
    def pipeline() -> str:
        return stuck()

    state = pipeline(return_state=True)
    assert state.name == "TimedOut"
    assert blocker.still_blocked()

    blocker.finish()  # the body returns into the interruption the timeout left pending
    store.flush()
    [task_run] = store.read_task_runs(only_flow_run(store).id)
    assert not blocker.returned.is_set(), "the interrupted body did not run on"
    assert task_run.state_type == "CANCELLED"
    assert task_run.end_time is not None


def test_flow_timeout_is_retried_when_retries_remain(blocker, clock, store):
    attempts: list[int] = []

    @flow(timeout_seconds=0.5, retries=1)
    def slow_then_fast() -> str:
        attempts.append(len(attempts) + 1)
        if len(attempts) == 1:
            return blocker.block()
        return "fast"

    assert slow_then_fast() == "fast"
    run = only_flow_run(store)
    states = [(row.name, row.attempt) for row in store.read_states(flow_run_id=run.id)]
    assert states == [
        ("Pending", 0),
        ("Running", 1),
        ("TimedOut", 1),
        ("AwaitingRetry", 1),
        ("Retrying", 2),
        ("Completed", 2),
    ]
