"""Submitting tasks: futures, ``.map``, waiting, upstream failures and the thread-pool runner.

Every ordering claim is controlled with events that the test releases; a task that blocks
does so on an event with a deadline, so a broken engine fails the test instead of hanging it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import BaseModel

from gnomon import allow_failure, flow, task, unmapped
from gnomon.exceptions import MappingLengthMismatch, MappingMissingIterable, UpstreamTaskError
from gnomon.futures import DoneAndNotDoneFutures, PrefectFuture, as_completed, wait
from gnomon.states import State, StateType
from gnomon.task_runners import ThreadPoolTaskRunner

DEADLINE = 10.0  # seconds any blocked task or waiting test gives up after


@task
def double(x: int) -> int:
    return 2 * x


@task
def add(x: int, y: int) -> int:
    return x + y


@task
def explode(message: str) -> int:
    raise ValueError(message)


def _states(store: Any, task_run_id: str) -> list[tuple[str, str]]:
    return [(row.type, row.name) for row in store.read_states(task_run_id=task_run_id)]


def test_submit_returns_a_future_whose_result_state_and_run_are_the_task_runs(store) -> None:
    futures: list[PrefectFuture[int]] = []

    @flow
    def pipeline() -> tuple[PrefectFuture[int], int]:
        future = double.submit(21)
        assert future.wait() is None
        futures.append(future)
        return future, future.result()

    state, value = pipeline()

    assert value == 42
    [future] = futures
    assert state is future.state, "as in Prefect, a returned future comes back as its state"
    assert future.state.is_completed()
    assert future.state.result() == 42
    assert state.state_details.task_run_id == future.task_run_id
    run = store.read_task_run(future.task_run_id)
    assert run is not None
    assert (run.state_type, run.state_name) == ("COMPLETED", "Completed")
    assert _states(store, future.task_run_id) == [
        ("PENDING", "Pending"),
        ("RUNNING", "Running"),
        ("COMPLETED", "Completed"),
    ]


def test_result_with_a_timeout_raises_timeout_error_while_the_task_is_still_running() -> None:
    started, release = threading.Event(), threading.Event()

    @task
    def blocked() -> str:
        started.set()
        release.wait(DEADLINE)
        return "released"

    @flow
    def pipeline() -> str:
        future = blocked.submit()
        try:
            assert started.wait(DEADLINE)
            assert future.state.name == "Running"
            with pytest.raises(TimeoutError):
                future.result(timeout=0.1)
            # wait() with a timeout returns silently, leaving the run unfinished.
            future.wait(timeout=0.05)
            assert not future.state.is_final()
            assert not future.done()
        finally:
            release.set()
        return future.result(timeout=DEADLINE)

    assert pipeline() == "released"


def test_map_zips_iterables_and_reuses_unmapped_values() -> None:
    @task
    def combine(x: int, label: str, weights: list[int]) -> str:
        return f"{label}{x * sum(weights)}"

    @flow
    def pipeline() -> list[str]:
        futures = combine.map([1, 2, 3], ["a", "b", "c"], unmapped([1, 2]))
        assert len(futures) == 3
        return futures.result()

    assert pipeline() == ["a3", "b6", "c9"]


def test_map_waits_for_the_wait_for_futures_before_every_mapped_run() -> None:
    mapped_started = threading.Event()
    first_done = threading.Event()
    seen_first_done: list[bool] = []
    lock = threading.Lock()

    @task
    def first() -> None:
        # Waits for a mapped run to start: one that ignored wait_for would start now.
        mapped_started.wait(0.3)
        first_done.set()

    @task
    def after(x: int) -> int:
        mapped_started.set()
        with lock:
            seen_first_done.append(first_done.is_set())
        return x

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=8))
    def pipeline() -> list[int]:
        upstream = first.submit()
        return after.map([1, 2, 3, 4], wait_for=[upstream]).result()

    assert pipeline() == [1, 2, 3, 4]
    assert seen_first_done == [True] * 4


def test_map_accepts_futures_and_future_lists_as_iterables() -> None:
    @task
    def numbers() -> list[int]:
        return [1, 2, 3]

    @flow
    def pipeline() -> list[int]:
        doubled = double.map(numbers.submit())  # maps over the future's result
        return add.map(doubled, unmapped(100)).result()  # one future per run

    assert pipeline() == [102, 104, 106]


def test_map_with_iterables_of_different_lengths_raises_mapping_length_mismatch() -> None:
    @flow
    def pipeline() -> None:
        add.map([1, 2], [1, 2, 3])

    with pytest.raises(MappingLengthMismatch):
        pipeline()


def test_map_without_an_iterable_argument_raises_mapping_missing_iterable() -> None:
    @flow
    def pipeline() -> None:
        add.map(1, unmapped([2]))

    with pytest.raises(MappingMissingIterable):
        pipeline()


def test_map_over_a_dict_maps_over_its_keys() -> None:
    @task
    def echo(key: str) -> str:
        return key

    @flow
    def pipeline() -> list[str]:
        return echo.map({"a": 1, "b": 2, "c": 3}).result()

    assert pipeline() == ["a", "b", "c"]


def test_map_does_not_iterate_strings_or_bytes() -> None:
    @task
    def label(x: int, prefix: str, suffix: bytes) -> str:
        return f"{prefix}{x}{suffix.decode()}"

    @flow
    def pipeline() -> list[str]:
        return label.map([1, 2], "id-", b"!").result()

    assert pipeline() == ["id-1!", "id-2!"]


def _gated_task(gates: list[threading.Event]) -> Any:
    @task
    def gated(index: int) -> int:
        if not gates[index].wait(DEADLINE):
            raise TimeoutError(f"gate {index} was never opened")
        return index

    return gated


def test_as_completed_yields_futures_in_the_order_their_runs_finish() -> None:
    gates = [threading.Event() for _ in range(3)]
    gated = _gated_task(gates)

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=3))
    def pipeline() -> list[int]:
        futures = gated.map([0, 1, 2])
        order = []
        try:
            completed = as_completed(futures, timeout=DEADLINE)
            for index in (2, 0, 1):
                gates[index].set()
                future = next(completed)
                assert future is futures[index]
                order.append(future.result())
            assert list(completed) == []
        finally:
            for gate in gates:
                gate.set()
        return order

    assert pipeline() == [2, 0, 1]


def test_as_completed_raises_timeout_error_when_a_run_does_not_finish_in_time() -> None:
    gates = [threading.Event(), threading.Event()]
    gated = _gated_task(gates)

    @flow
    def pipeline() -> list[int]:
        futures = gated.map([0, 1])
        yielded = []
        try:
            gates[0].set()
            with pytest.raises(TimeoutError):
                yielded.extend(future.result() for future in as_completed(futures, timeout=0.3))
        finally:
            gates[1].set()
        return yielded

    assert pipeline() == [0]


def test_wait_splits_futures_into_done_and_not_done() -> None:
    gates = [threading.Event(), threading.Event()]
    gated = _gated_task(gates)

    @flow
    def pipeline() -> None:
        futures = gated.map([0, 1])
        try:
            gates[0].set()
            futures[0].wait(DEADLINE)
            partial = wait(futures, timeout=0.1)
            assert isinstance(partial, DoneAndNotDoneFutures)
            assert partial.done == {futures[0]}
            assert partial.not_done == {futures[1]}
        finally:
            gates[1].set()
        done, not_done = wait(futures)
        assert done == set(futures)
        assert not_done == set()

    pipeline()


def test_future_list_result_with_a_timeout_raises_timeout_error_while_a_run_is_blocked() -> None:
    gates = [threading.Event(), threading.Event()]
    gated = _gated_task(gates)

    @flow
    def pipeline() -> list[int]:
        futures = gated.map([0, 1])
        try:
            gates[0].set()
            with pytest.raises(TimeoutError):
                futures.result(timeout=0.1)
            futures.wait(timeout=0.05)
        finally:
            gates[1].set()
        futures.wait()
        return futures.result()

    assert pipeline() == [0, 1]


def test_task_with_a_failed_upstream_is_not_ready_and_its_body_never_runs(store) -> None:
    ran: list[int] = []

    @task
    def downstream(value: int) -> int:
        ran.append(value)
        return value

    futures: list[PrefectFuture[int]] = []

    @flow
    def pipeline() -> None:
        upstream = explode.submit("boom")
        futures.extend([upstream, downstream.submit(upstream)])
        futures[1].wait()

    pipeline()
    upstream, not_ready = futures

    assert ran == []
    state = not_ready.state
    assert state.type is StateType.PENDING
    assert state.name == "NotReady"
    expected = f"Upstream task run '{upstream.task_run_id}' did not reach a 'COMPLETED' state."
    assert state.message == expected
    with pytest.raises(UpstreamTaskError, match="did not reach a 'COMPLETED' state"):
        not_ready.result()
    run = store.read_task_run(not_ready.task_run_id)
    assert (run.state_type, run.state_name, run.state_message) == (
        "PENDING",
        "NotReady",
        expected,
    )
    assert _states(store, not_ready.task_run_id) == [
        ("PENDING", "Pending"),
        ("PENDING", "NotReady"),
    ]


def test_task_waiting_for_a_failed_future_is_not_ready_and_its_body_never_runs(store) -> None:
    ran: list[str] = []

    @task
    def cleanup() -> None:
        ran.append("cleanup")

    @flow
    def pipeline() -> str:
        upstream = explode.submit("boom")
        future = cleanup.submit(wait_for=[upstream])
        future.wait()
        assert future.state.name == "NotReady"
        with pytest.raises(UpstreamTaskError):
            future.result()
        return future.task_run_id

    task_run_id = pipeline()
    assert ran == []
    assert store.read_task_run(task_run_id).state_name == "NotReady"


def test_allow_failure_passes_the_upstream_exception_as_the_argument() -> None:
    @task
    def inspect_error(error: Any) -> str:
        assert isinstance(error, ValueError)
        return f"got {error}"

    @task
    def after_cleanup() -> str:
        return "ran anyway"

    @flow
    def pipeline() -> tuple[str, str]:
        upstream = explode.submit("boom")
        handled = inspect_error.submit(allow_failure(upstream))
        tolerant = after_cleanup.submit(wait_for=[allow_failure(upstream)])
        return handled.result(), tolerant.result()

    assert pipeline() == ("got boom", "ran anyway")


def test_tasks_submitted_and_mapped_outside_a_flow_run_and_are_recorded(store) -> None:
    future = double.submit(5)
    mapped = double.map([1, 2, 3])

    assert future.result(timeout=DEADLINE) == 10
    assert mapped.result(timeout=DEADLINE) == [2, 4, 6]
    store.flush()
    run = store.read_task_run(future.task_run_id)
    assert run.flow_run_id is None
    assert run.state_type == "COMPLETED"
    assert all(store.read_task_run(f.task_run_id).state_type == "COMPLETED" for f in mapped)


def test_submit_and_map_with_return_state_return_final_states_without_raising() -> None:
    @flow
    def pipeline() -> tuple[State, State, list[State]]:
        good = double.submit(4, return_state=True)
        bad = explode.submit("nope", return_state=True)
        mapped = double.map([1, 2], return_state=True)
        return good, bad, mapped

    good, bad, mapped = pipeline()

    assert isinstance(good, State)
    assert good.is_completed()
    assert good.result() == 8
    assert bad.is_failed()
    with pytest.raises(ValueError, match="nope"):
        bad.result()
    assert [state.result() for state in mapped] == [2, 4]


def test_futures_nested_in_lists_dicts_tuples_and_sets_are_resolved_to_their_results() -> None:
    @task
    def collect(numbers: list[Any], named: dict[str, Any], unique: set[int]) -> Any:
        return numbers, named, unique

    @flow
    def pipeline() -> Any:
        one, two, three = double.submit(1), double.submit(2), double.submit(3)
        return collect.submit(
            [one, (two, [three])], {"a": one, "deep": {"b": [two]}}, {one, three}
        ).result()

    numbers, named, unique = pipeline()

    assert numbers == [2, (4, [6])]
    assert named == {"a": 2, "deep": {"b": [4]}}
    assert unique == {2, 6}


@dataclass
class Batch:
    size: Any
    label: str


class Order(BaseModel):
    quantity: Any
    sku: str


def test_futures_inside_dataclasses_and_pydantic_models_are_resolved() -> None:
    @task
    def describe(batch: Batch, order: Order) -> tuple[Any, Any]:
        return batch, order

    @flow
    def pipeline() -> tuple[Any, Any]:
        return describe.submit(
            Batch(double.submit(5), "b"), Order(quantity=[double.submit(7)], sku="x")
        ).result()

    batch, order = pipeline()

    assert batch == Batch(10, "b")
    assert order == Order(quantity=[14], sku="x")


def test_arguments_without_futures_reach_a_thread_task_as_the_very_same_objects() -> None:
    rows = {"rows": [1, 2]}
    batch = Batch([3], "as is")

    @task
    def same(mapping: dict[str, Any], record: Batch) -> bool:
        return mapping is rows and record is batch

    @flow
    def pipeline() -> bool:
        return same.submit(rows, batch).result()

    assert pipeline() is True


def test_failed_future_nested_in_a_list_makes_the_downstream_not_ready() -> None:
    ran: list[int] = []

    @task
    def total(values: list[int]) -> int:
        ran.extend(values)
        return sum(values)

    @flow
    def pipeline() -> tuple[str, str | None]:
        state = total.submit([double.submit(1), explode.submit("bad")], return_state=True)
        return state.name, state.message

    name, message = pipeline()
    assert ran == []
    assert name == "NotReady"
    assert "did not reach a 'COMPLETED' state" in (message or "")


def test_thread_pool_runner_with_two_workers_never_runs_more_than_two_tasks_at_once() -> None:
    release = threading.Event()
    changed = threading.Condition()
    counts = {"active": 0, "peak": 0}

    @task
    def tracked(index: int) -> int:
        with changed:
            counts["active"] += 1
            counts["peak"] = max(counts["peak"], counts["active"])
            changed.notify_all()
        try:
            if not release.wait(DEADLINE):
                raise TimeoutError("never released")
        finally:
            with changed:
                counts["active"] -= 1
                changed.notify_all()
        return index

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=2))
    def pipeline() -> list[int]:
        futures = tracked.map(range(6))
        try:
            with changed:
                assert changed.wait_for(lambda: counts["active"] >= 2, DEADLINE)
                # A runner with spare workers would start a third run within this window.
                assert not changed.wait_for(lambda: counts["active"] > 2, 0.3)
        finally:
            release.set()
        return futures.result()

    assert pipeline() == list(range(6))
    assert counts["peak"] == 2
