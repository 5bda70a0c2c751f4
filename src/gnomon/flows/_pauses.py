"""Pausing, suspending and resuming flow runs, as Prefect's ``prefect.flow_runs``.

A *paused* run keeps its process: ``pause_flow_run`` records the run Paused and polls the
store until an operator resumes it (the run goes on from the call, which returns the
input) or its timeout passes (``FlowPauseTimeout``: the run fails). A *suspended* run
gives its process up: ``suspend_flow_run`` records it Suspended and ends the run's code
with the ``Pause`` signal; once resumed, the daemon runs it again from the top, and its
suspend call, finding its pause resumed, returns the input at once. Tasks that completed
before are not run again where their results were cached (``persist_result=True`` on the
flow, as Prefect asks of suspended flows).

Every pause call has a key: ``key=`` or the count of pause calls so far in the run, so a
run started again makes the same calls with the same keys, and a key pauses once.
"""

from __future__ import annotations

import asyncio
import getpass
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from gnomon.exceptions import FlowPauseTimeout, InvalidInput, NotPausedError, ObjectNotFound, Pause
from gnomon.flows._clock import get_clock
from gnomon.flows._context import FlowRunContext, flow_run_var, task_run_var
from gnomon.flows._run_input import input_model, input_problems, input_schema, loaded_input
from gnomon.states import StateType, Suspended

if TYPE_CHECKING:
    from gnomon.flows._run_input import RunInput
    from gnomon.store import Actor, ControlStore, RunStore
    from gnomon.store.rows import RunPauseRow

PAUSED_MESSAGE = "Pausing flow, execution will continue when this flow run is resumed."
SUSPENDED_MESSAGE = (
    "Suspending flow run, execution will be rescheduled when this flow run is resumed."
)


class InvalidRunInput(InvalidInput, RuntimeError):
    """Input that does not fit the pause's model: the run was not resumed. A RuntimeError
    too, as Prefect raises one."""


def pause_flow_run(
    wait_for_input: Any = None,
    timeout: int = 3600,
    poll_interval: int = 10,
    key: str | None = None,
) -> Any:
    """Pause the current flow run until it is resumed (``gnomon runs resume``, the API, the
    dashboard, ``resume_flow_run``); returns the input if ``wait_for_input`` is given.
    Raises ``FlowPauseTimeout`` if not resumed within ``timeout`` seconds. Called in async
    code, it returns an awaitable (``apause_flow_run``), as Prefect's does."""
    if _in_event_loop():
        return apause_flow_run(wait_for_input, timeout, poll_interval, key)
    return _pause(wait_for_input, timeout, poll_interval, key)


async def apause_flow_run(
    wait_for_input: Any = None,
    timeout: int = 3600,
    poll_interval: int = 10,
    key: str | None = None,
) -> Any:
    """``pause_flow_run`` for async code: the wait runs in a thread (with this context)."""
    return await asyncio.to_thread(_pause, wait_for_input, timeout, poll_interval, key)


def _pause(wait_for_input: Any, timeout: float, poll_interval: float, key: str | None) -> Any:
    context = flow_run_var.get()
    if context is None and (task_run := task_run_var.get()) is not None:
        context = task_run.flow_run
    if context is None:
        raise RuntimeError("Flow runs can only be paused from within a flow run.")
    model = input_model(wait_for_input) if wait_for_input is not None else None
    pause_key = key or str(_next_pause(context))
    _logger().info(PAUSED_MESSAGE)
    store = _store()
    fired = _open(store, context.flow_run_id, pause_key, False, timeout, model)
    if fired is not None:
        return _returned(model, fired)
    return _wait(store, context.flow_run_id, pause_key, model, timeout, poll_interval)


def suspend_flow_run(
    wait_for_input: Any = None,
    flow_run_id: str | None = None,
    timeout: int | None = None,
    key: str | None = None,
) -> Any:
    """Suspend the current flow run: its process ends, and once resumed the daemon runs it
    again from the top, where this call returns the input (if ``wait_for_input``). Only a
    deployment's top-level run can be suspended. Not resumed within ``timeout`` seconds
    (if given), the daemon fails it. In async code it returns an awaitable."""
    if _in_event_loop():
        return asuspend_flow_run(wait_for_input, flow_run_id, timeout, key)
    return _suspend(wait_for_input, flow_run_id, timeout, key)


async def asuspend_flow_run(
    wait_for_input: Any = None,
    flow_run_id: str | None = None,
    timeout: int | None = None,
    key: str | None = None,
) -> Any:
    """``suspend_flow_run`` for async code."""
    return await asyncio.to_thread(_suspend, wait_for_input, flow_run_id, timeout, key)


def _suspend(
    wait_for_input: Any, flow_run_id: str | None, timeout: float | None, key: str | None
) -> Any:
    context = flow_run_var.get()
    if task_run_var.get() is not None:
        raise RuntimeError("Cannot suspend task runs.")
    if context is None:
        raise RuntimeError("Flow runs can only be suspended from within a flow run.")
    if flow_run_id is not None and _run_id(flow_run_id) != context.flow_run_id:
        raise RuntimeError(
            "gnomon suspends only the current flow run (suspend_flow_run() in its own code); "
            f"to stop run {flow_run_id} use `gnomon runs cancel {flow_run_id}`"
        )
    if context.parent is not None:
        raise RuntimeError("Flow run cannot be suspended: Cannot suspend subflows.")
    store = _store()
    row = store.read_flow_run(context.flow_run_id)
    if row is None or row.deployment_name is None:
        raise RuntimeError(
            "Flow run cannot be suspended: Cannot suspend flows without a deployment."
        )
    model = input_model(wait_for_input) if wait_for_input is not None else None
    pause_key = key or str(_next_pause(context))
    fired = _open(store, context.flow_run_id, pause_key, True, timeout, model)
    if fired is not None:
        return _returned(model, fired)
    _logger().info(SUSPENDED_MESSAGE)
    raise Pause(SUSPENDED_MESSAGE, state=Suspended(SUSPENDED_MESSAGE))


def resume_flow_run(flow_run_id: Any, run_input: dict[str, Any] | None = None) -> Any:
    """Resume a paused or suspended flow run with ``run_input`` (checked against the input
    its pause waits for). Raises ``NotPausedError`` if it is not paused,
    ``FlowPauseTimeout`` if its pause timed out, ``InvalidRunInput`` for input that does not
    fit. In async code it returns an awaitable."""
    if _in_event_loop():
        return aresume_flow_run(flow_run_id, run_input)
    return _resume(flow_run_id, run_input)


async def aresume_flow_run(flow_run_id: Any, run_input: dict[str, Any] | None = None) -> None:
    """``resume_flow_run`` for async code."""
    await asyncio.to_thread(_resume, flow_run_id, run_input)


def _resume(flow_run_id: Any, run_input: dict[str, Any] | None) -> None:
    from gnomon.store import Actor, Origin

    actor = Actor(getpass.getuser(), Origin.PYTHON)
    # A UUID as Prefect's ids are, or gnomon's hex text.
    resume_run(_store(), _run_id(flow_run_id), run_input, actor)


def resume_run(
    store: ControlStore, flow_run_id: str, run_input: dict[str, Any] | None, actor: Actor
) -> str:
    """Resume the run's open pause with ``run_input`` as ``actor``;
    returns the run's state name after it (Running, or Resuming for a suspended run)."""
    from gnomon.states import StateName

    row = store.read_flow_run(flow_run_id)
    if row is None:
        raise ObjectNotFound(f"no flow run with id {flow_run_id!r}")
    pause = store.read_open_pause(flow_run_id) if row.state_type == StateType.PAUSED else None
    if pause is None:
        raise NotPausedError(
            f"Cannot resume a run that isn't paused! Run {flow_run_id} is {row.state_name}."
        )
    if pause.input_schema is not None:
        problems = input_problems(pause.input_schema, run_input or {})
        if problems:
            raise InvalidRunInput("Cannot resume this run: " + "; ".join(problems))
    if not store.resume_paused_run(pause, actor, run_input):
        if pause.timeout_at is not None and pause.timeout_at <= _now():
            raise FlowPauseTimeout("Flow run can no longer be resumed.")
        raise NotPausedError(f"Cannot resume this run: run {flow_run_id} was resumed already")
    return StateName.RESUMING if pause.suspend else StateName.RUNNING


def _run_id(flow_run_id: Any) -> str:
    """A run id given as Prefect's (a UUID) or as gnomon's (32 hex digits)."""
    return str(getattr(flow_run_id, "hex", None) or flow_run_id)


def _in_event_loop() -> bool:
    """Whether the caller runs in an event loop (async code), as Prefect's dispatch asks."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _next_pause(context: FlowRunContext) -> int:
    """The run's pause count, this call included: a pause's default key."""
    with context._lock:
        context.pauses += 1
        return context.pauses


def _open(
    store: RunStore,
    flow_run_id: str,
    pause_key: str,
    suspend: bool,
    timeout: float | None,
    model: type[RunInput] | None,
) -> RunPauseRow | None:
    """Record the pause (None), or the run's pause of that key if it fired before."""
    store.flush()  # the run's rows so far, before its state changes under them
    return store.open_pause(
        flow_run_id,
        pause_key,
        suspend=suspend,
        timeout_at=None if timeout is None else _now() + timedelta(seconds=timeout),
        input_schema=input_schema(model) if model is not None else None,
        description=model._description if model is not None else None,
        message=SUSPENDED_MESSAGE if suspend else PAUSED_MESSAGE,
    )


def _wait(
    store: RunStore,
    flow_run_id: str,
    pause_key: str,
    model: type[RunInput] | None,
    timeout: float,
    poll_interval: float,
) -> Any:
    """Poll the pause until it is resumed; past ``timeout``, expire it unless a resume
    came first."""
    clock = get_clock()
    deadline = time.monotonic() + timeout
    while True:
        pause = store.read_pause(flow_run_id, pause_key)
        if pause is not None and pause.resumed_at is not None:
            _logger().info("Resuming flow run execution!")
            return _returned(model, pause)
        left = deadline - time.monotonic()
        if left <= 0:
            break
        clock.sleep(min(poll_interval, left))
    if pause is not None and store.expire_pause(pause.id, _now()):
        raise FlowPauseTimeout("Flow run was paused and never resumed.")
    return _wait(store, flow_run_id, pause_key, model, 0, poll_interval)


def _returned(model: type[RunInput] | None, pause: RunPauseRow) -> Any:
    return loaded_input(model, pause.input) if model is not None else None


def _store() -> Any:
    from gnomon.store import get_store

    return get_store()


def _now() -> Any:
    from gnomon.store import utcnow

    return utcnow()


def _logger() -> Any:
    from gnomon.flows._logging import get_run_logger

    return get_run_logger()
