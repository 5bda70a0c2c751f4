"""``@task`` and the Task object, with Prefect 3's options and defaults."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from datetime import timedelta
from functools import update_wrapper
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from gnomon.exceptions import MappingLengthMismatch, MappingMissingIterable
from gnomon.flows import _cache
from gnomon.flows._annotations import allow_failure, quote, unmapped
from gnomon.flows._bind import MethodBinding, call_parameters, unwrap_method, with_defaults

if TYPE_CHECKING:
    from gnomon.flows._futures import PrefectFuture, PrefectFutureList
    from gnomon.states import State

P = ParamSpec("P")
R = TypeVar("R")

_NOT_SET: Any = object()
MAX_RETRY_DELAYS = 50


class Task(MethodBinding, Generic[P, R]):
    """A function whose calls become recorded task runs, with retries, caching and timeouts."""

    def __init__(
        self,
        fn: Callable[P, R],
        name: str | None = None,
        description: str | None = None,
        tags: Iterable[str] | None = None,
        version: str | None = None,
        cache_policy: _cache.CachePolicy | None = _NOT_SET,
        cache_key_fn: Callable[[Any, dict[str, Any]], str | None] | None = None,
        cache_expiration: timedelta | None = None,
        task_run_name: str | Callable[..., str] | None = None,
        retries: int | None = None,
        retry_delay_seconds: float | list[float] | Callable[[int], list[float]] | None = None,
        retry_jitter_factor: float | None = None,
        persist_result: bool | None = None,
        timeout_seconds: float | None = None,
        log_prints: bool | None = None,
        refresh_cache: bool | None = None,
        on_completion: list[Callable[..., Any]] | None = None,
        on_failure: list[Callable[..., Any]] | None = None,
        retry_condition_fn: Callable[..., bool] | None = None,
        on_commit: list[Callable[..., Any]] | None = None,
        on_rollback: list[Callable[..., Any]] | None = None,
        on_running: list[Callable[..., Any]] | None = None,
    ) -> None:
        fn, self.method_kind = unwrap_method(fn)
        if not callable(fn):
            raise TypeError("@task must decorate a function")
        update_wrapper(self, fn)
        self.fn = fn
        # As in Prefect, an async generator is both async and a generator.
        self.isgenerator = inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn)
        self.isasync = inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn)
        self.name = name or fn.__name__
        self.description = description or inspect.getdoc(fn)
        self.tags = frozenset(tags or ())
        self.version = version
        self.task_key = f"{fn.__module__}.{fn.__qualname__}"
        self.task_run_name = task_run_name
        self.retries = retries or 0
        if self.retries < 0:
            raise ValueError(f"task {self.name!r}: retries must be >= 0, got {retries!r}")
        self.retry_delay_seconds = _retry_delays(self.name, retry_delay_seconds, self.retries)
        if retry_jitter_factor is not None and retry_jitter_factor < 0:
            raise ValueError(f"task {self.name!r}: retry_jitter_factor must be >= 0")
        self.retry_jitter_factor = retry_jitter_factor
        self.retry_condition_fn = retry_condition_fn
        self.timeout_seconds = float(timeout_seconds) if timeout_seconds else None
        self.log_prints = log_prints
        self.refresh_cache = refresh_cache
        self.cache_expiration = cache_expiration
        self.cache_key_fn = cache_key_fn
        self._cache_policy_arg = cache_policy
        self.cache_policy, self.persist_result = _cache_settings(
            cache_policy, cache_key_fn, persist_result
        )
        # Neither persistence nor caching asked for: the flow's ``persist_result`` decides,
        # as in Prefect (``_engine.persists``).
        self.inherits_persistence = (
            persist_result is None and cache_key_fn is None and cache_policy is _NOT_SET
        )
        self.on_completion_hooks = list(on_completion or [])
        self.on_failure_hooks = list(on_failure or [])
        self.on_commit_hooks = list(on_commit or [])
        self.on_rollback_hooks = list(on_rollback or [])
        self.on_running_hooks = list(on_running or [])

    @property
    def caches(self) -> bool:
        """True when calls look up and store cache records (needs persisted results)."""
        return bool(self.persist_result) and not isinstance(self.cache_policy, _cache._NoCache)

    def __call__(
        self, *args: Any, return_state: bool = False, wait_for: Any = None, **kwargs: Any
    ) -> Any:
        """Run the task now, in this thread; returns its result (or its state).

        A generator task returns a generator at once, as a generator flow does."""
        from gnomon.flows._engine import TaskRunPlan, run_task_plan

        parameters = call_parameters(self.fn, args, kwargs, bound=self.bound)
        if self.isgenerator:
            from gnomon.flows._generators import generator_task_call

            return generator_task_call(self, parameters, wait_for, return_state)
        if self.isasync:
            return _async_call(self, parameters, wait_for, return_state)
        plan = TaskRunPlan.create(self, parameters, wait_for)
        state = run_task_plan(plan)
        return state if return_state else call_result(state)

    def submit(
        self, *args: Any, return_state: bool = False, wait_for: Any = None, **kwargs: Any
    ) -> PrefectFuture[R]:
        """Run the task on the flow's task runner; returns a future at once."""
        from gnomon.flows._engine import current_task_runner

        parameters = call_parameters(self.fn, args, kwargs, bound=self.bound)
        future = current_task_runner().submit(self, parameters, wait_for)
        if return_state:
            future.wait()
            return future.state  # type: ignore[return-value]
        return future

    def map(
        self, *args: Any, return_state: bool = False, wait_for: Any = None, **kwargs: Any
    ) -> PrefectFutureList[R]:
        """Submit one run per element of the iterable arguments (``unmapped`` ones are reused)."""
        from gnomon.flows._engine import current_task_runner

        # As in Prefect, defaults are not mapped over (each run gets them whole), nor is
        # the bound instance or class.
        given = call_parameters(self.fn, args, kwargs, bound=self.bound, apply_defaults=False)
        if (name := self.bound_parameter) is not None:
            given[name] = unmapped(given[name])
        runs = [with_defaults(self.fn, run) for run in expand_map_parameters(self.name, given)]
        futures = current_task_runner().map(self, runs, wait_for)
        if return_state:
            futures.wait()
            return [future.state for future in futures]  # type: ignore[return-value]
        return futures

    def with_options(self, **options: Any) -> Task[P, R]:
        """A copy of this task with some options changed."""
        current: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "tags": self.tags,
            "version": self.version,
            "cache_policy": self._cache_policy_arg,
            "cache_key_fn": self.cache_key_fn,
            "cache_expiration": self.cache_expiration,
            "task_run_name": self.task_run_name,
            "retries": self.retries,
            "retry_delay_seconds": self.retry_delay_seconds,
            "retry_jitter_factor": self.retry_jitter_factor,
            "persist_result": self.persist_result,
            "timeout_seconds": self.timeout_seconds,
            "log_prints": self.log_prints,
            "refresh_cache": self.refresh_cache,
            "on_completion": self.on_completion_hooks,
            "on_failure": self.on_failure_hooks,
            "retry_condition_fn": self.retry_condition_fn,
            "on_commit": self.on_commit_hooks,
            "on_rollback": self.on_rollback_hooks,
            "on_running": self.on_running_hooks,
        }
        current.update(options)
        return self.keep_binding(Task(self.fn, **current))

    def on_completion(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        self.on_completion_hooks.append(fn)
        return fn

    def on_failure(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        self.on_failure_hooks.append(fn)
        return fn

    def on_running(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Call ``fn(task, task_run, state)`` each time a run of this task enters Running
        (each attempt), as Prefect's ``on_running``."""
        self.on_running_hooks.append(fn)
        return fn

    def on_commit(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Call ``fn(transaction)`` when a completed run of this task commits: at once
        outside a transaction, else when the transaction around it commits."""
        self.on_commit_hooks.append(fn)
        return fn

    def on_rollback(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Call ``fn(transaction)`` when the transaction a completed run of this task
        belongs to rolls back (a later task in it raised)."""
        self.on_rollback_hooks.append(fn)
        return fn

    def __repr__(self) -> str:
        return f"Task(name={self.name!r})"


async def _async_call(
    task: Task[..., Any], parameters: dict[str, Any], wait_for: Any, return_state: bool
) -> Any:
    import asyncio

    from gnomon.flows._engine import TaskRunPlan, run_task_plan

    plan = TaskRunPlan.create(task, parameters, wait_for)
    state = await asyncio.to_thread(run_task_plan, plan)
    return state if return_state else call_result(state)


def _retry_delays(name: str, value: Any, retries: int) -> float | list[float]:
    if value is None:
        return 0.0
    if callable(value):
        value = value(retries)
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"task {name!r}: retry_delay_seconds must be >= 0, got {value!r}")
        return float(value)
    delays = [float(v) for v in value]
    if len(delays) > MAX_RETRY_DELAYS:
        raise ValueError(f"task {name!r}: retry_delay_seconds can have at most 50 entries")
    if any(d < 0 for d in delays):
        raise ValueError(f"task {name!r}: retry_delay_seconds must be >= 0, got {value!r}")
    return delays


def _cache_settings(
    cache_policy: Any, cache_key_fn: Any, persist_result: bool | None
) -> tuple[_cache.CachePolicy, bool]:
    """The effective cache policy and persistence, by Prefect 3's rules.

    An explicit cache policy or ``cache_key_fn`` turns result persistence on; without one,
    results are not persisted and calls are not cached (Prefect's default);
    ``persist_result=False`` turns caching off.
    """
    if persist_result is False:
        return _cache.NONE, False
    if cache_key_fn is not None:
        return _cache.CacheKeyFnPolicy(cache_key_fn), True
    if cache_policy is _NOT_SET:
        return _cache.DEFAULT, bool(persist_result)
    if cache_policy is None or isinstance(cache_policy, _cache._NoCache):
        return _cache.NONE, bool(persist_result)
    return cache_policy, True if persist_result is None else persist_result


def expand_map_parameters(task_name: str, parameters: dict[str, Any]) -> list[dict[str, Any]]:
    """One parameter dict per mapped run: iterables are zipped, everything else repeated."""
    from gnomon.flows._futures import PrefectFuture

    iterables: dict[str, list[Any]] = {}
    static: dict[str, Any] = {}
    for key, given in parameters.items():
        value = given.result() if isinstance(given, PrefectFuture) else given
        if isinstance(value, unmapped):
            static[key] = value.value
        elif isinstance(value, (allow_failure, quote)) and _is_iterable(value.value):
            iterables[key] = [type(value)(item) for item in value.value]
        elif _is_iterable(value):
            iterables[key] = list(value)
        else:
            static[key] = value
    if not iterables:
        raise MappingMissingIterable(
            f"task {task_name!r}: .map() needs at least one iterable argument; got "
            f"{sorted(parameters)!r}"
        )
    lengths = {key: len(values) for key, values in iterables.items()}
    if len(set(lengths.values())) > 1:
        raise MappingLengthMismatch(
            f"task {task_name!r}: .map() got iterables of different lengths: {lengths}"
        )
    count = next(iter(lengths.values()))
    return [
        {**static, **{key: values[i] for key, values in iterables.items()}} for i in range(count)
    ]


def _is_iterable(value: Any) -> bool:
    if isinstance(value, (str, bytes, bytearray)) or hasattr(value, "read"):
        return False
    try:
        iter(value)
    except TypeError:
        return False
    return True


@overload
def task(__fn: Callable[P, R]) -> Task[P, R]: ...
@overload
def task(**options: Any) -> Callable[[Callable[P, R]], Task[P, R]]: ...


def task(__fn: Callable[P, R] | None = None, **options: Any) -> Any:
    """Decorate a function as a task, bare (``@task``) or with options (``@task(retries=2)``)."""
    if __fn is not None:
        return Task(__fn, **options)
    return lambda fn: Task(fn, **options)


def call_result(state: State) -> Any:
    """What a call of a task without ``return_state`` gives back for its final ``state``:
    a completed state its function returned, as it is (as Prefect's task call gives its
    function's return value), else the state's result."""
    if state.state_details.returned and state.is_completed():
        return state
    return state.result(_sync=True)
