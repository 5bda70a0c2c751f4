"""Flows calling flows (concepts/flows: nested flows)."""

from prefect import flow, task
from prefect.runtime import flow_run


@task
def step(x: int) -> int:
    return x * 3


@flow(flow_run_name="child-{x}")
def child(x: int) -> dict:
    has_parent = flow_run.parent_flow_run_id is not None
    return {"name": flow_run.name, "value": step(x), "has parent": has_parent}


@flow
def failing_child() -> None:
    raise ValueError("child failed")


@flow(flow_run_name="parent")
def parent() -> list:
    results = [child(1), child(2)]
    state = failing_child(return_state=True)
    results.append([state.name, flow_run.name, flow_run.parent_flow_run_id is None])
    return results


for line in parent():
    print(line)


@flow
def outer() -> None:
    failing_child()


try:
    outer()
except ValueError as error:
    print("raised:", error)
