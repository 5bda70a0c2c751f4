"""The task engine: one task call from Pending to a final state.

Pending is recorded when the call is made (or submitted); then inputs are resolved (waiting
for upstream futures), tag concurrency slots taken, the cache consulted, and the body run
once per attempt: Running, then Completed, or Failed / TimedOut followed by AwaitingRetry and
Retrying while retries remain. Hooks run once, on the final state.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import uuid
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from gnomon.exceptions import CrashedRun, TaskRunTimeoutError, TerminationSignal, UpstreamTaskError
from gnomon.flows import _records
from gnomon.flows._clock import get_clock
from gnomon.flows._context import (
    FlowRunContext,
    TaskRunContext,
    flow_run_var,
    tags_var,
    task_run_var,
)
from gnomon.flows._inputs import resolve_inputs, wait_for_upstream
from gnomon.flows._names import custom_task_run_name
from gnomon.flows._params import call_with_parameters
from gnomon.flows._steps import exhaust
from gnomon.flows._timeouts import call_with_deadline
from gnomon.flows._transactions import TaskTransaction, expiration_after
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
    StateName,
    TimedOut,
    returned_state,
)

if TYPE_CHECKING:
    from gnomon.flows._results import StoredResult
    from gnomon.flows._runners import TaskRunner
    from gnomon.flows._task import Task
    from gnomon.store import RunStore


def _store() -> RunStore:
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


AttemptSteps = Callable[["Task[..., Any]", TaskRunContext], Generator[Any, None, State]]


def run_task_plan(plan: TaskRunPlan, parameters: dict[str, Any] | None = None) -> State:
    """Run a planned task call to its final state (or NotReady) and return that state.

    ``parameters`` are the already resolved inputs, when a process-pool worker runs the plan.
    """
    return exhaust(task_run_steps(plan, _attempt, parameters))


def task_run_steps(
    plan: TaskRunPlan, attempt_steps: AttemptSteps, parameters: dict[str, Any] | None = None
) -> Generator[Any, None, State]:
    """``run_task_plan``'s steps, each attempt's given by ``attempt_steps`` (see ``_steps``)."""
    store = _store()
    task = plan.task
    if parameters is None:
        resolved = resolve_plan_inputs(store, plan)
        if isinstance(resolved, State):
            return resolved
        parameters = resolved
    log_prints = task.log_prints
    if log_prints is None:
        log_prints = plan.flow_run.log_prints if plan.flow_run else False
    context = TaskRunContext(
        task, plan.task_run_id, plan.name, plan.flow_run, parameters, 1, log_prints, plan.tags
    )
    token = task_run_var.set(context)
    try:
        if task.task_run_name is not None:  # inside the run, as Prefect names it
            context.task_run_name = custom_task_run_name(task, parameters)
        if plan.tags:
            from gnomon.flows._concurrency import tag_slots

            with tag_slots(plan.tags):
                return (yield from _run_attempts(store, plan, context, attempt_steps))
        return (yield from _run_attempts(store, plan, context, attempt_steps))
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


def resolve_plan_inputs(store: RunStore, plan: TaskRunPlan) -> dict[str, Any] | State:
    """The plan's arguments with upstream results filled in, or its recorded NotReady state
    when an upstream run did not complete."""
    try:
        parameters = resolve_inputs(plan.parameters)
        wait_for_upstream(plan.wait_for)
    except UpstreamTaskError as error:
        state = NotReady(str(error), data=error)
        _record(store, plan, state, 0, **_records.error_fields(error))
        return state
    return parameters


def persists(plan: TaskRunPlan) -> bool:
    """Whether the task call's result is persisted and cached: the task's own settings, or,
    where it has none, its flow's ``persist_result`` (Prefect's rule: a flow with
    ``persist_result=True`` caches its tasks by the default policy, keyed by the run, so a
    suspended run started again finds the results of the tasks it completed)."""
    task = plan.task
    if task.caches or not task.inherits_persistence or plan.flow_run is None:
        return task.caches
    return bool(plan.flow_run.flow.persist_result)


def _crashed(error: BaseException) -> State:
    message = _records.crash_message(error)
    return Crashed(message, data=CrashedRun(message))


def _run_attempts(
    store: RunStore, plan: TaskRunPlan, context: TaskRunContext, attempt_steps: AttemptSteps
) -> Generator[Any, None, State]:
    task = plan.task
    clock = get_clock()
    persisted = persists(plan)
    # A generator's values are not cached, as in Prefect: each call yields them anew.
    cache_key = _compute_cache_key(plan, context) if persisted and not task.isgenerator else None
    if cache_key is not None and not task.refresh_cache:
        hit = _read_cache(cache_key, clock.now())
        if hit is not None:
            state = Cached(data=hit.value)
            return _finish(store, plan, context, state, cache_key, persisted)
    while True:
        attempt = context.attempt
        running = Running() if attempt == 1 else Retrying()
        extra: dict[str, Any] = {"run_count": attempt}
        if attempt == 1:
            extra["start_time"] = running.timestamp
            if context.task_run_name != plan.name:
                extra["name"] = context.task_run_name
        _record(store, plan, running, attempt, **extra)
        if task.on_running_hooks:
            view = _task_run_view(context, running)
            _records.run_hooks(task.on_running_hooks, task, view, running)
        txn = task_transaction(task, cache_key)
        context.raised = False
        token = txn.enter()
        try:
            state = yield from attempt_steps(task, context)
        finally:
            txn.leave(token)
        if context.raised:
            txn.raised()
        if not (state.is_failed() and _should_retry(task, context, state)):
            return _finish(store, plan, context, state, cache_key, persisted, txn)
        delay = retry_delay(task, attempt, clock.random)
        store.add_state(_records.state_row(state, attempt, plan.flow_run_id, plan.task_run_id))
        waiting = AwaitingRetry(
            f"Retry {attempt}/{task.retries} will start {round(delay, 3):g} second(s) from now"
        )
        _record(store, plan, waiting, attempt, **_records.error_fields(_records.state_error(state)))
        _log_retry(context, state, waiting)
        clock.sleep(delay)
        context.attempt += 1


def _attempt(task: Task[..., Any], context: TaskRunContext) -> Generator[Any, None, State]:
    return _body_state(task, context)
    yield  # a generator that yields nothing: _run_attempts' steps of a plain task


def _body_state(task: Task[..., Any], context: TaskRunContext) -> State:
    """The attempt's state; ``context.raised`` says whether its body raised (which rolls
    back a transaction, where a returned Failed state does not)."""
    try:
        value = _call_body(task, context)
    except TaskRunTimeoutError as error:
        context.raised = True
        return TimedOut(str(error), data=error)
    except Exception as error:
        context.raised = True
        message = f"Task run encountered an exception {type(error).__name__}: {error}"
        return Failed(message, data=error)
    if isinstance(value, State):
        return returned_state(value)
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
    store: RunStore,
    plan: TaskRunPlan,
    context: TaskRunContext,
    state: State,
    cache_key: str | None,
    persisted: bool,
    txn: TaskTransaction | None = None,
) -> State:
    task = plan.task
    extra: dict[str, Any] = {"end_time": state.timestamp, "cache_key": cache_key}
    ran = state.is_completed() and state.name != StateName.CACHED
    if ran and (task.persist_result or persisted):
        extra["result_ref"] = _write_result(plan, state, cache_key)
    extra.update(_records.error_fields(_records.state_error(state)))
    _record(store, plan, state, context.attempt, **extra)
    if ran and txn is not None:  # commits now, or when the transaction around it does
        txn.completed(state, task)
    _log_final(context, state)
    hooks = task.on_completion_hooks if state.is_completed() else task.on_failure_hooks
    if hooks and state.is_final():
        _records.run_hooks(hooks, task, _task_run_view(context, state, cache_key), state)
    return state


def _record(store: RunStore, plan: TaskRunPlan, state: State, attempt: int, **values: Any) -> None:
    state.state_details.flow_run_id = plan.flow_run_id
    state.state_details.task_run_id = plan.task_run_id
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
        tags=sorted(context.tags),
        state=state,
        cache_key=cache_key,
    )


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
    from gnomon.flows._results import get_result_store

    return get_result_store().read_current(key, now)


def _write_result(plan: TaskRunPlan, state: State, cache_key: str | None) -> dict[str, str]:
    """The reference to the run's stored result. A cache record is written when the task's
    transaction commits (at once outside a transaction, never if it rolls back); a result
    without a cache key is written now, under the task run's id."""
    from gnomon.flows._results import get_result_store, result_ref

    if cache_key is not None:
        return result_ref(cache_key)
    expires = expiration_after(state.timestamp, plan.task.cache_expiration)
    return get_result_store().write(plan.task_run_id, state.data, state.timestamp, expires)


def task_transaction(task: Task[..., Any], cache_key: str | None) -> TaskTransaction:
    """A task attempt's own transaction: it writes the cache record, when there is one
    (``cache_key`` is None unless the call persists: see ``persists``)."""
    from gnomon.flows._results import get_result_store

    if cache_key is None:
        return TaskTransaction(None, None)
    return TaskTransaction(cache_key, get_result_store())


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
    # The logger is looked up once: getLogger takes logging's module lock, which every
    # worker thread finishing a task at the same moment would queue on.
    return _ENGINE_LOGGER.isEnabledFor(logging.DEBUG)


_ENGINE_LOGGER = logging.getLogger("gnomon.engine")


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
