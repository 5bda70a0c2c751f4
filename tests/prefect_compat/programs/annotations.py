"""quote, unmapped and allow_failure from prefect.utilities.annotations (concepts/tasks)."""

from prefect import flow, task
from prefect.utilities.annotations import allow_failure, quote, unmapped


@task
def size(data) -> int:
    return len(data)


@task
def scale(x: int, factor: int) -> int:
    return x * factor


@flow
def pipeline() -> list:
    big = list(range(1000))
    mapped = scale.map([1, 2], factor=unmapped(3))
    return [size(quote(big)), mapped.result(), type(allow_failure(mapped[0])).__name__]


print(pipeline())
