"""States and results as Prefect 3.8.8 gives them (recorded from Prefect itself): what a
flow call gives back for each kind of return value, what ``State.result`` returns or
raises, and ``await state.result()`` in async code."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gnomon import flow, task
from gnomon.exceptions import (
    CancelledRun,
    CrashedRun,
    FailedRun,
    GnomonError,
    MissingResult,
    UnfinishedRun,
)
from gnomon.states import Cancelled, Completed, Crashed, Failed, Running, State


@task
def add(x: int) -> int:
    return x + 1


@task
def boom() -> None:
    raise ValueError("bad")


def stored_run(store: Any) -> Any:
    [run] = store.read_runs()
    return run


def test_a_flow_returning_failed_without_an_exception_raises_failed_run(store):
    @flow
    def gives_up() -> State:
        return Failed()

    with pytest.raises(FailedRun, match=r"^Run failed\.$"):
        gives_up()
    assert (stored_run(store).state_type, stored_run(store).state_name) == ("FAILED", "Failed")


def test_the_failed_runs_message_is_the_states_message():
    @flow
    def gives_up() -> State:
        return Failed(message="custom")

    with pytest.raises(FailedRun, match=r"^custom$"):
        gives_up()
    state = gives_up(return_state=True)
    assert (state.name, state.message) == ("Failed", "custom")
    assert state.result(raise_on_failure=False) is None, "Prefect stores None as its result"


def test_failed_run_is_a_gnomon_error():
    assert issubclass(FailedRun, GnomonError)


@pytest.mark.parametrize(
    ("state", "expected", "message"),
    [
        (Failed(), FailedRun, "Run failed."),
        (Failed(message="m"), FailedRun, "m"),
        (Cancelled(), CancelledRun, "Run cancelled."),
        (Crashed(), CrashedRun, "Run crashed."),
        (Failed(data="text as the error"), FailedRun, "text as the error"),
    ],
    ids=["failed", "failed-with-message", "cancelled", "crashed", "failed-with-text"],
)
def test_a_hand_built_failure_gives_its_wrapper_exception(state, expected, message):
    with pytest.raises(expected) as raised:
        state.result()
    assert str(raised.value) == message
    if isinstance(state.data, str):
        assert state.result(raise_on_failure=False) == "text as the error"
    else:
        returned = state.result(raise_on_failure=False)
        assert type(returned) is expected
        assert str(returned) == message


def test_a_failed_state_with_its_own_exception_gives_that_exception():
    error = ValueError("x")
    assert Failed(data=error).result(raise_on_failure=False) is error
    with pytest.raises(ValueError, match="x"):
        Failed(data=error).result()


def test_a_failed_state_holding_another_value_cannot_raise_it():
    assert Failed(data=5).result(raise_on_failure=False) == 5
    with pytest.raises(TypeError, match="cannot be resolved into an exception"):
        Failed(data=5).result()


def test_completed_states_give_their_data_and_a_bare_one_has_none():
    assert Completed(data=3).result() == 3
    assert Completed(data=None).result() is None
    with pytest.raises(MissingResult, match="State data is missing"):
        Completed().result()


def test_an_unfinished_state_has_no_result():
    with pytest.raises(UnfinishedRun, match=r"^Run is in RUNNING state, its result is not"):
        Running().result()


def test_a_flow_returning_a_hand_built_completed_state_gives_its_data():
    @flow
    def with_data() -> State:
        return Completed(data=5)

    @flow
    def with_message() -> State:
        return Completed(message="hi")

    assert with_data() == 5
    assert with_message() is None
    state = with_message(return_state=True)
    assert (state.name, state.message) == ("Completed", "hi")


def test_a_flow_returning_cancelled_raises_cancelled_run(store):
    @flow
    def stops() -> State:
        return Cancelled()

    with pytest.raises(CancelledRun, match=r"^Run cancelled\.$"):
        stops()
    assert stored_run(store).state_type == "CANCELLED"


def test_a_flow_returning_a_future_gives_the_tasks_final_state(store):
    @flow
    def one() -> Any:
        return add.submit(1)

    returned = one()
    assert isinstance(returned, State)
    assert returned.is_completed()
    assert returned.result() == 2
    state = one(return_state=True)
    assert (state.name, state.message) == ("Completed", "All states completed.")
    assert state.result().result() == 2


def test_a_flow_returning_a_tuple_or_list_of_futures_gives_their_states():
    @flow
    def pair() -> Any:
        return add.submit(1), add.submit(2)

    @flow
    def listed() -> Any:
        return [add.submit(1), add.submit(2)]

    @flow
    def nested() -> Any:
        return {"a": [add.submit(1)]}

    first, second = pair()
    assert [first.result(), second.result()] == [2, 3]
    assert [state.result() for state in listed()] == [2, 3]
    returned = nested()
    assert list(returned) == ["a"]
    assert returned["a"][0].result() == 2
    assert nested(return_state=True).message is None, "a dict is a plain value to Prefect"


def test_a_flow_returning_a_failed_future_raises_its_exception():
    @flow
    def fails() -> Any:
        return boom.submit()

    with pytest.raises(ValueError, match="bad"):
        fails()
    state = fails(return_state=True)
    assert (state.name, state.message) == ("Failed", "1/1 states failed.")
    inner = state.result(raise_on_failure=False)
    assert isinstance(inner, State)
    assert inner.is_failed()


def test_a_flow_returning_futures_with_a_failure_fails_but_its_call_gives_them_back(store):
    @flow
    def mixed() -> Any:
        return add.submit(1), boom.submit()

    good, bad = mixed()
    assert good.result() == 2
    assert bad.is_failed()
    assert (stored_run(store).state_name, stored_run(store).state_message) == (
        "Failed",
        "1/2 states failed.",
    )


def test_a_flow_returning_a_task_state_wraps_it():
    @flow
    def returns_state() -> Any:
        return add(1, return_state=True)

    returned = returns_state()
    assert isinstance(returned, State)
    assert returned.result() == 2


def test_a_flow_returning_a_generator_gives_a_list():
    @flow
    def numbers() -> Any:
        return (n * n for n in range(3))

    assert numbers() == [0, 1, 4]


def test_await_state_result_in_async_code_outside_a_run():
    @flow
    async def seven() -> int:
        return 7

    async def main() -> tuple[Any, ...]:
        state = await seven(return_state=True)
        pending = state.result()
        in_loop = Completed(data=1).result()
        values = (await pending, await state.aresult(), await in_loop)
        return asyncio.iscoroutine(pending), asyncio.iscoroutine(in_loop), values

    assert asyncio.run(main()) == (True, True, (7, 7, 1))


def test_state_result_is_awaitable_in_an_async_flow_and_a_value_in_a_sync_one():
    seen: dict[str, bool] = {}

    @flow
    async def asynchronous() -> int:
        pending = add(2, return_state=True).result()
        seen["async"] = asyncio.iscoroutine(pending)
        return await pending

    @flow
    def synchronous() -> int:
        value = add(2, return_state=True).result()
        seen["sync"] = asyncio.iscoroutine(value)
        return value

    assert asyncio.run(asynchronous()) == 3
    assert synchronous() == 3
    assert seen == {"async": True, "sync": False}


def test_state_result_in_a_sync_task_of_an_async_flow_is_a_value():
    @task
    def inner() -> int:
        return Completed(data=4).result()

    @flow
    async def outer() -> int:
        return inner()

    assert asyncio.run(outer()) == 4
