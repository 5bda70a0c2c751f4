"""``on_running`` flow hooks, as Prefect's: called with (flow, flow_run, state) when a run
enters Running, before its body, again on each retry, inside the run's context."""

from __future__ import annotations

from typing import Any

from gnomon import flow, task
from gnomon.runtime import flow_run as current_flow_run


def test_on_running_hooks_run_before_the_body_with_the_flow_run_and_its_state(store):
    events: list[Any] = []

    def hook(flow_: Any, flow_run: Any, state: Any) -> None:
        events.append(("hook", flow_.name, flow_run.id, state.type.value, state.name))
        events.append(("context", current_flow_run.id))

    @flow(on_running=[hook])
    def pipeline() -> str:
        events.append(("body",))
        return "done"

    assert pipeline() == "done"
    [run] = store.read_runs()
    assert events == [
        ("hook", "pipeline", run.id, "RUNNING", "Running"),
        ("context", run.id),
        ("body",),
    ]


def test_on_running_runs_again_for_each_retry():
    states: list[str] = []
    attempts: list[int] = []

    @flow(retries=1)
    def flaky() -> int:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("first attempt fails")
        return len(attempts)

    @flaky.on_running
    def record(flow_: Any, flow_run: Any, state: Any) -> None:
        states.append(f"{state.type.value}:{flow_run.run_count}")

    assert flaky() == 2
    assert states == ["RUNNING:1", "RUNNING:2"]


def test_a_failing_on_running_hook_does_not_stop_the_run(store):
    def broken(flow_: Any, flow_run: Any, state: Any) -> None:
        raise ValueError("hook bug")

    @flow(on_running=[broken])
    def pipeline() -> int:
        return 1

    assert pipeline() == 1
    assert store.read_runs()[0].state_name == "Completed"


def test_with_options_keeps_or_replaces_on_running_hooks():
    called: list[str] = []

    @flow(on_running=[lambda *_: called.append("original")])
    def pipeline() -> None:
        return None

    pipeline.with_options(name="renamed")()
    pipeline.with_options(on_running=[lambda *_: called.append("replaced")])()
    assert called == ["original", "replaced"]


def test_task_on_running_hooks_run_on_each_attempt_before_the_body():
    events: list[str] = []
    attempts: list[int] = []

    @task(retries=1)
    def flaky() -> int:
        attempts.append(1)
        events.append("body")
        if len(attempts) == 1:
            raise RuntimeError("first attempt fails")
        return 1

    @flaky.on_running
    def record(task_: Any, task_run: Any, state: Any) -> None:
        events.append(f"{task_.name} {state.type.value} {task_run.run_count}")

    @flow
    def pipeline() -> int:
        return flaky()

    assert pipeline() == 1
    assert events == ["flaky RUNNING 1", "body", "flaky RUNNING 2", "body"]
