"""Turning states into store rows, shared by the flow and task engines.

Every transition becomes a ``run_states`` row and an update of the run's own row, through the
per-process batched writer; nothing here waits on the database.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, overload

from gnomon._secrets import mask_known
from gnomon._text import valid_text
from gnomon.states import State, StateType

if TYPE_CHECKING:
    from typing import TypedDict

    from gnomon.store.rows import NewState

    # Columns flow runs and task runs share, as the writes of both take them.

    class StateColumns(TypedDict):
        state_type: StateType
        state_name: str
        state_message: str | None
        updated: datetime

    class ErrorColumns(TypedDict):
        error_type: str | None
        error_message: str | None
        error_traceback: str | None


MAX_TRACEBACK = 20_000


@overload
def stored_text(text: str) -> str: ...


@overload
def stored_text(text: str | None) -> str | None: ...


def stored_text(text: str | None) -> str | None:
    """Free text (a state message, an error, a traceback) as it is stored and reported: the
    secret values of this process's runs masked, and valid Unicode (SQLite refuses a lone
    surrogate, which would lose the whole batch the text was written with)."""
    if text is None:
        return None
    return valid_text(mask_known(text))


def error_fields(error: BaseException | None) -> ErrorColumns:
    if error is None:
        return {"error_type": None, "error_message": None, "error_traceback": None}
    cls = type(error)
    name = (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )
    text = "".join(traceback.format_exception(error))
    return {
        "error_type": name,
        "error_message": stored_text(str(error)),
        "error_traceback": (stored_text(text) or "")[-MAX_TRACEBACK:],
    }


def crash_message(error: BaseException) -> str:
    """Why a run crashed, in Prefect's words, for an exception raised outside its user code."""
    if isinstance(error, KeyboardInterrupt):
        return "Execution was aborted by an interrupt signal."
    if isinstance(error, SystemExit):
        return "Execution was aborted by Python system exit call."
    return f"Execution was interrupted by an unexpected exception: {type(error).__name__}: {error}"


def state_error(state: State) -> BaseException | None:
    return state.data if isinstance(state.data, BaseException) else None


def state_row(
    state: State, attempt: int, flow_run_id: str | None, task_run_id: str | None
) -> NewState:
    return {
        "flow_run_id": flow_run_id,
        "task_run_id": task_run_id,
        "timestamp": state.timestamp,
        "type": state.type,
        "name": state.name,
        "message": stored_text(state.message),
        "attempt": attempt,
    }


def state_columns(state: State) -> StateColumns:
    return {
        "state_type": state.type,
        "state_name": state.name,
        "state_message": stored_text(state.message),
        "updated": state.timestamp,
    }


def jsonable(value: Any) -> Any:
    """``value`` as JSON-compatible data, as Prefect stores parameters: models as dicts, dates
    as ISO strings, sets as lists, so that a stored run can be validated and run again.
    Objects with no JSON form are kept as their repr."""
    from pydantic_core import to_jsonable_python

    return json.loads(json.dumps(to_jsonable_python(value, fallback=repr)))


@dataclass(slots=True)
class FlowRun:
    """What flow hooks receive about the run (Prefect passes its FlowRun model)."""

    id: str
    name: str
    flow_name: str
    parameters: dict[str, Any]
    run_count: int
    tags: list[str] = field(default_factory=list)
    parent_flow_run_id: str | None = None
    state: State | None = None
    start_time: datetime | None = None


@dataclass(slots=True)
class TaskRun:
    """What task hooks receive about the run (Prefect passes its TaskRun model)."""

    id: str
    name: str
    flow_run_id: str | None
    task_key: str
    run_count: int
    tags: list[str] = field(default_factory=list)
    state: State | None = None
    cache_key: str | None = None


def run_hooks(hooks: Iterable[Callable[..., Any]], owner: Any, run: Any, state: State) -> None:
    """Call each hook once; a failing hook is logged and does not change the run's state."""
    for hook in hooks:
        try:
            hook(owner, run, state)
        except Exception:
            from gnomon.flows._logging import engine_logger

            engine_logger().exception(
                "hook failed", hook=getattr(hook, "__qualname__", repr(hook)), state=state.name
            )
