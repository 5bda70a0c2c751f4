"""gnomon.runtime tells code which flow and task run it is part of, as prefect.runtime does."""

from __future__ import annotations

from gnomon import flow, task
from gnomon.runtime import flow_run, task_run


def test_runtime_names_the_current_flow_and_task_run(store) -> None:
    @task(tags=["etl"])
    def inner(x: int) -> dict[str, object]:
        return {
            "task_id": task_run.id,
            "task_name": task_run.task_name,
            "task_run_name": task_run.name,
            "tags": task_run.tags,
            "task_parameters": task_run.parameters,
            "flow_id_from_task": flow_run.id,
        }

    @flow(flow_run_name="nightly-{day}")
    def outer(day: str) -> dict[str, object]:
        seen = inner(3)
        return {
            **seen,
            "flow_id": flow_run.id,
            "flow_name": flow_run.flow_name,
            "flow_run_name": flow_run.name,
            "parameters": flow_run.parameters,
        }

    seen = outer("mon")

    [stored_flow] = store.read_runs()
    [stored_task] = store.read_task_runs(stored_flow.id)
    assert seen["flow_id"] == seen["flow_id_from_task"] == stored_flow.id
    assert seen["task_id"] == stored_task.id
    assert seen["flow_name"] == "outer"
    assert seen["flow_run_name"] == "nightly-mon"
    assert seen["parameters"] == {"day": "mon"}
    assert (seen["task_name"], seen["task_run_name"]) == ("inner", stored_task.name)
    assert seen["tags"] == ["etl"]
    assert seen["task_parameters"] == {"x": 3}


def test_runtime_outside_a_run_is_empty_not_an_error() -> None:
    assert (flow_run.id, flow_run.name, flow_run.parameters) == (None, None, {})
    assert (task_run.id, task_run.tags, task_run.run_count) == (None, [], 0)
