"""The daemon's handle on one worker process: starting it (forked by a worker template),
reading its results, and signalling it and its process tree. The pool (``_pool.py``) decides
when; this module knows how. Its output is relayed by ``_relay.py``; its tree is contained
by ``_containment.py``.

The protocol itself is described in ``_worker.py``, the worker's side of it.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import signal
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any

from gnomon.daemon._storefile import EXIT_STORE_GONE
from gnomon.daemon._worker import QUIET_RUN_EVENTS_ENV, encode, parse_object

if TYPE_CHECKING:
    from gnomon.daemon._containment import WorkerTree
    from gnomon.daemon._limits import RunLimits
    from gnomon.daemon._runsetup import RunSetup
    from gnomon.daemon._template_process import TemplateProcess
    from gnomon.states import State
    from gnomon.store import RunStore
    from gnomon.store.rows import FlowRunChanges, FlowRunRow

log = logging.getLogger("gnomon.daemon.pool")
# systemd's variables are for the daemon alone: a flow calling sd_notify must not speak for it.
_DAEMON_ONLY_ENV = ("NOTIFY_SOCKET", "WATCHDOG_PID", "WATCHDOG_USEC")


class Ending(enum.Enum):
    """Why the pool is ending a run's worker, which decides the state it records."""

    TIMEOUT = "timeout"
    CANCEL = "cancel"
    SHUTDOWN = "shutdown"
    MEMORY = "memory"  # its process tree went above the run's memory limit: Crashed
    UNRECORDED = "unrecorded"  # the worker could not store the run's end: Crashed
    # The daemon lost the database for half its lease: killed, and left for the other
    # daemons to record (``_cluster``): nothing is written for it from here.
    FENCED = "fenced"


# The outcome's state of a fenced run: none is stored (the other daemons store Crashed).
FENCED_STATE = "FENCED"


@dataclass(slots=True)
class Assignment:
    """The run a worker is executing, as the pool tracks it."""

    flow_run_id: str
    timeout: float | None
    started: float = field(default_factory=time.monotonic)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    ending: Ending | None = None
    reason: str | None = None
    limits: RunLimits | None = None
    memory_check_at: float | None = None  # monotonic time of the next look at its memory
    # The run's code finished, in this state, and its worker waits for the store to take
    # it (the worker's "storing" message): its timeout no longer applies.
    storing: str | None = None

    @property
    def deadline(self) -> float | None:
        if self.timeout is None or self.storing is not None:
            return None
        return self.started + self.timeout


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """How a submitted run ended, as the daemon's per-run summary line reports it."""

    flow_run_id: str
    state_name: str
    state_type: str
    worker_pid: int | None  # None for a run cancelled before it reached a worker
    exit_code: int | None  # set when the worker process ended with the run
    signal: str | None  # e.g. "SIGKILL", when a signal ended the worker with the run
    started_at: datetime  # UTC, when the pool handed the run to the worker
    ended_at: datetime  # UTC, when the pool learnt that the run ended
    duration_ms: int
    error_type: str | None
    message: str | None = None
    # The run as stored, reported by the worker (or read back when its worker died):
    start_time: datetime | None = None  # when the run was claimed and began Running
    end_time: datetime | None = None
    flow_name: str | None = None
    run_name: str | None = None
    run_count: int | None = None


@dataclass(slots=True, eq=False)
class WorkerProcess:
    """One worker process and the pool's bookkeeping about it (guarded by the pool's lock)."""

    pid: int
    template: TemplateProcess  # its parent, which alone can say how it ended
    stdin: IO[bytes]  # the daemon's end of its stdin; closing it tells the worker to exit
    channel: int  # read end of the result pipe, non-blocking; -1 once closed
    exit_fd: int | None  # a pidfd, readable once the process has exited (Linux)
    buffer: bytes = b""
    ready: bool = False
    runs: int = 0
    run: Assignment | None = None
    retiring: bool = False
    waited: bool = False  # its exit was collected: its pid may be another process's now
    term_at: float | None = None  # send SIGTERM at this monotonic time
    kill_at: float | None = None  # send SIGKILL at this monotonic time
    tree: WorkerTree | None = None  # the worker and what it started (see _containment)

    @classmethod
    def start(cls, template: TemplateProcess, stdout: int) -> WorkerProcess:
        """Fork a worker from ``template`` with its stdin and result pipes; its stdout and
        stderr go to ``stdout``."""
        stdin_r, stdin_w = os.pipe()
        channel_r, channel_w = os.pipe()
        try:
            pid, pidfd = template.fork([stdin_r, channel_w, stdout])
        except BaseException:
            os.close(stdin_w)
            os.close(channel_r)
            raise
        finally:
            os.close(stdin_r)
            os.close(channel_w)
        os.set_blocking(channel_r, False)
        return cls(pid, template, os.fdopen(stdin_w, "wb"), channel_r, pidfd)

    @property
    def idle(self) -> bool:
        return self.ready and self.run is None and not self.retiring

    def send_run(
        self, flow_run_id: str, limits: RunLimits | None = None, setup: RunSetup | None = None
    ) -> bool:
        """Ask the worker to run ``flow_run_id`` (capping its log as ``limits`` say, with
        ``setup``'s environment, directory and user); False if its stdin is gone (it is
        dying)."""
        request: dict[str, Any] = {"run": flow_run_id}
        if limits is not None:
            request.update(log_lines=limits.log_lines, log_bytes=limits.log_bytes)
        if setup is not None:
            request["setup"] = setup.message()
        try:
            self.stdin.write(encode(request))
            self.stdin.flush()
        except (OSError, ValueError):
            return False
        return True

    def read_messages(self) -> tuple[list[dict[str, Any]], bool]:
        """The messages the worker has written since the last call, and whether its result
        pipe has reached end of file (it closes only when the process ends)."""
        messages: list[dict[str, Any]] = []
        while self.channel >= 0:
            try:
                data = os.read(self.channel, 65536)
            except BlockingIOError:
                return messages, False
            if not data:
                break
            *lines, self.buffer = (self.buffer + data).split(b"\n")
            for line in lines:
                message = parse_object(line)
                if message is None:
                    log.warning("worker %d sent an unreadable message: %r", self.pid, line[:200])
                else:
                    messages.append(message)
        return messages, True

    def retire(self, now: float, grace: float) -> None:
        """Tell the worker to exit (end of file on its stdin); SIGTERM it after ``grace``."""
        self.retiring = True
        if self.term_at is None and self.kill_at is None:
            self.term_at = now + grace
        with contextlib.suppress(OSError):  # the worker is gone; its exit is handled
            self.stdin.close()

    def terminate(self, now: float, grace: float) -> None:
        """SIGTERM the worker and its tree now, SIGKILL them after ``grace``."""
        self.term_at = None
        # The tree is walked first: a worker that dies leaves its children to init, outside
        # its tree. Signalled second, as ever: a flow's own SIGTERM handler acts before the
        # processes it waits for are ended under it.
        if self.tree is not None:
            self.tree.track()
        self.signal(signal.SIGTERM)
        if self.tree is not None:
            self.tree.terminate()
        if self.kill_at is None:
            self.kill_at = now + grace

    def kill(self) -> None:
        """SIGKILL the worker and its whole tree now."""
        self.kill_at = self.term_at = None
        if self.tree is not None:  # first, as in terminate
            self.tree.kill()
        self.signal(signal.SIGKILL)

    def enforce(self, now: float, grace: float) -> None:
        """Send the signals that are due."""
        if self.term_at is not None and self.term_at <= now:
            self.terminate(now, grace)
        if self.kill_at is not None and self.kill_at <= now:
            self.kill()

    def signal(self, signum: signal.Signals) -> None:
        """Send ``signum`` to the worker; nothing once it has been waited for. Through its
        pidfd where there is one, which names this process even after its pid is reused."""
        if self.waited:
            return
        with contextlib.suppress(ProcessLookupError):  # it has exited; its exit is handled
            if self.exit_fd is not None:
                signal.pidfd_send_signal(self.exit_fd, signum)
            else:
                os.kill(self.pid, signum)

    def end_tree(self) -> None:
        """The worker has exited: end what is left of its tree (before its template reaps
        it, so that its pid cannot name another process group yet)."""
        if self.tree is not None:
            self.tree.close()

    def wait(self) -> int | None:
        """Have the template reap the worker, which has ended, and say how it ended: its
        return code (negative for a signal); None if the template is gone and cannot say."""
        self.waited = True
        return self.template.wait_exit(self.pid)

    def deadlines(self) -> list[float]:
        """When this worker next needs the supervisor's attention."""
        times = [t for t in (self.term_at, self.kill_at) if t is not None]
        run = self.run
        if run is not None and run.ending is None:
            if run.deadline is not None:
                times.append(run.deadline)
            if run.memory_check_at is not None:
                times.append(run.memory_check_at)
        return times

    def close(self) -> None:
        """Close the daemon's ends of the worker's pipes (after it has been reaped)."""
        for fd in (self.channel, self.exit_fd):
            if fd is not None and fd >= 0:
                os.close(fd)
        self.channel, self.exit_fd = -1, None
        with contextlib.suppress(OSError):
            self.stdin.close()

    def rss(self) -> int | None:
        """Resident set size in bytes from /proc (Linux); None where unavailable."""
        try:
            with open(f"/proc/{self.pid}/status", encoding="ascii", errors="replace") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            return None
        return None


def worker_env(extra: dict[str, str], database_url: str) -> dict[str, str]:
    """The daemon's environment for its workers, with ``extra`` on top."""
    env = {**os.environ, **extra}
    for name in _DAEMON_ONLY_ENV:
        env.pop(name, None)
    # The workers must write to the store the daemon reads, whatever config they would find.
    env.setdefault("GNOMON_DATABASE_URL", database_url)
    # The pool parses the workers' log lines; the daemon renders its own outputs.
    env["GNOMON_LOG_FORMAT"] = "json"
    if log.isEnabledFor(logging.DEBUG):
        env.pop(QUIET_RUN_EVENTS_ENV, None)
    else:
        env[QUIET_RUN_EVENTS_ENV] = "1"
    return env


def exit_description(pid: int, returncode: int | None, what: str = "worker process") -> str:
    """How a process ended, in words: the exit code, or the signal's name and number."""
    if returncode is None:
        return f"{what} {pid} ended; how is unknown (its worker template is gone)"
    if returncode == EXIT_STORE_GONE:
        return (
            f"{what} {pid} exited with code {returncode}: its database file is"
            " missing or was replaced"
        )
    if returncode < 0:
        name = signal.Signals(-returncode).name
        return f"{what} {pid} died with signal {name} ({-returncode})"
    return f"{what} {pid} exited with code {returncode}"


def exit_status(returncode: int | None) -> tuple[int | None, str | None]:
    """The ``exit_code`` and ``signal`` columns for a process's return code."""
    if returncode is None:
        return None, None
    if returncode < 0:
        return None, signal.Signals(-returncode).name
    return returncode, None


def outcome(
    run: Assignment,
    pid: int | None,
    state_name: str,
    state_type: str,
    error_type: str | None,
    message: str | None,
    returncode: int | None = None,
    stored: dict[str, Any] | None = None,
) -> RunOutcome:
    """The outcome of ``run``; ``stored`` has the run's columns as the worker reported them
    in its ``done`` message (times as ISO strings) or as read from the store."""
    exit_code, signame = exit_status(returncode)
    stored = stored or {}
    run_count = stored.get("run_count")
    return RunOutcome(
        flow_run_id=run.flow_run_id,
        state_name=state_name,
        state_type=state_type,
        worker_pid=pid,
        exit_code=exit_code,
        signal=signame,
        started_at=run.started_at,
        ended_at=datetime.now(UTC),
        duration_ms=round((time.monotonic() - run.started) * 1000),
        error_type=error_type,
        message=message,
        start_time=_moment(stored.get("start_time")),
        end_time=_moment(stored.get("end_time")),
        flow_name=stored.get("flow_name"),
        run_name=stored.get("name"),
        run_count=run_count if isinstance(run_count, int) else None,
    )


def _moment(value: Any) -> datetime | None:
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return value if isinstance(value, datetime) else None


def _ending_state(
    run: Assignment, pid: int | None, returncode: int | None
) -> tuple[State, BaseException]:
    """The state the pool records for a run whose worker ended under it, and its error."""
    from gnomon.exceptions import CancelledRun, CrashedRun, FlowRunTimeoutError
    from gnomon.states import Cancelled, Crashed, TimedOut

    if run.ending is Ending.TIMEOUT:
        message = f"Flow run exceeded timeout of {run.timeout:g} second(s)"
        return TimedOut(message), FlowRunTimeoutError(message)
    if run.ending in (Ending.MEMORY, Ending.UNRECORDED):
        message = run.reason or "the run went above its memory limit"
        return Crashed(message), CrashedRun(message)
    if run.ending is not None:
        message = run.reason or "the run was cancelled"
        return Cancelled(message), CancelledRun(message)
    assert pid is not None, "only a run that ran can crash"
    message = exit_description(pid, returncode)
    return Crashed(message), CrashedRun(message)


def record_end(
    store: RunStore, run: Assignment, pid: int | None, returncode: int | None
) -> RunOutcome:
    """Store, durably, the final state of a run whose worker ended under it (or, with no
    ``pid``, that was cancelled before it started), unless the worker stored a final state
    first; the outcome reports whichever state stands."""
    from gnomon.flows import error_fields, state_columns, state_row
    from gnomon.states import StateType

    state, error = _ending_state(run, pid, returncode)
    exit_code, signame = exit_status(returncode)
    errors = error_fields(error)
    values: FlowRunChanges = {
        "end_time": state.timestamp,
        "worker_pid": pid,
        "exit_code": exit_code,
        "signal": signame,
        **errors,
    }
    row: FlowRunRow | None = None
    try:
        store.set_run_state(
            run.flow_run_id, state.type, state.name, state.message, only_if_active=True, **values
        )
        row = store.read_flow_run(run.flow_run_id)
    except Exception:
        # The store is unavailable: queue the state on the batched writer, which retries.
        log.exception("could not record run %s %s; queued for retry", run.flow_run_id, state.name)
        store.settle_flow_run(
            run.flow_run_id,
            {**state_columns(state), **values},
            state_row(state, 0, run.flow_run_id, None),
        )
    stored_name = (row and row.state_name) or state.name
    log.log(
        logging.WARNING if state.type is StateType.CRASHED else logging.INFO,
        "run %s ended %s: %s",
        run.flow_run_id,
        stored_name,
        state.message,
        extra={"flow_run_id": run.flow_run_id, "worker_pid": pid},
    )
    return outcome(
        run,
        pid,
        stored_name,
        (row and row.state_type) or state.type,
        (row and row.error_type) or errors["error_type"],
        (row and row.state_message) or state.message,
        returncode,
        row.as_dict() if row is not None else None,
    )
