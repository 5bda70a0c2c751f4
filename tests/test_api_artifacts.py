"""The artifacts through the HTTP API (a real server, a real store on both backends): the
listing by key and run, one artifact by key or id, a run's detail listing its artifacts,
and 404 / 422 answers naming what was wrong. Authentication on these routes is checked
with every other route's in test_api.py."""

from __future__ import annotations

from uuid import UUID

import pytest

from gnomon.artifacts import (
    MarkdownArtifact,
    TableArtifact,
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
)
from gnomon.control import Operations
from gnomon.store import Actor
from test_api import Api, api  # noqa: F401 (the fixture)

pytestmark = pytest.mark.backends


def run_with_artifacts(api: Api) -> tuple[str, list[UUID]]:  # noqa: F811
    """A manual run of nightly-report, claimed, with two artifacts made for it."""
    run = Operations(api.store, Actor("test", "cli")).trigger("nightly-report", {})
    assert api.store.claim_flow_run(run["id"], worker_pid=4242) is not None
    run_id = UUID(run["id"])
    made = [
        TableArtifact(table=[{"rows": 10}], key="rows", flow_run_id=run_id).create().id,
        MarkdownArtifact(markdown="# Done", key="report", flow_run_id=run_id).create().id,
    ]
    return str(run["id"]), made


def test_artifacts_are_listed_by_key_and_run_newest_first(api: Api) -> None:  # noqa: F811
    older = create_table_artifact([{"rows": 1}], key="rows")
    run_id, (rows, report) = run_with_artifacts(api)
    progress = create_progress_artifact(30, key="progress")
    with api.admin as client:
        listed = client.get("/api/v1/artifacts")
        assert listed.status_code == 200
        assert [each["id"] for each in listed.json()] == [
            progress.hex,
            report.hex,
            rows.hex,
            older.hex,
        ]
        history = client.get("/api/v1/artifacts", params={"key": "rows"}).json()
        assert [each["id"] for each in history] == [rows.hex, older.hex]
        assert history[0] == {
            "id": rows.hex,
            "key": "rows",
            "type": "table",
            "description": None,
            "data": '[{"rows": 10}]',
            "run_id": run_id,
            "task_run_id": None,
            "created": history[0]["created"],
            "updated": history[0]["updated"],
        }
        of_run = client.get("/api/v1/artifacts", params={"run": run_id[:8]}).json()
        assert [each["id"] for each in of_run] == [report.hex, rows.hex]
        limited = client.get("/api/v1/artifacts", params={"limit": 1}).json()
        assert [each["id"] for each in limited] == [progress.hex]


def test_one_artifact_by_key_or_id_and_a_runs_detail_lists_its_artifacts(
    api: Api,  # noqa: F811
) -> None:
    run_id, (rows, report) = run_with_artifacts(api)
    link = create_link_artifact("https://example.org", "example")
    with api.admin as client:
        latest = client.get("/api/v1/artifacts/report")
        assert latest.status_code == 200
        assert (latest.json()["id"], latest.json()["data"]) == (report.hex, "# Done")
        by_id = client.get(f"/api/v1/artifacts/{link.hex[:8]}").json()
        assert by_id["data"] == "[example](https://example.org)"
        detail = client.get(f"/api/v1/runs/{run_id}").json()
        assert [each["id"] for each in detail["artifacts"]] == [report.hex, rows.hex]
        assert detail["artifacts"][1]["data"] == '[{"rows": 10}]'


def test_unknown_and_bad_keys_ids_and_runs_are_named_in_the_answer(api: Api) -> None:  # noqa: F811
    create_markdown_artifact("text", key="report")
    with api.admin as client:
        missing = client.get("/api/v1/artifacts/never-made")
        assert missing.status_code == 404
        assert missing.json()["error"] == 'no artifact key or id named "never-made"'
        for bad in ("Report", "daily_rows", "a" * 256):
            shown = client.get(f"/api/v1/artifacts/{bad}")
            assert shown.status_code == 422, bad
            assert shown.json()["field"] == "key_or_id"
            listed = client.get("/api/v1/artifacts", params={"key": bad})
            assert listed.status_code == 422, bad
            assert listed.json()["field"] == "key"
        unknown_run = client.get("/api/v1/artifacts", params={"run": "0123abcd"})
        assert unknown_run.status_code == 404
        assert 'no run named "0123abcd"' in unknown_run.json()["error"]
        bad_run = client.get("/api/v1/artifacts", params={"run": "xyz"})
        assert (bad_run.status_code, bad_run.json()["field"]) == (422, "run")
        too_many = client.get("/api/v1/artifacts", params={"limit": 1001})
        assert (too_many.status_code, too_many.json()["field"]) == (422, "limit")
