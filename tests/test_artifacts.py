"""Artifacts (``gnomon.artifacts``, Prefect 3's API) on both stores: made in flows, in tasks
and outside any run; keys and their history; progress updates; what is stored for each
kind (Prefect's data); the async forms; a stored run executed by id in another process, as
a daemon's worker runs it; and the store's artifact queries themselves."""

from __future__ import annotations

import asyncio
import logging
import math
import textwrap
import uuid
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from conftest import run_python, schedule_run
from gnomon import flow, task
from gnomon.artifacts import (
    Artifact,
    ImageArtifact,
    MarkdownArtifact,
    TableArtifact,
    create_image_artifact,
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from gnomon.exceptions import ObjectNotFound
from gnomon.store import Store

pytestmark = pytest.mark.backends


def only(store: Store, artifact_id: UUID) -> Any:
    [row] = store.read_artifacts(id_prefix=artifact_id.hex)
    return row


def test_artifacts_made_in_a_flow_and_in_its_task_are_stored_with_their_runs(
    store: Store,
) -> None:
    @task
    def summarise() -> UUID:
        return create_markdown_artifact("# Totals\n\n42 rows", key="totals", description="why")

    @flow
    def report() -> tuple[UUID, UUID]:
        return create_link_artifact("https://example.org/r", "the report"), summarise()

    link_id, markdown_id = report()

    link, markdown = only(store, link_id), only(store, markdown_id)
    [run] = store.read_runs(limit=5)
    [task_run] = store.read_task_runs(run.id)
    assert (link.flow_run_id, link.task_run_id) == (run.id, None)
    assert (markdown.flow_run_id, markdown.task_run_id) == (run.id, task_run.id)
    assert (markdown.type, markdown.key, markdown.description) == ("markdown", "totals", "why")
    assert markdown.data == "# Totals\n\n42 rows"
    # A link is markdown, as Prefect stores it.
    assert (link.type, link.data) == ("markdown", "[the report](https://example.org/r)")
    assert [row.id for row in store.read_artifacts(flow_run_id=run.id)] == [
        markdown_id.hex,
        link_id.hex,
    ]


def test_outside_any_run_an_artifact_is_still_created_with_no_run(store: Store) -> None:
    image_id = create_image_artifact("https://example.org/chart.png", key="chart")
    row = only(store, image_id)
    assert (row.type, row.data, row.flow_run_id, row.task_run_id) == (
        "image",
        "https://example.org/chart.png",
        None,
        None,
    )
    assert create_link_artifact("https://example.org").hex != image_id.hex
    assert Artifact.get().data == "[https://example.org](https://example.org)"


def test_each_create_with_a_key_adds_to_its_history_and_the_newest_is_the_latest(
    store: Store,
) -> None:
    @flow
    def nightly(day: int) -> UUID:
        return create_table_artifact([{"day": day, "rows": day * 10}], key="daily-rows")

    ids = [nightly(day) for day in (1, 2, 3)]
    create_markdown_artifact("another key", key="other")

    history = store.read_artifacts(key="daily-rows")
    assert [row.id for row in history] == [each.hex for each in reversed(ids)]
    assert len({row.flow_run_id for row in history}) == 3
    latest = Artifact.get("daily-rows")
    assert latest is not None
    assert (latest.id, latest.type) == (ids[-1], "table")
    assert latest.data == '[{"day": 3, "rows": 30}]'
    assert Artifact.get("no-such-key") is None
    assert [row.id for row in store.read_artifacts(key="daily-rows", limit=1)] == [ids[-1].hex]


def test_progress_is_updated_in_place_and_clamped_to_0_to_100_as_by_prefect(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    @flow
    def load() -> UUID:
        progress = create_progress_artifact(0.0, key="load-progress", description="loading")
        for done in (25.0, 50.0):
            assert update_progress_artifact(progress, done) == progress
        return progress

    progress = load()
    row = only(store, progress)
    assert (row.type, row.data, row.description) == ("progress", 50.0, "loading")
    assert row.updated > row.created
    assert len(store.read_artifacts(key="load-progress")) == 1

    # gnomon's loggers may not propagate to the root, where caplog listens.
    logger = logging.getLogger("gnomon.artifacts")
    logger.addHandler(caplog.handler)
    try:
        update_progress_artifact(progress, 150, description="done")
    finally:
        logger.removeHandler(caplog.handler)
    row = only(store, progress)
    assert (row.data, row.description) == (100.0, "done")
    assert "received an invalid value, Progress: 150.0%" in caplog.text
    assert "Interpreting as 100.0% progress" in caplog.text
    update_progress_artifact(str(progress), -5)  # the id as text works too
    assert only(store, progress).data == 0.0

    with pytest.raises(ObjectNotFound, match="no artifact with id"):
        update_progress_artifact(uuid.uuid4(), 10)
    with pytest.raises(ValueError, match="artifact_id must be"):
        update_progress_artifact("not-an-id", 10)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="NaN"):
        create_progress_artifact(math.nan)


@pytest.mark.parametrize("key", ["Daily", "daily_rows", "daily rows", "daily\n", "é"])
def test_a_key_outside_lowercase_letters_numbers_and_dashes_is_refused_naming_it(
    store: Store, key: str
) -> None:
    with pytest.raises(ValueError, match="lowercase letters, numbers, and dashes") as caught:
        create_markdown_artifact("text", key=key)
    assert repr(key) in str(caught.value)
    assert store.read_artifacts() == []


def test_a_key_of_letters_numbers_and_dashes_up_to_255_characters_is_taken(store: Store) -> None:
    create_markdown_artifact("text", key="q4-2026-report")
    create_markdown_artifact("text", key="k" * 255)
    with pytest.raises(ValueError, match="at most 255"):
        create_markdown_artifact("text", key="k" * 256)
    assert len(store.read_artifacts()) == 2


def test_tables_as_prefect_takes_them_with_nan_stored_as_null(store: Store) -> None:
    rows = [{"name": "a", "score": math.nan}, {"name": "b", "score": 1.5}]
    columns = {"name": ["a", "b"], "score": [math.nan, 2.0]}
    lists = [["a", math.nan], ["b", 3]]
    stored = [only(store, create_table_artifact(table)).data for table in (rows, columns, lists)]
    assert stored == [
        '[{"name": "a", "score": null}, {"name": "b", "score": 1.5}]',
        '{"name": ["a", "b"], "score": [null, 2.0]}',
        '[["a", null], ["b", 3]]',
    ]
    with pytest.raises(ValueError, match="table"):
        create_table_artifact("not a table")  # type: ignore[arg-type]


def test_the_artifact_classes_create_and_get_as_prefects_do(store: Store) -> None:
    made = MarkdownArtifact(key="notes", markdown="*hi*", description="d").create()
    assert (made.key, made.type, made.data, made.description) == ("notes", "markdown", "*hi*", "d")
    assert Artifact.get("notes") == made
    # The base class stores its data as JSON text, as Prefect's does.
    raw = Artifact(key="raw", type="result", data={"rows": 3}).create()
    assert raw.data == '{"rows": 3}'
    found, created = Artifact.get_or_create("raw", data={"rows": 4})
    assert (found.id, created) == (raw.id, False)
    fresh, created = TableArtifact.get_or_create("fresh", table=[[1]])
    assert (fresh.data, created) == ("[[1]]", True)
    assert ImageArtifact(image_url="https://x.example/i.png").format() == "https://x.example/i.png"
    with pytest.raises(ValueError, match="Extra inputs are not permitted"):
        Artifact(key="k", colour="red")  # type: ignore[call-arg]
    with pytest.raises(ObjectNotFound, match="no flow run"):
        Artifact(key="k", flow_run_id=uuid.uuid4()).create()


def test_in_async_code_the_functions_return_awaitables_as_prefects_do(store: Store) -> None:
    @task
    async def fetch() -> UUID:
        return await create_markdown_artifact("from an async task", key="async-task")

    @task
    def plain() -> UUID:
        return create_markdown_artifact("from a sync task in an async flow", key="sync-task")

    @flow
    async def pipeline() -> tuple[UUID, UUID, UUID]:
        progress = await create_progress_artifact(10, key="async-progress")
        await update_progress_artifact(progress, 90)
        return progress, await fetch(), plain()

    progress, fetched, plain_id = asyncio.run(pipeline())
    assert only(store, progress).data == 90.0
    assert only(store, fetched).task_run_id is not None
    assert only(store, plain_id).data == "from a sync task in an async flow"

    async def outside() -> Any:
        latest = await Artifact.get("async-task")
        return latest, await create_link_artifact("https://example.org", key="outside")

    latest, outside_id = asyncio.run(outside())
    assert latest.id == fetched
    assert only(store, outside_id).flow_run_id is None
    # _sync=True forces the synchronous form, as in Prefect.
    assert isinstance(create_markdown_artifact("x", _sync=True), UUID)  # type: ignore[call-arg]


ARTIFACT_FLOW = textwrap.dedent(
    """
    import os

    from gnomon import flow, task
    from gnomon.artifacts import create_markdown_artifact, create_progress_artifact

    @task
    def count(rows: int) -> int:
        create_markdown_artifact(f"counted {rows} rows", key="row-count")
        return rows

    @flow
    def nightly(rows: int, die: bool = False) -> int:
        create_progress_artifact(100, key="nightly-progress")
        counted = count(rows)
        if die:
            os._exit(3)  # the process ends before the run does: nothing else is written
        return counted
    """
)


@pytest.mark.parametrize("die", [False, True])
def test_a_stored_run_executed_by_id_in_another_process_keeps_its_artifacts(
    store: Store, tmp_path: Path, gnomon_home: Path, die: bool
) -> None:
    (tmp_path / "nightly.py").write_text(ARTIFACT_FLOW)
    run_id = schedule_run(store, "nightly.py:nightly", {"rows": 7, "die": die})

    result = run_python(
        f"from gnomon.flows import execute_flow_run\nexecute_flow_run({run_id!r})\n", gnomon_home
    )

    assert result.returncode == (3 if die else 0), result.stderr
    rows = store.read_artifacts(flow_run_id=run_id)
    assert [(row.key, row.data) for row in rows] == [
        ("row-count", "counted 7 rows"),
        ("nightly-progress", 100.0),
    ]
    [task_run] = store.read_task_runs(run_id)
    assert rows[0].task_run_id == task_run.id


def test_a_daemons_worker_stores_the_artifacts_of_the_runs_it_runs(
    store: Store, tmp_path: Path, gnomon_home: Path, daemons: list[Any]
) -> None:
    import signal

    from test_daemon import completed, start_daemon, wait_for

    (tmp_path / "nightly.py").write_text(ARTIFACT_FLOW)
    config = tmp_path / "gnomon.toml"
    config.write_text(
        '[daemon]\nworkers = 1\napi = "off"\n\n[[deployments]]\nname = "nightly"\n'
        'flow = "nightly.py:nightly"\ninterval = "1s"\nparameters = { rows = 5 }\n'
    )
    daemon = start_daemon(config, gnomon_home)
    daemons.append(daemon)
    wait_for(completed(store, "nightly", 1), timeout=60, what="a completed nightly run")
    daemon.send_signal(signal.SIGTERM)
    _, errors = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, errors

    [run, *_] = [row for row in store.read_runs("nightly") if row.state_name == "Completed"]
    rows = store.read_artifacts(flow_run_id=run.id)
    assert [(row.key, row.data) for row in rows] == [
        ("row-count", "counted 5 rows"),
        ("nightly-progress", 100.0),
    ]
    assert rows[0].task_run_id == store.read_task_runs(run.id)[0].id


def test_the_store_reads_artifacts_by_key_run_and_id_prefix_newest_first(store: Store) -> None:
    first = create_markdown_artifact("one", key="k")
    second = create_markdown_artifact("two", key="k")
    other = create_markdown_artifact("three")
    assert [row.id for row in store.read_artifacts()] == [other.hex, second.hex, first.hex]
    assert [row.id for row in store.read_artifacts(key="k", limit=1)] == [second.hex]
    assert [row.id for row in store.read_artifacts(id_prefix=first.hex[:6])] == [first.hex]
    assert store.read_artifacts(id_prefix="zz%") == []
    assert store.read_artifacts(id_prefix="") == []
    assert store.read_artifacts(flow_run_id="0" * 32) == []
    assert not store.update_artifact("0" * 32, 5.0)
