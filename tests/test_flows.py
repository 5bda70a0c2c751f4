"""Flows and tasks as a user sees them: results, states, subflows, parameters, names, hooks,
crashes, run logs, tags and async flows, with what each leaves in the store."""

from __future__ import annotations

import asyncio
import re
import threading
from datetime import UTC, datetime
from typing import Any

import pydantic
import pytest

from conftest import logs_of, subflows
from gnomon import flow, get_run_logger, tags, task
from gnomon.exceptions import CrashedRun, MissingResult, ParameterTypeError, UnfinishedRun
from gnomon.states import (
    AwaitingRetry,
    Cached,
    Cancelled,
    Completed,
    Crashed,
    Failed,
    Pending,
    Retrying,
    Running,
    State,
    StateType,
    TimedOut,
)
from gnomon.store.rows import FlowRunRow

pytestmark = pytest.mark.backends


def only_flow_run(store: Any) -> FlowRunRow:
    [run] = store.read_runs()
    return run


@task
def boom() -> None:
    raise ValueError("boom")


@task
def double(x: int) -> int:
    return x * 2


# Results and states


def test_flow_call_returns_what_the_body_returns(store):
    @flow
    def pipeline(x: int) -> dict[str, int]:
        return {"doubled": double(x), "again": double(double(x))}

    assert pipeline(5) == {"doubled": 10, "again": 20}
    run = only_flow_run(store)
    assert run.state_type == "COMPLETED"
    assert run.state_name == "Completed"
    assert run.run_count == 1
    assert run.start_time is not None
    assert run.end_time is not None
    assert [row.state_name for row in store.read_task_runs(run.id)] == ["Completed"] * 3


def test_flow_return_state_gives_the_final_state_instead_of_raising():
    @flow
    def fine() -> str:
        return "ok"

    @flow
    def broken() -> None:
        raise ValueError("boom")

    completed = fine(return_state=True)
    assert isinstance(completed, State)
    assert completed.is_completed()
    assert completed.result() == "ok"

    failed = broken(return_state=True)
    assert failed.is_failed()
    assert failed.message == "Flow run encountered an exception: ValueError: boom"
    with pytest.raises(ValueError, match="boom"):
        failed.result()
    assert isinstance(failed.result(raise_on_failure=False), ValueError)


def test_task_return_state_lets_the_flow_carry_on_after_a_failure(store):
    @flow
    def pipeline() -> tuple[str, str | None, int]:
        state = boom(return_state=True)
        return state.name, state.message, double(1)

    assert pipeline() == ("Failed", "Task run encountered an exception ValueError: boom", 2)
    run = only_flow_run(store)
    assert run.state_name == "Completed", "a failed task the flow does not return is tolerated"
    assert [row.state_name for row in store.read_task_runs(run.id)] == [
        "Failed",
        "Completed",
    ]


def test_failing_task_exception_is_raised_by_the_flow_call_and_recorded(store):
    @flow
    def pipeline() -> None:
        boom()

    with pytest.raises(ValueError, match=r"^boom$"):
        pipeline()

    run = only_flow_run(store)
    assert run.state_name == "Failed"
    assert run.state_message == "Flow run encountered an exception: ValueError: boom"
    assert run.error_type == "ValueError"
    assert run.error_message == "boom"
    assert "in boom" in run.error_traceback
    assert run.error_traceback.rstrip().endswith("ValueError: boom")
    [task_run] = store.read_task_runs(run.id)
    assert task_run.state_name == "Failed"
    assert task_run.state_message == "Task run encountered an exception ValueError: boom"
    assert task_run.error_type == "ValueError"
    assert "ValueError: boom" in task_run.error_traceback


@pytest.mark.parametrize(
    ("state", "type_", "name", "final"),
    [
        (Pending(), StateType.PENDING, "Pending", False),
        (Running(), StateType.RUNNING, "Running", False),
        (Retrying(), StateType.RUNNING, "Retrying", False),
        (AwaitingRetry(), StateType.SCHEDULED, "AwaitingRetry", False),
        (Completed(), StateType.COMPLETED, "Completed", True),
        (Cached(), StateType.COMPLETED, "Cached", True),
        (Failed(), StateType.FAILED, "Failed", True),
        (TimedOut(), StateType.FAILED, "TimedOut", True),
        (Crashed(), StateType.CRASHED, "Crashed", True),
        (Cancelled(), StateType.CANCELLED, "Cancelled", True),
    ],
    ids=lambda value: value.name if isinstance(value, State) else None,
)
def test_state_names_types_and_predicates_follow_prefect(state, type_, name, final):
    assert state.type is type_
    assert state.name == name
    assert state.is_final() is final
    predicates = {
        StateType.PENDING: state.is_pending,
        StateType.RUNNING: state.is_running,
        StateType.SCHEDULED: state.is_scheduled,
        StateType.COMPLETED: state.is_completed,
        StateType.FAILED: state.is_failed,
        StateType.CRASHED: state.is_crashed,
        StateType.CANCELLED: state.is_cancelled,
    }
    assert {kind for kind, predicate in predicates.items() if predicate()} == {type_}


def test_state_str_is_prefect_log_form():
    assert str(Completed()) == "Completed()"
    assert str(Failed("it broke")) == "Failed('it broke')"
    assert str(TimedOut("too slow")) == "TimedOut('too slow', type=FAILED)"
    assert str(Cached()) == "Cached(type=COMPLETED)"


def test_state_result_returns_data_or_raises_the_runs_exception():
    assert Completed(data=[1, 2]).result() == [1, 2]
    with pytest.raises(MissingResult):  # as Prefect 3.8.8: a hand-built state holds no result
        Completed().result()
    error = KeyError("missing")
    with pytest.raises(KeyError) as info:
        Failed(data=error).result()
    assert info.value is error
    with pytest.raises(CrashedRun, match="the process died"):
        Crashed("the process died").result()
    with pytest.raises(UnfinishedRun):
        Running().result()


# Subflows


def test_subflow_run_is_linked_to_its_parent(store):
    @flow
    def child(x: int) -> int:
        return double(x)

    @flow
    def parent() -> int:
        return child(3) + child(4)

    assert parent() == 14
    runs = store.read_runs()
    [parent_run] = [run for run in runs if run.flow_name == "parent"]
    children = [run for run in runs if run.flow_name == "child"]
    assert parent_run.parent_flow_run_id is None
    assert len(children) == 2
    assert {run.parent_flow_run_id for run in children} == {parent_run.id}
    assert sorted(run.parameters["x"] for run in children) == [3, 4]
    linked = subflows(store, parent_run.id)
    assert sorted(run.id for run in linked) == sorted(run.id for run in children)
    for run in children:
        [task_run] = store.read_task_runs(run.id)
        assert task_run.state_name == "Completed", "the subflow's tasks belong to the subflow"
    assert store.read_task_runs(parent_run.id) == []


def test_failing_subflow_fails_its_parent(store):
    @flow
    def child() -> None:
        boom()

    @flow
    def parent() -> None:
        child()

    with pytest.raises(ValueError, match="boom"):
        parent()
    assert {run.flow_name: run.state_name for run in store.read_runs()} == {
        "parent": "Failed",
        "child": "Failed",
    }


# Parameters


def test_parameters_are_coerced_from_type_hints_and_stored_coerced(store):
    seen: list[Any] = []

    @flow
    def pipeline(n: int, ratio: float = 0.5, names: list[str] | None = None) -> None:
        seen.append((n, ratio, names))

    pipeline("21", ratio="2", names=("a", "b"))
    assert seen == [(21, 2.0, ["a", "b"])]
    assert type(seen[0][0]) is int
    assert only_flow_run(store).parameters == {"n": 21, "ratio": 2.0, "names": ["a", "b"]}


class Window(pydantic.BaseModel):
    start: int
    end: int


def test_model_and_datetime_parameters_are_built_and_stored_as_json(store):
    """The stored parameters are plain JSON that validates again, not reprs."""
    seen: list[Any] = []

    @flow
    def pipeline(window: Window, since: datetime, ids: set[int]) -> None:
        seen.append((window, since, ids))

    pipeline({"start": "1", "end": 5}, "2024-03-01T12:00:00Z", [3, 3, 4])
    assert seen == [(Window(start=1, end=5), datetime(2024, 3, 1, 12, tzinfo=UTC), {3, 4})]
    stored = only_flow_run(store).parameters
    assert stored == {
        "window": {"start": 1, "end": 5},
        "since": "2024-03-01T12:00:00Z",
        "ids": [3, 4],
    }
    assert pipeline.validate_parameters(stored) == {
        "window": Window(start=1, end=5),
        "since": datetime(2024, 3, 1, 12, tzinfo=UTC),
        "ids": {3, 4},
    }


def test_parameter_annotation_that_cannot_be_resolved_fails_the_run(store):
    class Local(pydantic.BaseModel):  # a string annotation cannot name a function's local
        x: int

    ran: list[Any] = []

    @flow
    def pipeline(value: Local) -> None:
        ran.append(value)

    with pytest.raises(pydantic.PydanticUserError):
        pipeline({"x": 1})
    assert ran == []
    run = only_flow_run(store)
    assert run.state_name == "Failed", "not left Pending"
    assert run.state_message.startswith(
        "Validation of flow parameters failed with error: PydanticUserError"
    )


def test_invalid_parameter_fails_the_run_without_running_the_body(store):
    ran: list[int] = []

    @flow
    def pipeline(n: int) -> None:
        ran.append(n)

    with pytest.raises(ParameterTypeError) as info:
        pipeline("twenty-one")

    assert isinstance(info.value, TypeError)
    assert "'n'" in str(info.value)
    assert "'twenty-one'" in str(info.value)
    assert ran == []
    run = only_flow_run(store)
    assert run.state_name == "Failed"
    assert run.state_message.startswith(
        "Validation of flow parameters failed with error: ParameterTypeError"
    )
    assert "'twenty-one'" in run.state_message
    assert run.end_time is not None


def test_validate_parameters_false_passes_values_through():
    seen: list[Any] = []

    @flow(validate_parameters=False)
    def pipeline(n: int) -> None:
        seen.append(n)

    pipeline("21")
    assert seen == ["21"]


# Names


def test_flow_run_name_template_is_filled_from_parameters(store):
    @flow(flow_run_name="report-{region}-{day}")
    def report(region: str, day: int = 1) -> None:
        pass

    report("eu", day=7)
    assert only_flow_run(store).name == "report-eu-7"


def test_flow_run_name_callable_and_default_names(store):
    @flow(flow_run_name=lambda: "from-a-callable")
    def named() -> None:
        pass

    @flow
    def unnamed() -> None:
        pass

    named()
    for _ in range(5):
        unnamed()
    names = {run.flow_name: [] for run in store.read_runs()}
    for run in store.read_runs():
        names[run.flow_name].append(run.name)
    assert names["named"] == ["from-a-callable"]
    # Two random words, as Prefect's: drawn afresh for each run, so not all alike (two
    # runs alike is a 1-in-4,000 chance, as in Prefect: names are not ids).
    assert all(re.fullmatch(r"[a-z]+-[a-z]+", name) for name in names["unnamed"])
    assert len(set(names["unnamed"])) > 1, "each run draws its own generated name"


def test_task_run_name_template_is_filled_from_parameters(store):
    @task(task_run_name="double-{x}")
    def named_double(x: int) -> int:
        return x * 2

    @flow
    def pipeline() -> None:
        named_double(3)
        double(3)

    pipeline()
    names = [row.name for row in store.read_task_runs(only_flow_run(store).id)]
    assert names == ["double-3", "double-0"]


# Hooks


def test_flow_hooks_are_called_once_with_flow_run_and_final_state(store):
    calls: list[tuple[str, Any, Any, Any]] = []

    def hook(kind: str) -> Any:
        return lambda flow_, flow_run, state: calls.append((kind, flow_, flow_run, state))

    hooks = {
        "on_completion": [hook("completion")],
        "on_failure": [hook("failure")],
        "on_crashed": [hook("crashed")],
    }

    @flow(**hooks)
    def succeeds() -> int:
        return 1

    @flow(**hooks)
    def fails() -> None:
        raise ValueError("boom")

    @flow(**hooks)
    def crashes() -> None:
        raise KeyboardInterrupt

    succeeds()
    assert [(kind, state.name) for kind, _, _, state in calls] == [("completion", "Completed")]
    _, flow_, flow_run, state = calls[0]
    assert flow_ is succeeds
    assert flow_run.id == only_flow_run(store).id
    assert state.result() == 1

    calls.clear()
    fails(return_state=True)
    assert [(kind, state.name) for kind, _, _, state in calls] == [("failure", "Failed")]

    calls.clear()
    with pytest.raises(KeyboardInterrupt):
        crashes()
    assert [(kind, state.name) for kind, _, _, state in calls] == [("crashed", "Crashed")]


def test_failing_hook_does_not_change_the_run_state(store):
    @flow(on_completion=[lambda flow_, flow_run, state: 1 / 0])
    def pipeline() -> str:
        return "ok"

    assert pipeline() == "ok"
    assert only_flow_run(store).state_name == "Completed"


def test_task_hooks_are_called_once_with_task_run_and_state():
    calls: list[tuple[str, Any, Any, str]] = []

    def on_completion(task_: Any, task_run: Any, state: State) -> None:
        calls.append(("completion", task_, task_run, state.name))

    def on_failure(task_: Any, task_run: Any, state: State) -> None:
        calls.append(("failure", task_, task_run, state.name))

    @task(on_completion=[on_completion], on_failure=[on_failure])
    def maybe(fail: bool) -> None:
        if fail:
            raise ValueError("boom")

    @flow
    def pipeline() -> None:
        maybe(False)
        maybe(True, return_state=True)

    pipeline()
    assert [(kind, state) for kind, _, _, state in calls] == [
        ("completion", "Completed"),
        ("failure", "Failed"),
    ]
    assert all(task_ is maybe for _, task_, _, _ in calls)
    assert calls[0][2].id != calls[1][2].id


# Crashes


def test_keyboard_interrupt_in_a_task_crashes_task_and_flow_and_is_reraised(store):
    @task
    def interrupted() -> None:
        raise KeyboardInterrupt

    @flow
    def pipeline() -> None:
        double(1)
        interrupted()

    with pytest.raises(KeyboardInterrupt):
        pipeline()

    run = only_flow_run(store)
    assert run.state_type == "CRASHED"
    assert run.state_message == "Execution was aborted by an interrupt signal."
    assert run.end_time is not None
    done, crashed = store.read_task_runs(run.id)
    assert done.state_name == "Completed"
    assert crashed.state_type == "CRASHED"
    assert crashed.state_message == "Execution was aborted by an interrupt signal."
    assert crashed.error_type == "KeyboardInterrupt"
    assert crashed.end_time is not None
    assert [row.name for row in store.read_states(flow_run_id=run.id)][-1] == "Crashed"
    assert [row.name for row in store.read_states(task_run_id=crashed.id)][-1] == "Crashed"


def test_system_exit_in_a_flow_crashes_the_run_and_is_reraised(store):
    @flow
    def pipeline() -> None:
        raise SystemExit(3)

    with pytest.raises(SystemExit) as info:
        pipeline()

    assert info.value.code == 3
    run = only_flow_run(store)
    assert run.state_name == "Crashed"
    assert run.state_message == "Execution was aborted by Python system exit call."
    states = [row.name for row in store.read_states(flow_run_id=run.id)]
    assert states == ["Pending", "Running", "Crashed"]


def test_crash_inside_a_submitted_task_is_not_left_running(store):
    @task
    def exits() -> None:
        raise SystemExit(1)

    @flow
    def pipeline() -> None:
        exits.submit().wait()

    pipeline(return_state=True)
    run = only_flow_run(store)
    [task_run] = store.read_task_runs(run.id)
    assert task_run.state_type == "CRASHED"
    assert task_run.state_message == "Execution was aborted by Python system exit call."


# Logs


def test_run_logger_and_log_prints_land_in_the_runs_logs(store, capsys):
    @task(log_prints=True)
    def shout(word: str) -> None:
        get_run_logger().warning("task says %s", word)
        print("printed by the task", word)

    @task
    def quiet() -> None:
        print("not captured: this task does not log prints")

    @flow(log_prints=True)
    def pipeline() -> None:
        get_run_logger().info("flow says hello")
        print("printed by the flow")
        shout("hi")
        quiet.with_options(log_prints=False)()

    pipeline()
    run = only_flow_run(store)
    [shout_run, quiet_run] = store.read_task_runs(run.id)
    logs = {row.message: row for row in logs_of(store, run.id)}

    flow_log = logs["flow says hello"]
    assert (flow_log.task_run_id, flow_log.level, flow_log.logger) == (
        None,
        20,
        "gnomon.flow_runs",
    )
    assert logs["printed by the flow"].task_run_id is None
    task_log = logs["task says hi"]
    assert (task_log.task_run_id, task_log.level, task_log.logger) == (
        shout_run.id,
        30,
        "gnomon.task_runs",
    )
    assert logs["printed by the task hi"].task_run_id == shout_run.id
    assert all(row.flow_run_id == run.id for row in logs.values())
    assert "not captured: this task does not log prints" not in logs
    assert "not captured: this task does not log prints" in capsys.readouterr().out
    assert logs_of(store, task_run_id=quiet_run.id) == []


def test_logs_of_two_runs_are_kept_apart(store):
    @flow
    def pipeline(n: int) -> None:
        get_run_logger().info(f"run {n}")

    pipeline(1)
    pipeline(2)
    for run in store.read_runs():
        messages = [row.message for row in logs_of(store, run.id)]
        assert f"run {run.parameters['n']}" in messages
        assert f"run {3 - run.parameters['n']}" not in messages


# Tags


def test_tags_context_manager_tags_task_runs_created_inside_it(store):
    @task(tags=["own"])
    def tagged() -> None:
        pass

    @flow
    def pipeline() -> None:
        with tags("etl", "nightly"):
            tagged()
            with tags("inner"):
                double.submit(1).wait()
        tagged()

    pipeline()
    runs = store.read_task_runs(only_flow_run(store).id)
    assert [row.tags for row in runs] == [
        ["etl", "nightly", "own"],
        ["etl", "inner", "nightly"],
        ["own"],
    ]


# Async


def test_async_flow_with_async_tasks_runs_under_asyncio_run(store):
    @task
    async def add_one(x: int) -> int:
        await asyncio.sleep(0)
        return x + 1

    @flow
    async def pipeline(x: int) -> int:
        first = await add_one(x)
        return await add_one(first)

    assert asyncio.run(pipeline(1)) == 3
    run = only_flow_run(store)
    assert run.state_name == "Completed"
    assert [row.state_name for row in store.read_task_runs(run.id)] == ["Completed"] * 2


def test_async_tasks_gathered_in_an_async_flow_run_concurrently():
    first_in, second_in = threading.Event(), threading.Event()

    @task
    async def meet(mine: threading.Event, other: threading.Event) -> bool:
        mine.set()
        # Each waits for the other: run one after the other, the first would time out.
        return other.wait(10)

    @flow
    async def pipeline() -> list[bool]:
        return list(await asyncio.gather(meet(first_in, second_in), meet(second_in, first_in)))

    assert asyncio.run(pipeline()) == [True, True]


def test_async_flow_return_state_and_failure():
    @task
    async def fails() -> None:
        raise ValueError("boom")

    @flow
    async def pipeline() -> None:
        await fails()

    state = asyncio.run(pipeline(return_state=True))
    assert state.is_failed()
    with pytest.raises(ValueError, match="boom"):
        asyncio.run(pipeline())


# Final state from the return value


def test_flow_returning_a_failed_state_fails(store):
    @flow
    def pipeline() -> State:
        return Failed(message="gave up")

    state = pipeline(return_state=True)
    assert state.is_failed()
    assert state.message == "gave up"
    run = only_flow_run(store)
    assert (run.state_name, run.state_message) == ("Failed", "gave up")


def test_flow_returning_futures_with_a_failure_fails_with_a_count(store):
    @flow
    def pipeline() -> list[Any]:
        return [double.submit(1), boom.submit()]

    state = pipeline(return_state=True)
    assert state.is_failed()
    assert state.message == "1/2 states failed."
    run = only_flow_run(store)
    assert (run.state_name, run.state_message) == ("Failed", "1/2 states failed.")


def test_flow_returning_completed_futures_completes():
    @flow
    def pipeline() -> list[Any]:
        return [double.submit(1), double.submit(2)]

    state = pipeline(return_state=True)
    assert state.is_completed()
    assert state.message == "All states completed."
    returned = pipeline()
    assert all(isinstance(item, State) for item in returned), "futures come back as states"
    assert [item.result() for item in returned] == [2, 4]
