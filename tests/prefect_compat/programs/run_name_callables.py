"""Run names from functions that read the runtime (concepts/flows, access-runtime-info)."""

from prefect import flow, task
from prefect.runtime import flow_run, task_run


def flow_name_from_parameters() -> str:
    parameters = flow_run.parameters
    return f"{flow_run.flow_name}-{parameters['name']}-{parameters['limit']}"


def task_name_from_parameters() -> str:
    return f"{task_run.task_name}-with-{task_run.parameters['value']}"


@task(task_run_name=task_name_from_parameters)
def double(value: int) -> str:
    return task_run.name


@flow(flow_run_name=flow_name_from_parameters)
def my_flow(name: str, limit: int = 3) -> list:
    return [flow_run.name, double(21)]


print(my_flow("daily"))
print(my_flow(name="weekly", limit=1))
