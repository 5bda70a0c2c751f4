"""``gnomon artifacts ls | show``: what runs published (markdown, tables, links, images,
progress), as the run page shows it, for the terminal and for scripts (``--json``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from gnomon._text import shortened
from gnomon.cli._common import (
    config_option,
    json_option,
    open_store,
    operations,
    print_json,
    print_table,
    reports_errors,
)

LIST_COLUMNS = ["id", "key", "type", "run_id", "created", "shows"]
SHOWN = 60  # characters of an artifact's data in a listing


@click.group("artifacts")
def artifacts_group() -> None:
    """List and show the artifacts runs made.

    \b
    Examples:
      gnomon artifacts ls --key daily-rows
      gnomon artifacts ls --run 3f2a9c
      gnomon artifacts show daily-rows --history
    """


@artifacts_group.command("ls")
@config_option
@click.option("--key", help="Only this key's artifacts: its history, newest first.")
@click.option("--run", "run_id", metavar="RUN", help="Only those of this run (an id or prefix).")
@click.option(
    "--limit",
    type=click.IntRange(1, 1000),
    default=50,
    show_default=True,
    help="At most this many artifacts, newest first.",
)
@json_option
@reports_errors
def artifacts_ls(
    config: Path | None, key: str | None, run_id: str | None, limit: int, as_json: bool
) -> None:
    """List artifacts, newest first.

    \b
    Examples:
      gnomon artifacts ls --key daily-rows --limit 5
      gnomon artifacts list --run 3f2a9c --json
    """
    from gnomon.control import artifact_view, check_artifact_key

    if key is not None:
        check_artifact_key(key)
    ops = operations()
    flow_run_id = ops.run(run_id).id if run_id is not None else None
    rows = ops.store.read_artifacts(key=key, flow_run_id=flow_run_id, limit=limit)
    views = [artifact_view(row) for row in rows]
    if as_json:
        print_json(views)
        return
    if not views:
        click.echo("no artifacts", err=True)
        return
    print_table([{**view, "shows": _gist(view)} for view in views], LIST_COLUMNS)


artifacts_group.add_command(artifacts_ls, "list")


@artifacts_group.command("show")
@config_option
@click.argument("key_or_id", metavar="KEY_OR_ID")
@click.option("--history", is_flag=True, help="Every artifact of its key, newest first.")
@json_option
@reports_errors
def artifacts_show(config: Path | None, key_or_id: str, history: bool, as_json: bool) -> None:
    """Show an artifact: the latest of a key, or one by its id (or first 4+ digits).

    \b
    Examples:
      gnomon artifacts show daily-rows
      gnomon artifacts show daily-rows --history --json
    """
    from gnomon.control import artifact_view, find_artifacts

    views = [artifact_view(row) for row in find_artifacts(open_store(), key_or_id, history)]
    if as_json:
        print_json(views if history else views[0])
        return
    for index, view in enumerate(views):
        if index:
            click.echo()
        _print_artifact(view)


def _gist(view: dict[str, Any]) -> str:
    """An artifact's data in a few words: the start of its text, a table's size, a
    progress' percentage."""
    from gnomon.control import artifact_table, progress_percent

    data = view["data"]
    if view["type"] == "progress":
        percent = progress_percent(data)
        return "-" if percent is None else f"{percent:g}%"
    if view["type"] == "table":
        try:
            count = len(artifact_table(data)[1])
            return f"{count} row{'' if count == 1 else 's'}"
        except ValueError:
            return "-"
    text = " ".join(str(data if isinstance(data, str) else json.dumps(data)).split())
    return shortened(text, SHOWN)


def _print_artifact(view: dict[str, Any]) -> None:
    fields = [
        ("id", view["id"]),
        ("key", view["key"] or "-"),
        ("type", view["type"] or "-"),
        ("description", view["description"] or "-"),
        ("run", view["run_id"] or "-"),
        ("task run", view["task_run_id"] or "-"),
        ("created", view["created"]),
        ("updated", view["updated"]),
    ]
    width = max(len(label) for label, _ in fields)
    for label, value in fields:
        click.echo(f"{label.ljust(width)}  {value}")
    click.echo()
    _print_data(view)


def _print_data(view: dict[str, Any]) -> None:
    """The data: a progress' percentage, a table as a table, any other as its text."""
    from gnomon.control import artifact_table

    data = view["data"]
    if view["type"] == "progress":
        click.echo(_gist(view))
        return
    if view["type"] == "table":
        try:
            header, rows = artifact_table(data)
        except ValueError:
            pass  # shown as the text it is
        else:
            width = max(map(len, rows), default=0)
            columns = header or [str(number) for number in range(1, width + 1)]
            print_table([dict(zip(columns, row, strict=False)) for row in rows], columns)
            return
    click.echo(data if isinstance(data, str) else json.dumps(data))
