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

from gnomon.states import set_run_is_async_probe

if TYPE_CHECKING:
    from gnomon.flows._flow import Flow
    from gnomon.flows._records import FlowRun, TaskRun
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
    tags: frozenset[str] = frozenset()
    pauses: int = 0  # pause calls so far: a pause's default key (``_pauses``)
    _dynamic_keys: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def get(cls) -> FlowRunContext | None:
        """The flow run the calling code belongs to (a task's too), or None outside one;
        Prefect's ``FlowRunContext.get()``."""
        context = flow_run_var.get()
        if context is None and (task := task_run_var.get()) is not None:
            context = task.flow_run
        return context

    @property
    def flow_run(self) -> FlowRun:
        """The run as Prefect's ``FlowRunContext.flow_run`` shows it: ``id``, ``name``,
        ``flow_name``, ``parameters``, ``run_count``, ``tags``, ``parent_flow_run_id``."""
        from gnomon.flows._records import FlowRun

        return FlowRun(
            id=self.flow_run_id,
            name=self.flow_run_name,
            flow_name=self.flow.name,
            parameters=dict(self.parameters),
            run_count=self.attempt,
            tags=sorted(self.tags),
            parent_flow_run_id=self.parent.flow_run_id if self.parent else None,
        )

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
    tags: frozenset[str] = frozenset()
    # Whether the current attempt's body raised (a returned Failed state did not): a raise
    # rolls back the transaction around the task.
    raised: bool = False

    @classmethod
    def get(cls) -> TaskRunContext | None:
        """The task run the calling code belongs to, or None outside one; Prefect's
        ``TaskRunContext.get()``."""
        return task_run_var.get()

    @property
    def task_run(self) -> TaskRun:
        """The run as Prefect's ``TaskRunContext.task_run`` shows it: ``id``, ``name``,
        ``flow_run_id``, ``task_key``, ``run_count``, ``tags``."""
        from gnomon.flows._records import TaskRun

        return TaskRun(
            id=self.task_run_id,
            name=self.task_run_name,
            flow_run_id=self.flow_run.flow_run_id if self.flow_run else None,
            task_key=self.task.task_key,
            run_count=self.attempt,
            tags=sorted(self.tags),
        )


flow_run_var: ContextVar[FlowRunContext | None] = ContextVar("gnomon_flow_run", default=None)
task_run_var: ContextVar[TaskRunContext | None] = ContextVar("gnomon_task_run", default=None)
tags_var: ContextVar[frozenset[str]] = ContextVar("gnomon_tags", default=frozenset())


def _run_is_async() -> bool | None:
    """Whether the current task run's (or else flow run's) function is async; None outside
    any run. ``State.result`` answers with an awaitable when it is, as Prefect's does."""
    task_run = task_run_var.get()
    if task_run is not None:
        return task_run.task.isasync
    flow_run = flow_run_var.get()
    return None if flow_run is None else flow_run.flow.isasync


set_run_is_async_probe(_run_is_async)


def get_flow_run_context() -> FlowRunContext | None:
    return flow_run_var.get()


def get_task_run_context() -> TaskRunContext | None:
    return task_run_var.get()


@contextmanager
def tags(*names: str) -> Iterator[set[str]]:
    """Add tags to every flow run and task run created inside the block, as
    ``prefect.tags`` does; nested blocks add to the tags around them. Yields the tags now
    in force (a set, as Prefect's)."""
    current = tags_var.get() | frozenset(names)
    token = tags_var.set(current)
    try:
        yield set(current)
    finally:
        tags_var.reset(token)
