"""The daemon process: start-up, the loop, reload and shutdown.

Start-up order matters and is the one systemd's READY=1 promises: the config is valid, the
store is migrated, this is the only daemon on the store, runs a dead daemon left behind are
settled, the worker pool is warm and missed fires are caught up, and only then does the
timer start and READY=1 go out.

The loop is a thin shell around ``Scheduler.tick(now)``: it sleeps until the timer hands
over a fire time, a run finishes, a signal arrives or a second passes (to apply what the CLI
and the API changed in the store, see ``_poll``, and to feed the watchdog), then ticks. The
HTTP API runs on its own thread and only writes the store and wakes the loop.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from gnomon.daemon._scheduler import Scheduler

if TYPE_CHECKING:
    from gnomon.api._server import ApiServer
    from gnomon.daemon._poll import StorePoll
    from gnomon.daemon._pool import RunOutcome, WorkerPool
    from gnomon.daemon._report import RunReporter
    from gnomon.daemon._timing import HandedFires
    from gnomon.daemon._tracking import DispatchedRun
    from gnomon.deployments import GnomonConfig
    from gnomon.store import Store

log = logging.getLogger("gnomon.daemon")

SWITCH_INTERVAL = 0.0005  # seconds; CPython's default is 0.005
POLL_INTERVAL = 1.0  # what other processes change in the store takes effect within this
DAEMON_ACTOR = ("gnomon-daemon", "daemon")  # the audit log's actor for the daemon's own changes


def _now() -> datetime:
    return datetime.now(UTC)


class Daemon:
    """One daemon process serving the deployments of one config file."""

    def __init__(self, config_path: Path | None) -> None:
        self.config_path = config_path
        self.daemon_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._wake = threading.Event()
        self._stop_requested = False
        self._reload_requested = False
        self._poll_requested = False
        self.scheduler: Scheduler
        self.pool: WorkerPool
        self.store: Store
        self.config: GnomonConfig
        self.reporter: RunReporter
        self.store_poll: StorePoll
        self.api: ApiServer | None = None

    # Signals only set flags and wake the loop; the loop does the work.

    def request_stop(self, *_: Any) -> None:
        self._stop_requested = True
        self._wake.set()

    def request_reload(self, *_: Any) -> None:
        self._reload_requested = True
        self._wake.set()

    def request_poll(self, *_: Any) -> None:
        """Read the store's changes now rather than within a second (SIGUSR1, the API)."""
        self._poll_requested = True
        self._wake.set()

    def nudge(self, kind: str) -> None:
        """What the API calls after a change: "reload" re-reads the config, else poll."""
        if kind == "reload":
            self.request_reload()
        else:
            self.request_poll()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGHUP, self._on_signal)
        signal.signal(signal.SIGUSR1, self._on_signal)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            self.request_reload()
        elif signum == signal.SIGUSR1:
            self.request_poll()
        else:
            self.request_stop()

    # Start-up.

    def start(self) -> None:
        """Everything before READY=1; raises ConfigError or DaemonAlreadyRunning."""
        from gnomon._settings import get_settings
        from gnomon.daemon._lock import DaemonLock
        from gnomon.daemon._poll import StorePoll
        from gnomon.daemon._pool import WorkerPool
        from gnomon.daemon._report import RunReporter, StoreLogHandler
        from gnomon.daemon._worker import freeze_heap
        from gnomon.deployments import load_config_or_raise
        from gnomon.flows._logging import configure_daemon_logging, in_background
        from gnomon.store import get_store
        from gnomon.store._db import EXTERNAL_CHECKPOINTS_ENV

        # Before the store opens: the daemon's and the workers' commits leave checkpoints
        # to the daemon's checkpointer (see _checkpoint).
        os.environ[EXTERNAL_CHECKPOINTS_ENV] = "daemon"
        # The loop and the pool's thread hand each run on within a millisecond; the default
        # 5 ms GIL switch interval let the log-rendering threads hold them up for longer.
        sys.setswitchinterval(SWITCH_INTERVAL)
        self.config = load_config_or_raise(self.config_path)
        settings = get_settings()
        configure_daemon_logging(self.config.daemon.log_file or _default_log_file(settings.home))
        self._lock = DaemonLock.for_store(settings.home, settings.effective_database_url)
        self._lock.acquire(config=str(self.config.path) if self.config.path else None)
        self.store = get_store()
        self._store_log = in_background(StoreLogHandler(self.store))
        log.addHandler(self._store_log)
        daemon = self.config.daemon
        self.pool = WorkerPool(
            daemon.workers,
            sorted({deployment.flow for deployment in self.config.deployments}),
            max_runs_per_worker=daemon.max_runs_per_worker,
            max_memory_per_worker=daemon.max_memory_per_worker,
            kill_grace=daemon.kill_grace.total_seconds(),
            on_finished=self._on_finished,
            log_sink=_forward_worker_line,
        )
        # The workers import their flows while the daemon syncs and recovers.
        self.pool.launch()
        try:
            self.scheduler = Scheduler(self.store, self.pool, self.daemon_id)
            self._sync(_now())
            self.reporter = RunReporter(self.store, self.config, self.scheduler, self.pool)
            self._recover()
            self.api = _start_api(self, settings.home)
            self.pool.wait_warm()
        except BaseException:
            self.pool.stop(0)
            raise
        horizon = _now()
        self.store_poll = StorePoll(self.store, self.scheduler, horizon)
        self.reporter.decided(self.scheduler.catch_up(horizon))
        self._start_timer(horizon)
        self._start_checkpointer()
        freeze_heap()
        log.info(
            "daemon ready: %d deployments, %d workers",
            len(self.config.deployments),
            daemon.workers,
            extra={"daemon_id": self.daemon_id, "config": str(self.config.path)},
        )

    def _start_checkpointer(self) -> None:
        from gnomon.daemon._checkpoint import Checkpointer
        from gnomon.store._db import sqlite_path

        path = sqlite_path(self.store.url)
        self.checkpointer = None if path is None else Checkpointer(path, busy=self._busy)
        if self.checkpointer is not None:
            self.checkpointer.start()

    def _busy(self) -> bool:
        return self.pool.busy_count() > 0 or self.scheduler.waiting_count() > 0

    def _sync(self, now: datetime, keep: Collection[str] = ()) -> None:
        from gnomon.deployments import sync_deployments

        result = sync_deployments(self.store, self.config.deployments, now, keep=keep)
        rows = self.store.read_schedule_states()
        self.scheduler.set_deployments(self.config.deployments, rows)
        log.info(
            "deployments synced: %d added, %d changed, %d removed, %d unchanged",
            len(result.added),
            len(result.changed),
            len(result.removed),
            len(result.unchanged),
            extra={
                "added": _some(result.added),
                "changed": _some(result.changed),
                "removed": _some(result.removed),
            },
        )

    def _recover(self) -> None:
        """Settle runs a dead daemon left: Running ones crashed, waiting ones queue again.

        This daemon holds the store's lock, so any daemon that owned them is gone.
        """
        waiting = []
        for row in self.store.read_unfinished_deployment_runs():
            self.scheduler.note_fire(row)
            if row["state_type"] == "RUNNING" and row["cancel_requested_at"] is not None:
                # An operator asked for it to end; the daemon's death ended it.
                self.store.set_run_state(
                    row["id"],
                    "CANCELLED",
                    "Cancelled",
                    row["state_message"],
                    only_if_active=True,
                    end_time=_now(),
                )
            elif row["state_type"] == "RUNNING":
                message = (
                    f"the daemon running it ({row['daemon_id']}) stopped before the run finished"
                )
                if not self.store.set_run_state(
                    row["id"], "CRASHED", "Crashed", message, only_if_active=True, end_time=_now()
                ):
                    continue  # it ended meanwhile: its final state stands, and no retry
                log.warning(
                    "recovered run marked Crashed: %s",
                    row["id"],
                    extra={"flow_run_id": row["id"], "deployment": row["deployment_name"]},
                )
                slot = self.scheduler.deployment(row["deployment_name"])
                if slot is not None:
                    self.scheduler.retry_if_allowed(slot, row["id"], "CRASHED")
            elif self.store.set_run_state(
                row["id"],
                "PENDING",
                "Pending",
                "queued again after a daemon restart",
                only_if_active=True,  # not a run cancelled since it was read
                daemon_id=self.daemon_id,
            ):
                waiting.append(row)
        self.scheduler.requeue(waiting)

    def _start_timer(self, not_before: datetime) -> None:
        from gnomon.daemon._timing import Timer

        self.timer = Timer(self._hand_off)
        for name, slot in self.scheduler.slots().items():
            self.timer.schedule(
                name, slot.trigger, slot.offset, max(not_before, slot.last_fire or not_before)
            )
        self.timer.start()

    def _hand_off(self, batch: list[HandedFires]) -> None:
        for fires in batch:
            self.scheduler.hand_off(fires.name, fires.nominal_times, fires.next_fire, fires.trigger)
        self._wake.set()

    def _on_finished(self, outcome: RunOutcome) -> None:
        dispatched = self.scheduler.run_finished(outcome.flow_run_id, outcome.state_type)
        self._wake.set()
        self.reporter.run_finished(run_summary(outcome, dispatched))

    # The loop.

    def serve(self) -> int:
        """Run until asked to stop; returns the process exit code."""
        from gnomon.daemon._systemd import Notifier
        from gnomon.flows._log_hold import hold_background

        notifier = Notifier()
        notifier.ready(
            f"{len(self.config.deployments)} deployments, {self.config.daemon.workers} workers"
        )
        next_poll = 0.0
        try:
            while not self._stop_requested:
                self._wake.wait(self._sleep_seconds())
                self._wake.clear()
                if self._reload_requested:
                    self._reload_requested = False
                    notifier.reloading()
                    self.reload()
                    notifier.ready("reloaded")
                now = _now()
                if self._poll_requested or poll_due(now.timestamp(), next_poll, self._backlog()):
                    # Before the tick, so a pause or a requested run counts in its decisions.
                    self._poll_requested = False
                    self.reporter.decided(self.store_poll.poll(now))
                    next_poll = now.timestamp() + POLL_INTERVAL
                self.reporter.decided(self.scheduler.tick(now))
                # Runs waiting for a worker: the log threads hold back (see hold_background).
                hold_background(self._backlog())
                notifier.watchdog()
        finally:
            notifier.stopping()
            self.shutdown()
        return 0

    def _backlog(self) -> bool:
        """Whether runs wait for a worker: queued in the scheduler or held by the pool."""
        return self.scheduler.waiting_count() > 0 or self.pool.held_count() > 0

    def _sleep_seconds(self) -> float:
        """Until the next handed-over fire is due, or the next poll."""
        due = self.scheduler.next_due()
        if due is None:
            return POLL_INTERVAL
        return min(POLL_INTERVAL, max(0.0, (due - _now()).total_seconds()))

    def reload(self) -> None:
        """Re-read the config: bad deployments are reported and skipped, the rest apply."""
        from gnomon.deployments import load_config

        result = load_config(self.config_path)
        for problem in result.problems:
            log.error("config problem on reload: %s", problem, extra={"problem": str(problem)})
        slots = self.scheduler.slots()
        previous = set(slots)
        # A deployment whose edit broke it keeps running as it was, rather than stopping.
        valid = {deployment.name for deployment in result.config.deployments}
        kept = [
            slots[name].deployment for name in result.failed if name in slots and name not in valid
        ]
        self.config = result.config.model_copy(
            update={"deployments": (*result.config.deployments, *kept)}
        )
        now = _now()
        self._sync(now, keep=result.failed)
        current = self.scheduler.slots()
        for name in previous - set(current):
            self.timer.remove(name)
        for name, slot in current.items():
            self.timer.schedule(name, slot.trigger, slot.offset, max(now, slot.last_fire or now))
        # New workers import the flows afresh, so edited flow code takes effect.
        self.pool.recycle(sorted({deployment.flow for deployment in self.config.deployments}))
        self.reporter.configure(self.config)
        log.info(
            "config reloaded", extra={"deployments": len(current), "problems": len(result.problems)}
        )
        from gnomon.store import Actor

        self.store.record_audit(
            Actor(*DAEMON_ACTOR),
            "reload",
            str(self.config.path) if self.config.path else None,
            detail={
                "added": sorted(set(current) - previous),
                "removed": sorted(previous - set(current)),
                "problems": [str(problem) for problem in result.problems],
            },
        )

    def abandon(self) -> None:
        """Undo a start that failed before the pool started: let the store's lock go."""
        lock = getattr(self, "_lock", None)
        if lock is not None:
            lock.release()

    def shutdown(self) -> None:
        """Stop firing, let running runs finish up to shutdown_grace, then end them."""
        from gnomon.flows._log_hold import hold_background

        hold_background(False)
        timer = getattr(self, "timer", None)
        if timer is not None:
            timer.shutdown()
        if self.api is not None:
            self.api.stop()
        grace = self.config.daemon.shutdown_grace.total_seconds()
        log.info(
            "daemon stopping: waiting up to %gs for %d running runs",
            grace,
            self.scheduler.running_count(),
        )
        self.pool.stop(grace)
        checkpointer = getattr(self, "checkpointer", None)
        if checkpointer is not None:
            checkpointer.stop()
        self.scheduler.record_fire_times()
        self.reporter.close()
        log.removeHandler(self._store_log)
        self._store_log.stop()  # its lines reach the store before the last flush
        self.store.flush()
        self._lock.release()
        log.info("daemon stopped")


# Names a log line lists at most: journald cuts lines past 48 KiB, and 10,000 deployment
# names make 150 KB. The counts are in the message.
LOGGED_NAMES = 50


def poll_due(now: float, next_poll: float, backlog: bool) -> bool:
    """Whether the timed poll of the store (three queries) is due at ``now``: at
    ``next_poll``, or, while runs wait for a worker (``backlog``), up to one interval later
    rather than delay their start. A poll the CLI requests is never put off."""
    return now >= next_poll + (POLL_INTERVAL if backlog else 0.0)


def _some(names: Sequence[str]) -> list[str]:
    """At most LOGGED_NAMES of ``names``, with "... and N more" in place of the rest."""
    if len(names) <= LOGGED_NAMES:
        return list(names)
    return [*names[:LOGGED_NAMES], f"... and {len(names) - LOGGED_NAMES} more"]


def _default_log_file(home: Path) -> Path:
    # Under systemd, LogsDirectory= provides $LOGS_DIRECTORY.
    logs = os.environ.get("LOGS_DIRECTORY")
    return (Path(logs.split(":")[0]) if logs else home / "logs") / "gnomon.jsonl"


def _forward_worker_line(line: str, worker_pid: int) -> None:
    from gnomon.flows._logging import daemon_lines

    daemon_lines.write(line)


@dataclass(frozen=True, slots=True)
class RunSummary:
    """What the daemon reports about each finished run: the facts incident handling asks
    first, from the scheduler (what was due when) and the worker (what happened), with no
    store read. One value, for whatever reports it (today the ``run_summary`` log line)."""

    flow_run_id: str
    deployment: str | None
    flow: str | None
    flow_run_name: str | None
    scheduled_for: datetime | None  # the nominal fire time
    expected_start: datetime | None  # plus the deployment's jitter offset
    started_at: datetime | None  # the run's start_time: when its worker claimed it
    ended_at: datetime | None
    lateness_ms: int | None  # started_at - expected_start
    duration_ms: int  # from hand-over to the worker until the pool learnt the run ended
    state: str
    state_type: str
    attempt: int | None
    worker_pid: int | None
    exit_code: int | None
    signal: str | None
    error_type: str | None
    state_message: str | None

    def as_dict(self) -> dict[str, Any]:
        """The summary as JSON-ready values (times as ISO 8601 strings)."""
        values = ((field.name, getattr(self, field.name)) for field in fields(self))
        return {
            name: value.isoformat() if isinstance(value, datetime) else value
            for name, value in values
        }


def run_summary(outcome: RunOutcome, dispatched: DispatchedRun | None) -> RunSummary:
    """The summary of a finished run from its outcome and, if the scheduler dispatched it,
    what it was due for."""
    expected = dispatched.expected_start if dispatched else None
    started = outcome.start_time
    return RunSummary(
        flow_run_id=outcome.flow_run_id,
        deployment=dispatched.deployment if dispatched else None,
        flow=outcome.flow_name or (dispatched.flow if dispatched else None),
        flow_run_name=outcome.run_name,
        scheduled_for=dispatched.scheduled_for if dispatched else None,
        expected_start=expected,
        started_at=started,
        ended_at=outcome.end_time,
        lateness_ms=(
            round((started - expected).total_seconds() * 1000) if started and expected else None
        ),
        duration_ms=outcome.duration_ms,
        state=outcome.state_name,
        state_type=outcome.state_type,
        attempt=outcome.run_count,
        worker_pid=outcome.worker_pid,
        exit_code=outcome.exit_code,
        signal=outcome.signal,
        error_type=outcome.error_type,
        state_message=outcome.message,
    )


def _start_api(daemon: Daemon, home: Path) -> ApiServer | None:
    """Serve the HTTP API where ``[daemon] api`` says (None if "off"); on a store without
    tokens, first write an admin token to ``HOME/api-token`` (mode 0600)."""
    config = daemon.config.daemon
    if config.api is None:
        return None
    from gnomon.api._bind import parse_bind
    from gnomon.api._http import create_app
    from gnomon.api._server import ApiServer, check_bind, ensure_admin_token

    host, port = parse_bind(config.api)
    check_bind(host, config.api_auth)
    token_file = home / "api-token"
    if config.api_auth and ensure_admin_token(daemon.store, token_file) is not None:
        log.warning(
            "first start: an admin API token was written to %s (readable by its owner only)",
            token_file,
            extra={"token_file": str(token_file)},
        )
    app = create_app(
        daemon.store,
        nudge=daemon.nudge,
        metrics_render=daemon.reporter.metrics.render,
        auth=config.api_auth,
        config_path=daemon.config.path,
        dashboard_url=config.public_url,
    )
    server = ApiServer(app, host, port)
    server.start()
    log.info("api listening on %s", server.url, extra={"api_url": server.url})
    return server


def run_daemon(config_path: Path | None, started: Callable[[int, str], None] | None = None) -> int:
    """Run the daemon in the foreground; returns the exit code (2: bad config, 1: another
    daemon holds the store or the API cannot listen, 66: the database file was deleted or
    replaced under it). ``started`` hears how start-up ended (the exit code, 0 once ready,
    and a message): ``--detach`` reports it to its terminal."""

    from gnomon.api._server import ApiServerError, UnsafeBind
    from gnomon.daemon._lock import DaemonAlreadyRunning
    from gnomon.exceptions import ConfigError

    report = started or (lambda _code, _message: None)
    daemon = Daemon(config_path)
    daemon.install_signal_handlers()
    try:
        daemon.start()
    except ConfigError as error:
        print(f"gnomon daemon: the config has problems, not starting:\n{error}", file=sys.stderr)
        report(2, f"the config has problems, not starting:\n{error}")
        return 2
    except (DaemonAlreadyRunning, ApiServerError, UnsafeBind) as error:
        print(f"gnomon daemon: {error}", file=sys.stderr)
        report(1, str(error))
        daemon.abandon()
        return 1
    except BaseException as error:
        report(1, f"start-up failed: {type(error).__name__}: {error}")
        raise
    report(0, f"pid {os.getpid()}, {len(daemon.config.deployments)} deployments")
    from gnomon.daemon._storefile import EXIT_STORE_GONE, StoreFileChanged

    try:
        return daemon.serve()
    except StoreFileChanged:  # logged when found; serve() has shut down
        return EXIT_STORE_GONE
