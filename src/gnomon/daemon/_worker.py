"""A warm worker process of the daemon's pool, and the protocol the pool speaks with it.

Workers are forked from the pool's template process (``_template.py``), which imported
gnomon and the deployments' flows once (``warm_up``; a flow that fails to import is logged
as a warning). A forked worker (``serve``) connects to the store, reports ready, then serves
one flow run at a time:

- stdin, daemon to worker: one JSON line per run, ``{"run": "<flow_run_id>"}``, with the
  run's log cap if it has one (``"log_lines": n, "log_bytes": n``) and its deployment's
  env, working_dir and user if it states any (``"setup"``, see ``_runsetup``). End of file
  means "exit": when idle the worker exits 0; in the middle of a run it means the daemon
  died, and the worker abandons the run at once (see ``_Inbox``).
- the channel (an extra pipe), worker to daemon: ``{"ready": pid}`` once warm, then
  ``{"done": id, "state": name, "state_type": type, "error_type": ..., "message": ...,
  "start_time": iso, "end_time": iso, "flow_name": ..., "name": ..., "run_count": n}`` per
  run, sent once the final state is committed (so the daemon reports the run without reading
  it back); a run that was not Scheduled or Pending also carries ``"not_runnable": reason``,
  and ``"exiting": true`` says the worker exits after this run (the flow called
  ``sys.exit()``, or the run changed the worker's user). Before that, ``{"storing": id,
  "state": name, "state_type": type}`` if the run finished but the store could not take
  its final state at once: the worker waits for it (up to ``final_state_patience``), and
  the pool neither times out nor cancels a run whose code has finished, until
  ``{"stored": id}`` says the wait is over (the run's hooks run next, under its timeout
  again).
- stdout and stderr both go to one log pipe the pool relays line by line: gnomon's JSON log
  lines and whatever flows print. ``{"gnomon_worker_run": id}`` lines (``null`` after the run)
  mark where each run's output begins and ends, so the pool attributes output exactly;
  a run's start marker carries its log cap, for the pool's relay to apply to its prints.

Each forked worker is a child subreaper, and kills what a run left running as the run ends
(see ``_proctree``): nothing a run started outlives it.

The results travel on their own pipe rather than on stdout because flows print to stdout, and
so may C extensions and child processes, from the first instruction on: no redirection done
after start-up could make stdout safe for the protocol.
"""

from __future__ import annotations

import importlib
import io
import json
import logging
import os
import queue
import sys
import threading
from datetime import datetime
from typing import Any

from gnomon._lifeline import EXIT_ORPHANED
from gnomon.daemon._runsetup import RunSetupError, WorkerSetup
from gnomon.exceptions import StoreFileGone
from gnomon.states import State, StateName, StateType

RUN_MARKER = "gnomon_worker_run"  # key of the lines that delimit a run's output
# The engine's INFO lines at a flow run's start and end ("Beginning flow run", "Finished in
# state"): the daemon's fire decision and run summary lines, stored with the run as well,
# report the same facts. With this variable set (the daemon does unless it logs at DEBUG),
# the worker does not make them at all (``summarise_run_events``); the pool does not relay
# them either from a worker started without it while the daemon logs at INFO.
SUMMARISED_EVENTS = frozenset({"begin", "end"})
QUIET_RUN_EVENTS_ENV = "GNOMON_WORKER_QUIET_RUN_EVENTS"

log = logging.getLogger("gnomon.worker")


def encode(message: dict[str, Any]) -> bytes:
    """One protocol message as a JSON line."""
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def parse_object(line: bytes | str) -> dict[str, Any] | None:
    """A JSON object line as a dict; None for anything else."""
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def warm_up(preload: list[str]) -> dict[str, str]:
    """Import gnomon's run engine and the ``preload`` flows, as every worker forked from
    this process will have them; the flows that failed to import, with why."""
    _line_buffered_output()

    from gnomon.flows import configure_logging

    configure_logging()
    if os.environ.get(QUIET_RUN_EVENTS_ENV):
        from gnomon.flows import summarise_run_events

        summarise_run_events()
    # What a run needs (the engine, SQLAlchemy and the schema, its containment and log
    # cap), but no connection yet.
    for module in (
        "gnomon.flows._flow_engine",
        "gnomon.store._store",
        "gnomon.daemon._proctree",
        "gnomon.flows._log_cap",
        "gnomon.flows._runners",
        "concurrent.futures.thread",
    ):
        importlib.import_module(module)
    return _preload(preload)


def serve(channel: int) -> int:
    """In a forked worker: connect, report ready, then run the flow runs the daemon sends
    until stdin closes; returns the worker's exit code."""
    os.set_inheritable(channel, False)  # a flow's child processes must not hold it open
    from gnomon.store import get_store

    # Here, not in the template: a subreaper is not inherited across fork, and the
    # template must not take in its workers' orphans.
    _contain_runs()
    try:
        # Connect now, not at the first run. The daemon made the database; one that is
        # missing was deleted under it, and an empty one made here would take this worker's
        # runs where the daemon never looks. Nor is its schema checked again: the daemon
        # did, and one newer since is a rolling upgrade's (additive) on another host.
        get_store(create=False, migrate=False)
    except StoreFileGone as error:
        return _store_gone(error, None)
    freeze_heap()
    current: list[str] = []  # the run being served (not its subflows)
    _tell_storing(channel, current)
    inbox = _Inbox()
    inbox.start()
    _send(channel, {"ready": os.getpid()})
    while (request := inbox.next_run()) is not None:
        flow_run_id = request["run"]
        current[:] = [flow_run_id]
        try:
            message = _execute(flow_run_id, request)
        except StoreFileGone as error:
            return _store_gone(error, flow_run_id)
        except BaseException as error:
            # sys.exit() or an interrupt in the flow: the engine recorded the run Crashed; the
            # worker reports it, then exits as asked (the pool replaces it).
            inbox.run_done()
            _send(channel, {**_stored_outcome(flow_run_id, error), "exiting": True})
            raise
        # Done before the daemon hears of it: told, it may close stdin at once (a recycled
        # worker), and the inbox must not take that for the daemon's death mid-run, which
        # exits at once, skipping the exit hooks that commit the run's last rows.
        inbox.run_done()
        _send(channel, message)
        if message.get("exiting"):
            return 0  # it ran as another user: no way back to the daemon's (_runsetup)
    return 0


def _tell_storing(channel: int, current: list[str]) -> None:
    """Have the engine tell the pool when the run being served finished but waits for the
    store to take its final state (a subflow's wait is its parent's business)."""
    from gnomon.flows import on_final_state_wait

    def storing(flow_run_id: str, state: State, waiting: bool) -> None:
        if current != [flow_run_id]:
            return
        if waiting:
            message = {"storing": flow_run_id, "state": state.name}
            _send(channel, {**message, "state_type": state.type.value})
        else:  # stored or given up: its hooks run next, under its timeout again
            _send(channel, {"stored": flow_run_id})

    on_final_state_wait(storing)


def _store_gone(error: StoreFileGone, flow_run_id: str | None) -> int:
    """Report a database that went missing (the pool records the run Crashed in the
    daemon's store, which stops too: see ``_storefile``); the worker's exit code."""
    from gnomon.daemon._storefile import EXIT_STORE_GONE

    log.error(
        "worker %d stops: %s%s",
        os.getpid(),
        error,
        f"; run {flow_run_id} was not finished" if flow_run_id else "",
        extra={"flow_run_id": flow_run_id, "database": str(error.path)},
    )
    return EXIT_STORE_GONE


def freeze_heap() -> None:
    """Move everything made so far out of the garbage collector's sight (the daemon, the
    worker template before it forks and each worker call it once warm).

    gnomon, SQLAlchemy, pydantic, the flows' modules and the daemon's deployments make a
    few hundred thousand long-lived objects; each full collection walks them all (20 ms in
    a warm worker), landing in whichever run happens to allocate at the time. Frozen, they
    are never walked again (they live as long as the process anyway); what runs make
    afterwards is collected as before. Frozen in the template, they also stay shared with
    the forked workers: a collection would write to every object's header, copying the
    pages.
    """
    import gc

    gc.collect()
    gc.freeze()


def _contain_runs() -> None:
    """Keep what runs start in this worker's tree (see ``_proctree``), and have a fatal
    signal (a segfault in a C extension) print the Python stack, which the pool stores
    with the run."""
    import faulthandler

    from gnomon.daemon._proctree import become_subreaper

    faulthandler.enable()
    if not become_subreaper():
        log.warning(
            "worker %d could not become a child subreaper: processes its runs start in a "
            "new session may outlive the runs",
            os.getpid(),
        )


def _line_buffered_output() -> None:
    """Flush prints line by line, so they reach the log pipe in order and survive a crash;
    and mask the secret values of the runs' parameters in what flows print."""
    from gnomon._secrets import MaskingWriter

    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(line_buffering=True)
    sys.stdout, sys.stderr = MaskingWriter(sys.stdout), MaskingWriter(sys.stderr)


def _preload(entrypoints: list[str]) -> dict[str, str]:
    from gnomon.flows import load_flow

    failed: dict[str, str] = {}
    for entrypoint in entrypoints:
        try:
            load_flow(entrypoint)
        except (Exception, SystemExit) as error:
            failed[entrypoint] = f"{type(error).__name__}: {error}"
            log.warning(
                "could not import flow %s in worker template %d; its runs will fail: %s: %s",
                entrypoint,
                os.getpid(),
                type(error).__name__,
                error,
                extra={"entrypoint": entrypoint, "error_type": type(error).__name__},
            )
    return failed


def _send(channel: int, message: dict[str, Any]) -> None:
    data = encode(message)
    while data:
        data = data[os.write(channel, data) :]


def _mark_run(flow_run_id: str | None, cap: dict[str, int] | None = None) -> None:
    """Delimit a run's output on the log pipe, after everything printed before it."""
    sys.stdout.flush()
    sys.stderr.flush()
    # The leading newline ends any partial line a flow left, so the marker is a line of its own.
    os.write(2, b"\n" + encode({RUN_MARKER: flow_run_id, **(cap or {})}))


def _requested_cap(request: dict[str, Any]) -> dict[str, int] | None:
    """The log cap a run request carries (``log_lines`` and ``log_bytes``), if any."""
    lines, size = request.get("log_lines"), request.get("log_bytes")
    if isinstance(lines, int) and isinstance(size, int):
        return {"log_lines": lines, "log_bytes": size}
    return None


def _begin_run(flow_run_id: str, request: dict[str, Any] | None) -> None:
    """Cap what the run logs, and mark where its output begins (with its cap, which the
    pool's relay applies to what it prints)."""
    from gnomon.flows import cap_run_logs

    cap = _requested_cap(request or {})
    if cap is not None:
        cap_run_logs(cap["log_lines"], cap["log_bytes"])
    _mark_run(flow_run_id, cap)


def _end_run(flow_run_id: str) -> None:
    """Kill what the run left running, lift its log cap, and mark the end of its output."""
    from gnomon.daemon._proctree import end_leftovers
    from gnomon.flows import cap_run_logs

    leftovers = end_leftovers()
    cap_run_logs(None, None)
    if leftovers:
        from gnomon.flows import FLOW_RUN_LOGGER

        logging.getLogger(FLOW_RUN_LOGGER).warning(
            "the run left %d processes running (pids %s); they were killed as it ended",
            len(leftovers),
            ", ".join(map(str, leftovers)),
            extra={"flow_run_id": flow_run_id, "leftover_pids": leftovers},
        )
    _mark_run(None)


def _execute(flow_run_id: str, request: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run one stored flow run (``request`` is the daemon's message for it); the ``done``
    message that reports how it ended, saying the worker exits after it if the run
    changed its user (however the run ended: the worker cannot become root again)."""
    setup = WorkerSetup(request)
    message = _executed(flow_run_id, request, setup)
    return {**message, "exiting": True} if setup.became_user else message


def _executed(
    flow_run_id: str, request: dict[str, Any] | None, setup: WorkerSetup
) -> dict[str, Any]:
    from gnomon.exceptions import FlowRunNotRunnable
    from gnomon.flows import execute_stored_run, state_error, stored_text

    _begin_run(flow_run_id, request)
    try:
        with setup:
            run, state = execute_stored_run(flow_run_id, claimed=setup.claimed)
    except RunSetupError as error:
        return _setup_failed(flow_run_id, error)
    except FlowRunNotRunnable as error:
        return {**_stored_outcome(flow_run_id, error), "not_runnable": str(error)}
    except StoreFileGone:
        raise  # nothing can be recorded: the worker stops (see main)
    except Exception as error:
        return _crash_unfinished(flow_run_id, error)
    finally:
        _end_run(flow_run_id)
    failure = state_error(state)
    return {
        "done": flow_run_id,
        "state": state.name,
        "state_type": state.type.value,
        "error_type": _type_name(failure) if failure is not None else None,
        "message": stored_text(state.message),
        "start_time": _iso(run.start_time),
        "end_time": _iso(state.timestamp),
        "flow_name": run.flow_name,
        "name": run.name,
        "run_count": run.run_count,
    }


def _setup_failed(flow_run_id: str, error: RunSetupError) -> dict[str, Any]:
    """Record Failed a run whose setup could not be applied; its ``done`` message."""
    from gnomon.flows import error_fields, stored_text
    from gnomon.store import get_store, utcnow

    log.error("%s", error, extra={"flow_run_id": flow_run_id})
    get_store().set_run_state(
        flow_run_id,
        StateType.FAILED,
        StateName.FAILED,
        stored_text(f"the run could not start: {error}"),
        only_if_active=True,
        end_time=utcnow(),
        **error_fields(error),
    )
    return _stored_outcome(flow_run_id, error)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _type_name(error: BaseException) -> str:
    from gnomon.flows import error_fields

    return str(error_fields(error)["error_type"])


def _stored_outcome(flow_run_id: str, error: BaseException) -> dict[str, Any]:
    """A ``done`` message with the run's state as stored (the run did not end here)."""
    from gnomon.flows import stored_text
    from gnomon.store import get_store

    row = get_store().read_flow_run(flow_run_id)
    message: dict[str, Any] = {
        "done": flow_run_id,
        "state": (row and row.state_name) or StateName.CRASHED,
        "state_type": (row and row.state_type) or StateType.CRASHED,
        "error_type": _type_name(error),
        "message": stored_text(str(error)),
    }
    if row is not None:
        message.update(
            start_time=_iso(row.start_time),
            end_time=_iso(row.end_time),
            flow_name=row.flow_name,
            name=row.name,
            run_count=row.run_count,
        )
    return message


def _crash_unfinished(flow_run_id: str, error: Exception) -> dict[str, Any]:
    """Record Crashed a run the engine could not start or finish (unknown run, flow that
    fails to import), unless it already has a final state: it must not stay Scheduled or
    Running."""
    from gnomon.flows import record_crashed
    from gnomon.store import get_store

    message = f"the worker could not run the flow run: {type(error).__name__}: {error}"
    log.error("%s", message, extra={"flow_run_id": flow_run_id}, exc_info=error)
    record_crashed(get_store(), flow_run_id, message, error)
    return _stored_outcome(flow_run_id, error)


class _Inbox:
    """Reads the daemon's messages from stdin in a thread, so that end of file is noticed
    even while a run is executing.

    End of file during a run means the daemon died: the worker exits at once, abandoning the
    run, rather than finishing it unsupervised. A restarted daemon marks the run Crashed (and
    may run it again under its retry policy) as soon as it holds the store's lock, which an
    orphan still writing the run's states would contradict; and no one would enforce the
    run's timeout or collect its result meanwhile.
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._running = False
        self._closed = False

    def start(self) -> None:
        threading.Thread(target=self._read, name="gnomon-worker-stdin", daemon=True).start()

    def _read(self) -> None:
        for line in sys.stdin.buffer:
            message = parse_object(line)
            if message is not None and isinstance(message.get("run"), str):
                self._queue.put(message)
            else:
                log.warning("ignoring a malformed message from the daemon: %r", line[:200])
        with self._lock:
            self._closed = True
            if self._running:
                from gnomon.daemon._proctree import end_leftovers

                end_leftovers()  # nobody else will
                os._exit(EXIT_ORPHANED)
        self._queue.put(None)

    def next_run(self) -> dict[str, Any] | None:
        """The daemon's request for the next run (``{"run": id, ...}``); None once stdin
        has closed (time to exit)."""
        request = self._queue.get()
        with self._lock:
            if request is None or self._closed:
                return None
            self._running = True
        return request

    def run_done(self) -> None:
        with self._lock:
            self._running = False
