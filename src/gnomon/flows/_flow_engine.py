"""The flow engine: one flow call, or one stored flow run, from Pending to a final state.

The flow run's own row and states go through the batched writer like task states, but the
final state is committed, with every row recorded before it, in the calling thread before the
call returns: a finished run's outcome is never lost.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import importlib.util
import os
import sys
import time
import uuid
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gnomon._secrets import remember_secrets
from gnomon.exceptions import (
    CrashedRun,
    FlowRunNotRunnable,
    FlowRunTimeoutError,
    ObjectNotFound,
    ParameterBindError,
    Pause,
    TerminationSignal,
)
from gnomon.flows import _records
from gnomon.flows._bind import bind_named, parameters_to_store
from gnomon.flows._clock import get_clock
from gnomon.flows._context import FlowRunContext, flow_run_var, tags_var, task_run_var
from gnomon.flows._names import custom_flow_run_name, random_run_name
from gnomon.flows._params import call_with_parameters
from gnomon.flows._returns import call_result, resolve_futures_to_states, return_value_to_state
from gnomon.flows._steps import exhaust
from gnomon.flows._timeouts import call_with_deadline
from gnomon.states import (
    AwaitingRetry,
    Crashed,
    Failed,
    Pending,
    Retrying,
    Running,
    State,
    StateName,
    StateType,
    TimedOut,
)

if TYPE_CHECKING:
    from typing import Unpack

    from gnomon.flows._flow import Flow
    from gnomon.store import RunStore
    from gnomon.store.rows import ClaimedRun, FlowRunChanges


def run_flow(
    flow: Flow[..., Any],
    parameters: dict[str, Any],
    *,
    return_state: bool = False,
    flow_run_id: str | None = None,
) -> Any:
    """Run ``flow`` with bound ``parameters``; a new run, or the stored run ``flow_run_id``."""
    store, run = start_called_run(flow, parameters, flow_run_id)
    state = _run_validated(store, flow, run, parameters)
    return state if return_state else call_result(state)


def start_called_run(
    flow: Flow[..., Any], parameters: dict[str, Any], flow_run_id: str | None = None
) -> tuple[RunStore, _records.FlowRun]:
    """The store, and the Pending run of a call of ``flow`` (a subflow of the run the call
    is made in, if any)."""
    from gnomon.flows._logging import configure_logging
    from gnomon.store import get_store

    configure_logging()
    store = get_store()
    parent = flow_run_var.get()
    if parent is None and (task_run := task_run_var.get()) is not None:
        parent = task_run.flow_run
    return store, start_run(store, flow, parameters, flow_run_id, parent)


def start_run(
    store: RunStore,
    flow: Flow[..., Any],
    parameters: dict[str, Any],
    flow_run_id: str | None,
    parent: FlowRunContext | None,
) -> _records.FlowRun:
    """Record a new run of ``flow`` (or the stored run ``flow_run_id``) as Pending, with
    the tags of the ``tags()`` blocks around the call, as Prefect's flow runs get them."""
    name = random_run_name()  # until the run's flow_run_name is resolved, as in Prefect
    pending = Pending()
    stored = _stored_parameters(flow, parameters)
    run = _records.FlowRun(
        id=flow_run_id or uuid.uuid4().hex,
        name=name,
        flow_name=flow.name,
        parameters=stored,
        run_count=0,
        tags=sorted(tags_var.get()),
        parent_flow_run_id=parent.flow_run_id if parent else None,
        state=pending,
    )
    columns: FlowRunChanges = {
        "name": name,
        "flow_name": flow.name,
        "flow_version": flow.version,
        "entrypoint": flow.entrypoint,
        "parameters": stored,
        "tags": run.tags,
        **_records.state_columns(pending),
    }
    if flow_run_id is None:
        store.insert_flow_run(
            {
                "id": run.id,
                "name": name,  # in ``columns`` too: a new row must have them
                "flow_name": flow.name,
                "parent_flow_run_id": run.parent_flow_run_id,
                "run_count": 0,
                "created": pending.timestamp,
                "expected_start_time": pending.timestamp,
                **columns,
            }
        )
    else:
        store.update_flow_run(run.id, **columns)
    store.add_state(_records.state_row(pending, 0, run.id, None))
    return run


def _stored_parameters(flow: Flow[..., Any], parameters: dict[str, Any]) -> dict[str, Any]:
    """The run's parameters as stored (and as hooks see them, as Prefect's stored run):
    JSON values, without a method's bound instance or class."""
    return _records.jsonable(parameters_to_store(parameters, flow.bound_parameter))


def _run_validated(
    store: RunStore,
    flow: Flow[..., Any],
    run: _records.FlowRun,
    parameters: dict[str, Any],
    claimed: State | None = None,
) -> State:
    """Validate the parameters and run the attempts; ``claimed`` is the Running state a
    stored run's claim recorded already (its first attempt records no other)."""
    return exhaust(run_steps(store, flow, run, parameters, _attempt, claimed))


AttemptSteps = Callable[["Flow[..., Any]", FlowRunContext], Generator[Any, None, State]]


def run_steps(
    store: RunStore,
    flow: Flow[..., Any],
    run: _records.FlowRun,
    parameters: dict[str, Any],
    attempt_steps: AttemptSteps,
    claimed: State | None = None,
) -> Generator[Any, None, State]:
    """``_run_validated``'s steps, each attempt's given by ``attempt_steps`` (see
    ``_steps``)."""
    context = validated_context(store, flow, run, parameters)
    if isinstance(context, State):
        return context
    with run_scope(store, flow, run, context):
        try:
            return (yield from _run_attempts(store, flow, run, context, attempt_steps, claimed))
        except Pause as signal:
            return _suspended(store, run, signal)


def validated_context(
    store: RunStore, flow: Flow[..., Any], run: _records.FlowRun, parameters: dict[str, Any]
) -> FlowRunContext | State:
    """The run's context with its parameters validated, or its final Failed state when
    they do not validate (as in Prefect, any validation error fails the run)."""
    remember_secrets(parameters)  # as given: a validation error may quote them
    if flow.should_validate_parameters:
        try:
            parameters = flow.validate_parameters(parameters)
        except Exception as error:
            state = Failed(
                f"Validation of flow parameters failed with error: {type(error).__name__}: {error}",
                data=error,
            )
            return _finish(store, flow, run, state)
        run.parameters = _stored_parameters(flow, parameters)
        remember_secrets(parameters)  # and as the flow gets them (coerced)
        store.update_flow_run(run.id, parameters=run.parameters)
    return FlowRunContext(
        flow=flow,
        flow_run_id=run.id,
        flow_run_name=run.name,
        parameters=parameters,
        task_runner=(flow.task_runner or _default_runner()).duplicate(),
        log_prints=bool(flow.log_prints),
        parent=flow_run_var.get(),
        tags=frozenset(run.tags),
    )


@contextmanager
def run_scope(
    store: RunStore, flow: Flow[..., Any], run: _records.FlowRun, context: FlowRunContext
) -> Iterator[None]:
    """Inside the run: its context current, its flow_run_name resolved, a crash recorded."""
    from gnomon.flows._logging import log_run_event

    flow_token = flow_run_var.set(context)
    task_token = task_run_var.set(None)
    try:
        if flow.flow_run_name is not None:
            _rename(store, flow, run, context)
        log_run_event(
            "begin",
            f"Beginning flow run {run.name!r} for flow {flow.name!r}",
            subflow=run.parent_flow_run_id is not None,
        )
        yield
    except TerminationSignal:
        message = "Execution was interrupted by its parent flow run timing out."
        _finish_interrupted(store, flow, run, _crashed_state(message))
        raise
    except BaseException as error:
        crashed = _crashed_state(_records.crash_message(error), error)
        _finish_interrupted(store, flow, run, crashed)
        raise
    finally:
        task_run_var.reset(task_token)
        flow_run_var.reset(flow_token)


def _rename(
    store: RunStore, flow: Flow[..., Any], run: _records.FlowRun, context: FlowRunContext
) -> None:
    """Name the run by its flow_run_name, from the validated parameters and inside the
    run (a callable may read ``gnomon.runtime``), as Prefect does."""
    run.name = context.flow_run_name = custom_flow_run_name(flow, context.parameters)
    store.update_flow_run(run.id, name=run.name)


def _suspended(store: RunStore, run: _records.FlowRun, signal: Pause) -> State:
    """The run suspended itself (``suspend_flow_run``): its Suspended state is stored
    already; what it recorded before is committed, and no hook runs (it has not ended)."""
    store.commit_now()
    run.state = signal.state
    return signal.state


def _finish_interrupted(
    store: RunStore, flow: Flow[..., Any], run: _records.FlowRun, crashed: State
) -> None:
    """End a run that an exception or signal interrupted as ``crashed``, unless it had
    reached its final state first (the signal came while its hooks ran, or while its
    final state was being committed): that state stands."""
    if run.state is None or not run.state.is_final():
        _finish(store, flow, run, crashed)


def _crashed_state(message: str, error: BaseException | None = None) -> State:
    crash = CrashedRun(message)
    if error is not None:
        crash.__cause__ = error
    return Crashed(message, data=crash)


def _default_runner() -> Any:
    from gnomon.flows._runners import ThreadPoolTaskRunner

    return ThreadPoolTaskRunner()


def _run_attempts(
    store: RunStore,
    flow: Flow[..., Any],
    run: _records.FlowRun,
    context: FlowRunContext,
    attempt_steps: AttemptSteps,
    claimed: State | None = None,
) -> Generator[Any, None, State]:
    """Run the attempts to a final state, retrying as the flow says. Each attempt's steps
    yield what a generator flow yields (nothing, for any other flow) and return its state."""
    clock = get_clock()
    runner = context.task_runner
    while True:
        attempt = run.run_count = context.attempt
        if attempt == 1 and claimed is not None:
            running = run.state = claimed
            run.start_time = claimed.timestamp
        else:
            running = Running() if attempt == 1 else Retrying()
            extra: FlowRunChanges = {"run_count": attempt}
            if attempt == 1:
                extra["start_time"] = run.start_time = running.timestamp
            _record(store, run, running, **extra)
        _records.run_hooks(flow.on_running_hooks, flow, run, running)
        with runner:
            state = yield from attempt_steps(flow, context)
        if not (state.is_failed() and attempt <= flow.retries):
            return _finish(store, flow, run, state)
        delay = flow.retry_delay_seconds
        store.add_state(_records.state_row(state, attempt, run.id, None))
        waiting = AwaitingRetry(
            f"Retry {attempt}/{flow.retries} will start {round(delay, 3):g} second(s) from now"
        )
        _record(store, run, waiting, **_records.error_fields(_records.state_error(state)))
        from gnomon.flows._logging import engine_logger

        engine_logger().info(f"Flow run failed: {state.message} - {waiting.message}")
        clock.sleep(delay)
        context.attempt += 1


def _attempt(flow: Flow[..., Any], context: FlowRunContext) -> Generator[Any, None, State]:
    return _body_state(flow, context)
    yield  # a generator that yields nothing: run_attempts' steps of a plain flow


def _body_state(flow: Flow[..., Any], context: FlowRunContext) -> State:
    if context.log_prints:
        from gnomon.flows._logging import install_print_redirect

        install_print_redirect()

    def body() -> Any:
        result = call_with_parameters(flow.fn, context.parameters)
        return asyncio.run(result) if flow.isasync else result

    timeout = flow.timeout_seconds
    try:
        if timeout is None:
            value = body()
        else:
            value = call_with_deadline(
                body,
                timeout,
                lambda: FlowRunTimeoutError(f"Flow run exceeded timeout of {timeout} second(s)"),
            )
    except FlowRunTimeoutError as error:
        return TimedOut(str(error), data=error)
    except Exception as error:
        return Failed(
            f"Flow run encountered an exception: {type(error).__name__}: {error}", data=error
        )
    return return_value_to_state(resolve_futures_to_states(value))


def _record(
    store: RunStore, run: _records.FlowRun, state: State, **values: Unpack[FlowRunChanges]
) -> None:
    run.state = state
    state.state_details.flow_run_id = run.id
    store.settle_flow_run(
        run.id,
        {**_records.state_columns(state), **values},
        _records.state_row(state, run.run_count, run.id, None),
    )


def _finish(store: RunStore, flow: Flow[..., Any], run: _records.FlowRun, state: State) -> State:
    from gnomon.flows._logging import engine_logger, log_run_event

    extra: FlowRunChanges = {
        "end_time": state.timestamp,
        **_records.error_fields(_records.state_error(state)),
    }
    if state.is_completed() and flow.persist_result:
        from gnomon.flows._results import get_result_store

        extra["result_ref"] = get_result_store().write(
            run.id, state.result(_sync=True), state.timestamp, None
        )
    _record(store, run, state, **extra)
    if state.is_completed():
        log_run_event(
            "end",
            f"Finished in state {state}",
            subflow=run.parent_flow_run_id is not None,
            state=state.name,
        )
    else:
        engine_logger().error(
            f"Finished in state {state}", state=state.name, exc_info=_records.state_error(state)
        )
    _commit_final_state(store, run.id, state)
    hooks = {
        StateType.COMPLETED: flow.on_completion_hooks,
        StateType.FAILED: flow.on_failure_hooks,
        StateType.CRASHED: flow.on_crashed_hooks,
        StateType.CANCELLED: flow.on_cancellation_hooks,
    }.get(state.type, [])
    _records.run_hooks(hooks, flow, run, state)
    return state


MAX_FINAL_STATE_RETRY_DELAY = 5.0

# Told (with the run's id, its final state, and True or False) when a finished run's final
# state starts waiting for the store and when the wait ends (stored, or given up): a
# daemon's worker tells its pool, which meanwhile neither times the run out nor cancels it,
# as its code has finished (see ``daemon._worker``). The run's hooks run after the wait.
_final_state_waits: list[Callable[[str, State, bool], None]] = []


def on_final_state_wait(callback: Callable[[str, State, bool], None]) -> None:
    """Call ``callback(flow_run_id, state, True)`` whenever a run in this process finished
    but its final state could not be stored at once (``_commit_final_state`` waits for the
    store), and ``callback(flow_run_id, state, False)`` when that wait ends."""
    _final_state_waits.append(callback)


def _tell_waits(flow_run_id: str, state: State, waiting: bool) -> None:
    from gnomon.flows._logging import engine_logger

    for callback in _final_state_waits:
        try:
            callback(flow_run_id, state, waiting)
        except Exception:  # the daemon gone, say: the wait itself must go on
            engine_logger().warning("could not tell the final state's wait", exc_info=True)


def _commit_final_state(store: RunStore, flow_run_id: str, state: State) -> None:
    """Commit the run's final state (and all recorded before it), waiting out a store that
    cannot be written (a database restarting, failing over, locked) for up to the
    ``final_state_patience`` setting: a run that finished is not given up for a moment's
    outage. The rows stay queued meanwhile, never dropped: ``StoreWriteError`` means the
    database is unavailable, not the rows wrong."""
    from gnomon.store import StoreWriteError

    try:
        store.commit_now()
        return
    except StoreWriteError as error:
        failure = error
    _tell_waits(flow_run_id, state, True)
    try:
        _wait_for_final_state(store, state, failure)
    finally:
        _tell_waits(flow_run_id, state, False)


def _wait_for_final_state(store: RunStore, state: State, failure: Exception) -> None:
    from gnomon._settings import get_settings
    from gnomon.flows._logging import engine_logger
    from gnomon.store import StoreWriteError

    patience = get_settings().final_state_patience
    clock = get_clock()
    started = time.monotonic()
    engine_logger().warning(
        f"Finished in state {state}; the store cannot be written ({failure}): retrying"
        f" for up to {patience:g} s"
    )
    delay = 0.1
    while (left := patience - (time.monotonic() - started)) > 0:
        clock.sleep(min(delay, left))
        delay = min(delay * 2, MAX_FINAL_STATE_RETRY_DELAY)
        try:
            store.flush(timeout=max(left, 0.1))
        except StoreWriteError as error:
            failure = error
            continue
        engine_logger().info(
            f"The final state {state.name} was stored after {time.monotonic() - started:.1f} s"
        )
        return
    raise failure


def load_flow(entrypoint: str, *, fresh: bool = False) -> Flow[..., Any]:
    """Import the flow named by ``module:name`` or ``path/to/file.py:name``.

    A module is imported once per process; ``fresh`` executes it again, so that a config
    reload checks parameters against the flow code as it is now.
    """
    from gnomon.flows._flow import Flow

    if not fresh and (loaded := _loaded_flows.get(entrypoint)) is not None:
        return loaded
    target, _, name = entrypoint.rpartition(":")
    if not target or not name:
        raise ValueError(
            f"flow entrypoint {entrypoint!r} must look like 'module:function' or 'file.py:function'"
        )
    if target.endswith(".py"):
        module = _import_flow_file(Path(target), fresh=fresh)
    else:
        # As in Prefect, a module is also looked for in the working directory (a worker
        # started as a console script does not have it on sys.path).
        cwd = os.getcwd()
        sys.path.insert(0, cwd)
        try:
            module = importlib.import_module(target)
            if fresh:
                module = importlib.reload(module)
        finally:
            sys.path.remove(cwd)
    obj: Any = module
    for part in name.split("."):
        obj = getattr(obj, part)
    if not isinstance(obj, Flow):
        raise TypeError(f"{entrypoint!r} is {type(obj).__name__}, not a @flow")
    if not target.endswith(".py") or Path(target).is_absolute():  # not relative to the cwd
        _loaded_flows[entrypoint] = obj
    return obj


# Flows loaded by entrypoints that mean the same in any working directory: a worker loads its
# flow once per run, and finding it again (a realpath of the file, a hash) cost 5% of a
# trivial run's CPU.
_loaded_flows: dict[str, Flow[..., Any]] = {}


# Set while a flow file's module-level code runs under gnomon's import: a script serving its
# flows (``gnomon.serve``) asks it, so that its top-level ``serve()`` call, which a missing
# ``if __name__ == "__main__":`` guard leaves there, does nothing in the workers, the worker
# template and the flow check, which import the script to run or check its flows.
_importing_flow_file: ContextVar[bool] = ContextVar("gnomon_importing_flow_file", default=False)


def importing_flow_file() -> bool:
    """Whether this code runs as part of gnomon importing a flow file (see above)."""
    return _importing_flow_file.get()


def _import_flow_file(path: Path, *, fresh: bool = False) -> Any:
    """The module of a flow file, imported once per process like any other module.

    A worker preloads its deployments' flow files; running one must not execute the file's
    module-level code again.
    """
    resolved = path.resolve()
    digest = hashlib.sha1(str(resolved).encode(), usedforsecurity=False).hexdigest()[:16]
    module_name = f"gnomon_flow_{digest}"
    if module_name in sys.modules and not fresh:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, resolved)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import flow file {str(path)!r}")
    module = importlib.util.module_from_spec(spec)
    # As in Prefect, a flow file can import the modules beside it.
    if str(resolved.parent) not in sys.path:
        sys.path.insert(0, str(resolved.parent))
    sys.modules[module_name] = module
    token = _importing_flow_file.set(True)
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]  # a failed import is not cached: the next call retries
        raise
    finally:
        _importing_flow_file.reset(token)
    return module


def execute_flow_run(flow_run_id: str, return_state: bool = True) -> Any:
    """Run the stored flow run ``flow_run_id`` in this process: what a worker process does.

    The run is claimed first (it must be Scheduled or Pending; this process's pid is recorded
    as its ``worker_pid``); a flow that then cannot be loaded leaves it Crashed.
    """
    state = execute_stored_run(flow_run_id)[1]
    return state if return_state else call_result(state)


def execute_stored_run(
    flow_run_id: str, claimed: Callable[[], None] | None = None
) -> tuple[_records.FlowRun, State]:
    """``execute_flow_run``, also returning the run as it went (start time, attempts, name),
    which a daemon worker reports without reading the run back. ``claimed`` is called
    once the run is claimed, before its flow is loaded (a worker changes user there)."""
    from gnomon.flows._logging import configure_logging, set_log_deployment
    from gnomon.store import get_store

    configure_logging()
    store = get_store()
    running = Running()
    row = store.claim_flow_run(flow_run_id, running.timestamp, worker_pid=os.getpid())
    set_log_deployment(row.deployment_name if row is not None else None)
    if row is None:
        current = store.read_flow_run(flow_run_id)
        if current is None:
            raise ObjectNotFound(f"no flow run with id {flow_run_id!r}")
        raise FlowRunNotRunnable(
            f"flow run {flow_run_id} is {current.state_name}, not Scheduled or Pending; "
            "it was already started"
        )
    if claimed is not None:
        claimed()
    try:
        flow = load_flow(row.entrypoint or "")
    except BaseException as error:
        message = f"the flow could not be loaded: {type(error).__name__}: {error}"
        record_crashed(store, flow_run_id, message, error)
        raise
    try:
        parameters = _stored_run_parameters(flow, row)
    except ParameterBindError as error:
        record_crashed(store, flow_run_id, str(error), error)
        raise
    run = _start_existing(store, flow, row, parameters, running)
    if flow.isgenerator:  # a worker runs it to its end; the values go nowhere, as in Prefect
        from gnomon.flows._generators import run_stored_generator

        return run, run_stored_generator(store, flow, run, parameters, running)
    state = _run_validated(store, flow, run, parameters, claimed=running)
    return run, state


def _stored_run_parameters(flow: Flow[..., Any], row: ClaimedRun) -> dict[str, Any]:
    """The stored run's parameters bound to the flow with its defaults, as a direct call's."""
    stored = dict(row.parameters or {})
    remember_secrets(stored)  # a bind error quotes them
    return bind_named(flow.fn, stored, flow.bound)


def record_crashed(store: RunStore, flow_run_id: str, message: str, error: BaseException) -> None:
    """Record Crashed, with ``error``, a stored run the engine could not start or finish,
    unless it has a final state already: it must not stay Scheduled, Pending or Running."""
    from gnomon.store import utcnow

    store.set_run_state(
        flow_run_id,
        StateType.CRASHED,
        StateName.CRASHED,
        _records.stored_text(message),
        only_if_active=True,
        end_time=utcnow(),
        **_records.error_fields(error),
    )


def _start_existing(
    store: RunStore,
    flow: Flow[..., Any],
    row: ClaimedRun,
    parameters: dict[str, Any],
    running: State,
) -> _records.FlowRun:
    """The claimed run, named; its history up to Running was recorded by its creator and
    its claim."""
    run = _records.FlowRun(
        id=row.id,
        name=row.name or random_run_name(),
        flow_name=flow.name,
        parameters=_stored_parameters(flow, parameters),
        run_count=row.run_count or 0,
        tags=list(row.tags or []),
        parent_flow_run_id=row.parent_flow_run_id,
        state=running,
        start_time=row.start_time,
    )
    store.update_flow_run(
        run.id,
        name=run.name,
        flow_name=flow.name,
        flow_version=flow.version,
        parameters=run.parameters,  # with the defaults, as a direct call's
    )
    return run
