"""submit, map, unmapped and futures (run-work-concurrently, concepts/task-runners)."""

from prefect import flow, task, unmapped
from prefect.futures import wait


@task
def add(x: int, y: int) -> int:
    return x + y


@task
def total(values: list) -> int:
    return sum(values)


@flow
def pipeline() -> list:
    future = add.submit(1, 2)
    mapped = add.map([1, 2, 3], unmapped(10))
    pairs = add.map([1, 2], [30, 40])
    done, not_done = wait(mapped)
    summed = total.submit(mapped)
    return [
        future.result(),
        type(mapped).__name__,
        mapped.result(),
        pairs.result(),
        len(done),
        len(not_done),
        summed.result(),
        future.state.name,
    ]


print(pipeline())
