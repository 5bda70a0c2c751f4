"""``@flow`` and the Flow object, with Prefect 3's options and defaults."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from functools import update_wrapper
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from gnomon.flows._bind import MethodBinding, call_parameters, unwrap_method
from gnomon.flows._params import ParameterValidator

if TYPE_CHECKING:
    from gnomon.flows._runners import TaskRunner

P = ParamSpec("P")
R = TypeVar("R")


class Flow(MethodBinding, Generic[P, R]):
    """A function whose calls become recorded flow runs."""

    def __init__(
        self,
        fn: Callable[P, R],
        name: str | None = None,
        version: str | None = None,
        flow_run_name: str | Callable[[], str] | None = None,
        retries: int | None = None,
        retry_delay_seconds: float | None = None,
        task_runner: TaskRunner | type[TaskRunner] | None = None,
        description: str | None = None,
        timeout_seconds: float | None = None,
        validate_parameters: bool = True,
        persist_result: bool | None = None,
        log_prints: bool | None = None,
        on_completion: list[Callable[..., Any]] | None = None,
        on_failure: list[Callable[..., Any]] | None = None,
        on_crashed: list[Callable[..., Any]] | None = None,
        on_cancellation: list[Callable[..., Any]] | None = None,
        on_running: list[Callable[..., Any]] | None = None,
    ) -> None:
        fn, self.method_kind = unwrap_method(fn)
        if not callable(fn):
            raise TypeError("@flow must decorate a function")
        update_wrapper(self, fn)
        self.fn = fn
        # As in Prefect, an async generator is both async and a generator.
        self.isgenerator = inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn)
        self.isasync = inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn)
        self.name = name or fn.__name__.replace("_", "-")
        self.version = version
        self.flow_run_name = flow_run_name
        self.retries = retries or 0
        if self.retries < 0:
            raise ValueError(f"flow {self.name!r}: retries must be >= 0, got {retries!r}")
        self.retry_delay_seconds = float(retry_delay_seconds or 0)
        if isinstance(task_runner, type):
            task_runner = task_runner()
        self.task_runner = task_runner
        self.description = description or inspect.getdoc(fn)
        self.timeout_seconds = float(timeout_seconds) if timeout_seconds else None
        self.should_validate_parameters = validate_parameters
        self.persist_result = persist_result
        self.log_prints = log_prints
        self.on_completion_hooks = list(on_completion or [])
        self.on_failure_hooks = list(on_failure or [])
        self.on_crashed_hooks = list(on_crashed or [])
        self.on_cancellation_hooks = list(on_cancellation or [])
        self.on_running_hooks = list(on_running or [])
        self._validator = ParameterValidator(fn, self.name)

    @property
    def entrypoint(self) -> str:
        """Where a worker process can import this flow from: ``module:name`` or ``file.py:name``."""
        module = self.fn.__module__
        if module == "__main__" or module is None:
            file = getattr(sys.modules.get(module or "__main__"), "__file__", None)
            if file:
                return f"{Path(file).resolve()}:{self.fn.__qualname__}"
        return f"{module}:{self.fn.__qualname__}"

    def validate_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        return self._validator.validate(parameters)

    def parameter_schema(self) -> dict[str, Any]:
        """The JSON schema of the flow's parameters, from its signature and type hints;
        with ``validate_parameters=False`` the names only (runs take any values)."""
        schema = self._validator.json_schema(typed=self.should_validate_parameters)
        if (bound := self.bound_parameter) is not None:  # a classmethod's cls: never given
            schema.get("properties", {}).pop(bound, None)
            if "required" in schema:
                schema["required"] = [name for name in schema["required"] if name != bound]
        return schema

    def __call__(
        self, *args: Any, return_state: bool = False, wait_for: Any = None, **kwargs: Any
    ) -> Any:
        """Run the flow now; returns its result, or its final state with ``return_state``.

        A generator flow returns a generator at once; its run starts at the first value
        asked for and ends when the generator is exhausted (see ``_generators``)."""
        from gnomon.flows._flow_engine import run_flow

        parameters = call_parameters(self.fn, args, kwargs, bound=self.bound)
        if self.isgenerator:
            from gnomon.flows._generators import generator_flow_call

            return generator_flow_call(self, parameters, return_state)
        if self.isasync:
            return _async_call(self, parameters, return_state)
        return run_flow(self, parameters, return_state=return_state)

    def with_options(self, **options: Any) -> Flow[P, R]:
        """A copy of this flow with some options changed."""
        current: dict[str, Any] = {
            "name": self.name,
            "version": self.version,
            "flow_run_name": self.flow_run_name,
            "retries": self.retries,
            "retry_delay_seconds": self.retry_delay_seconds,
            "task_runner": self.task_runner,
            "description": self.description,
            "timeout_seconds": self.timeout_seconds,
            "validate_parameters": self.should_validate_parameters,
            "persist_result": self.persist_result,
            "log_prints": self.log_prints,
            "on_completion": self.on_completion_hooks,
            "on_failure": self.on_failure_hooks,
            "on_crashed": self.on_crashed_hooks,
            "on_cancellation": self.on_cancellation_hooks,
            "on_running": self.on_running_hooks,
        }
        current.update(options)
        return self.keep_binding(Flow(self.fn, **current))

    # Serving and deploying live above the daemon (gnomon._serving, gnomon._deploying);
    # the flow reaches them through the ``gnomon`` package's face when called, so this
    # package imports nothing above it (the layers in docs/design.md).

    def serve(self, name: str | None = None, **options: Any) -> None:
        """Schedule this flow and run it in this process until Ctrl-C or SIGTERM, with
        gnomon's daemon, as Prefect's ``flow.serve``: ``cron=``, ``interval=``,
        ``parameters=``, ``tags=``, gnomon's policies (``overlap=``, ``timeout=``, ...),
        ``limit=``, ``webserver=``, ``pause_on_shutdown=``. See ``gnomon.serve``."""
        import gnomon

        gnomon.RunnerDeployment.serve_flow(self, name, **options)

    def to_deployment(self, name: str, **options: Any) -> Any:
        """A deployment of this flow for ``gnomon.serve(...)`` (a ``RunnerDeployment``,
        typed Any: naming it would import what sits above this package), with ``serve``'s
        schedule and deployment arguments."""
        import gnomon

        return gnomon.RunnerDeployment.of(self, name, **options)

    def deploy(self, name: str, **options: Any) -> None:
        """Always raises ``DeployNotSupported``: gnomon has no work pools. Its message
        holds the config file's ``[[deployments]]`` table for this deployment."""
        import gnomon

        gnomon.RunnerDeployment.refuse_deploy(self, name, **options)

    def on_completion(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        self.on_completion_hooks.append(fn)
        return fn

    def on_failure(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        self.on_failure_hooks.append(fn)
        return fn

    def on_crashed(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        self.on_crashed_hooks.append(fn)
        return fn

    def on_cancellation(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        self.on_cancellation_hooks.append(fn)
        return fn

    def on_running(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Call ``fn(flow, flow_run, state)`` each time a run of this flow enters Running
        (its first attempt, and each retry), as Prefect's ``on_running``."""
        self.on_running_hooks.append(fn)
        return fn

    def __repr__(self) -> str:
        return f"Flow(name={self.name!r})"


async def _async_call(flow: Flow[..., Any], parameters: dict[str, Any], return_state: bool) -> Any:
    import asyncio

    from gnomon.flows._flow_engine import run_flow

    return await asyncio.to_thread(run_flow, flow, parameters, return_state=return_state)


@overload
def flow(__fn: Callable[P, R]) -> Flow[P, R]: ...
@overload
def flow(**options: Any) -> Callable[[Callable[P, R]], Flow[P, R]]: ...


def flow(__fn: Callable[P, R] | None = None, **options: Any) -> Any:
    """Decorate a function as a flow, bare (``@flow``) or with options (``@flow(retries=1)``)."""
    if __fn is not None:
        return Flow(__fn, **options)
    return lambda fn: Flow(fn, **options)
