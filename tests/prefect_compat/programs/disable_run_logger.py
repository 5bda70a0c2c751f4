"""Testing a task's function directly with disable_run_logger (test-workflows)."""

from prefect import flow, get_run_logger, task
from prefect.logging import disable_run_logger


@task
def add(x: int, y: int) -> int:
    get_run_logger().info("adding")
    return x + y


@flow
def pipeline() -> int:
    return add(1, 2)


with disable_run_logger():
    print(add.fn(40, 2))
    print(pipeline.fn())
try:
    add.fn(1, 1)
except Exception as error:
    print(type(error).__name__)
