"""The loop's side of a daemon in a cluster (see ``_cluster``): each pass, act on what the
membership thread learnt (fence, lead, lost the lead), take released runs for idle
workers, and, as the scheduler, take in the ends of runs other members ran and settle
the runs of members whose lease ran out.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from gnomon.daemon._cluster import (
    EXIT_LOST_LEAD,
    Claimer,
    ClusterDispatcher,
    Execution,
    Membership,
    MemberView,
)
from gnomon.daemon._worker_process import FENCED_STATE, RunOutcome
from gnomon.states import StateName, StateType

if TYPE_CHECKING:
    from gnomon.daemon._scheduler import Scheduler
    from gnomon.daemon._service import Daemon
    from gnomon.deployments import Deployment
    from gnomon.store.rows import FlowRunRow

log = logging.getLogger("gnomon.daemon")

# Seconds between looks for released runs while a worker is idle: soon after a release's
# NOTIFY, or while some are known to wait; else at the fallback's pace (a lost NOTIFY).
CLAIM_EVERY = 0.05
CLAIM_FALLBACK_EVERY = 1.0
REAP_EVERY = 1.0  # seconds between the scheduler's looks for members whose lease ran out
CANCELS_EVERY = 1.0  # seconds between looks for cancel requests of the runs taken here
ENDS_EVERY = 0.1  # seconds between the scheduler's looks for ends of released runs


class ClusterRole:
    """A daemon's membership as its loop acts on it."""

    def __init__(self, daemon: Daemon, membership: Membership) -> None:
        self.daemon = daemon
        self.membership = membership
        self.dispatcher = ClusterDispatcher(daemon.pool, daemon.store, self._view)
        self.claimer = Claimer(
            daemon.store, daemon.pool, self._view, self._executions, self._definitions
        )
        self.scheduler: Scheduler | None = None
        self.leading = False  # this daemon has started to schedule
        self._cache: tuple[int, dict[str, str], dict[str, Execution]] | None = None
        self._looked = {"claim": 0.0, "reap": 0.0, "cancels": 0.0, "ends": 0.0}
        self._release_heard = True  # a NOTIFY of released runs (the listener's thread)

    @classmethod
    def join(cls, daemon: Daemon, timeout: float) -> ClusterRole:
        """Join the cluster of ``daemon``'s database, bidding to schedule."""
        membership = Membership(
            daemon.daemon_id,
            daemon.store.url,
            timeout,
            daemon._source_text(),
            daemon.config.daemon.workers,
            lambda: (daemon.pool.busy_count(), daemon.pool.idle_count()),
            lambda: role._definitions(),  # noqa: PLW0108 (role is made below)
            daemon.wakeup.wake,
            fence=lambda: role.fence_workers(),  # noqa: PLW0108 (role is made below)
        )
        role = cls(daemon, membership)
        membership.start()
        daemon.daemon_id = membership.view.member_id
        return role

    def _view(self) -> MemberView:
        return self.membership.view

    def role(self) -> str:
        """How the ready line names this member's part."""
        view = self.membership.view
        if view.leading:
            return f"scheduling for the cluster as {view.member_id}"
        return f"a member of the cluster as {view.member_id} (scheduler: {view.leader})"

    def wants_to_lead(self) -> bool:
        """Whether this member holds the scheduler's lease (at start: it then schedules
        from the start, with no promotion)."""
        self.leading = self.membership.view.leading
        return self.leading

    # What this member loaded.

    def _loaded(self) -> tuple[dict[str, str], dict[str, Execution]]:
        from gnomon.deployments import definition_hash

        config = self.daemon.config
        if self._cache is None or self._cache[0] != id(config):
            deployments = config.deployments
            self._cache = (
                id(config),
                {each.name: definition_hash(each) for each in deployments},
                {each.name: Execution.of(each) for each in deployments},
            )
        return self._cache[1], self._cache[2]

    def _definitions(self) -> Mapping[str, str]:
        return self._loaded()[0]

    def _executions(self) -> Mapping[str, Execution]:
        return self._loaded()[1]

    def definitions_of(self, deployments: Iterable[Deployment]) -> dict[str, str]:
        """The definition hashes the scheduler stores for the deployments it synced (of
        its config: hashed once per config)."""
        loaded = self._definitions()
        return {each.name: loaded[each.name] for each in deployments}

    # Start-up.

    def adoption(self) -> Callable[[FlowRunRow], bool]:
        """At the start of scheduling, for ``recover``: a run another live member holds,
        or that waits released, is adopted (tracked as released), not settled as left
        behind. The live members are read once, now."""
        live = {member.id for member in self._members() if not member.dead}
        me = self.membership.view.member_id

        def held_elsewhere(row: FlowRunRow) -> bool:
            if row.daemon_id == me:
                return False
            if row.daemon_id in live or (row.daemon_id is None and row.released_at is not None):
                self._adopt(row)
                return True
            return False

        return held_elsewhere

    def _adopt(self, row: FlowRunRow) -> None:
        assert self.scheduler is not None
        if row.id not in self.dispatcher.remote and self.scheduler.adopt(row):
            self.dispatcher.adopt([row.id])

    # Each pass.

    def released(self) -> None:
        """Runs were released (a NOTIFY): look for them at the next pass."""
        self._release_heard = True

    def _claim_every(self) -> float:
        """How often to look for released runs: often while some are known to wait."""
        if self._release_heard or self.membership.view.released > 0:
            return CLAIM_EVERY
        return CLAIM_FALLBACK_EVERY

    def next_look(self) -> float:
        """Seconds until this member should look at the store again (claims, ends)."""
        monotonic = time.monotonic()
        waits = [1.0]
        if self.daemon.pool.idle_count() > 0:
            waits.append(self._looked["claim"] + self._claim_every() - monotonic)
        if self.leading and self.dispatcher.remote:
            waits.append(self._looked["ends"] + ENDS_EVERY - monotonic)
        return max(0.0, min(waits))

    def step(self) -> bool:
        """One pass of the member's work; whether this daemon schedules (and the loop
        then takes the scheduler's pass). Paced by the machine's monotonic clock, not the
        daemon's (a test's clock that jumps): leases and heartbeats are real time."""
        monotonic = time.monotonic()
        view = self.membership.view
        if view.fence:
            self._fence()
            return False
        if self.leading and not view.leading:
            self._lose_lead(f"the scheduler's lease is held by {view.leader} now")
            return False
        if view.leading and not self.leading:
            self.leading = True
            self.daemon.lead()
        if self.daemon.pool.idle_count() > 0 and self._due("claim", self._claim_every(), monotonic):
            self._release_heard = False  # before the look: a NOTIFY during it counts
            taken = self.claimer.claim()
            for row_id in taken:
                self.dispatcher.ran_here(row_id)
            if taken:  # there may be more than this member's idle workers took
                self._release_heard = True
        if self._due("cancels", CANCELS_EVERY, monotonic):
            self.claimer.cancels()
        if self.leading:
            if self._due("ends", ENDS_EVERY, monotonic):
                for row in self.dispatcher.ended():
                    self.daemon.finish(outcome_of(row))
            if self._due("reap", REAP_EVERY, monotonic):
                self._reap()
        return self.leading

    def _due(self, what: str, every: float, monotonic: float) -> bool:
        if monotonic - self._looked[what] < every:
            return False
        self._looked[what] = monotonic
        return True

    def scheduler_takes(self, outcome: RunOutcome) -> bool:
        """Whether a run that ended on this member's workers is the scheduler's to account
        for here: not a fenced run (the others settle it), nor, on a standby, a run it
        took (the scheduler reads its end from the store)."""
        if outcome.state_type == FENCED_STATE:
            self.claimer.finished(outcome.flow_run_id)
            return False
        took = self.claimer.finished(outcome.flow_run_id)
        if took and not self.leading:
            log.info(
                "run %s ended here %s",
                outcome.flow_run_id,
                outcome.state_name,
                extra={"flow_run_id": outcome.flow_run_id, "worker_pid": outcome.worker_pid},
            )
            return False
        return True

    def _members(self) -> list[Member]:
        """The other members, each with whether it is dead: its lease ran out, or it ran
        on this host and its process is gone (a daemon killed and started again on one
        host: its runs need not wait for the lease)."""
        now, rows = self.daemon.store.read_member_leases()
        me = self.membership.view.member_id
        here = socket.gethostname()
        members = []
        for row in rows:
            if row.id == me:
                continue
            gone = row.host == here and not _process_exists(row.pid)
            members.append(Member(row.id, gone or row.lease_until < now, gone))
        return members

    def fence_workers(self) -> None:
        """Kill every run's worker (the membership's watchdog thread, at half the lease)."""
        ended = self.daemon.pool.fence(
            "this daemon lost the database for half its lease: the others settle its runs"
        )
        if ended:
            log.critical("killed %d runs' workers: %s", len(ended), ", ".join(ended[:20]))

    def _fence(self) -> None:
        """The loop's side of a fence: forget the runs taken, join again later, and stop
        scheduling."""
        self.claimer.taken.clear()
        self.membership.fenced()
        if self.leading:
            self._lose_lead("it could not renew its lease")

    def _lose_lead(self, why: str) -> None:
        log.critical(
            "this daemon no longer schedules for the cluster (%s): it stops, and starts again"
            " as a member (exit code %d)",
            why,
            EXIT_LOST_LEAD,
        )
        self.leading = False
        self.daemon.exit_code = EXIT_LOST_LEAD
        self.daemon.request_stop()

    def _reap(self) -> None:
        """Settle the runs of members whose lease ran out: running ones Crashed (their
        deployment's retries then apply), waiting ones released to the others."""
        store = self.daemon.store
        assert self.scheduler is not None
        for found in self._members():
            if not found.dead:
                continue
            member = found.id
            why = "was killed" if found.gone else "stopped renewing its lease"
            message = f"the daemon running it ({member}) {why}"
            crashed, waiting = store.settle_member(member, message, gone=found.gone)
            for row in crashed:
                if row.id in self.dispatcher.remote:
                    self.dispatcher.remote.discard(row.id)
                    self.daemon.finish(
                        outcome_of(row, StateName.CRASHED, StateType.CRASHED, message)
                    )
                elif row.deployment_name is not None:
                    self.scheduler.ended_while_away(row.deployment_name, row.id, StateType.CRASHED)
            for row in waiting:  # a dead scheduler's queue: tracked from now on
                self._adopt(row)
            log.warning(
                "daemon %s %s: %d runs Crashed, %d released",
                member,
                why,
                len(crashed),
                len(waiting),
                extra={"event_kind": "member_dead", "daemon_id": member},
            )
            self.scheduler.pools.reap()

    def leave(self) -> None:
        """At shutdown, once the pool has stopped: hand this member's waiting runs (taken,
        or queued as the scheduler) to the others, then leave the cluster, giving the
        scheduler's lease up at once."""
        store = self.daemon.store
        me = self.membership.view.member_id
        try:
            waiting = [
                row.id
                for row in store.read_unfinished_deployment_runs()
                if row.daemon_id == me and row.state_type == StateType.PENDING
            ]
            store.release_runs(waiting)
        finally:
            self.membership.stop()


@dataclass(frozen=True, slots=True)
class Member:
    """Another member, as the scheduler judges it."""

    id: str
    dead: bool
    gone: bool  # its process is known to be gone (this host's)


def _process_exists(pid: int) -> bool:
    """Whether ``pid`` is a live process: a zombie is not (a daemon killed under an init
    that reaps its orphans late, as in many containers, stays one for a while)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            state = stat.read().rpartition(")")[2].split()[0]  # after the command's name
    except (OSError, IndexError):
        return True  # no /proc: the signal's answer stands
    return state != "Z"


def outcome_of(
    row: FlowRunRow,
    state_name: str | None = None,
    state_type: str | None = None,
    message: str | None = None,
) -> RunOutcome:
    """A run that ended on another member, as the scheduler's bookkeeping takes it."""
    now = datetime.now(UTC)
    start = row.start_time
    end = row.end_time or now
    return RunOutcome(
        flow_run_id=row.id,
        state_name=state_name or row.state_name or "",
        state_type=state_type or row.state_type or "",
        worker_pid=row.worker_pid,
        exit_code=row.exit_code,
        signal=row.signal,
        started_at=start or now,
        ended_at=end,
        duration_ms=round((end - start).total_seconds() * 1000) if start else 0,
        error_type=row.error_type,
        message=message or row.state_message,
        start_time=start,
        end_time=end,
        flow_name=row.flow_name,
        run_name=row.name,
        run_count=row.run_count,
    )
