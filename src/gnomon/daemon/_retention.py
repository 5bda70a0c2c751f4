"""Housekeeping: runs older than ``[daemon] retain_runs`` and log lines older than
``retain_logs`` deleted, by the daemon's pruner thread or by ``gnomon db prune``.

What goes, and what stays, is the store's rule (``gnomon.store._prune``): a run's age
counts from its end; runs a deployment's catch-up could reach stay; a pruned run's task
runs, states, log lines, artifacts, pauses and breaches go with it, and its result files
(``prune_result_files``: a cache record only once expired). The audit log, deployments,
breaches without a run (``stale``) and config reloads stay; ``run_bins`` lose the pruned
runs (their triggers count rows, not history).

The pruner never holds SQLite's one writer for long: each transaction deletes at most
``BATCH`` rows, and before each the thread waits for a quiet moment (no run waiting for a
worker, no fire due within ``QUIET_MARGIN``), or at most ``QUIET_PATIENCE``, so that
a deployment firing every second cannot starve it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from gnomon.store import Actor, AuditAction, PruneCounts, PruneStore, ResultFile, store_fault

log = logging.getLogger("gnomon.daemon")

BATCH = 500  # rows per transaction
FREE_PAGES = 1000  # SQLite pages given back per transaction (4 MB of 4 KiB pages)
PRUNE_EVERY = 3600.0  # seconds between the pruner's passes
RETRY_AFTER = 60.0  # seconds before a pass that failed on the store is tried again
QUIET_MARGIN = 0.25  # seconds: a transaction starts only if no fire is due sooner
QUIET_PATIENCE = 10.0  # seconds: past this without a quiet moment, a transaction goes anyway
QUIET_POLL = 0.02  # seconds between looks for a quiet moment


@dataclass(frozen=True, slots=True)
class Retention:
    """How long runs (counted from their end) and log lines are kept; None: forever."""

    runs: timedelta | None = None
    logs: timedelta | None = None

    @property
    def enabled(self) -> bool:
        return self.runs is not None or self.logs is not None


@dataclass(frozen=True, slots=True)
class PruneReport:
    """A prune's outcome: when it ran, its cuts, and what it deleted (or would)."""

    at: datetime
    runs_before: datetime | None
    logs_before: datetime | None
    counts: PruneCounts
    dry_run: bool

    def summary(self) -> str:
        c = self.counts
        verb = "would delete" if self.dry_run else "deleted"
        text = (
            f"{verb} {c.runs:,} runs ({c.task_runs:,} task runs, {c.states:,} states), "
            f"{c.logs:,} log lines, {c.results:,} result files; "
            f"{c.kept_for_catchup:,} old runs kept for catch-up"
        )
        if c.freed_pages:
            text += f"; {c.freed_pages:,} free pages given back to the file system"
        return text if c.complete else text + " (stopped before the end)"

    def detail(self) -> dict[str, object]:
        """The audit entry's detail."""
        return {
            **self.counts.detail(),
            "runs_ended_before": _iso(self.runs_before),
            "logs_before": _iso(self.logs_before),
        }


def prune_store(
    store: PruneStore,
    retention: Retention,
    now: datetime,
    actor: Actor,
    *,
    dry_run: bool = False,
    batch: int = BATCH,
    between: Callable[[], bool] = lambda: True,
    audit_nothing: bool = True,
) -> PruneReport:
    """Delete what ``retention`` no longer keeps at ``now`` (``dry_run``: count it only),
    with an audit entry by ``actor`` (none for a prune that deleted nothing unless
    ``audit_nothing``). ``between`` runs between two transactions; False stops there."""
    from gnomon.flows import prune_result_files

    counts = PruneCounts()
    runs_before = None if retention.runs is None else now - retention.runs
    logs_before = None if retention.logs is None else now - retention.logs
    if runs_before is not None:
        cut = runs_before

        def results(files: Sequence[ResultFile]) -> int:
            return prune_result_files(files, cut, now, dry_run=dry_run)

        store.prune_runs(
            cut, batch=batch, between=between, results=results, counts=counts, dry_run=dry_run
        )
    if logs_before is not None and counts.complete:
        store.prune_logs(
            logs_before,
            batch=batch,
            between=between,
            counts=counts,
            dry_run=dry_run,
            runs_before=runs_before,
        )
    deleted = counts.runs or counts.logs or counts.results
    if deleted and counts.complete and not dry_run:
        store.release_free_pages(pages=FREE_PAGES, between=between, counts=counts)
    report = PruneReport(now, runs_before, logs_before, counts, dry_run)
    if not dry_run and (deleted or audit_nothing):
        store.record_audit(actor, AuditAction.PRUNE, None, report.summary(), report.detail())
    return report


class Pruner:
    """The daemon's pruner: a thread that prunes by the retention ``retention()`` gives
    (read at each pass) once at start, every ``every`` seconds and when nudged (a reload
    changed it), a transaction at a time, each at a quiet moment (``quiet()``)."""

    def __init__(
        self,
        store: PruneStore,
        retention: Callable[[], Retention],
        quiet: Callable[[], bool],
        now: Callable[[], datetime],
        *,
        every: float = PRUNE_EVERY,
        batch: int = BATCH,
    ) -> None:
        self.store = store
        self.retention = retention
        self.quiet = quiet
        self.now = now
        self.every = every
        self.batch = batch
        self.last: PruneReport | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()  # a pass now rather than at its hour
        self._thread = threading.Thread(target=self._run, name="gnomon-prune", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def last_pass(self) -> str | None:
        """The last pass in a line (``gnomon daemon status``); None before the first."""
        last = self.last
        if last is None:
            return None
        return f"{last.at.isoformat(timespec='seconds')}: {last.summary()}"

    def nudge(self) -> None:
        """Take a pass now (a reload changed the retention), or after the current one."""
        self._wake.set()

    def stop(self) -> None:
        """Stop at the next transaction's end, and wait for it."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()

    def run_once(self) -> PruneReport | None:
        """One pass, if the retention asks for any; its report."""
        from gnomon.daemon._tracking import DAEMON_ACTOR

        retention = self.retention()
        if not retention.enabled:
            return None
        report = prune_store(
            self.store,
            retention,
            self.now(),
            DAEMON_ACTOR,
            batch=self.batch,
            between=self._between,
            audit_nothing=False,
        )
        self.last = report
        counts = report.counts
        if counts.runs or counts.logs or counts.results:
            log.info("pruned: %s", report.summary(), extra={"prune": report.detail()})
        return report

    def _run(self) -> None:
        failing = False
        while not self._stop.is_set():
            wait = self.every
            try:
                self.run_once()
            except Exception as error:
                fault = store_fault(error, getattr(self.store, "url", ""))
                if fault is None:  # a bug: told in full, and the daemon goes on
                    log.exception("pruning failed")
                elif not failing:
                    log.warning("pruning failed, tried again in %g s: %s", RETRY_AFTER, fault)
                failing, wait = True, RETRY_AFTER
            else:
                failing = False
            self._wake.wait(wait)
            self._wake.clear()

    def _between(self) -> bool:
        """Wait for a quiet moment (at most QUIET_PATIENCE); False once asked to stop."""
        give_up = time.monotonic() + QUIET_PATIENCE
        while not self._stop.is_set():
            if self.quiet() or time.monotonic() >= give_up:
                return True
            self._stop.wait(QUIET_POLL)
        return False


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
