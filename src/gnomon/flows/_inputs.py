"""Resolving a task call's inputs: futures and states in its arguments become results.

Resolution waits for upstream task runs; one that did not complete stops the call with
UpstreamTaskError, unless it is wrapped in ``allow_failure``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import fields, is_dataclass, replace
from typing import Any

from gnomon.exceptions import UpstreamTaskError
from gnomon.flows._annotations import allow_failure, quote
from gnomon.flows._futures import PrefectFuture
from gnomon.states import State

_PLAIN = (int, float, str, bool, bytes, type(None))


def resolve_inputs(parameters: dict[str, Any]) -> dict[str, Any]:
    """Replace futures and states in the arguments (at any depth) by their results.

    As in Prefect, they are found in lists, tuples, sets, dicts, dataclasses and pydantic
    models; a value with nothing to replace is passed on as the same object. Raises
    UpstreamTaskError when one did not complete and is not wrapped in allow_failure.
    """
    return {name: _resolve(value) for name, value in parameters.items()}


def _resolve(value: Any) -> Any:
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, quote):
        return value.value
    if isinstance(value, allow_failure):
        state = _upstream_state(value.value)
        if state is None:
            return _resolve(value.value)
        return state.data if not state.is_completed() else state.result(_sync=True)
    state = _upstream_state(value)
    if state is not None:
        if not state.is_completed():
            raise UpstreamTaskError(_upstream_message(value))
        return state.result(_sync=True)
    if isinstance(value, list):
        items = [_resolve(item) for item in value]
        return value if _same(items, value) else items
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        items = [_resolve(item) for item in value]
        return value if _same(items, value) else tuple(items)
    if isinstance(value, dict):
        resolved = {key: _resolve(item) for key, item in value.items()}
        return value if _same(resolved.values(), value.values()) else resolved
    if isinstance(value, (set, frozenset)):
        items = [_resolve(item) for item in value]
        return value if _same(items, value) else type(value)(items)
    return _resolve_fields(value)


def _same(new: Iterable[Any], old: Iterable[Any]) -> bool:
    return all(a is b for a, b in zip(new, old, strict=True))


def _resolve_fields(value: Any) -> Any:
    """A dataclass or pydantic model with futures in its fields resolved (a copy if any)."""
    if is_dataclass(value) and not isinstance(value, type):
        names = [f.name for f in fields(value) if f.init]
        changed = _changed_fields(value, names)
        return replace(value, **changed) if changed else value
    pydantic = sys.modules.get("pydantic")  # a model instance means pydantic is imported
    if pydantic is not None and isinstance(value, pydantic.BaseModel):
        changed = _changed_fields(value, list(type(value).model_fields))
        return value.model_copy(update=changed) if changed else value
    return value


def _changed_fields(value: Any, names: list[str]) -> dict[str, Any]:
    resolved = {name: _resolve(getattr(value, name)) for name in names}
    return {name: item for name, item in resolved.items() if item is not getattr(value, name)}


def _upstream_state(value: Any) -> State | None:
    if isinstance(value, PrefectFuture):
        value.wait()
        return value.state
    if isinstance(value, State):
        return value
    return None


def _upstream_message(value: Any) -> str:
    run_id = value.task_run_id if isinstance(value, PrefectFuture) else "<state>"
    return f"Upstream task run '{run_id}' did not reach a 'COMPLETED' state."


def wait_for_upstream(wait_for: list[Any] | None) -> None:
    """Wait for every ``wait_for`` future; raise UpstreamTaskError if one did not complete."""
    for item in wait_for or ():
        tolerated = isinstance(item, allow_failure)
        state = _upstream_state(item.value if tolerated else item)
        if state is not None and not state.is_completed() and not tolerated:
            raise UpstreamTaskError(_upstream_message(item))
