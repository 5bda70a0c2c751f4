"""wait_for and allow_failure (concepts/tasks, run-work-concurrently)."""

from prefect import allow_failure, flow, task

order: list[str] = []


@task
def setup() -> str:
    order.append("setup")
    return "ready"


@task
def fails() -> None:
    order.append("fails")
    raise ValueError("upstream broke")


@task
def cleanup(value) -> str:
    order.append("cleanup")
    return f"cleanup saw {type(value).__name__}"


@task
def after(label: str) -> str:
    order.append(f"after {label}")
    return label


@flow
def pipeline() -> list:
    first = setup.submit()
    second = after.submit("second", wait_for=[first])
    broken = fails.submit()
    tolerant = cleanup.submit(allow_failure(broken))
    blocked = after.submit("blocked", wait_for=[broken])
    blocked.wait()
    return [second.result(), tolerant.result(), blocked.state.name]


print(pipeline())
print(sorted(order))
