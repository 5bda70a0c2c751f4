"""on_running hooks (how-to-guides/state-change-hooks)."""

from prefect import flow, task

calls: list[str] = []


def flow_started(flow, flow_run, state) -> None:
    calls.append(f"flow running: {flow.name} {state.name}")


def task_started(task, task_run, state) -> None:
    calls.append(f"task running: {task.name} {state.name}")


@task(on_running=[task_started])
def step() -> str:
    calls.append("task body")
    return "ok"


@flow(on_running=[flow_started])
def pipeline() -> str:
    calls.append("flow body")
    return step()


print(pipeline())
for call in calls:
    print(call)
