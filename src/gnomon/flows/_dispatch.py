"""One name for both calling conventions, as Prefect 3's ``async_dispatch`` gives them.

``create_markdown_artifact(...)`` returns the artifact's id in synchronous code and an
awaitable in asynchronous code (an async flow or task, or a running event loop outside any
run), so Prefect code that writes ``await create_markdown_artifact(...)`` in an async flow
and the plain call in a sync one both run unchanged. ``_sync=True`` forces the synchronous
form; ``fn.aio`` is the asynchronous one.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from gnomon.flows._context import flow_run_var, task_run_var

P = ParamSpec("P")
R = TypeVar("R")


def in_async_context() -> bool:
    """Whether the caller is asynchronous: the current task's (else flow's) function is a
    coroutine function; outside a run, whether an event loop runs in this thread."""
    task = task_run_var.get()
    if task is not None:
        return bool(getattr(task.task, "isasync", False))
    flow = flow_run_var.get()
    if flow is not None:
        return bool(getattr(flow.flow, "isasync", False))
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def async_dispatch(
    async_impl: Callable[P, Coroutine[Any, Any, R]],
) -> Callable[[Callable[P, R]], Callable[P, Any]]:
    """Make a synchronous function call ``async_impl`` instead when its caller is
    asynchronous (see ``in_async_context``), unless called with ``_sync=True``. Under a
    ``classmethod``, ``async_impl`` may be one too."""
    if isinstance(async_impl, classmethod):
        async_impl = async_impl.__func__

    def decorator(sync_fn: Callable[P, R]) -> Callable[P, Any]:
        @functools.wraps(sync_fn)
        def dispatch(*args: Any, **kwargs: Any) -> Any:
            forced = kwargs.pop("_sync", None)
            run_sync = bool(forced) if forced is not None else not in_async_context()
            return (sync_fn if run_sync else async_impl)(*args, **kwargs)

        dispatch.aio = async_impl  # type: ignore[attr-defined]
        return dispatch

    return decorator
