"""The warm worker pool: flow runs execute in worker processes the daemon supervises.

Each worker (``_worker.py``) is a separate process, forked from a worker template
(``_template.py``) that imported gnomon and the deployments' flows once, and runs one flow
run at a time, so a crashing or leaking flow never harms the daemon or other runs. Every
worker, also one started after a crash or to replace a recycled one, runs the code its
template loaded; ``recycle`` warms a new template and replaces the workers only once it has
imported every flow (``_template_process.Templates``). One supervisor thread owns the
processes: it starts them, reads their results, enforces timeouts and kill graces, and
notices deaths through a pidfd per worker; a thread per worker relays its output to
``log_sink``. The daemon's loop thread calls ``submit``, ``cancel`` and ``stop``; one lock
guards the state they share.

The pool holds up to one run per worker ahead of the workers (``AHEAD_PER_WORKER``): the
supervisor thread hands the next one over the moment a worker reports its run done, so that a
burst of runs does not wait for the daemon's loop between one run and the next. A held run
has not started: cancelling it only drops it (it is recorded Cancelled), no signal involved.

A run the pool ends or loses (timeout, cancellation, shutdown, a dying worker) is recorded
once its worker is gone, by a conditional write that keeps a final state the worker committed
first (a run that completed just before its timeout stays Completed): none is left Running.

Each worker's process tree is contained (``_containment``): ending a worker ends everything
its run started, and a run with a memory limit (``_limits``) is ended, Crashed, when its
tree's memory goes above it, checked every ``MEMORY_CHECK_INTERVAL`` while it runs.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import selectors
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from gnomon.daemon._containment import Containment
from gnomon.daemon._limits import (
    MEMORY_CHECK_INTERVAL,
    RunLimits,
    above_limits,
    due_memory_checks,
)
from gnomon.daemon._relay import start_relay
from gnomon.daemon._template_process import TemplateProcess, Templates
from gnomon.daemon._worker_process import (
    FENCED_STATE,
    Assignment,
    Ending,
    RunOutcome,
    WorkerProcess,
    exit_description,
    outcome,
    record_end,
    worker_env,
)
from gnomon.exceptions import GnomonError
from gnomon.states import FINAL_TYPES, StateName

if TYPE_CHECKING:
    from gnomon.daemon._runsetup import RunSetup
    from gnomon.deployments import ContainmentMode
    from gnomon.store import Store

__all__ = ["RunOutcome", "WorkerPool", "WorkerPoolError"]

log = logging.getLogger("gnomon.daemon.pool")

AHEAD_PER_WORKER = 1  # runs held for the workers, per worker, beyond those they run
MAX_RESPAWN_DELAY = 30.0  # between attempts to start a worker that keeps dying at start
SHUTDOWN_REASON = "daemon shut down before the run finished"


class WorkerPoolError(GnomonError, RuntimeError):
    """The pool could not start its workers."""


class _Process(Protocol):
    @property
    def pid(self) -> int: ...


_P = TypeVar("_P", bound=_Process)


class WorkerPool:
    """``size`` warm worker processes running the flow runs given to ``submit``.

    ``on_finished`` is called once per submitted run, from the supervisor thread, once its
    final state is stored. ``log_sink`` gets every line the workers log or print, as JSON
    (without it, their output goes to the daemon's stderr). ``env`` adds to the daemon's
    environment for the workers. A worker has ``kill_grace`` seconds after SIGTERM before
    SIGKILL, and as long to exit when told to. ``containment`` is the mechanism asked for
    (see ``Containment.detect``).
    """

    def __init__(
        self,
        size: int,
        preload: list[str],
        *,
        max_runs_per_worker: int | None = None,
        max_memory_per_worker: int | None = None,
        kill_grace: float = 10.0,
        on_finished: Callable[[RunOutcome], None],
        log_sink: Callable[[str, int], None] | None = None,
        env: dict[str, str] | None = None,
        containment: ContainmentMode | None = None,
    ) -> None:
        if size < 1:
            raise ValueError(f"a worker pool needs at least one worker, got {size}")
        if kill_grace < 0:
            raise ValueError(f"kill_grace cannot be negative, got {kill_grace}")
        self.size = size
        self.preload = list(preload)
        self.max_runs_per_worker = max_runs_per_worker
        self.max_memory_per_worker = max_memory_per_worker
        self.kill_grace = kill_grace
        self._on_finished = on_finished
        self._log_sink = log_sink
        self._extra_env = dict(env or {})
        self._containment_asked = containment
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._workers: dict[int, WorkerProcess] = {}
        self._runs: dict[str, WorkerProcess] = {}
        # Runs submitted while no worker was idle, oldest first, with their timeouts,
        # limits and setups; and those cancelled before they started, to record (the
        # supervisor does).
        self._ahead: dict[str, tuple[float | None, RunLimits | None, RunSetup | None]] = {}
        self._revoked: list[Assignment] = []
        self._accepting = self._closing = self._starting = self._stopped = False
        self._start_error: str | None = None
        self._early_deaths = 0
        self._spawn_after = 0.0
        self._supervisor: threading.Thread | None = None
        self._relays: list[threading.Thread] = []
        self._stale: set[int] = set()  # workers to replace once their run ends
        self._memory_check_at = math.inf  # the earliest check of a run's memory that is due

    # The daemon's side.

    def start(self, timeout: float = 60) -> None:
        """Start the workers and wait until every one has imported its flows."""
        self.launch()
        self.wait_warm(timeout)

    def launch(self) -> None:
        """Start the workers, without waiting for them: the daemon goes on with its own
        start-up while they import their flows (see ``wait_warm``)."""
        from gnomon.store import get_store

        if self._supervisor is not None:
            raise RuntimeError("the worker pool was started already")
        self._store: Store = get_store()
        self._env = worker_env(self._extra_env, self._store.url)
        self.containment = Containment.detect(self._containment_asked)
        log.info(
            "worker containment: %s",
            self.containment.description,
            extra={"containment": self.containment.mechanism.value},
        )
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        for fd in (self._wake_r, self._wake_w):
            os.set_blocking(fd, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._templates = Templates(self.preload, self._start_template, self._selector)
        self._launched = time.monotonic()
        self._accepting = self._starting = True
        self._supervisor = threading.Thread(target=self._supervise, name="gnomon-pool")
        self._supervisor.start()

    def wait_warm(self, timeout: float = 60) -> None:
        """Wait until every launched worker has imported its flows; stops the pool and
        raises ``WorkerPoolError`` if one failed to start or ``timeout`` passed."""
        with self._changed:
            warm = self._changed.wait_for(
                lambda: self._start_error is not None or self._idle_count() >= self.size, timeout
            )
            self._starting = False
            error = self._start_error
        if error is not None or not warm:
            self.stop(0)
            raise WorkerPoolError(error or f"the workers were not ready within {timeout:g} s")
        log.info(
            "worker pool warm: %d workers in %.2f s",
            self.size,
            time.monotonic() - self._launched,
            extra={"worker_pids": self.pids(), "preload": self.preload},
        )

    def submit(
        self,
        flow_run_id: str,
        timeout: float | None = None,
        limits: RunLimits | None = None,
        setup: RunSetup | None = None,
    ) -> bool:
        """Hand the run to an idle worker, or hold it for the next worker to finish; False
        if the pool holds as many as it may already (see ``capacity``) or is stopping.

        Past ``timeout`` seconds from its start, the run's worker is ended and the run
        recorded TimedOut; above its ``limits.memory``, it is ended and recorded Crashed.
        The worker runs it with ``setup``'s environment, directory and user (``_runsetup``).
        The worker records its pid in the run row when it claims the run.
        """
        if timeout is not None and timeout <= 0:
            raise ValueError(f"a run timeout must be positive, got {timeout}")
        with self._lock:
            if flow_run_id in self._runs or flow_run_id in self._ahead:
                raise ValueError(f"flow run {flow_run_id} is in the pool already")
            if self._capacity() <= 0:
                return False
            worker = self._hand_over(flow_run_id, timeout, limits, setup)
            if worker is None:
                self._ahead[flow_run_id] = (timeout, limits, setup)
        watched = timeout is not None or (limits is not None and limits.memory is not None)
        if worker is not None and watched:
            self._wake()  # the supervisor's next wait must end by this run's deadline
        return True

    def cancel(self, flow_run_id: str, reason: str) -> bool:
        """End the run's worker (SIGTERM, then SIGKILL after ``kill_grace``), or drop the run
        if it has not started; it is recorded Cancelled with ``reason`` once its worker is
        gone. False if it is not here."""
        with self._lock:
            if flow_run_id in self._ahead:
                timeout, _, _ = self._ahead.pop(flow_run_id)
                self._revoked.append(
                    Assignment(flow_run_id, timeout, ending=Ending.CANCEL, reason=reason)
                )
                self._wake()
                return True
            worker = self._runs.get(flow_run_id)
            if worker is None or worker.run is None:
                return False
            if worker.run.storing is not None:
                log.info(
                    "run %s is not cancelled (%s): it finished %s, and its worker waits for"
                    " the store to take that",
                    flow_run_id,
                    reason,
                    worker.run.storing,
                )
                return True
            if worker.run.ending is None:
                worker.run.ending, worker.run.reason = Ending.CANCEL, reason
                worker.terminate(time.monotonic(), self.kill_grace)
        self._wake()
        return True

    def fence(self, reason: str) -> list[str]:
        """SIGKILL every run's worker now and record nothing for them: this daemon lost the
        database for half its lease, and the other daemons will settle its runs once the
        lease has run out, so none may still run by then (see ``_cluster``). Runs held for
        a worker are dropped. Returns the ids of the runs ended or dropped."""
        with self._lock:
            ended = list(self._ahead)
            self._ahead.clear()
            for worker in self._workers.values():
                if worker.run is not None:
                    worker.run.ending, worker.run.reason = Ending.FENCED, reason
                    worker.kill()
                    ended.append(worker.run.flow_run_id)
        self._wake()
        return ended

    def stop(self, grace: float) -> None:
        """Let running runs finish for up to ``grace`` seconds, then end their workers and
        record the runs Cancelled; returns once every worker process has been reaped.
        Stopping a stopped pool does nothing."""
        if self._supervisor is None or self._stopped:
            return
        with self._changed:
            self._accepting = False
            self._ahead.clear()  # never started: the daemon gives them back as Scheduled
            for worker in list(self._workers.values()):
                if worker.run is None:
                    worker.retire(time.monotonic(), self.kill_grace)
            self._wake()
            self._changed.wait_for(lambda: not self._runs, max(grace, 0))
            self._closing = True
            for worker in list(self._workers.values()):
                if worker.run is None:
                    worker.retire(time.monotonic(), self.kill_grace)
                elif worker.run.ending is None:
                    worker.run.ending, worker.run.reason = Ending.SHUTDOWN, SHUTDOWN_REASON
                    worker.terminate(time.monotonic(), self.kill_grace)
        self._wake()
        self._supervisor.join()
        for relay in self._relays:
            relay.join(timeout=2)  # what is still in the output pipes reaches the log
        self.containment.close()
        self._selector.close()
        os.close(self._wake_r)
        os.close(self._wake_w)
        self._stopped = True

    def recycle(self, preload: list[str]) -> None:
        """Replace every worker with one that has ``preload`` imported afresh (after a
        reload whose flow check passed).

        A new template imports them first; once it has, idle workers go at once and busy
        ones after their current run, which is never interrupted. If it fails (a flow that
        no longer imports, a crash, no answer within ``WARM_TIMEOUT``) the workers keep
        the code loaded before.
        """
        with self._lock:
            self._templates.request(preload)
        self._wake()

    def idle_count(self) -> int:
        """Workers ready for a run now."""
        with self._lock:
            return self._idle_count()

    def capacity(self) -> int:
        """How many more runs ``submit`` takes now: one per idle worker, plus what the
        pool may hold ahead of its busy workers."""
        with self._lock:
            return self._capacity()

    def held_count(self) -> int:
        """Runs submitted that wait for a worker to finish its run."""
        return len(self._ahead)  # one read of a dict's size: no lock needed

    def busy_count(self) -> int:
        """Workers running a run (including runs being ended)."""
        with self._lock:
            return len(self._runs)

    def pids(self) -> list[int]:
        """The process ids of the worker processes alive now."""
        with self._lock:
            return sorted(self._workers)

    def template_pid(self) -> int | None:
        """The process id of the worker template new workers are forked from, if any."""
        with self._lock:
            current = self._templates.current
            return current.pid if current is not None else None

    # Under the lock.

    def _idle_count(self) -> int:
        return sum(1 for worker in self._workers.values() if worker.idle)

    def _capacity(self) -> int:
        if not self._accepting:
            return 0
        return self._idle_count() + self.size * AHEAD_PER_WORKER - len(self._ahead)

    def _hand_over(
        self,
        flow_run_id: str,
        timeout: float | None,
        limits: RunLimits | None,
        setup: RunSetup | None = None,
    ) -> WorkerProcess | None:
        if not self._accepting:
            return None
        for worker in self._workers.values():
            if not worker.idle:
                continue
            if not worker.send_run(flow_run_id, limits, setup):
                worker.retiring = True  # its stdin is gone: it is dying, its exit is handled
                continue
            worker.run = Assignment(flow_run_id, timeout, limits=limits)
            if limits is not None and limits.memory is not None:
                worker.run.memory_check_at = worker.run.started + MEMORY_CHECK_INTERVAL
                self._memory_check_at = min(self._memory_check_at, worker.run.memory_check_at)
            self._runs[flow_run_id] = worker
            return worker
        return None

    def _hand_over_held(self) -> None:
        """Give the runs held ahead to idle workers, oldest first."""
        while self._ahead:
            flow_run_id, (timeout, limits, setup) = next(iter(self._ahead.items()))
            if self._hand_over(flow_run_id, timeout, limits, setup) is None:
                return
            del self._ahead[flow_run_id]

    def _needs_workers(self) -> bool:
        live = sum(1 for worker in self._workers.values() if not worker.retiring)
        return self._accepting and live < self.size

    def _next_wait(self, now: float) -> float | None:
        deadlines = [self._spawn_after] if self._needs_workers() else []
        warming = self._templates.next_deadline()
        if warming is not None:
            deadlines.append(warming)
        for worker in self._workers.values():
            deadlines.extend(worker.deadlines())
        return max(0.0, min(deadlines) - now) if deadlines else None

    def _enforce_deadlines(self, now: float) -> None:
        for worker in self._workers.values():
            run = worker.run
            if run and run.ending is None and run.deadline is not None and run.deadline <= now:
                run.ending = Ending.TIMEOUT
                worker.terminate(now, self.kill_grace)
            worker.enforce(now, self.kill_grace)

    def _missing_workers(self, now: float) -> tuple[TemplateProcess | None, int]:
        """The template to fork from and how many workers the pool lacks now."""
        template = self._templates.ready()
        if template is None or not self._needs_workers() or now < self._spawn_after:
            return None, 0
        return template, self.size - sum(not worker.retiring for worker in self._workers.values())

    def _spawn(self, template: TemplateProcess, count: int) -> None:
        """Fork ``count`` workers from ``template``. Without the lock: a fork waits for the
        template's answer, which must not hold up ``submit`` and ``cancel`` (a template
        stopped with SIGSTOP would hold them for ``ANSWER_TIMEOUT``)."""
        self._relays = [relay for relay in self._relays if relay.is_alive()]
        for _ in range(count):
            try:
                worker = self._started(lambda output: WorkerProcess.start(template, output))
            except OSError as error:
                with self._lock:
                    self._note_early_death(f"could not start a worker process: {error}")
                return
            # Contained before it is known to the pool, so before it can get a run.
            worker.tree = self.containment.for_worker(worker.pid)
            with self._lock:
                self._workers[worker.pid] = worker
                self._selector.register(worker.channel, selectors.EVENT_READ, (worker, False))
                if worker.exit_fd is not None:
                    self._selector.register(worker.exit_fd, selectors.EVENT_READ, (worker, True))
                if not self._accepting:  # stopped meanwhile: it will get no run
                    worker.retire(time.monotonic(), self.kill_grace)

    def _started(self, start: Callable[[int], _P]) -> _P:
        """``start(fd)`` a process whose stdout and stderr go to ``fd``, relayed to the log
        sink (without one, the daemon's stderr)."""
        if self._log_sink is None:
            return start(2)
        output_r, output_w = os.pipe()
        try:
            process = start(output_w)
        except BaseException:
            os.close(output_r)
            raise
        finally:
            os.close(output_w)
        self._relays.append(start_relay(output_r, process.pid, self._log_sink, self._store))
        return process

    def _start_template(self, preload: list[str]) -> TemplateProcess:
        return self._started(lambda output: TemplateProcess.start(preload, self._env, output))

    def _note_early_death(self, description: str) -> None:
        """A worker or the template failed before it was ready: fail ``start``, or retry
        later, backing off."""
        if self._starting:
            self._start_error = f"a worker failed to start: {description}"
        self._early_deaths += 1
        delay = min(MAX_RESPAWN_DELAY, 0.5 * 2 ** (self._early_deaths - 1))
        self._spawn_after = time.monotonic() + delay
        log.error("%s; next start in %.1f s", description, delay)
        self._changed.notify_all()

    # The supervisor thread.

    def _supervise(self) -> None:
        """Start, watch and reap the workers until the pool is stopped and they are gone.

        Templates are started from this thread only: their PR_SET_PDEATHSIG fires when the
        thread that started them exits, and this one outlives them all (and each worker's
        fires when its template exits).
        """
        while True:
            with self._lock:
                if self._closing and not self._workers:
                    self._templates.close_all()
                    return
                now = time.monotonic()
                failed = self._templates.tend(now, self._accepting and now >= self._spawn_after)
                if failed is not None:
                    self._note_early_death(failed)
                template, missing = self._missing_workers(now)
                wait = self._next_wait(now)
            if template is not None:
                self._spawn(template, missing)
                with self._lock:
                    wait = self._next_wait(time.monotonic())
            try:
                self._handle(self._selector.select(wait))
                self._check_memory(time.monotonic())
            except Exception:  # a bug here must not leave runs unsupervised
                log.exception("worker pool supervisor error")
            with self._lock:
                self._enforce_deadlines(time.monotonic())

    def _check_memory(self, now: float) -> None:
        """End, Crashed, the runs whose tree is above their memory limit: measured outside
        the lock (a few reads in /proc per process), acted on under it."""
        if now < self._memory_check_at:
            return  # the usual case: no run with a memory limit is due for a look
        with self._lock:
            due, self._memory_check_at = due_memory_checks(self._workers.values(), now)
        above = above_limits(due)
        with self._lock:
            for worker, run, reason in above:
                if worker.run is not run or run.ending is not None:
                    continue  # it ended meanwhile
                run.ending, run.reason = Ending.MEMORY, reason
                log.warning(
                    "run %s: %s; ending its worker",
                    run.flow_run_id,
                    reason,
                    extra={"flow_run_id": run.flow_run_id, "worker_pid": worker.pid},
                )
                worker.kill()

    def _handle(self, events: list[tuple[selectors.SelectorKey, int]]) -> None:
        """Read results and reap exited workers, then report finished runs."""
        finished: list[RunOutcome] = []
        exited: list[WorkerProcess] = []
        with self._lock:
            revoked, self._revoked = self._revoked, []
        for run in revoked:
            finished.append(record_end(self._store, run, None, None))
        for key, _ in events:
            if key.data is None:
                _drain(self._wake_r)
                continue
            if isinstance(key.data, TemplateProcess):
                self._template_news(key.data)
                continue
            worker, is_exit = key.data
            if is_exit or self._take_messages(worker, finished):
                exited.append(worker)
        for worker in dict.fromkeys(exited):
            finished.extend(self._reap(worker))
        for ended in finished:
            try:
                self._on_finished(ended)
            except Exception:
                log.exception("on_finished failed for run %s", ended.flow_run_id)

    def _template_news(self, template: TemplateProcess) -> None:
        """Read a template's messages: a warm candidate replaces the workers; the current
        template's death (its workers end with it) is a failed start, retried."""
        with self._lock:
            replaced, died = self._templates.on_readable(template)
            if died is not None:
                self._note_early_death(died)
            if replaced:
                self.preload = self._templates.preload
                now = time.monotonic()
                for worker in self._workers.values():
                    if worker.run is None:
                        worker.retire(now, self.kill_grace)
                    else:
                        self._stale.add(worker.pid)

    def _take_messages(self, worker: WorkerProcess, finished: list[RunOutcome]) -> bool:
        """Handle a worker's new messages; True if its result pipe is at end of file and it
        has no pidfd (then the process has ended: the pipe closes only with it)."""
        with self._lock:
            messages, eof = worker.read_messages()
            for message in messages:
                if "ready" in message:
                    worker.ready, self._early_deaths = True, 0
                    self._changed.notify_all()
                elif worker.run is not None and message.get("stored") == worker.run.flow_run_id:
                    worker.run.storing = None  # its deadline applies again
                elif (
                    worker.run is not None
                    and worker.run.ending is None  # not being ended already (a timeout)
                    and message.get("storing") == worker.run.flow_run_id
                ):
                    worker.run.storing = str(message.get("state") or "Unknown")
                    log.warning(
                        "run %s finished %s; its worker waits for the store to take that"
                        " (the run's timeout and cancellation no longer apply)",
                        worker.run.flow_run_id,
                        worker.run.storing,
                    )
                elif worker.run is not None and message.get("done") == worker.run.flow_run_id:
                    done = self._run_done(worker, message)
                    if done is None:
                        self._wake()  # the supervisor records it in its next pass
                    else:
                        finished.append(done)
            self._hand_over_held()  # before the finished runs are reported
            if eof and worker.channel >= 0 and worker.channel in self._selector.get_map():
                self._selector.unregister(worker.channel)
        return eof and worker.exit_fd is None

    def _run_done(self, worker: WorkerProcess, message: dict[str, Any]) -> RunOutcome | None:
        """A worker reported its run done: its outcome, or None if the worker could not
        store the run's end (its store failed): then the pool records it (``_unrecorded``)."""
        run = worker.run
        assert run is not None
        worker.run = None
        worker.runs += 1
        del self._runs[run.flow_run_id]
        # A worker that was signalled, or is exiting by itself, must not get another run.
        exiting = run.ending is not None or bool(message.get("exiting"))
        unrecorded = (
            message.get("state_type") not in FINAL_TYPES
            # A suspended run ended its code itself, its state stored: no crash.
            and message.get("state") != StateName.SUSPENDED
            and run.ending is None
            and "not_runnable" not in message  # another's run, or ended before its claim
        )
        if exiting or unrecorded or not self._accepting or self._should_recycle(worker):
            worker.retire(time.monotonic(), self.kill_grace)
        self._changed.notify_all()
        if unrecorded:
            # The run cannot stay Running (or Pending) with nothing left to end it: the
            # pool records it Crashed, retrying on its batched writer while the store fails.
            run.ending = Ending.UNRECORDED
            run.reason = (
                "the worker could not record the run's end: "
                f"{message.get('error_type') or 'error'}: {message.get('message') or ''}"
            ).rstrip(": ")
            self._revoked.append(run)
            return None
        return outcome(
            run,
            worker.pid,
            str(message.get("state") or "Unknown"),
            str(message.get("state_type") or "UNKNOWN"),
            message.get("error_type"),
            message.get("message"),
            stored=message,
        )

    def _should_recycle(self, worker: WorkerProcess) -> bool:
        if worker.pid in self._stale:
            self._stale.discard(worker.pid)
            log.info("recycling worker %d: the flows were reloaded", worker.pid)
            return True
        limit = self.max_runs_per_worker
        if limit is not None and worker.runs >= limit:
            log.info("recycling worker %d after %d runs", worker.pid, worker.runs)
            return True
        limit = self.max_memory_per_worker
        rss = worker.rss() if limit is not None else None
        if limit is not None and rss is not None and rss > limit:
            log.info("recycling worker %d: it uses %d bytes (RSS)", worker.pid, rss)
            return True
        return False

    def _reap(self, worker: WorkerProcess) -> list[RunOutcome]:
        """A worker process ended: take its last results, reap it, and record the run it
        left unfinished, if any."""
        finished: list[RunOutcome] = []
        self._take_messages(worker, finished)
        worker.end_tree()  # before the template reaps it (see WorkerProcess.end_tree)
        returncode = worker.wait()
        with self._lock:
            for fd in (worker.channel, worker.exit_fd):
                if fd is not None and fd in self._selector.get_map():
                    self._selector.unregister(fd)
            worker.close()
            del self._workers[worker.pid]
            self._templates.worker_gone(worker.template)
            run, worker.run = worker.run, None
            if run is not None:
                del self._runs[run.flow_run_id]
            if not worker.ready and not worker.retiring:
                self._note_early_death(f"{exit_description(worker.pid, returncode)} before ready")
            elif run is None and not worker.retiring:
                log.warning("idle %s", exit_description(worker.pid, returncode))
            self._changed.notify_all()
        if run is not None and run.ending is Ending.FENCED:
            finished.append(
                outcome(run, worker.pid, "Fenced", FENCED_STATE, None, run.reason, returncode)
            )
        elif run is not None:
            finished.append(record_end(self._store, run, worker.pid, returncode))
        return finished

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # woken already: the pipe is full
            os.write(self._wake_w, b"\0")


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass
