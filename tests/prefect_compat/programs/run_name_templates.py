"""flow_run_name and task_run_name templates, with defaults applied (concepts/flows)."""

from prefect import flow, task
from prefect.runtime import flow_run, task_run
from pydantic import BaseModel


class Config(BaseModel):
    vendor: str


@task(task_run_name="fetch-{page}")
def fetch(page: int, size: int = 50) -> str:
    return task_run.name


@flow(flow_run_name="report-{region}-{limit}")
def report(region: str, limit: int = 5) -> str:
    return flow_run.name


@flow(flow_run_name="ingest-{config.vendor}")
def ingest(config: Config) -> list:
    return [flow_run.name, fetch(1), fetch(page=2)]


print(report("eu"))
print(report("us", limit=9))
print(ingest({"vendor": "acme"}))
print(report("ap", return_state=True).name)
