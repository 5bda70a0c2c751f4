"""Artifacts as operators see them: the view the CLI's ``--json``, the API and the run page
share, and finding an artifact by key or id for ``gnomon artifacts show`` and the API.

A key names an artifact's history (newest first); an id, or its first 4+ hex digits as on
the command line elsewhere, names one artifact. Keys come first: every id is also text a
key could be, and a key is what a person types.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from gnomon._text import quoted
from gnomon.control._operations import InvalidName, UnknownName

if TYPE_CHECKING:
    from gnomon.store import ArtifactReader
    from gnomon.store.rows import ArtifactRow

MAX_ARTIFACTS = 1000  # the most one listing gives
_ID_PREFIX = re.compile(r"[0-9a-f]{4,32}")


def check_artifact_key(value: str) -> str:
    """``value`` if it can be an artifact key (Prefect's rule), else InvalidName."""
    from gnomon.flows import ARTIFACT_KEY_RULE, MAX_ARTIFACT_KEY_LENGTH, check_artifact_key

    try:
        return check_artifact_key(value)
    except ValueError:
        rule = f"{ARTIFACT_KEY_RULE}, at most {MAX_ARTIFACT_KEY_LENGTH} characters"
        raise InvalidName(f"invalid artifact key {quoted(value)}: use {rule}") from None


def find_artifacts(
    store: ArtifactReader, key_or_id: str, history: bool = False
) -> list[ArtifactRow]:
    """The artifact named by a key (its latest) or by an id or unique id prefix; with
    ``history``, every artifact of its key, newest first. UnknownName if there is none."""
    check_artifact_key(key_or_id)
    rows = store.read_artifacts(key=key_or_id, limit=None if history else 1)
    if not rows and _ID_PREFIX.fullmatch(key_or_id):
        rows = store.read_artifacts(id_prefix=key_or_id, limit=2)
        if len(rows) > 1:
            raise InvalidName(f'artifact id prefix "{key_or_id}" is ambiguous; give more of it')
        if rows and history and rows[0].key is not None:
            rows = store.read_artifacts(key=rows[0].key)
    if not rows:
        raise UnknownName("artifact key or id", key_or_id)
    return rows


def artifact_table(data: Any) -> tuple[list[str] | None, list[list[Any]]]:
    """A table artifact's data (JSON text of rows as dicts, columns as a dict of lists, or
    rows as lists) as its header (None for rows as lists) and rows; a row shorter than the
    header is filled with None. ValueError for data that is no such table."""
    table = json.loads(data) if isinstance(data, str) else data
    if isinstance(table, dict) and all(isinstance(column, list) for column in table.values()):
        header = [str(name) for name in table]
        length = max((len(column) for column in table.values()), default=0)
        columns = [column + [None] * (length - len(column)) for column in table.values()]
        return header, [list(row) for row in zip(*columns, strict=True)]
    if isinstance(table, list) and all(isinstance(row, dict) for row in table):
        header = list(dict.fromkeys(str(name) for row in table for name in row))
        return header, [[row.get(name) for name in header] for row in table]
    if isinstance(table, list) and all(isinstance(row, list) for row in table):
        return None, table
    raise ValueError("not a table: rows as dicts, columns as lists, or rows as lists")


def progress_percent(data: Any) -> float | None:
    """A progress artifact's percentage (0 to 100), or None if its data is no number."""
    if isinstance(data, bool) or not isinstance(data, int | float):
        return None
    return max(0.0, min(float(data), 100.0))
