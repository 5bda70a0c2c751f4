"""Generator flows and tasks, as Prefect 3 runs them.

Calling one returns a generator (an async generator for an ``async def ... yield``) at
once; the run starts when the first value is asked for, its values reach the caller as
they are yielded, and it ends when the body is exhausted: Completed with what the body
returned (which the caller's generator returns in turn), or Failed with the exception,
which the caller then gets; a retry runs the body again, which yields its values anew. A
caller that stops early (``close()``, or a ``break`` that drops the generator) completes
the run, as Prefect does. ``return_state=True`` is refused when the generator is first
read, with Prefect's message. A stored run of a generator flow runs to its end, its
values discarded.

Each run's steps (``_steps``) execute in a context of their own, so the run's context
never leaks into the caller's code between two values; an async body runs on an event
loop of its own, driven from worker threads, as gnomon runs every async body.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator
from typing import TYPE_CHECKING, Any

from gnomon.flows._params import call_with_parameters
from gnomon.states import Completed, Failed, State, returned_state

if TYPE_CHECKING:
    from gnomon.flows._context import FlowRunContext, TaskRunContext
    from gnomon.flows._flow import Flow
    from gnomon.flows._records import FlowRun
    from gnomon.flows._task import Task
    from gnomon.store import RunStore


class _CallerStopped(Exception):
    """Thrown into a run's steps when its caller closed the generator: the run completes."""


def generator_flow_call(
    flow: Flow[..., Any], parameters: dict[str, Any], return_state: bool
) -> Any:
    """What calling the generator flow ``flow`` returns."""
    steps = _flow_run(flow, parameters, return_state)
    return _async_face(steps) if flow.isasync else _own_context(steps)


def generator_task_call(
    task: Task[..., Any], parameters: dict[str, Any], wait_for: Any, return_state: bool
) -> Any:
    """What calling the generator task ``task`` returns."""
    steps = _task_run(task, parameters, wait_for, return_state)
    return _async_face(steps) if task.isasync else _own_context(steps)


def run_stored_generator(
    store: RunStore, flow: Flow[..., Any], run: FlowRun, parameters: dict[str, Any], claimed: State
) -> State:
    """Run the stored run of a generator flow to its end; its final state."""
    from gnomon.flows._flow_engine import run_steps
    from gnomon.flows._steps import exhaust

    return exhaust(run_steps(store, flow, run, parameters, _flow_attempt, claimed))


def _flow_run(
    flow: Flow[..., Any], parameters: dict[str, Any], return_state: bool
) -> Generator[Any, None, Any]:
    from gnomon.flows._flow_engine import run_steps, start_called_run

    if return_state:
        raise ValueError("The return_type for a generator flow must be 'result'")
    store, run = start_called_run(flow, parameters)
    state = yield from run_steps(store, flow, run, parameters, _flow_attempt)
    return state.result(_sync=True)


def _task_run(
    task: Task[..., Any], parameters: dict[str, Any], wait_for: Any, return_state: bool
) -> Generator[Any, None, Any]:
    from gnomon.flows._engine import TaskRunPlan, task_run_steps

    if return_state:
        raise ValueError("The return_type for a generator task must be 'result'")
    plan = TaskRunPlan.create(task, parameters, wait_for)
    state = yield from task_run_steps(plan, _task_attempt)
    return state.result(_sync=True)


def _flow_attempt(flow: Flow[..., Any], context: FlowRunContext) -> Generator[Any, None, State]:
    from gnomon.flows._flow_engine import return_value_to_state

    def failed(error: Exception) -> State:
        return Failed(
            f"Flow run encountered an exception: {type(error).__name__}: {error}", data=error
        )

    _redirect_prints(context.log_prints)
    body = _body(flow.fn, context.parameters, flow.isasync)
    return (yield from _forward(body, failed, return_value_to_state))


def _task_attempt(task: Task[..., Any], context: TaskRunContext) -> Generator[Any, None, State]:
    def failed(error: Exception) -> State:
        context.raised = True
        return Failed(
            f"Task run encountered an exception {type(error).__name__}: {error}", data=error
        )

    def returned(value: Any) -> State:
        return returned_state(value) if isinstance(value, State) else Completed(data=value)

    _redirect_prints(context.log_prints)
    body = _body(task.fn, context.parameters, task.isasync)
    return (yield from _forward(body, failed, returned))


def _redirect_prints(log_prints: bool) -> None:
    if log_prints:
        from gnomon.flows._logging import install_print_redirect

        install_print_redirect()


def _forward(
    body: Generator[Any, None, Any],
    failed: Callable[[Exception], State],
    returned: Callable[[Any], State],
) -> Generator[Any, None, State]:
    """One attempt: the body's values passed on, then its state."""
    try:
        while True:
            try:
                value = next(body)
            except StopIteration as stop:
                return returned(stop.value)
            except Exception as error:
                return failed(error)
            yield value
    except _CallerStopped:
        body.close()
        return Completed(data=None)


def _body(fn: Callable[..., Any], parameters: dict[str, Any], isasync: bool) -> Generator[Any]:
    generator = call_with_parameters(fn, parameters)
    return _on_own_loop(generator) if isasync else generator


def _on_own_loop(generator: AsyncGenerator[Any]) -> Generator[Any]:
    """An async generator read as a sync one, on an event loop of its own."""
    loop = asyncio.new_event_loop()
    try:
        while True:
            try:
                yield loop.run_until_complete(anext(generator))
            except StopAsyncIteration:
                return
    finally:
        loop.run_until_complete(generator.aclose())
        loop.close()


def _own_context(steps: Generator[Any, None, Any]) -> Generator[Any, None, Any]:
    """``steps`` run in a copy of the context of their first step, the caller's values
    passed on; closed early, the run is told to complete."""
    context = contextvars.copy_context()
    while True:
        try:
            value = context.run(next, steps)
        except StopIteration as stop:
            return stop.value
        try:
            yield value
        except GeneratorExit:
            _stop(context, steps)
            raise


def _stop(context: contextvars.Context, steps: Generator[Any, None, Any]) -> None:
    try:
        context.run(steps.throw, _CallerStopped())
    except StopIteration:
        return
    steps.close()  # it yielded again (it cannot once told to stop): make sure it ends


_DONE = object()


async def _async_face(steps: Generator[Any, None, Any]) -> AsyncIterator[Any]:
    """``steps`` as an async generator, each step taken in a worker thread."""
    values = _own_context(steps)
    try:
        while (value := await asyncio.to_thread(next, values, _DONE)) is not _DONE:
            yield value
    except GeneratorExit:
        await asyncio.to_thread(values.close)
        raise
