"""Markdown, table, link and progress artifacts (concepts/artifacts, how-to artifacts)."""

from uuid import UUID

from prefect import flow, task
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)


@task
def report() -> list:
    markdown = create_markdown_artifact(
        key="gtm-report", markdown="# Sales\n\n| a | b |\n|---|---|\n| 1 | 2 |", description="Q1"
    )
    table = create_table_artifact(key="risky-rows", table=[{"id": 1, "ok": False}])
    link = create_link_artifact(key="dashboard", link="https://example.com/d", link_text="Open")
    return [type(markdown).__name__, type(table).__name__, type(link).__name__]


@flow
def pipeline() -> list:
    progress = create_progress_artifact(progress=0.0, description="loading")
    for percent in (50.0, 100.0):
        update_progress_artifact(artifact_id=progress, progress=percent)
    return [isinstance(progress, UUID), *report()]


print(pipeline())
