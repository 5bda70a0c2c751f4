"""``DaskTaskRunner``: submitted task runs fan out to a dask.distributed cluster.

Each run travels as ``ProcessPoolTaskRunner``'s do (``_process_tasks``): its inputs are
resolved in the flow's process, then a Dask worker runs the ordinary task engine (states,
retries, timeouts, caching) against the flow's store and sends the final state back. Dask
runs a task again when the worker running it dies; the run then starts over on another
worker and still ends with one final state. When Dask gives up on a run (the workers running
it kept dying, the cluster went away) the flow's process records it Crashed.

``distributed`` is imported when the runner starts, so ``import gnomon`` needs no Dask.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import contextvars
import importlib
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Self

from gnomon.flows._futures import PrefectFuture
from gnomon.flows._runners import TaskRunner

if TYPE_CHECKING:
    import distributed

    from gnomon.flows._engine import TaskRunPlan
    from gnomon.flows._task import Task
    from gnomon.states import State


class DaskTaskRunner(TaskRunner):
    """Runs each submitted task on a Dask cluster, as ``prefect_dask.DaskTaskRunner`` does.

    Without ``address`` (or ``cluster``) a temporary cluster is started for the flow run
    and closed after it: ``cluster_class`` (a class, a callable, or its dotted name; default
    ``distributed.LocalCluster``) called with ``cluster_kwargs``, scaled adaptively with
    ``adapt_kwargs`` when given. With ``address`` (``"tcp://host:8786"``) the runner
    connects to a running scheduler; ``cluster`` is a running ``distributed`` cluster
    object. ``client_kwargs`` go to ``distributed.Client``.

    Workers write task runs to the flow's store and results directory (its settings travel
    with each run), so they must reach both: the same machine, or PostgreSQL and a shared
    ``GNOMON_HOME`` path.
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        cluster_class: str | Callable[..., Any] | None = None,
        cluster_kwargs: dict[str, Any] | None = None,
        adapt_kwargs: dict[str, Any] | None = None,
        client_kwargs: dict[str, Any] | None = None,
        cluster: Any = None,
    ) -> None:
        if address is not None and not isinstance(address, str):
            raise TypeError(f"DaskTaskRunner address must be a string, not {address!r}")
        if address and (cluster is not None or cluster_class or cluster_kwargs or adapt_kwargs):
            raise ValueError(
                "DaskTaskRunner: give either address= (a running scheduler) or"
                " cluster/cluster_class/cluster_kwargs/adapt_kwargs (a cluster), not both"
            )
        if cluster is not None and (cluster_class or cluster_kwargs):
            raise ValueError(
                "DaskTaskRunner: give either cluster= (a running cluster) or"
                " cluster_class/cluster_kwargs (a cluster to start), not both"
            )
        for name, kwargs in (("cluster_kwargs", cluster_kwargs), ("client_kwargs", client_kwargs)):
            if kwargs and "asynchronous" in kwargs:
                raise ValueError(
                    f"DaskTaskRunner {name} cannot set 'asynchronous': the runner uses a"
                    " synchronous client"
                )
        self.address = address
        self.cluster_class = cluster_class
        self.cluster_kwargs = dict(cluster_kwargs or {})
        self.adapt_kwargs = dict(adapt_kwargs or {})
        self.client_kwargs = {"set_as_default": False, **(client_kwargs or {})}
        self.cluster = cluster
        self._client: distributed.Client | None = None
        self._own_cluster: Any = None
        self._threads: cf.ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._sent = threading.Condition(self._lock)  # notified as each _send ends
        self._closing = False
        self._sending: set[str] = set()  # runs whose _send has begun and not ended
        self._runs: dict[str, tuple[TaskRunPlan, cf.Future[State]]] = {}
        self._dask_futures: list[distributed.Future] = []

    def duplicate(self) -> Self:
        return type(self)(
            self.address,
            cluster_class=self.cluster_class,
            cluster_kwargs=self.cluster_kwargs,
            adapt_kwargs=self.adapt_kwargs,
            client_kwargs=self.client_kwargs,
            cluster=self.cluster,
        )

    def __eq__(self, other: object) -> bool:
        if type(self) is not type(other):
            return NotImplemented
        assert isinstance(other, DaskTaskRunner)
        return self._settings() == other._settings()

    __hash__ = None  # type: ignore[assignment]  # equal by settings, and mutable

    def _settings(self) -> tuple[Any, ...]:
        return (
            self.address,
            self.cluster_class,
            self.cluster_kwargs,
            self.adapt_kwargs,
            self.client_kwargs,
            self.cluster,
        )

    @property
    def client(self) -> distributed.Client:
        """The ``distributed.Client`` of the started runner (for Dask collections in a flow)."""
        if self._client is None:
            raise RuntimeError("the task runner is not started; use its client inside a flow")
        return self._client

    def submit(
        self,
        task: Task[..., Any],
        parameters: dict[str, Any],
        wait_for: Iterable[Any] | None = None,
    ) -> PrefectFuture[Any]:
        from gnomon.flows._engine import TaskRunPlan

        if self._threads is None:
            raise RuntimeError("the task runner is not started; submit tasks inside a flow")
        plan = TaskRunPlan.create(task, parameters, wait_for)
        outer: cf.Future[State] = cf.Future()
        with self._lock:
            self._runs[plan.task_run_id] = (plan, outer)
        # A thread waits for upstream futures, then hands the run to the cluster.
        context = contextvars.copy_context()
        self._threads.submit(context.run, self._send, plan, outer)
        return PrefectFuture[Any](plan.task_run_id, outer, lambda: plan.live_state)

    def _send(self, plan: TaskRunPlan, outer: cf.Future[State]) -> None:
        with self._lock:
            if self._closing:
                return  # __exit__ settles it
            self._sending.add(plan.task_run_id)
        try:
            future = self._submit(plan, outer)
        finally:
            with self._lock:
                self._sending.discard(plan.task_run_id)
                self._sent.notify_all()
        if future is None:
            return
        # The callback runs in Dask's thread: it gets a context of its own (the same
        # context cannot be entered by two threads at once).
        context = contextvars.copy_context()
        future.add_done_callback(lambda done: context.run(self._receive, plan, outer, done))

    def _submit(self, plan: TaskRunPlan, outer: cf.Future[State]) -> distributed.Future | None:
        """Wait for the run's inputs, then hand it to the cluster; None if it is settled
        here (NotReady, or it could not be sent) or the runner is closing."""
        from gnomon.flows._process_tasks import plan_payload
        from gnomon.states import Running, State

        try:
            payload = plan_payload(plan)
            if isinstance(payload, State):
                _resolve(plan, outer, payload)
                return None
            with self._lock:
                if self._closing:
                    return None  # __exit__ settles it
                plan.set_live_state(Running())
                future = self.client.submit(
                    run_on_worker,
                    payload,
                    # Dask shows the text before the first '-' as the task's name.
                    key=f"{plan.name}-{plan.task_run_id}",
                    pure=False,
                )
                self._dask_futures.append(future)
        except Exception as error:
            self._settle_lost(plan, outer, error)
            return None
        return future

    def _receive(self, plan: TaskRunPlan, outer: cf.Future[State], future: Any) -> None:
        import cloudpickle

        try:
            state = cloudpickle.loads(future.result())
        except BaseException as error:  # KilledWorker, CancelledError, a lost scheduler
            self._settle_lost(plan, outer, error)
        else:
            _resolve(plan, outer, state)

    def _settle_lost(
        self, plan: TaskRunPlan, outer: cf.Future[State], error: BaseException
    ) -> None:
        """Record a run the cluster lost (or that could not be sent) Crashed, unless it is
        final already or the runner is closing (``__exit__`` settles those)."""
        from gnomon.flows._process_tasks import settle_in_store
        from gnomon.states import StateType

        with self._lock:
            if self._closing or outer.done():
                return
            message = f"The Dask cluster did not run the task: {type(error).__name__}: {error}"
            _resolve(plan, outer, settle_in_store(plan, StateType.CRASHED, message, error))

    def __enter__(self) -> Self:
        distributed = _import_distributed()
        self._closing = False
        connect_to: Any
        if self.address:
            connect_to = self.address
        elif self.cluster is not None:
            connect_to = self.cluster
            if self.adapt_kwargs:
                self.cluster.adapt(**self.adapt_kwargs)
        else:
            make = _cluster_factory(self.cluster_class or distributed.LocalCluster)
            connect_to = self._own_cluster = make(**self.cluster_kwargs)
            if self.adapt_kwargs:
                self._own_cluster.adapt(**self.adapt_kwargs)
        try:
            self._client = distributed.Client(connect_to, **self.client_kwargs)
        except OSError as error:
            self._close_cluster()
            where = self.address or connect_to
            message = f"cannot reach the Dask scheduler at {where!r}: {error}"
            raise ConnectionError(message) from None
        except BaseException:
            self._close_cluster()
            raise
        self._threads = cf.ThreadPoolExecutor(max_workers=32, thread_name_prefix="gnomon-dask")
        _log_dashboard(self._client)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        interrupted = exc_type is not None
        try:
            if self._threads is not None:
                self._threads.shutdown(wait=not interrupted, cancel_futures=interrupted)
                self._threads = None
            if not interrupted:  # every run reaches its final state first
                cf.wait([outer for _, outer in self._runs.values()])
            self._cancel_unfinished()
        finally:
            if self._client is not None:
                self._client.close()
                self._client = None
            self._close_cluster()
            self._runs.clear()
            self._dask_futures.clear()

    def _cancel_unfinished(self) -> None:
        """Stop sending; cancel what the cluster has not finished and record it Cancelled.

        A run still waiting for its inputs records its own end (NotReady, once its upstream
        is settled here): settling it here as well would give it two."""
        from gnomon.flows._process_tasks import settle_in_store
        from gnomon.states import StateType

        with self._lock:
            self._closing = True
            unfinished = [(plan, outer) for plan, outer in self._runs.values() if not outer.done()]
            sending = set(self._sending)
        if not unfinished:
            return
        if self._client is not None:
            self._client.cancel([f for f in self._dask_futures if not f.done()])
        _await_workers([plan for plan, _ in unfinished if plan.task_run_id not in sending])
        message = "Interrupted: the flow run it belongs to ended"
        for plan, outer in unfinished:
            if plan.task_run_id not in sending:
                _resolve(plan, outer, settle_in_store(plan, StateType.CANCELLED, message))
        with self._lock:
            self._sent.wait_for(lambda: not self._sending, timeout=_CANCEL_PATIENCE)
        for plan, outer in unfinished:
            if not outer.done():
                _resolve(plan, outer, settle_in_store(plan, StateType.CANCELLED, message))

    def _close_cluster(self) -> None:
        if self._own_cluster is not None:
            self._own_cluster.close()
            self._own_cluster = None


def run_on_worker(payload: bytes) -> bytes:
    """Dask's entry point on a worker: ``run_payload``, stopped if the flow cancels it.

    A task Dask cancels keeps running on its worker (Dask cannot stop a thread); a watcher
    sees the cancellation and raises ``TerminationSignal`` in the run's thread, as a timeout
    does, so an abandoned run frees its worker and ends Cancelled instead of finishing
    after its flow run.
    """
    from distributed import get_worker

    from gnomon.flows._process_tasks import run_payload
    from gnomon.flows._timeouts import interrupt

    worker = get_worker()
    key = worker.get_current_task()
    runner = threading.current_thread()
    finished = threading.Event()
    lock = threading.Lock()  # the signal is never raised once the run has returned

    def watch() -> None:
        while not finished.wait(_CANCEL_POLL):
            task = worker.state.tasks.get(key)
            if task is None or task.state in {"cancelled", "released", "forgotten"}:
                with lock:
                    if not finished.is_set():
                        interrupt(runner)
                return

    threading.Thread(target=watch, name="gnomon-dask-watch", daemon=True).start()
    try:
        return run_payload(payload, once=True)
    finally:
        with lock:
            finished.set()


# Seconds between a worker's looks at whether its run was cancelled.
_CANCEL_POLL = 0.1
# Seconds a flow run that ended waits for its cancelled runs' workers to record them.
_CANCEL_PATIENCE = 5.0


def _resolve(plan: TaskRunPlan, outer: cf.Future[State], state: State) -> None:
    plan.set_live_state(state)
    # Settled once: a run the cluster answers for while the runner closes has two callers.
    with contextlib.suppress(cf.InvalidStateError):
        outer.set_result(state)


def _await_workers(plans: list[TaskRunPlan]) -> None:
    """Give the workers running cancelled runs a moment to record them Cancelled
    (``run_on_worker``): the flow's process records the rest, which never started or whose
    worker did not answer, so that none stays Running."""
    import time

    from gnomon.flows._engine import _store
    from gnomon.states import StateType

    store = _store()
    store.flush()
    running = [plan for plan in plans if plan.live_state.type == StateType.RUNNING]
    give_up = time.monotonic() + _CANCEL_PATIENCE
    while running and time.monotonic() < give_up:
        time.sleep(_CANCEL_POLL)
        running = [plan for plan in running if _stored_type(store, plan) == StateType.RUNNING]


def _stored_type(store: Any, plan: TaskRunPlan) -> Any:
    row = store.read_task_run(plan.task_run_id)
    return None if row is None else row.state_type


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise ImportError(
            "DaskTaskRunner needs dask.distributed: pip install 'gnomon[dask]'"
        ) from None
    return distributed


def _cluster_factory(cluster_class: str | Callable[..., Any]) -> Callable[..., Any]:
    """The cluster class (or callable) ``cluster_class`` names, imported by dotted name."""
    if not isinstance(cluster_class, str):
        return cluster_class
    module_name, _, name = cluster_class.rpartition(".")
    try:
        factory = getattr(importlib.import_module(module_name), name) if module_name else None
    except (ImportError, AttributeError):
        factory = None
    if not callable(factory):
        raise ValueError(
            f"DaskTaskRunner cluster_class {cluster_class!r} names no importable cluster class"
            " (give its dotted name, as 'distributed.LocalCluster')"
        )
    return factory


def _log_dashboard(client: Any) -> None:
    from gnomon.flows._logging import engine_logger

    if client.scheduler_info().get("services", {}).get("dashboard"):
        engine_logger().info(f"The Dask dashboard is available at {client.dashboard_link}")
