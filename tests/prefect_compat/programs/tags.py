"""The tags() context manager and task tags (concepts/tasks, custom-metadata)."""

from prefect import flow, tags, task
from prefect.runtime import flow_run, task_run

seen: list[str] = []


def record_tags(task, task_run, state) -> None:
    seen.append(f"hook sees {sorted(task_run.tags)}")


@task(tags=["own"], on_completion=[record_tags])
def tagged() -> list:
    return sorted(task_run.tags)


@task
def untagged() -> list:
    return sorted(task_run.tags)


@flow
def pipeline() -> list:
    inside = sorted(flow_run.tags)
    with tags("inner"):
        nested = tagged()
    return [inside, nested, untagged(), tagged()]


with tags("outer", "team-a"):
    print(pipeline())
print(pipeline())
print(seen)
