"""Task and flow retries: attempt counts, delays, jitter, retry conditions and hooks.

Every test runs on the fake clock, so retry delays are recorded, never slept through.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

from conftest import FakeClock, all_states
from gnomon import flow, task
from gnomon.flows._clock import use_clock
from gnomon.store.rows import FlowRunRow
from gnomon.tasks import exponential_backoff

pytestmark = [pytest.mark.backends, pytest.mark.usefixtures("clock")]


def failing_until(attempts: int) -> tuple[Callable[[], str], list[int]]:
    """A body that raises on every call before call number ``attempts``, and its call log."""
    calls: list[int] = []

    def body() -> str:
        calls.append(len(calls) + 1)
        if len(calls) < attempts:
            raise ValueError(f"boom {len(calls)}")
        return f"done on attempt {len(calls)}"

    return body, calls


def only_flow_run(store: Any) -> FlowRunRow:
    [run] = store.read_runs()
    return run


def test_task_succeeds_on_its_third_attempt_with_two_retries(store):
    body, calls = failing_until(3)
    flaky = task(retries=2)(body)

    @flow
    def pipeline() -> str:
        return flaky()

    assert pipeline() == "done on attempt 3"
    assert calls == [1, 2, 3]
    [task_run] = store.read_task_runs(only_flow_run(store).id)
    assert task_run.state_name == "Completed"
    assert task_run.run_count == 3


def test_task_that_keeps_failing_fails_after_its_last_retry(store):
    body, calls = failing_until(100)
    flaky = task(retries=2)(body)

    @flow
    def pipeline() -> str:
        return flaky()

    with pytest.raises(ValueError, match="boom 3"):
        pipeline()
    assert calls == [1, 2, 3]
    run = only_flow_run(store)
    assert run.state_type == "FAILED"
    [task_run] = store.read_task_runs(run.id)
    assert task_run.state_name == "Failed"
    assert task_run.state_message == "Task run encountered an exception ValueError: boom 3"
    assert task_run.run_count == 3
    assert task_run.error_type == "ValueError"


def test_task_without_retries_runs_once():
    body, calls = failing_until(2)
    once = task(body)
    state = once(return_state=True)
    assert state.is_failed()
    assert calls == [1]


@pytest.mark.parametrize(
    ("retries", "delays", "slept"),
    [
        pytest.param(3, 5, [5, 5, 5], id="number"),
        pytest.param(3, [1, 2, 3], [1, 2, 3], id="list"),
        pytest.param(4, [1, 2], [1, 2, 2, 2], id="short-list-repeats-last"),
        pytest.param(2, [4, 8, 16], [4, 8], id="long-list-uses-prefix"),
        pytest.param(3, lambda retries: [retries * 10, 7, 1], [30, 7, 1], id="callable"),
        pytest.param(3, exponential_backoff(10), [10, 20, 40], id="exponential-backoff"),
    ],
)
def test_retry_delays_are_waited_before_each_retry(clock, retries, delays, slept):
    body, calls = failing_until(100)
    flaky = task(retries=retries, retry_delay_seconds=delays)(body)
    assert flaky(return_state=True).is_failed()
    assert len(calls) == retries + 1
    assert clock.sleeps == slept


def test_exponential_backoff_doubles_from_its_factor():
    assert exponential_backoff(10)(3) == [10, 20, 40]
    assert exponential_backoff(0.5)(4) == [0.5, 1, 2, 4]
    assert exponential_backoff(3)(0) == []


def test_retry_delay_message_tells_when_the_retry_starts(store):
    body, _ = failing_until(2)
    flaky = task(retries=1, retry_delay_seconds=12)(body)

    @flow
    def pipeline() -> str:
        return flaky()

    pipeline()
    [awaiting] = [
        row for row in all_states(store, only_flow_run(store).id) if row.name == "AwaitingRetry"
    ]
    assert awaiting.type == "SCHEDULED"
    assert awaiting.message == "Retry 1/1 will start 12 second(s) from now"


def prefect_jitter_bounds(average: float, factor: float) -> tuple[float, float]:
    """Prefect's clamped_poisson_interval bounds: the upper is average * (1 + factor), the
    lower is chosen so the probability mass either side of the median is equal."""
    k = 1 + factor
    return average * math.log2(2**k / (2**k - 1)), average * k


@pytest.mark.parametrize("factor", [0.2, 0.5, 1.0, 3.0])
def test_jittered_delays_stay_within_prefect_clamped_bounds(factor):
    randoms = [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.999999, 1.0]
    fake = FakeClock(random_values=randoms)
    body, _ = failing_until(100)
    flaky = task(retries=len(randoms), retry_delay_seconds=10, retry_jitter_factor=factor)(body)
    with use_clock(fake):
        assert flaky(return_state=True).is_failed()
    lower, upper = prefect_jitter_bounds(10, factor)
    assert len(fake.sleeps) == len(randoms)
    for delay in fake.sleeps:
        assert lower - 1e-9 <= delay <= upper + 1e-9
    jittered = fake.sleeps
    # The sample is an inverse-CDF draw: it grows with the random value and spans the range.
    assert jittered == sorted(jittered)
    assert math.isclose(jittered[0], lower, rel_tol=1e-6)
    assert math.isclose(jittered[-1], upper, rel_tol=1e-6)
    assert len(set(jittered)) == len(jittered)


def test_jitter_applies_to_each_listed_delay():
    fake = FakeClock(random_values=[1.0, 1.0])
    body, _ = failing_until(100)
    flaky = task(retries=2, retry_delay_seconds=[2, 40], retry_jitter_factor=0.5)(body)
    with use_clock(fake):
        flaky(return_state=True)
    assert fake.sleeps == pytest.approx([3.0, 60.0])


def test_no_jitter_without_a_jitter_factor():
    fake = FakeClock(random_values=[0.0, 0.0])
    body, _ = failing_until(100)
    flaky = task(retries=2, retry_delay_seconds=10)(body)
    with use_clock(fake):
        flaky(return_state=True)
    assert fake.sleeps == [10, 10]


def test_retry_condition_false_stops_retrying():
    seen: list[tuple[Any, Any, Any]] = []

    def only_connection_errors(task_: Any, task_run: Any, state: Any) -> bool:
        seen.append((task_, task_run, state))
        return isinstance(state.result(raise_on_failure=False), ConnectionError)

    calls: list[int] = []

    @task(retries=5, retry_condition_fn=only_connection_errors)
    def fetch() -> None:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("flaky network")
        raise ValueError("bad data")

    state = fetch(return_state=True)
    assert state.is_failed()
    assert state.message == "Task run encountered an exception ValueError: bad data"
    assert len(calls) == 3, "retried the two connection errors, stopped at the value error"
    task_, task_run, last = seen[-1]
    assert task_ is fetch
    assert task_run.run_count == 3
    assert last.is_failed()
    assert len(seen) == 3


def test_retry_condition_is_not_consulted_once_retries_are_exhausted():
    consulted: list[int] = []

    def always(task_: Any, task_run: Any, state: Any) -> bool:
        consulted.append(task_run.run_count)
        return True

    body, calls = failing_until(100)
    flaky = task(retries=2, retry_condition_fn=always)(body)
    assert flaky(return_state=True).is_failed()
    assert len(calls) == 3
    assert consulted == [1, 2]


def test_every_attempt_is_recorded_with_its_number_and_error(store):
    body, _ = failing_until(3)
    flaky = task(retries=2, retry_delay_seconds=1)(body)

    @flow
    def pipeline() -> str:
        return flaky()

    pipeline()
    [task_run] = store.read_task_runs(only_flow_run(store).id)
    states = [
        (row.name, row.type, row.attempt, row.message)
        for row in store.read_states(task_run_id=task_run.id)
    ]
    awaiting = "Retry {}/2 will start 1 second(s) from now"
    assert states == [
        ("Pending", "PENDING", 0, None),
        ("Running", "RUNNING", 1, None),
        ("Failed", "FAILED", 1, "Task run encountered an exception ValueError: boom 1"),
        ("AwaitingRetry", "SCHEDULED", 1, awaiting.format(1)),
        ("Retrying", "RUNNING", 2, None),
        ("Failed", "FAILED", 2, "Task run encountered an exception ValueError: boom 2"),
        ("AwaitingRetry", "SCHEDULED", 2, awaiting.format(2)),
        ("Retrying", "RUNNING", 3, None),
        ("Completed", "COMPLETED", 3, None),
    ]


def test_flow_retries_rerun_the_body_after_its_delay(clock, store):
    body, calls = failing_until(3)
    flaky_flow = flow(retries=2, retry_delay_seconds=7)(body)

    assert flaky_flow() == "done on attempt 3"
    assert calls == [1, 2, 3]
    assert clock.sleeps == [7, 7]
    run = only_flow_run(store)
    assert run.state_name == "Completed"
    assert run.run_count == 3
    states = [(row.name, row.attempt) for row in store.read_states(flow_run_id=run.id)]
    assert states == [
        ("Pending", 0),
        ("Running", 1),
        ("Failed", 1),
        ("AwaitingRetry", 1),
        ("Retrying", 2),
        ("Failed", 2),
        ("AwaitingRetry", 2),
        ("Retrying", 3),
        ("Completed", 3),
    ]


def test_flow_that_keeps_failing_fails_after_its_last_retry(clock, store):
    body, calls = failing_until(100)
    flaky_flow = flow(retries=1, retry_delay_seconds=3)(body)

    with pytest.raises(ValueError, match="boom 2"):
        flaky_flow()
    assert calls == [1, 2]
    assert clock.sleeps == [3]
    run = only_flow_run(store)
    assert run.state_name == "Failed"
    assert run.state_message == "Flow run encountered an exception: ValueError: boom 2"
    assert run.error_message == "boom 2"


def test_task_hooks_run_once_on_the_final_state_after_retries():
    failures: list[tuple[str, int]] = []
    completions: list[tuple[str, int]] = []

    def on_failure(task_: Any, task_run: Any, state: Any) -> None:
        failures.append((state.name, task_run.run_count))

    def on_completion(task_: Any, task_run: Any, state: Any) -> None:
        completions.append((state.name, task_run.run_count))

    body, _ = failing_until(3)
    recovers = task(retries=2, on_failure=[on_failure], on_completion=[on_completion])(body)
    recovers()
    assert failures == []
    assert completions == [("Completed", 3)]

    body, _ = failing_until(100)
    gives_up = task(retries=2, on_failure=[on_failure], on_completion=[on_completion])(body)
    gives_up(return_state=True)
    assert failures == [("Failed", 3)]
    assert completions == [("Completed", 3)]


def test_flow_hooks_run_once_on_the_final_state_after_retries():
    seen: list[tuple[str, str, int]] = []

    def record(kind: str) -> Callable[..., None]:
        return lambda flow_, flow_run, state: seen.append((kind, state.name, flow_run.run_count))

    body, _ = failing_until(100)
    flaky_flow = flow(
        retries=2, on_failure=[record("failure")], on_completion=[record("completion")]
    )(body)
    assert flaky_flow(return_state=True).is_failed()
    assert seen == [("failure", "Failed", 3)]
