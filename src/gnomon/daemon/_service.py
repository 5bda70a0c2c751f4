"""The daemon process: start-up, the loop, reload and shutdown.

Start-up order matters and is the one systemd's READY=1 promises: the config is valid, the
store is migrated, this is the only daemon on the store, runs a dead daemon left behind are
settled, the worker pool is warm and missed fires are caught up, and only then are the
first fires planned and READY=1 sent.

The loop is a thin shell around ``Scheduler.tick(now)``: it sleeps on a self-pipe
(``_wakeup``) until the scheduler's earliest planned fire is due (``Scheduler.next_due``), a
run finishes, a signal arrives or a second passes, then takes one pass (``step``): apply a
finished config load, catch up after downtime, tick, poll the store for what the CLI and
the API changed (``_poll``), and at most once a second check deadlines and freshness
(``_deadlines``). A store that fails (locked by another program, a full disk, a
read-only file) never ends it: the pass is retried with back-off, the daemon reports itself
degraded (``_health``), and once the store works again the outage is downtime for each
deployment's catch-up policy.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from gnomon.daemon._backfills import BackfillRunner
from gnomon.daemon._cadence import PollTimer
from gnomon.daemon._recovery import recover, release_waiting
from gnomon.daemon._scheduler import Scheduler
from gnomon.daemon._summary import run_summary
from gnomon.daemon._wakeup import Wakeup
from gnomon.store import RunCause

if TYPE_CHECKING:
    from gnomon.daemon._deadlines import DeadlineWatch
    from gnomon.daemon._health import Health, HealthMonitor
    from gnomon.daemon._listen import Listener
    from gnomon.daemon._members import ClusterRole
    from gnomon.daemon._poll import StorePoll
    from gnomon.daemon._pool import RunOutcome, WorkerPool
    from gnomon.daemon._reload import ConfigLoader, Loaded
    from gnomon.daemon._report import RunReporter
    from gnomon.daemon._retention import Retention
    from gnomon.daemon._served import ServedDeployments
    from gnomon.daemon._systemd import Notifier
    from gnomon.deployments import GnomonConfig, SyncResult
    from gnomon.store import Store

log = logging.getLogger("gnomon.daemon")

SWITCH_INTERVAL = 0.0005  # seconds; CPython's default is 0.005
HEALTH_INTERVAL = 0.5  # seconds between the health monitor's rounds
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
SHUTDOWN_FLUSH_TIMEOUT = 10.0  # seconds a failing store may hold up the exit


class Clock(Protocol):
    """The daemon's clock seam: wall-clock time for schedules, monotonic time for waits.
    Tests give the daemon one they set (and drive it with ``Daemon.run_until_idle``)."""

    def now(self) -> datetime: ...

    def monotonic(self) -> float: ...


class SystemClock:
    """The machine's clocks."""

    @staticmethod
    def now() -> datetime:
        return datetime.now(UTC)

    @staticmethod
    def monotonic() -> float:
        return time.monotonic()


class Service(Protocol):
    """Something that runs beside the daemon, started once it has its store and stopped
    first when it shuts down (the HTTP API)."""

    def reload(self) -> None:
        """The config was reloaded (SIGHUP, ``gnomon daemon reload``): read again what it
        read from files at start (the API's TLS certificate). Never raises: a problem is
        logged and what it had stays."""

    def stop(self) -> None: ...


# Starts a service for a daemon that is starting (None: nothing to run, as with api = "off").
# A service that cannot start raises ``ServiceStartError``.
ServiceFactory = Callable[["Daemon"], Service | None]


class Daemon:
    """One daemon process serving the deployments of one config file, and the services it
    was given (the command that starts it composes them: ``gnomon.http.serve_api``); or,
    with ``served``, the deployments a script serves (see ``_served``)."""

    def __init__(
        self,
        config_path: Path | None,
        clock: Clock | None = None,
        services: Sequence[ServiceFactory] = (),
        served: ServedDeployments | None = None,
    ) -> None:
        self.config_path = config_path
        self.served = served
        self.clock: Clock = clock or SystemClock()
        self._service_factories = tuple(services)
        self.services: list[Service] = []
        self.daemon_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.wakeup = Wakeup()
        self._stop_requested = False
        self._reload_signalled = False
        self._polls = PollTimer()
        self._requested_reloads: set[int] = set()  # being loaded
        self.scheduler: Scheduler
        self.pool: WorkerPool
        self.store: Store
        self.config: GnomonConfig
        self.reporter: RunReporter
        self.store_poll: StorePoll
        self.health: Health
        self.loader: ConfigLoader
        self.deadlines: DeadlineWatch
        self.backfills: BackfillRunner
        # Several daemons on one PostgreSQL database (``_members``); None for SQLite.
        self.cluster: ClusterRole | None = None
        self.exit_code = 0
        # What the loop last saw, for the pruner's thread (``_quiet``).
        self._next_due: datetime | None = None
        self._backlogged = False
        self.listener: Listener | None = None  # what other hosts change (``_listen``)

    # Requests from other threads and from signals: flags, then a wake-up byte.

    def request_stop(self) -> None:
        self._stop_requested = True
        self.wakeup.wake()

    def _lock_lost(self, reason: str) -> None:
        """Another daemon holds the database now (see ``_serverlock``): this one stops."""
        log.critical("%s; this daemon stops", reason)
        self.request_stop()

    def request_reload(self) -> None:
        """Reload the config, as SIGHUP does (for a daemon run in-process)."""
        self._reload_signalled = True
        self.wakeup.wake()

    def request_poll(self) -> None:
        """Read the store's changes now rather than within a second (the API)."""
        self._polls.request()
        self.wakeup.wake()

    def nudge(self, kind: str) -> None:
        """What the API and the listener (``_listen``) call after a change: "reload"
        re-reads the config, else poll."""
        if kind == "reload":
            # A reload asked in the store: its request row and this NOTIFY share a
            # transaction. The scheduler answers the rows at its poll (loading the config
            # once, however many ways the ask reached it); a standby member, which answers
            # none, reloads its own config.
            if self.scheduling:
                self.request_poll()
            else:
                self.request_reload()
        elif kind == "release":  # runs released to the members: take them now
            if self.cluster is not None:
                self.cluster.released()
            self.wakeup.wake()
        else:
            self.request_poll()

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT stop, SIGHUP reloads, SIGUSR1 polls the store, SIGUSR2 reopens
        the log file (after logrotate): each handler only records the signal (see
        ``_wakeup``); the loop acts on it."""
        self.wakeup.catch((*STOP_SIGNALS, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2))

    def _take_signals(self) -> None:
        received = self.wakeup.take_signals()
        if received & set(STOP_SIGNALS):
            self._stop_requested = True
        if signal.SIGHUP in received:
            self._reload_signalled = True
        if signal.SIGUSR1 in received:
            self._polls.request()
        if signal.SIGUSR2 in received:
            from gnomon.flows import reopen_daemon_log

            reopen_daemon_log()

    # Start-up.

    def start(self) -> None:
        """Everything before READY=1; raises ConfigError or DaemonAlreadyRunning."""
        from gnomon._settings import get_settings
        from gnomon._space import FLOOR_ENV
        from gnomon.daemon._reload import ConfigLoader
        from gnomon.daemon._worker import freeze_heap
        from gnomon.deployments import load_config_or_raise
        from gnomon.flows import check_result_storage, configure_daemon_logging
        from gnomon.store import EXTERNAL_CHECKPOINTS_ENV

        # Before the store opens: the daemon's and the workers' commits leave checkpoints
        # to the daemon's checkpointer (see _checkpoint).
        os.environ[EXTERNAL_CHECKPOINTS_ENV] = "daemon"
        # The loop and the pool's thread hand each run on within a millisecond; the default
        # 5 ms GIL switch interval let the log-rendering threads hold them up for longer.
        sys.setswitchinterval(SWITCH_INTERVAL)
        loaded = self.served.loaded if self.served else load_config_or_raise(self.config_path)
        self.config = loaded.config
        # Before the store and the log file open, for them and the workers (gnomon._space).
        os.environ[FLOOR_ENV] = str(int(self.config.daemon.min_free_space))
        settings = get_settings()
        daemon = self.config.daemon
        configure_daemon_logging(
            daemon.log_file or _default_log_file(settings.home),
            max_bytes=daemon.log_file_max_bytes,
            keep=daemon.log_file_keep,
        )
        # A result storage or key it cannot use stops the daemon here, not each run later.
        check_result_storage()
        self._open_store(settings.home, settings.effective_database_url)
        self._measure_health(settings.home)
        # A served daemon has no file to read: it refuses reloads (see _served).
        self.loader = ConfigLoader(
            self.config_path, self.wakeup.wake, self.served.refuse_reload if self.served else None
        )
        self._start_pool()
        self._schemas = loaded.schemas
        try:
            self.cluster = self._join_cluster()
            dispatcher = self.pool if self.cluster is None else self.cluster.dispatcher
            self.scheduler = Scheduler(self.store, dispatcher, self.daemon_id)
            if self.cluster is not None:
                self.cluster.scheduler = self.scheduler
            self._start_reporting()
            leading = self.cluster is None or self.cluster.wants_to_lead()
            if leading:
                self._take_schedule()
            for factory in self._service_factories:
                service = factory(self)
                if service is not None:
                    self.services.append(service)
            self.pool.wait_warm()
            if leading:
                self._start_scheduling()
            self._start_listening()
        except BaseException:
            self._undo_start()
            raise
        freeze_heap()
        log.info(
            "daemon ready: %d deployments, %d workers%s",
            len(self.config.deployments),
            daemon.workers,
            "" if self.cluster is None else f", {self.cluster.role()}",
            extra={"daemon_id": self.daemon_id, "config": str(self.config.path)},
        )

    def _open_store(self, home: Path, url: str) -> None:
        """Take the store's daemon lock (``_lock``), open the store, and log into it."""
        from gnomon.daemon._lock import DaemonLock
        from gnomon.daemon._report import StoreLogHandler
        from gnomon.flows import in_background
        from gnomon.store import get_store

        # A served script's daemon runs alone on a server database (``_join_cluster``).
        self._lock = DaemonLock.for_store(home, url, alone=self.served is not None)
        self._lock.acquire(config=self._source_text())
        self._lock.keep(self._lock_lost)
        self.store = get_store()
        self._store_log = in_background(StoreLogHandler(self.store))
        log.addHandler(self._store_log)

    def _start_pool(self) -> None:
        """The worker pool, launched: its template imports the flows while the daemon
        syncs and recovers."""
        from gnomon.daemon._pool import WorkerPool

        daemon = self.config.daemon
        self.pool = WorkerPool(
            daemon.workers,
            self._flows(),
            max_runs_per_worker=daemon.max_runs_per_worker,
            max_memory_per_worker=daemon.max_memory_per_worker,
            kill_grace=daemon.kill_grace.total_seconds(),
            on_finished=self._on_finished,
            log_sink=_forward_worker_line,
            containment=daemon.containment,
        )
        self.health.watch_workers(self._worker_counts)
        self.pool.launch()

    def _join_cluster(self) -> ClusterRole | None:
        """On PostgreSQL, join the daemons sharing the database (``_members``)."""
        from gnomon.daemon._members import ClusterRole

        if self.store.engine.dialect.name != "postgresql" or self.served is not None:
            # A script's deployments are known to its own daemon only: it decides their
            # fires, alone on the database, as before clusters.
            return None
        return ClusterRole.join(self, self.config.daemon.heartbeat_timeout.total_seconds())

    def _take_schedule(self) -> None:
        """Become the one that decides fires: sync the deployments into the store and
        settle the runs a dead daemon left (in a cluster: not those live members hold)."""
        self._synced_at = self.clock.now()
        self._sync(self._synced_at, schemas=self._schemas)
        held = None if self.cluster is None else self.cluster.adoption()
        recover(self.store, self.scheduler, self.daemon_id, self.clock.now(), held)
        self.deadlines.configure(self.clock.now())

    def _start_scheduling(self) -> None:
        """Answer reload requests left from before, catch up, plan the first fires, and
        start the housekeeping threads."""
        from gnomon.daemon._reload import answer_at_start

        if self.served is None:  # a served daemon refuses them when its poll finds them
            answer_at_start(self.store, self.config.path)
        self._catch_up_at_start()
        self._start_housekeeping()

    def lead(self) -> None:
        """A standby member starts to schedule for the cluster (``_members``)."""
        log.warning(
            "this daemon schedules for the cluster now", extra={"daemon_id": self.daemon_id}
        )
        self._take_schedule()
        self._start_scheduling()

    def _start_reporting(self) -> None:
        """The reporter (log lines, metrics, notifications), and the deadline and freshness
        watch (``_deadlines``) that tells through it."""
        from gnomon.daemon._deadlines import DeadlineWatch
        from gnomon.daemon._report import RunReporter

        self.reporter = RunReporter(
            self.store, self.config, self.scheduler, self.pool, self.health.status
        )
        # Configured once the deployments are synced (``_take_schedule``): its first look
        # closes the open breaches of deployments it does not watch.
        self.deadlines = DeadlineWatch(
            self.store, self.scheduler, self.reporter.breach_changed, self.request_poll
        )
        self.reporter.metrics.watch_breaches(self.deadlines.open_counts)
        self.reporter.metrics.watch_pools(self._pool_counts)

    def _pool_counts(self) -> dict[str, tuple[int, int, int]]:
        """Each run pool's slots, and the slots this daemon's runs hold and wait for."""
        held, waiting = self.scheduler.pools.counts()
        return {
            pool.name: (pool.slots, held[pool.name], waiting[pool.name])
            for pool in self.config.pools
        }

    def _worker_counts(self) -> tuple[int, int]:
        """The pool's busy and idle workers, for the dashboard's overview."""
        return self.pool.busy_count(), self.pool.idle_count()

    def _measure_health(self, home: Path) -> None:
        """The loop's health, and how it rides out faults under it (``_outages``)."""
        from gnomon._space import SpaceFloor, floor_from_env
        from gnomon.daemon._health import Health
        from gnomon.daemon._outages import Outages
        from gnomon.store import bounded_wait_started, sqlite_path, store_fault

        stuck_after = self.config.daemon.stuck_after.total_seconds()
        self.health = Health(stuck_after, store_wait=bounded_wait_started)
        database = sqlite_path(self.store.url)
        self.outages = Outages(
            self.health,
            SpaceFloor(database.parent if database else home, floor_from_env()),
            describe=lambda error: store_fault(error, self.store.url),
            count_error=self._count_store_error,
        )

    # (The reporter is made later in start(): looked up when needed.)

    def _count_store_error(self) -> None:
        self.reporter.metrics.store_errors.inc()

    def _start_health(self, notifier: Notifier) -> None:
        from gnomon.daemon._health import HealthMonitor, status_path

        daemon = self.config.daemon
        self.monitor: HealthMonitor | None = HealthMonitor(
            self.health,
            interval=HEALTH_INTERVAL,
            watchdog=notifier.watchdog,
            status_file=status_path(self._lock.path),
            heartbeat_url=daemon.heartbeat_url,
            heartbeat_interval=daemon.heartbeat_interval.total_seconds(),
            systemd_status=notifier.status,
        )
        self.monitor.start()

    def _start_housekeeping(self) -> None:
        """The threads that keep the store in shape: WAL checkpoints, the pruner."""
        self._start_checkpointer()
        self._start_pruner()

    def _start_listening(self) -> None:
        """On PostgreSQL, the thread that hears other hosts' changes (``_listen``): every
        member's, a standby's too (a reload reaches it so)."""
        from gnomon.daemon._listen import listen_for_changes

        self.listener = listen_for_changes(self.store.url, self.nudge)

    def _start_checkpointer(self) -> None:
        from gnomon.daemon._checkpoint import Checkpointer
        from gnomon.store import sqlite_path

        path = sqlite_path(self.store.url)
        self.checkpointer = None if path is None else Checkpointer(path, busy=self._busy)
        if self.checkpointer is not None:
            self.checkpointer.start()

    def _busy(self) -> bool:
        return self.pool.busy_count() > 0 or self.scheduler.waiting_count() > 0

    def _start_pruner(self) -> None:
        """The housekeeping thread (``_retention``): retain_runs and retain_logs, read at
        each pass, so a reload that sets them takes effect at the next."""
        from gnomon.daemon._retention import Pruner

        self._next_due = self.scheduler.next_due()
        self.pruner = Pruner(
            self.store, lambda: _retention(self.config), self._quiet, self.clock.now
        )
        self.health.watch_prune(self.pruner.last_pass)
        self.pruner.start()

    def _quiet(self) -> bool:
        """Whether the pruner may take the store's write lock now (any thread): no run
        waits for a worker and no fire is due within the next QUIET_MARGIN, as the loop
        last saw it (``_next_due``: the scheduler's timer is the loop's own)."""
        from gnomon.daemon._retention import QUIET_MARGIN

        if self._backlogged:
            return False
        due = self._next_due
        return due is None or (due - self.clock.now()).total_seconds() > QUIET_MARGIN

    def _flows(self) -> list[str]:
        """The entrypoints of the deployments' flows, which the worker template imports."""
        return sorted({deployment.flow for deployment in self.config.deployments})

    def _sync(
        self,
        now: datetime,
        keep: Collection[str] = (),
        schemas: Mapping[str, dict[str, Any]] | None = None,
    ) -> SyncResult:
        from gnomon.daemon._reload import DAEMON_ACTOR
        from gnomon.deployments import record_takeovers, sync_deployments, takeover_message

        source = self._source()
        # This daemon holds the store's lock: no other script serves it (see _sync).
        result = sync_deployments(
            self.store,
            self.config.deployments,
            now,
            keep=keep,
            schemas=schemas,
            source=source,
            lock_held=True,
        )
        for refusal in result.refusals(source):
            log.error("%s", refusal, extra={"deployment_source": source})
        for name, other in sorted(result.taken_over.items()):
            log.warning(
                "%s",
                takeover_message(name, source, other),
                extra={
                    "event_kind": "deployment_taken_over",
                    "deployment": name,
                    "old_source": other,
                    "new_source": source,
                },
            )
        record_takeovers(self.store, result, source, DAEMON_ACTOR)
        self._sync_windows(now)
        synced = [each for each in self.config.deployments if each.name not in result.refused]
        if self.cluster is not None:
            self.store.store_definitions(self.cluster.definitions_of(synced))
        rows = self.store.read_schedule_states()
        self.scheduler.set_deployments(synced, rows)
        scheduled = self.scheduler.slots().values()
        self.scheduler.pools.configure(
            self.config.pools,
            {slot.deployment.pool for slot in scheduled if slot.deployment.pool is not None},
        )
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
        return result

    def _sync_windows(self, now: datetime) -> None:
        """Store the config's [[maintenance]] windows (a served daemon has none of its
        own: it leaves the config's as they are), and give the scheduler every window."""
        from gnomon.daemon._poll import WINDOWS_LOOKBACK
        from gnomon.deployments import config_window_rows, stored_window

        if self.served is None:
            self.store.sync_config_maintenance(config_window_rows(self.config.maintenance))
        rows = self.store.read_maintenance(ending_after=now - WINDOWS_LOOKBACK)
        self.scheduler.set_windows([stored_window(row) for row in rows], now)

    def _source(self) -> str:
        """Where this daemon's deployments come from: the config file, or a script."""
        from gnomon.deployments import CONFIG_SOURCE

        return self.served.source if self.served else CONFIG_SOURCE

    def _source_text(self) -> str | None:
        """What the lock's record names as this daemon's config: the file, or the script."""
        if self.served is not None:
            return self.served.source
        return str(self.config.path) if self.config.path else None

    def _retire_served(self) -> None:
        """A served daemon's deployments stop being scheduled as it stops (see ``_served``)."""
        from gnomon.deployments import sync_deployments

        if self.served is not None and not self.served.keep_active:
            sync_deployments(self.store, [], self.clock.now(), source=self.served.source)

    def _catch_up_at_start(self) -> None:
        """Decide the fires missed while no daemon ran, then plan the first fires after
        them."""
        from gnomon.daemon._poll import StorePoll

        horizon = self.clock.now()
        # The clock's first reading is this catch-up's: a step before the first tick is
        # then seen by that tick as a step, not taken as its starting point.
        self.outages.observe_clock(horizon, self.clock.monotonic())
        self.store_poll = StorePoll(self.store, self.scheduler, horizon)
        # Its first look goes on with the backfills a stopped daemon left running.
        self.backfills = BackfillRunner(self.store, self.scheduler, self.daemon_id)
        # Fires due since the sync were not missed while down: the start-up made them late.
        self.reporter.decided(self.scheduler.catch_up(horizon, up_since=self._synced_at))
        # Upstream runs that ended while no daemon followed them decide their downstreams.
        self.reporter.decided(self.scheduler.follow_missed_ends(horizon))
        self.scheduler.plan_fires(horizon)

    def finish(self, outcome: RunOutcome) -> None:
        """A run ended: account for it (the pool's threads, or the cluster's loop side for
        a run another member ran)."""
        self._on_finished(outcome)

    def _on_finished(self, outcome: RunOutcome) -> None:
        if self.cluster is not None and not self.cluster.scheduler_takes(outcome):
            self.wakeup.wake()
            return
        dispatched = self.scheduler.run_finished(outcome.flow_run_id, outcome.state_type)
        if dispatched is not None and dispatched.trigger is RunCause.BACKFILL:
            self.backfills.request()  # its backfill may make its next run
        self.wakeup.wake()
        summary = run_summary(outcome, dispatched)
        self.reporter.run_finished(summary)
        self.deadlines.run_finished(summary)

    # The loop.

    def serve(self) -> int:
        """Run until asked to stop; returns the process exit code."""
        from gnomon.daemon._systemd import Notifier
        from gnomon.flows import hold_background
        from gnomon.store import bound_write_waits

        notifier = Notifier()
        notifier.ready(
            f"{len(self.config.deployments)} deployments, {self.config.daemon.workers} workers"
        )
        # After READY=1: the monitor's first check, at its start, already sends a status
        # and feeds the watchdog, and READY=1 is the first thing systemd hears.
        self._start_health(notifier)
        # The loop's store waits are bounded, so it keeps ticking (and hears SIGTERM) while
        # another program holds the database.
        bound_write_waits(threading.get_ident())
        try:
            while True:
                self._take_signals()
                if self._stop_requested:
                    break
                self.step()
                self.health.ticked()
                # Runs waiting for a worker: the log threads hold back (see hold_background).
                hold_background(self._backlog())
                self.wakeup.wait(self._sleep_seconds())
        finally:
            bound_write_waits(None)
            notifier.stopping()
            self.shutdown()
        return self.exit_code

    def run_until_idle(self, timeout: float = 60.0) -> None:
        """Take passes of the loop, as ``serve`` does between its sleeps, until nothing is
        left to do at the clock's time: no fire due, no run waiting or running, no config
        load under way (a poll the clock has not made due yet waits for it to move).

        Tests drive the daemon this way with a clock they set instead of sleeping until
        fire times; the runs take the real time they take. Raises TimeoutError after
        ``timeout`` real seconds."""
        deadline = time.monotonic() + timeout
        while True:
            self._take_signals()
            self.step()
            self.health.ticked()
            if self._idle():
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the daemon was still busy after {timeout:g} s")
            self.wakeup.wait(min(0.05, self._sleep_seconds()))

    def _idle(self) -> bool:
        due = self.scheduler.next_due()
        return (
            (due is None or due > self.clock.now())
            and not self._backlog()
            and self.scheduler.running_count() == 0
            and not self.loader.busy
            and (not self.scheduling or not self.backfills.due())
        )

    @property
    def scheduling(self) -> bool:
        """Whether this daemon decides fires: alone, or as the cluster's scheduler."""
        return self.cluster is None or self.cluster.leading

    def step(self) -> None:
        """One pass of the loop at the clock's time: apply a finished config load, catch up
        after downtime, decide due fires, start waiting runs, and poll the store."""
        now, monotonic = self.clock.now(), self.clock.monotonic()
        self.outages.observe_clock(now, monotonic)
        if self._reload_signalled:
            self._polls.request()  # the poll starts the load, with any reload requests
        loaded = self.loader.take()
        # A statvfs at most once a second (SpaceFloor).
        self.outages.check_disk(self.config.daemon.min_free_space.human_readable(decimal=True))
        if not self.outages.may_try_store(monotonic):
            return
        try:
            if loaded is not None:
                self._apply_reload(loaded, now)
            if self.cluster is None or self.cluster.step():
                self._schedule(now, monotonic)
            elif self._reload_signalled:
                # A standby member reloads its own config (SIGHUP, or a reload NOTIFY); the
                # requests in the store are the scheduler's to answer.
                self._reload_signalled = False
                self.loader.request([])
            if self.outages.store_failing:
                self.store.probe_write()  # a pass that wrote nothing proves nothing
        except Exception as error:
            if loaded is not None:
                self.loader.retry(loaded)
            self.outages.store_failed(error, now, monotonic)  # re-raises a bug
        else:
            self.outages.store_worked(now)

    def _schedule(self, now: datetime, monotonic: float) -> None:
        """The scheduler's part of a pass: catch up, decide due fires, poll the store,
        backfills and deadlines."""
        downtime = self.outages.take_downtime()
        if downtime is not None:
            # A gap in the ticks, or the store down: the fires in it follow each
            # deployment's catch-up policy, as after a restart.
            decided = self.scheduler.catch_up(now, downtime.why, downtime.since)
            self.outages.caught_up()
            # The timer goes on from now, not through the gap's fire times one by one.
            self.scheduler.restart_fires(now)
            self.reporter.decided(decided)
        self.reporter.decided(self.scheduler.tick(now))
        if self._polls.due(monotonic, self._backlog()):
            # After the tick: a poll never delays a due fire. A pause is safe anyway: a
            # fire's transaction reads the pause flags it commits against.
            self._polls.done(monotonic)
            self.reporter.decided(self.store_poll.poll(now))
            self._handle_reload_requests()
            self.backfills.request()  # one asked for, or cancelled, since the last
            self.scheduler.dispatch(now)
        if self.backfills.due() and self.backfills.step(now):
            self.scheduler.dispatch(now)
        if self.deadlines.due(monotonic):
            # After the tick and the poll: the check never holds up a fire.
            self.deadlines.check(now, monotonic)

    def _sleep_seconds(self) -> float:
        """Until the next handed-over fire is due, a requested poll may run, the next timed
        poll, or the failed store's next attempt; at most a second."""
        from gnomon.daemon._cadence import POLL_INTERVAL

        monotonic = self.clock.monotonic()
        self._backlogged = backlog = self._backlog()
        waits = [POLL_INTERVAL, self._polls.wait(monotonic, backlog)]
        due = self._next_due = self.scheduler.next_due()
        if self.cluster is not None:
            waits.append(self.cluster.next_look())
        if self.outages.store_failing:
            waits.append(self.outages.retry_at - monotonic)
        elif due is not None:
            waits.append((due - self.clock.now()).total_seconds())
        return max(0.0, min(waits))

    def _backlog(self) -> bool:
        """Whether runs wait for a worker: queued in the scheduler or held by the pool."""
        return self.scheduler.waiting_count() > 0 or self.pool.held_count() > 0

    # Reloads.

    def _handle_reload_requests(self) -> None:
        """Start a config load for reload requests the CLI or the API left in the store."""
        pending = [row.id for row in self.store.read_pending_reloads()]
        fresh = [request for request in pending if request not in self._requested_reloads]
        if fresh or self._reload_signalled:
            self._reload_signalled = False
            self._requested_reloads.update(fresh)
            self.loader.request(fresh)

    def _apply_reload(self, loaded: Loaded, now: datetime) -> None:
        """Apply a finished config load under the reload rule (see ``_reload``), and record
        its outcome in the audit log and the requests it answers."""
        from gnomon.daemon._reload import ReloadStatus, plan_reload, record_outcome

        result = loaded.result
        if self.scheduling:
            previous = {name: slot.deployment for name, slot in self.scheduler.slots().items()}
        else:  # a standby member: what it loaded, which it runs runs of
            previous = {deployment.name: deployment for deployment in self.config.deployments}
        plan = plan_reload(previous, result)
        for service in self.services:  # whatever the config says: a renewed certificate
            service.reload()
        for problem in plan.problems:
            log.error("config problem on reload: %s", problem, extra={"problem": problem})
        if plan.status is not ReloadStatus.REFUSED:
            retention = _retention(self.config)
            self.config = result.config.model_copy(update={"deployments": plan.deployments})
            # Schemas describe the code that runs: they change only when the code does.
            schemas = result.schemas if result.flows_ok else None
            if schemas is not None:
                self._schemas = schemas
            if self.scheduling:
                if _retention(self.config) != retention:
                    self.pruner.nudge()  # a pass by the new retention now, not in the hour
                synced = self._sync(now, keep=plan.kept, schemas=schemas)
                plan = plan.with_pauses(synced.fields)
                self.scheduler.plan_fires(now)  # for the deployments added or rescheduled
                self.deadlines.configure(now)
            self._reload_flow_code(result.flows_ok)
            self.reporter.configure(self.config)
        level = logging.INFO if plan.status is ReloadStatus.APPLIED else logging.ERROR
        log.log(
            level,
            "config reload %s",
            plan.summary(),
            extra={"reload": plan.status.value, "deployments": len(plan.deployments)},
        )
        record_outcome(self.store, loaded.requests, plan, self.config.path)
        self._requested_reloads.difference_update(loaded.requests)

    def _reload_flow_code(self, flows_ok: bool) -> None:
        """Load the flow code afresh only if every deployment's flow passed its check."""
        if flows_ok:
            # A new worker template imports the flows afresh; the workers are replaced once
            # it has, so edited flow code takes effect.
            self.pool.recycle(self._flows())
        else:
            log.warning(
                "flow code not reloaded: the flow check did not pass; runs keep the code "
                "loaded before, also in workers started later"
            )

    def _undo_start(self) -> None:
        """Stop what a start that failed after the pool launched has started (the pool's
        workers and threads, services, the checkpointer), so that the process can exit."""
        for service in self.services:
            try:
                service.stop()
            except Exception:
                log.exception("stopping a service after a failed start")
        self._stop_listening()
        checkpointer = getattr(self, "checkpointer", None)
        if checkpointer is not None:
            checkpointer.stop()
        pruner = getattr(self, "pruner", None)
        if pruner is not None:
            pruner.stop()
        self.pool.stop(0)
        if self.cluster is not None:
            self.cluster.membership.stop()

    def _stop_listening(self) -> None:
        if self.listener is not None:
            self.listener.stop()

    def abandon(self) -> None:
        """Undo a start that failed before the pool started: let the store's lock go."""
        lock = getattr(self, "_lock", None)
        if lock is not None:
            lock.release()

    def shutdown(self) -> None:
        """Stop firing, let running runs finish up to shutdown_grace, then end them."""
        from gnomon.flows import hold_background
        from gnomon.store import store_fault

        hold_background(False)
        for service in self.services:
            service.stop()
        self._stop_listening()
        pruner = getattr(self, "pruner", None)
        if pruner is not None:
            pruner.stop()  # at its next transaction's end
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
        try:
            if self.cluster is not None:
                # Its waiting runs go to the other members at once; its lease goes too.
                self.cluster.leave()
            else:
                release_waiting(self.store, self.daemon_id)
            self.scheduler.pools.give_back_all()
            self.scheduler.record_fire_times()
            self._retire_served()
        except Exception as error:
            if (fault := store_fault(error, self.store.url)) is None:
                raise
            # Only bookkeeping: the next start finds the fires from their run rows.
            log.error("could not store the last fire times: %s", fault)
        self.reporter.close()
        log.removeHandler(self._store_log)
        self._store_log.stop()  # its lines reach the store before the last flush
        try:
            self.store.flush(timeout=SHUTDOWN_FLUSH_TIMEOUT)
        except Exception as error:
            if (fault := store_fault(error, self.store.url)) is None:
                raise
            log.error("store rows not written at shutdown: %s", fault)
        monitor = getattr(self, "monitor", None)
        if monitor is not None:
            monitor.stop()
        self.wakeup.close()
        self._lock.release()
        log.info("daemon stopped")


# Names a log line lists at most: journald cuts lines past 48 KiB, and 10,000 deployment
# names make 150 KB. The counts are in the message.
LOGGED_NAMES = 50


def _some(names: Sequence[str]) -> list[str]:
    """At most LOGGED_NAMES of ``names``, with "... and N more" in place of the rest."""
    if len(names) <= LOGGED_NAMES:
        return list(names)
    return [*names[:LOGGED_NAMES], f"... and {len(names) - LOGGED_NAMES} more"]


def _retention(config: GnomonConfig) -> Retention:
    """What the config's [daemon] retain_runs and retain_logs keep."""
    from gnomon.daemon._retention import Retention

    return Retention(config.daemon.retain_runs, config.daemon.retain_logs)


def _default_log_file(home: Path) -> Path:
    # Under systemd, LogsDirectory= provides $LOGS_DIRECTORY.
    logs = os.environ.get("LOGS_DIRECTORY")
    return (Path(logs.split(":")[0]) if logs else home / "logs") / "gnomon.jsonl"


def _forward_worker_line(line: str, worker_pid: int) -> None:
    from gnomon.flows import daemon_lines

    daemon_lines.write(line)
