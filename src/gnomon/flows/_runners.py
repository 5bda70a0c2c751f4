"""Task runners: where submitted task runs execute.

A runner is entered for the duration of a flow run and turns ``submit`` calls into futures.
The interface (``duplicate``, ``submit``, ``map``, enter and exit) is the one
``DaskTaskRunner`` (``_dask``) implements too, and a Ray runner would.
"""

from __future__ import annotations

import abc
import concurrent.futures as cf
import contextvars
import functools
import multiprocessing
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Self

from gnomon.flows._futures import PrefectFuture, PrefectFutureList

if TYPE_CHECKING:
    from gnomon.flows._task import Task


class TaskRunner(abc.ABC):
    """Runs submitted tasks; subclass it for another execution backend."""

    @abc.abstractmethod
    def duplicate(self) -> Self:
        """A fresh, unstarted runner with the same configuration (one per flow run)."""

    @abc.abstractmethod
    def submit(
        self,
        task: Task[..., Any],
        parameters: dict[str, Any],
        wait_for: Iterable[Any] | None = None,
    ) -> PrefectFuture[Any]:
        """Start a run of ``task`` with ``parameters``; returns its future at once."""

    def map(
        self,
        task: Task[..., Any],
        parameters: list[dict[str, Any]],
        wait_for: Iterable[Any] | None = None,
    ) -> PrefectFutureList[Any]:
        """Submit one run per parameter set."""
        wait_for = list(wait_for) if wait_for else None
        return PrefectFutureList(self.submit(task, p, wait_for) for p in parameters)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        return None


@functools.cache
def _cpu_count() -> int:
    """The CPU count, read once: glibc reads it from /sys at every call, and every flow run
    makes a default task runner."""
    return os.cpu_count() or 1


class ThreadPoolTaskRunner(TaskRunner):
    """Runs tasks on a bounded pool of threads in the flow's process (the default)."""

    def __init__(self, max_workers: int | None = None) -> None:
        if max_workers is None:
            from gnomon._settings import get_settings

            max_workers = get_settings().task_runner_max_workers or 4 * _cpu_count()
        self.max_workers = max_workers
        self._executor: cf.ThreadPoolExecutor | None = None

    def duplicate(self) -> Self:
        return type(self)(max_workers=self.max_workers)

    def submit(
        self,
        task: Task[..., Any],
        parameters: dict[str, Any],
        wait_for: Iterable[Any] | None = None,
    ) -> PrefectFuture[Any]:
        from gnomon.flows._engine import TaskRunPlan, run_task_plan

        if self._executor is None:
            raise RuntimeError("the task runner is not started; submit tasks inside a flow")
        plan = TaskRunPlan.create(task, parameters, wait_for)
        context = contextvars.copy_context()
        inner = self._executor.submit(context.run, run_task_plan, plan)
        return PrefectFuture[Any](plan.task_run_id, inner, lambda: plan.live_state)

    def __enter__(self) -> Self:
        self._executor = cf.ThreadPoolExecutor(
            max_workers=self.max_workers, thread_name_prefix="gnomon-task"
        )
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        if self._executor is not None:
            # Leaving on KeyboardInterrupt, SystemExit or a timeout signal: queued tasks are
            # dropped and running ones are not waited for, so the interrupt takes effect now.
            interrupted = exc_type is not None
            self._executor.shutdown(wait=not interrupted, cancel_futures=interrupted)
            self._executor = None


class ProcessPoolTaskRunner(TaskRunner):
    """Runs each task in a pool of spawned worker processes, for CPU-bound work.

    Tasks and their arguments travel by cloudpickle; each worker writes its task runs'
    states and logs to the same store as the flow.
    """

    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = max_workers or os.cpu_count() or 1
        self._processes: cf.ProcessPoolExecutor | None = None
        self._threads: cf.ThreadPoolExecutor | None = None

    def duplicate(self) -> Self:
        return type(self)(max_workers=self.max_workers)

    def submit(
        self,
        task: Task[..., Any],
        parameters: dict[str, Any],
        wait_for: Iterable[Any] | None = None,
    ) -> PrefectFuture[Any]:
        from gnomon.flows._engine import TaskRunPlan
        from gnomon.flows._process_tasks import run_task_plan_in_process

        if self._processes is None or self._threads is None:
            raise RuntimeError("the task runner is not started; submit tasks inside a flow")
        plan = TaskRunPlan.create(task, parameters, wait_for)
        context = contextvars.copy_context()
        # A thread waits for upstream futures, then hands the run to a process.
        inner = self._threads.submit(context.run, run_task_plan_in_process, plan, self._processes)
        return PrefectFuture[Any](plan.task_run_id, inner, lambda: plan.live_state)

    def __enter__(self) -> Self:
        context = multiprocessing.get_context("spawn")
        self._processes = cf.ProcessPoolExecutor(max_workers=self.max_workers, mp_context=context)
        self._threads = cf.ThreadPoolExecutor(
            max_workers=max(32, self.max_workers * 4), thread_name_prefix="gnomon-submit"
        )
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        if self._threads is not None:
            self._threads.shutdown(wait=True)
            self._threads = None
        if self._processes is not None:
            self._processes.shutdown(wait=True)
            self._processes = None
