"""prefect_test_harness around flow runs, as in test-workflows (the name stays)."""

from prefect import flow, task
from prefect.testing.utilities import prefect_test_harness


@task
def double(x: int) -> int:
    return x * 2


@flow
def my_flow(x: int = 21) -> int:
    return double(x)


# The documented remedy for a slow machine (test-workflows: "Server startup timeout").
with prefect_test_harness(server_startup_timeout=600):
    print(my_flow())
    print(my_flow(x=1, return_state=True).name)
