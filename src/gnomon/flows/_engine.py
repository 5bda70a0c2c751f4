"""The task engine: one task call from Pending to a final state.

Pending is recorded when the call is made (or submitted); then inputs are resolved (waiting
for upstream futures), tag concurrency slots taken, the cache consulted, and the body run
once per attempt: Running, then Completed, or Failed / TimedOut followed by AwaitingRetry and
Retrying while retries remain. Hooks run once, on the final state.
"""

from __future__ import annotations

import asyncio
import math
import sys
import threading
import uuid
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, fields, is_dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from gnomon.exceptions import CrashedRun, TaskRunTimeoutError, TerminationSignal, UpstreamTaskError
from gnomon.flows import _records
from gnomon.flows._annotations import allow_failure, quote
from gnomon.flows._clock import get_clock
from gnomon.flows._context import (
    FlowRunContext,
    TaskRunContext,
    flow_run_var,
    tags_var,
    task_run_var,
)
from gnomon.flows._futures import PrefectFuture
from gnomon.flows._params import call_with_parameters
from gnomon.flows._timeouts import call_with_deadline
from gnomon.states import (
    AwaitingRetry,
    Cached,
    Cancelled,
    Completed,
    Crashed,
    Failed,
    NotReady,
    Pending,
    Retrying,
    Running,
    State,
    TimedOut,
)

if TYPE_CHECKING:
    from gnomon.flows._results import StoredResult
    from gnomon.flows._runners import TaskRunner
    from gnomon.flows._task import Task
    from gnomon.store import Store


def _store() -> Store:
    from gnomon.store import get_store

    return get_store()


@dataclass(slots=True, eq=False)
class TaskRunPlan:
    """A task call that has been recorded as Pending and waits to be run."""

    task: Task[..., Any]
    parameters: dict[str, Any]
    wait_for: list[Any] | None
    task_run_id: str
    name: str
    flow_run: FlowRunContext | None
    tags: frozenset[str]
    # What the run's future reports until it is final; the run may start before the
    # runner has made its future, so the state lives here rather than on the future.
    live_state: State = field(default_factory=Pending)

    @classmethod
    def create(
        cls, task: Task[..., Any], parameters: dict[str, Any], wait_for: Iterable[Any] | None
    ) -> TaskRunPlan:
        flow_run = flow_run_var.get()
        if flow_run is None and (task_run := task_run_var.get()) is not None:
            flow_run = task_run.flow_run
        key = flow_run.next_dynamic_key(task.task_key) if flow_run else _standalone_key()
        plan = cls(
            task=task,
            parameters=parameters,
            wait_for=list(wait_for) if wait_for else None,
            task_run_id=uuid.uuid4().hex,
            name=f"{task.name}-{key}",
            flow_run=flow_run,
            tags=task.tags | tags_var.get(),
        )
        state = Pending()
        store = _store()
        store.insert_task_run(
            {
                "id": plan.task_run_id,
                "flow_run_id": flow_run.flow_run_id if flow_run else None,
                "task_key": task.task_key,
                "name": plan.name,
                "dynamic_key": str(key),
                "tags": sorted(plan.tags),
                "run_count": 0,
                "created": state.timestamp,
                **_records.state_columns(state),
            }
        )
        store.add_state(_records.state_row(state, 0, plan.flow_run_id, plan.task_run_id))
        return plan

    @property
    def flow_run_id(self) -> str | None:
        return self.flow_run.flow_run_id if self.flow_run else None

    def set_live_state(self, state: State) -> None:
        self.live_state = state


_standalone_counter = iter(range(1 << 62))
_standalone_lock = threading.Lock()


def _standalone_key() -> int:
    with _standalone_lock:
        return next(_standalone_counter)


def run_task_plan(plan: TaskRunPlan, parameters: dict[str, Any] | None = None) -> State:
    """Run a planned task call to its final state (or NotReady) and return that state.

    ``parameters`` are the already resolved inputs, when a process-pool worker runs the plan.
    """
    store = _store()
    task = plan.task
    if parameters is None:
        try:
            parameters = resolve_inputs(plan.parameters)
            wait_for_upstream(plan.wait_for)
        except UpstreamTaskError as error:
            state = NotReady(str(error), data=error)
            _record(store, plan, state, 0, **_records.error_fields(error))
            return state
    log_prints = task.log_prints
    if log_prints is None:
        log_prints = plan.flow_run.log_prints if plan.flow_run else False
    name = _run_name(task.task_run_name, parameters) or plan.name
    context = TaskRunContext(task, plan.task_run_id, name, plan.flow_run, parameters, 1, log_prints)
    token = task_run_var.set(context)
    try:
        if plan.tags:
            from gnomon.flows._concurrency import tag_slots

            with tag_slots(plan.tags):
                return _run_attempts(store, plan, context)
        return _run_attempts(store, plan, context)
    except TerminationSignal:
        state = Cancelled("Interrupted: the flow run it belongs to ended (timed out)")
        _record(store, plan, state, context.attempt, end_time=state.timestamp)
        raise
    except BaseException as error:
        state = _crashed(error)
        _record(
            store,
            plan,
            state,
            context.attempt,
            end_time=state.timestamp,
            **_records.error_fields(error),
        )
        store.flush()
        raise
    finally:
        task_run_var.reset(token)


def _crashed(error: BaseException) -> State:
    message = _records.crash_message(error)
    return Crashed(message, data=CrashedRun(message))


def _run_attempts(store: Store, plan: TaskRunPlan, context: TaskRunContext) -> State:
    task = plan.task
    clock = get_clock()
    cache_key = _compute_cache_key(plan, context) if task.caches else None
    if cache_key is not None and not task.refresh_cache:
        hit = _read_cache(cache_key, clock.now())
        if hit is not None:
            state = Cached(data=hit.value)
            return _finish(store, plan, context, state, cache_key=cache_key)
    while True:
        attempt = context.attempt
        running = Running() if attempt == 1 else Retrying()
        extra: dict[str, Any] = {"run_count": attempt}
        if attempt == 1:
            extra["start_time"] = running.timestamp
            if context.task_run_name != plan.name:
                extra["name"] = context.task_run_name
        _record(store, plan, running, attempt, **extra)
        state = _attempt(task, context)
        if not (state.is_failed() and _should_retry(task, context, state)):
            return _finish(store, plan, context, state, cache_key=cache_key)
        delay = retry_delay(task, attempt, clock.random)
        store.add_state(_records.state_row(state, attempt, plan.flow_run_id, plan.task_run_id))
        waiting = AwaitingRetry(
            f"Retry {attempt}/{task.retries} will start {round(delay, 3):g} second(s) from now"
        )
        _record(store, plan, waiting, attempt, **_records.error_fields(_records.state_error(state)))
        _log_retry(context, state, waiting)
        clock.sleep(delay)
        context.attempt += 1


def _attempt(task: Task[..., Any], context: TaskRunContext) -> State:
    try:
        value = _call_body(task, context)
    except TaskRunTimeoutError as error:
        return TimedOut(str(error), data=error)
    except Exception as error:
        return Failed(
            f"Task run encountered an exception {type(error).__name__}: {error}", data=error
        )
    if isinstance(value, State):
        return value
    return Completed(data=value)


def _call_body(task: Task[..., Any], context: TaskRunContext) -> Any:
    if context.log_prints:
        from gnomon.flows._logging import install_print_redirect

        install_print_redirect()

    def body() -> Any:
        result = call_with_parameters(task.fn, context.parameters)
        return asyncio.run(result) if task.isasync else result

    timeout = task.timeout_seconds
    if timeout is None:
        return body()
    return call_with_deadline(
        body,
        timeout,
        lambda: TaskRunTimeoutError(f"Task run exceeded timeout of {timeout} second(s)"),
    )


def _should_retry(task: Task[..., Any], context: TaskRunContext, state: State) -> bool:
    if context.attempt > task.retries:
        return False
    if task.retry_condition_fn is None:
        return True
    return bool(task.retry_condition_fn(task, _task_run_view(context, state), state))


def retry_delay(task: Task[..., Any], attempt: int, random: Any) -> float:
    """The delay before retry number ``attempt`` (1-based), with jitter if configured."""
    delays = task.retry_delay_seconds
    if isinstance(delays, list):
        delay = delays[min(attempt, len(delays)) - 1] if delays else 0.0
    else:
        delay = delays
    if task.retry_jitter_factor and delay > 0:
        delay = clamped_poisson_interval(delay, task.retry_jitter_factor, random)
    return delay


def clamped_poisson_interval(average: float, clamping_factor: float, random: Any) -> float:
    """Prefect's jitter: an exponential sample around ``average``, clamped by the factor.

    The bounds are Prefect's own, so jittered delays are distributed as they are there.
    """
    k = 1 + clamping_factor
    lower = average * math.log2(2**k / (2**k - 1)) if k < 50 else 0.0
    upper = average * k
    lower_cdf = 1 - math.exp(-lower / average)
    upper_cdf = 1 - math.exp(-upper / average)
    uniform = lower_cdf + (upper_cdf - lower_cdf) * random()
    return -math.log(max(1 - uniform, 1e-10)) * average


def _finish(
    store: Store, plan: TaskRunPlan, context: TaskRunContext, state: State, cache_key: str | None
) -> State:
    task = plan.task
    extra: dict[str, Any] = {"end_time": state.timestamp, "cache_key": cache_key}
    if state.is_completed() and state.name != "Cached" and task.persist_result:
        extra["result_ref"] = _write_result(plan, state, cache_key)
    extra.update(_records.error_fields(_records.state_error(state)))
    _record(store, plan, state, context.attempt, **extra)
    _log_final(context, state)
    hooks = task.on_completion_hooks if state.is_completed() else task.on_failure_hooks
    if hooks and state.is_final():
        _records.run_hooks(hooks, task, _task_run_view(context, state, cache_key), state)
    return state


def _record(store: Store, plan: TaskRunPlan, state: State, attempt: int, **values: Any) -> None:
    store.update_task_run(plan.task_run_id, **_records.state_columns(state), **values)
    store.add_state(_records.state_row(state, attempt, plan.flow_run_id, plan.task_run_id))
    plan.set_live_state(state)


def _task_run_view(
    context: TaskRunContext, state: State, cache_key: str | None = None
) -> _records.TaskRun:
    flow_run = context.flow_run
    return _records.TaskRun(
        id=context.task_run_id,
        name=context.task_run_name,
        flow_run_id=flow_run.flow_run_id if flow_run else None,
        task_key=context.task.task_key,
        run_count=context.attempt,
        tags=sorted(context.task.tags),
        state=state,
        cache_key=cache_key,
    )


def _run_name(template: Any, parameters: dict[str, Any]) -> str | None:
    if template is None:
        return None
    if callable(template):
        return str(template())
    return str(template).format(**parameters)


def _compute_cache_key(plan: TaskRunPlan, context: TaskRunContext) -> str | None:
    from gnomon.flows._cache import CacheInputs, UnhashableInputs

    flow_run = plan.flow_run
    call = CacheInputs(
        context=context,
        inputs=context.parameters,
        flow_parameters=flow_run.parameters if flow_run else {},
        flow_run_id=flow_run.flow_run_id if flow_run else None,
    )
    try:
        return plan.task.cache_policy.compute_key(call)
    except UnhashableInputs as error:
        from gnomon.flows._logging import engine_logger

        engine_logger().warning("task inputs cannot be hashed; running uncached", error=str(error))
        return None


def _read_cache(key: str, now: datetime) -> StoredResult | None:
    """The cache record for ``key``, or None on a miss (absent, expired or unverifiable)."""
    from gnomon.exceptions import ResultStorageError
    from gnomon.flows._results import get_result_store

    try:
        stored = get_result_store().read(key)
    except ResultStorageError as error:
        from gnomon.flows._logging import engine_logger

        engine_logger().warning("cache record ignored", key=key, reason=str(error))
        return None
    if stored is None or (stored.expiration is not None and stored.expiration <= now):
        return None
    return stored


def _write_result(plan: TaskRunPlan, state: State, cache_key: str | None) -> dict[str, str]:
    from datetime import timedelta

    from gnomon.flows._results import get_result_store

    expiration = plan.task.cache_expiration
    if isinstance(expiration, (int, float)):
        expiration = timedelta(seconds=expiration)
    expires = state.timestamp + expiration if expiration is not None else None
    key = cache_key or plan.task_run_id
    return get_result_store().write(
        key, state.data if state.data is not None else None, state.timestamp, expires
    )


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
        return state.data if not state.is_completed() else state.result()
    state = _upstream_state(value)
    if state is not None:
        if not state.is_completed():
            raise UpstreamTaskError(_upstream_message(value))
        return state.result()
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


def _log_retry(context: TaskRunContext, failed: State, waiting: State) -> None:
    from gnomon.flows._logging import engine_logger

    engine_logger().info(
        f"Task run failed: {failed.message} - {waiting.message}", state=failed.name
    )


def _log_final(context: TaskRunContext, state: State) -> None:
    from gnomon.flows._logging import engine_logger

    if state.is_failed() or state.is_crashed():
        error = _records.state_error(state)
        engine_logger().error(f"Finished in state {state}", state=state.name, exc_info=error)
    elif _debug_enabled():
        engine_logger().debug(f"Finished in state {state}", state=state.name)


def _debug_enabled() -> bool:
    import logging

    return logging.getLogger("gnomon.engine").isEnabledFor(logging.DEBUG)


_fallback_runner: TaskRunner | None = None
_fallback_lock = threading.Lock()


def current_task_runner() -> TaskRunner:
    """The flow run's task runner, or a shared thread pool for tasks submitted outside flows."""
    flow_run = flow_run_var.get()
    if flow_run is None and (task_run := task_run_var.get()) is not None:
        flow_run = task_run.flow_run
    if flow_run is not None and flow_run.task_runner is not None:
        return flow_run.task_runner
    global _fallback_runner
    with _fallback_lock:
        if _fallback_runner is None:
            import atexit

            from gnomon.flows._runners import ThreadPoolTaskRunner

            runner = ThreadPoolTaskRunner().__enter__()
            atexit.register(runner.__exit__, None, None, None)
            _fallback_runner = runner
        return _fallback_runner


def run_task_plan_in_process(plan: TaskRunPlan, processes: ProcessPoolExecutor) -> State:
    """Resolve the plan's inputs here, then run it in a worker process and return its state."""
    import cloudpickle

    store = _store()
    try:
        parameters = resolve_inputs(plan.parameters)
        wait_for_upstream(plan.wait_for)
    except UpstreamTaskError as error:
        state = NotReady(str(error), data=error)
        _record(store, plan, state, 0, **_records.error_fields(error))
        return state
    # The worker updates the Pending row this process inserted: it must be in the store first.
    store.flush()
    flow_run = plan.flow_run
    payload = cloudpickle.dumps(
        {
            "task": plan.task,
            "parameters": parameters,
            "task_run_id": plan.task_run_id,
            "name": plan.name,
            "tags": plan.tags,
            "flow_run": None
            if flow_run is None
            else {
                "flow_name": flow_run.flow.name,
                "flow_run_id": flow_run.flow_run_id,
                "flow_run_name": flow_run.flow_run_name,
                "parameters": flow_run.parameters,
                "log_prints": flow_run.log_prints,
            },
        }
    )
    plan.set_live_state(Running())
    final: State = cloudpickle.loads(processes.submit(_run_in_worker_process, payload).result())
    plan.set_live_state(final)
    return final


def _run_in_worker_process(payload: bytes) -> bytes:
    """Entry point in a process-pool worker: run one task plan, return its pickled state."""
    import types

    import cloudpickle

    from gnomon.flows._logging import configure_logging

    configure_logging()
    data = cloudpickle.loads(payload)
    flow_run = None
    if data["flow_run"] is not None:
        info = data["flow_run"]
        flow_run = FlowRunContext(
            flow=types.SimpleNamespace(name=info["flow_name"]),  # type: ignore[arg-type]
            flow_run_id=info["flow_run_id"],
            flow_run_name=info["flow_run_name"],
            parameters=info["parameters"],
            task_runner=None,  # type: ignore[arg-type]
            log_prints=info["log_prints"],
        )
    plan = TaskRunPlan(
        task=data["task"],
        parameters=data["parameters"],
        wait_for=None,
        task_run_id=data["task_run_id"],
        name=data["name"],
        flow_run=flow_run,
        tags=data["tags"],
    )
    token = flow_run_var.set(flow_run)
    try:
        state = run_task_plan(plan, parameters=data["parameters"])
    finally:
        flow_run_var.reset(token)
        _store().flush()
    try:
        return cloudpickle.dumps(state)
    except Exception:
        # The result or the exception cannot travel back; send its description instead.
        problem = RuntimeError(f"unpicklable {type(state.data).__name__}: {state.data!r}")
        if state.is_completed():
            # The caller's future raises this rather than returning it as the task's value.
            message = f"The task run's result cannot be returned from its worker process: {problem}"
            return cloudpickle.dumps(Failed(message, data=problem))
        state.data = problem
        return cloudpickle.dumps(state)
