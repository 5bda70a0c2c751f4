"""Prefect's sync-or-async dispatch: ``Variable.get`` called from async code returns the
coroutine of ``Variable.aget``, to be awaited; from sync code it returns the value.

Async code is an async flow or task's body, or, outside any run, code under a running event
loop: Prefect's rule, so ``await Variable.get(...)`` in an async flow and
``Variable.get(...)`` in a sync one both work as they do there. ``_sync=True`` forces the
sync form.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from gnomon.flows._context import flow_run_var, task_run_var

R = TypeVar("R")


def in_async_context() -> bool:
    """Whether the caller is async code: the current task or flow is async, or, outside
    any run, an event loop runs in this thread."""
    task_run = task_run_var.get()
    if task_run is not None:
        return task_run.task.isasync
    flow_run = flow_run_var.get()
    if flow_run is not None:
        return flow_run.flow.isasync
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def async_dispatch(
    async_impl: Callable[..., Coroutine[Any, Any, Any]] | classmethod[Any, Any, Any],
) -> Callable[[Callable[..., R]], Callable[..., Any]]:
    """Make the decorated function call ``async_impl`` instead when called from async code
    (``in_async_context``). Under ``@classmethod``, as Prefect stacks it; the async form is
    also its ``aio`` attribute."""
    implementation = async_impl.__func__ if isinstance(async_impl, classmethod) else async_impl

    def decorator(sync_fn: Callable[..., R]) -> Callable[..., Any]:
        @functools.wraps(sync_fn)
        def dispatch(*args: Any, **kwargs: Any) -> Any:
            forced = kwargs.pop("_sync", None)
            run_sync = bool(forced) if forced is not None else not in_async_context()
            return (sync_fn if run_sync else implementation)(*args, **kwargs)

        dispatch.aio = implementation  # type: ignore[attr-defined]
        return dispatch

    return decorator
