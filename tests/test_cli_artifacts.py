"""``gnomon artifacts ls | show`` in a subprocess against a real store: what runs published,
filtered by key and run, a key's history, ``--json`` for scripts, and one-line errors
with exit 2 for a bad or unknown key, id or run."""

from __future__ import annotations

import json
from pathlib import Path
from uuid import UUID

import pytest

from gnomon import flow
from gnomon.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
)
from gnomon.store import Store
from test_cli_daemon import gnomon, table

pytestmark = pytest.mark.backends


@flow
def nightly(day: int) -> tuple[UUID, UUID]:
    rows = create_table_artifact({"day": [day, day], "rows": [10, None]}, key="daily-rows")
    report = create_markdown_artifact(f"# Day {day}\n\nAll **good**.", key="report")
    return rows, report


@pytest.fixture
def published(store: Store) -> dict[str, UUID]:
    first_rows, _ = nightly(1)
    second_rows, second_report = nightly(2)
    progress = create_progress_artifact(42.5, key="load-progress", description="loading")
    return {
        "first_rows": first_rows,
        "second_rows": second_rows,
        "second_report": second_report,
        "progress": progress,
    }


def test_ls_lists_artifacts_newest_first_with_their_gist(
    published: dict[str, UUID], gnomon_home: Path
) -> None:
    result = gnomon(gnomon_home, "artifacts", "ls")
    assert result.returncode == 0, result.stderr
    [header, *lines] = table(result.stdout)
    assert header == ["ID", "KEY", "TYPE", "RUN_ID", "CREATED", "SHOWS"]
    assert [(line[1], line[2]) for line in lines] == [
        ("load-progress", "progress"),
        ("report", "markdown"),
        ("daily-rows", "table"),
        ("report", "markdown"),
        ("daily-rows", "table"),
    ]
    assert [lines[n][0] for n in (0, 1, 2, 4)] == [
        published[name].hex for name in ("progress", "second_report", "second_rows", "first_rows")
    ]
    assert lines[0][3:] == ["-", lines[0][4], "42.5%"]  # made outside any run
    assert lines[1][-1] == "# Day 2 All **good**."
    assert lines[2][-1] == "2 rows"


def test_ls_filters_by_key_and_run_and_prints_json_for_scripts(
    published: dict[str, UUID], store: Store, gnomon_home: Path
) -> None:
    result = gnomon(gnomon_home, "artifacts", "ls", "--key", "daily-rows", "--json")
    assert result.returncode == 0, result.stderr
    history = json.loads(result.stdout)
    assert [each["id"] for each in history] == [
        published["second_rows"].hex,
        published["first_rows"].hex,
    ]
    assert history[0]["data"] == '{"day": [2, 2], "rows": [10, null]}'
    run_id = history[0]["run_id"]

    result = gnomon(gnomon_home, "artifacts", "list", "--run", run_id[:8], "--json")
    assert result.returncode == 0, result.stderr
    assert {each["key"] for each in json.loads(result.stdout)} == {"daily-rows", "report"}

    result = gnomon(gnomon_home, "artifacts", "ls", "--key", "daily-rows", "--limit", "1")
    assert [line[0] for line in table(result.stdout)[1:]] == [published["second_rows"].hex]

    result = gnomon(gnomon_home, "artifacts", "ls", "--key", "never-made")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "no artifacts\n")


def test_show_prints_a_keys_latest_or_its_history_or_one_by_id(
    published: dict[str, UUID], gnomon_home: Path
) -> None:
    result = gnomon(gnomon_home, "artifacts", "show", "daily-rows")
    assert result.returncode == 0, result.stderr
    assert f"id           {published['second_rows'].hex}" in result.stdout
    assert table(result.stdout.split("\n\n", 1)[1]) == [["DAY", "ROWS"], ["2", "10"], ["2", "-"]]

    result = gnomon(gnomon_home, "artifacts", "show", "report", "--history", "--json")
    assert result.returncode == 0, result.stderr
    reports = json.loads(result.stdout)
    assert [each["data"] for each in reports] == [
        "# Day 2\n\nAll **good**.",
        "# Day 1\n\nAll **good**.",
    ]

    result = gnomon(gnomon_home, "artifacts", "show", published["progress"].hex[:10], "--json")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert (shown["key"], shown["data"], shown["description"]) == ("load-progress", 42.5, "loading")

    result = gnomon(gnomon_home, "artifacts", "show", "report")
    assert result.stdout.rstrip().endswith("# Day 2\n\nAll **good**.")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["show", "never-made"], 'no artifact key or id named "never-made"'),
        (["show", "Daily Rows"], "invalid artifact key 'Daily Rows': use lowercase letters"),
        (["ls", "--key", "daily_rows"], "invalid artifact key 'daily_rows'"),
        (["ls", "--run", "0123abcd"], 'no run named "0123abcd"'),
        (["ls", "--run", "not-a-run"], "invalid run id"),
        (["show", "a" * 250], f'no artifact key or id named "{"a" * 79}…" (250 characters)'),
        (["show", "a" * 3000], "…' (3000 characters): use lowercase letters, numbers, and dashes"),
        (["ls", "--key", "a" * 3000], "at most 255 characters"),
    ],
)
def test_a_bad_or_unknown_key_id_or_run_is_one_line_and_exit_2(
    published: dict[str, UUID], gnomon_home: Path, args: list[str], says: str
) -> None:
    result = gnomon(gnomon_home, "artifacts", *args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert says in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert len(result.stderr) < 300  # a long key is not echoed in full
