"""prefect.runtime: flow_run, task_run and deployment (concepts/runtime-context)."""

from prefect import flow, task
from prefect.runtime import deployment, flow_run, task_run


@task(task_run_name="lookup-{key}")
def lookup(key: str, default: int = 0) -> dict:
    return {
        "task name": task_run.name,
        "task_name": task_run.task_name,
        "parameters": task_run.parameters,
        "run_count": task_run.run_count,
    }


@flow(flow_run_name="runtime-demo")
def show(limit: int, region: str = "eu") -> dict:
    return {
        "flow name": flow_run.name,
        "flow_name": flow_run.flow_name,
        "parameters": flow_run.parameters,
        "run_count": flow_run.run_count,
        "deployment id": deployment.id,
        "deployment name": deployment.name,
        "task": lookup("k"),
    }


for key, value in show(3).items():
    print(f"{key}: {value}")
print("outside a run:", flow_run.id, task_run.id, flow_run.name)
