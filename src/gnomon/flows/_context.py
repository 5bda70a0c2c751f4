"""What is running right now, carried in contextvars.

Worker threads started by the engine (task runner threads, timeout threads) run in a copy of
the submitting context, so a task always sees the flow run it belongs to.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gnomon.flows._flow import Flow
    from gnomon.flows._runners import TaskRunner
    from gnomon.flows._task import Task


@dataclass(slots=True, eq=False)
class FlowRunContext:
    """The flow run the current code belongs to."""

    flow: Flow[..., Any]
    flow_run_id: str
    flow_run_name: str
    parameters: dict[str, Any]
    task_runner: TaskRunner
    attempt: int = 1
    log_prints: bool = False
    parent: FlowRunContext | None = None
    pauses: int = 0  # pause calls so far: a pause's default key (``_pauses``)
    _dynamic_keys: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def next_dynamic_key(self, task_key: str) -> int:
        """A per-flow-run counter for each task, used in default task run names."""
        with self._lock:
            key = self._dynamic_keys.get(task_key, 0)
            self._dynamic_keys[task_key] = key + 1
            return key


@dataclass(slots=True, eq=False)
class TaskRunContext:
    """The task run the current code belongs to."""

    task: Task[..., Any]
    task_run_id: str
    task_run_name: str
    flow_run: FlowRunContext | None
    parameters: dict[str, Any]
    attempt: int = 1
    log_prints: bool = False


flow_run_var: ContextVar[FlowRunContext | None] = ContextVar("gnomon_flow_run", default=None)
task_run_var: ContextVar[TaskRunContext | None] = ContextVar("gnomon_task_run", default=None)
tags_var: ContextVar[frozenset[str]] = ContextVar("gnomon_tags", default=frozenset())


def get_flow_run_context() -> FlowRunContext | None:
    return flow_run_var.get()


def get_task_run_context() -> TaskRunContext | None:
    return task_run_var.get()


@contextmanager
def tags(*names: str) -> Iterator[frozenset[str]]:
    """Add tags to every task run created inside the block, as ``prefect.tags`` does."""
    current = tags_var.get() | frozenset(names)
    token = tags_var.set(current)
    try:
        yield current
    finally:
        tags_var.reset(token)
