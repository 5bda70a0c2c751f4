"""State change hooks on flows and tasks (how-to-guides/state-change-hooks)."""

from prefect import flow, task

calls: list[str] = []


def task_done(task, task_run, state) -> None:
    calls.append(f"task completion: {task.name} {state.name}")


def task_failed(task, task_run, state) -> None:
    calls.append(f"task failure: {task.name} {state.name} {state.message is not None}")


def flow_done(flow, flow_run, state) -> None:
    calls.append(f"flow completion: {flow.name} {state.name} {flow_run.parameters}")


def flow_failed(flow, flow_run, state) -> None:
    calls.append(f"flow failure: {flow.name} {state.name}")


@task(on_completion=[task_done], on_failure=[task_failed])
def work(x: int) -> int:
    if x < 0:
        raise ValueError("negative")
    return x


@task(retries=1, retry_delay_seconds=0, on_failure=[task_failed])
def retried() -> None:
    raise RuntimeError("still failing")


@flow(on_completion=[flow_done], on_failure=[flow_failed])
def good_flow(x: int = 1) -> int:
    return work(x)


@flow(on_failure=[flow_failed])
def bad_flow() -> None:
    work(-1)


good_flow()
bad_flow(return_state=True)


@flow
def with_retries() -> None:
    retried(return_state=True)


with_retries()


@work.on_completion
def decorated_hook(task, task_run, state) -> None:
    calls.append("decorated hook")


@flow
def after_decoration() -> int:
    return work(5)


after_decoration()
for call in calls:
    print(call)
