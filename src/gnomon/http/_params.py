"""The routes' path and query parameters, validated before any use: names and tags by
``check_name``, run ids by ``check_run_id``, times and levels here. A bad one is a 422
naming the parameter."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, TypeVar

from fastapi import Path, Query
from pydantic import AfterValidator

from gnomon._names import NAME_PATTERN
from gnomon.control import (
    RunFilters,
    check_artifact_key,
    check_name,
    check_run_id,
    parse_level,
    parse_run_cursor,
    parse_since,
    parse_triggers,
)
from gnomon.exceptions import InvalidInput
from gnomon.flows import ARTIFACT_KEY_PATTERN, MAX_ARTIFACT_KEY_LENGTH
from gnomon.http import _schemas as s
from gnomon.states import STATE_FILTER_HELP, StateFilter, parse_state_filter
from gnomon.store import RunCause, RunCursor

T = TypeVar("T")
V = TypeVar("V")

# The response header that carries the cursor of a listing's next page: the JSON stays a list.
NEXT_CURSOR = "X-Next-Cursor"


class ApiError(Exception):
    """An error answered as ``{"error": message, "field": field}`` with ``status``."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


def _run_id(value: str) -> str:
    check_run_id(value)
    return value


NamePath = Annotated[
    str,
    Path(pattern=NAME_PATTERN, max_length=100, description="A deployment name."),
    AfterValidator(s.valid_name),
]
TagPath = Annotated[
    str,
    Path(pattern=NAME_PATTERN, max_length=100, description="A tag."),
    AfterValidator(s.valid_name),
]
TokenPath = Annotated[
    str,
    Path(pattern=NAME_PATTERN, max_length=100, description="A token's name."),
    AfterValidator(s.valid_name),
]
RunPath = Annotated[
    str,
    Path(pattern=s.RUN_ID_PATTERN, max_length=32, description="A run id, or its first 4+ digits."),
    AfterValidator(_run_id),
]


def _optional_name(value: str | None) -> str | None:
    return None if value is None else s.valid_name(value)


NameQuery = Annotated[
    str | None,
    Query(pattern=NAME_PATTERN, max_length=100, description="Only this deployment's."),
    AfterValidator(_optional_name),
]
RunQuery = Annotated[
    str | None,
    Query(pattern=s.RUN_ID_PATTERN, max_length=32, description="Only this run's (id or prefix)."),
]
ArtifactKeyQuery = Annotated[
    str | None,
    Query(
        pattern=ARTIFACT_KEY_PATTERN,
        max_length=MAX_ARTIFACT_KEY_LENGTH,
        description="Only this key's artifacts (its history, newest first).",
    ),
]
ArtifactPath = Annotated[
    str,
    Path(
        pattern=ARTIFACT_KEY_PATTERN,
        max_length=MAX_ARTIFACT_KEY_LENGTH,
        description="An artifact key (its latest artifact), or an id or its first 4+ digits.",
    ),
    AfterValidator(check_artifact_key),
]
SinceQuery = Annotated[
    str | None,
    Query(max_length=100, description="Only newer: a duration back from now (2h) or ISO time."),
]


def _read(value: V | None, read: Callable[[V], T], field: str) -> T | None:
    """``value`` read by one of the control plane's input rules; a 422 naming ``field`` if
    the rule refuses it."""
    if value is None:
        return None
    try:
        return read(value)
    except InvalidInput as error:
        raise ApiError(422, str(error), field) from None


def since_time(value: str | None, field: str = "since") -> datetime | None:
    """A duration back from now (``2h``, ``P1D``) or an ISO 8601 time (``parse_since``)."""
    return _read(value, lambda text: parse_since(text, datetime.now(UTC)), field)


def run_cursor(value: str | None) -> RunCursor | None:
    """Where a page of runs starts: the cursor the previous page gave (``parse_run_cursor``)."""
    return _read(value, parse_run_cursor, "before")


def run_filters(
    deployment: str | None,
    state: str | None,
    trigger: list[str] | None,
    since: str | None,
    until: str | None,
) -> RunFilters:
    """The filters of a listing of runs, each read by its rule; a 422 naming the first bad
    one. ``until`` reads as ``since`` does (``2h``: two hours ago)."""
    name = _read(deployment, lambda text: check_name("deployment", text), "deployment")
    causes = _read(trigger, parse_triggers, "trigger") if trigger else None
    return RunFilters(
        name, state_filter(state), causes, since_time(since), since_time(until, "until")
    )


def level_number(value: str | None) -> int | None:
    """A level name or number (``parse_level``)."""
    return _read(value, parse_level, "level")


def state_filter(value: str | None) -> StateFilter | None:
    """A state filter (``parse_state_filter``: ``failed``, a state name, ``only:NAME``)."""
    return _read(value, parse_state_filter, "state")


StateQuery = Annotated[
    str | None,
    Query(max_length=40, description=f"Only runs in this state, any case: {STATE_FILTER_HELP}."),
]
TriggerQuery = Annotated[
    list[str] | None,
    Query(
        max_length=len(RunCause),
        description=f"Only runs caused so (repeat for several): {', '.join(RunCause)}.",
    ),
]
UntilQuery = Annotated[
    str | None,
    Query(max_length=100, description="Only older: a duration back from now (2h) or ISO time."),
]
# Its length is checked by parse_run_cursor, with the rest of what a cursor must be.
CursorQuery = Annotated[
    str | None,
    Query(description="Only runs after this cursor: the previous page's X-Next-Cursor header."),
]
LevelQuery = Annotated[
    str | None,
    Query(max_length=20, description="This level or above: DEBUG, INFO, ... or a number."),
]
MAX_LOG_ID = 2**62  # beyond any log line's id, inside SQLite's integers
AfterQuery = Annotated[
    int | None,
    Query(ge=0, le=MAX_LOG_ID, description="Only lines after this id (what a follower last saw)."),
]
