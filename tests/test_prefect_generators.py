"""Generator flows and tasks, sync and async, as Prefect 3 runs them: the call returns a
generator, the values reach the caller as they are yielded, the run completes when the
body is exhausted (or the caller stops early) and fails with the body's exception."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import schedule_run
from gnomon import flow, runtime, task
from gnomon.flows import execute_flow_run

pytestmark = pytest.mark.backends


@flow
def countdown(n: int) -> Iterator[int]:
    yield from range(n, 0, -1)
    return "liftoff"  # type: ignore[misc]


@task
def pages(n: int) -> Iterator[int]:
    yield from range(n)


def test_a_generator_flow_yields_its_values_and_completes_when_exhausted(store) -> None:
    values = countdown(3)
    assert store.read_runs() == []  # the run starts with the first value asked for

    assert list(values) == [3, 2, 1]
    [run] = store.read_runs()
    assert (run.state_name, run.parameters) == ("Completed", {"n": 3})


def test_the_callers_generator_returns_the_flows_return_value(store) -> None:
    def relay() -> Iterator[int]:
        returned = yield from countdown(2)
        yield returned

    assert list(relay()) == [2, 1, "liftoff"]


def test_a_failing_generator_flow_gives_its_values_then_raises_and_fails(store) -> None:
    @flow
    def flaky() -> Iterator[int]:
        yield 1
        raise ValueError("boom")

    values = flaky()
    assert next(values) == 1
    with pytest.raises(ValueError, match="boom"):
        next(values)
    [run] = store.read_runs()
    assert (run.state_name, run.state_message) == (
        "Failed",
        "Flow run encountered an exception: ValueError: boom",
    )


def test_a_retried_generator_runs_its_body_again_and_yields_anew(store) -> None:
    attempts: list[int] = []

    @flow(retries=1)
    def flaky() -> Iterator[Any]:
        attempts.append(1)
        yield len(attempts)
        if len(attempts) == 1:
            raise ValueError("first")
        yield "second try"

    calls: list[int] = []

    @task(retries=1)
    def flaky_task() -> Iterator[int]:
        calls.append(1)
        yield len(calls)
        if len(calls) == 1:
            raise ValueError("first")

    @flow
    def outer() -> list[int]:
        return list(flaky_task())

    assert list(flaky()) == [1, 2, "second try"]
    assert outer() == [1, 2]
    retried = next(run for run in store.read_runs() if run.flow_name == "flaky")
    assert (retried.state_name, retried.run_count) == ("Completed", 2)


def test_return_state_is_refused_when_the_generator_is_read(store) -> None:
    values = countdown(2, return_state=True)
    with pytest.raises(ValueError, match="The return_type for a generator flow must be 'result'"):
        next(values)
    assert store.read_runs() == []


def test_a_caller_stopping_early_completes_the_run(store) -> None:
    values = countdown(5)
    assert (next(values), next(values)) == (5, 4)
    values.close()
    [run] = store.read_runs()
    assert run.state_name == "Completed"


def test_generator_tasks_in_a_flow_and_a_generator_subflow(store) -> None:
    @flow
    def crawl() -> dict[str, Any]:
        return {"tasks": [list(pages(3)), *pages(2)], "subflow": list(countdown(2))}

    assert crawl() == {"tasks": [[0, 1, 2], 0, 1], "subflow": [2, 1]}
    parent = next(run for run in store.read_runs() if run.flow_name == "crawl")
    child = next(run for run in store.read_runs() if run.flow_name == "countdown")
    assert child.parent_flow_run_id == parent.id
    tasks = store.read_task_runs(parent.id)
    assert [(row.name, row.state_name) for row in tasks] == [
        ("pages-0", "Completed"),
        ("pages-1", "Completed"),
    ]


def test_the_run_context_is_current_inside_the_body_and_not_between_values(store) -> None:
    @flow(flow_run_name="named-{n}")
    def names(n: int) -> Iterator[Any]:
        for _ in range(n):
            yield runtime.flow_run.name

    seen = [(value, runtime.flow_run.name) for value in names(2)]
    assert seen == [("named-2", None), ("named-2", None)]


def test_async_generator_flows_and_tasks(store) -> None:
    @task
    async def ticks(n: int) -> AsyncIterator[int]:
        for i in range(n):
            await asyncio.sleep(0)
            yield i * 10

    @flow
    async def stream(n: int) -> AsyncIterator[int]:
        async for value in ticks(n):
            yield value + 1

    async def consume() -> list[int]:
        return [value async for value in stream(3)]

    assert asyncio.run(consume()) == [1, 11, 21]
    [run] = store.read_runs()
    assert run.state_name == "Completed"
    assert [row.state_name for row in store.read_task_runs(run.id)] == ["Completed"]


def test_a_stored_run_of_a_generator_flow_runs_to_its_end(tmp_path: Path, store) -> None:
    module = tmp_path / "gen_flows.py"
    module.write_text(
        "from gnomon import flow\n\n"
        "@flow\n"
        "def numbers(n: int, step: int = 2):\n"
        "    for i in range(n):\n"
        "        yield i * step\n"
        "    return 'all sent'\n"
    )
    run_id = schedule_run(store, f"{module}:numbers", {"n": 3})

    state = execute_flow_run(run_id)

    assert (state.name, state.result()) == ("Completed", "all sent")
    run = store.read_flow_run(run_id)
    assert (run.state_name, run.parameters) == ("Completed", {"n": 3, "step": 2})
