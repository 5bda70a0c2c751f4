"""Several daemons on one PostgreSQL database (see docs/design.md, "Several daemons").

Every daemon is a *member*: it holds a lease in the ``daemons`` table and renews it each
second from a thread of its own (``Membership``), on a connection of its own. One member,
the *scheduler*, holds the ``cluster_leader`` lease and does what one daemon did alone:
it decides fires, follows policies, backfills, deadlines and upstreams. It starts runs on
its own workers while it has idle ones (the single-daemon path, unchanged), and releases
the others (``ClusterDispatcher``); every member, the scheduler too, takes released runs
for its idle workers (``Claimer``), in release order, skipping rows another is taking.

A member that cannot renew for half its lease kills its runs' workers (``fence``), since
the others will settle them once its lease has run out: so no run is ever attempted by
two members at once, whatever the network does, as long as the hosts' clocks run at about
the same rate (they need not agree on the time: the leases are the database's). It joins
again as a new member once the database answers. A scheduler that loses its lease stops
(exit code 75): a daemon that decided fires under a lease it no longer holds must not go
on deciding them, and starting afresh is the one way back that needs no new code path
(kube-scheduler does the same); systemd starts it again as a member.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gnomon._version import __version__

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

    from gnomon.daemon._limits import RunLimits
    from gnomon.daemon._pool import WorkerPool
    from gnomon.daemon._runsetup import RunSetup
    from gnomon.deployments import Deployment
    from gnomon.store import Renewal, Store
    from gnomon.store.rows import FlowRunRow

log = logging.getLogger("gnomon.daemon")

RENEW_EVERY = 1.0  # seconds between a member's renewals (and a standby's bid to schedule)
FENCE_CHECK_EVERY = 0.25  # seconds between checks that the lease was renewed lately
APPLICATION = "gnomon member"
EXIT_LOST_LEAD = 75  # EX_TEMPFAIL: systemd's Restart= starts the daemon again


@dataclass
class MemberView:
    """What the membership thread last learnt, read by the loop (plain values: a read
    sees one renewal's or the next's)."""

    member_id: str
    leading: bool = False
    leader: str | None = None
    epoch: int = 0
    idle_elsewhere: int = 0
    released: int = 0
    fence: bool = False  # the loop must kill its runs' workers
    renewals: int = 0  # counts the renewals, so readers know a count is fresh
    agreed: dict[str, str | None] = field(default_factory=dict)


class Membership:
    """This daemon's lease in the cluster, renewed each second by a thread.

    Every member bids for the scheduler's lease at each renewal. ``counts`` gives its busy
    and idle workers, ``definitions`` its deployments' hashes; ``wake`` wakes the loop when
    something changed that it must act on; ``fence`` kills its runs' workers (from the
    watchdog thread, at half the lease).
    """

    def __init__(
        self,
        base_id: str,
        url: str,
        timeout: float,
        config: str | None,
        workers: int,
        counts: Callable[[], tuple[int, int]],
        definitions: Callable[[], Mapping[str, str]],
        wake: Callable[[], None],
        *,
        fence: Callable[[], None],
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.base_id = base_id
        self._config = config
        self._workers = workers
        self._counts = counts
        self._definitions = definitions
        self._wake = wake
        self._fence = fence
        self._joins = 0
        self.view = MemberView(self._next_id())
        self._engine: Engine | None = None
        self._connection: Connection | None = None
        self._sent: Mapping[str, str] | None = None  # the definitions last written
        self._last_ok = time.monotonic()
        self._failing = False
        self._fenced = False  # killed its runs; joins again once the database answers
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _next_id(self) -> str:
        self._joins += 1
        suffix = "" if self._joins == 1 else f"/{self._joins}"
        return f"{self.base_id}{suffix}"

    # The loop's side.

    def start(self) -> None:
        """Join (raises if the database refuses: the daemon does not start), take the
        scheduler's lease if it is free, and renew from a thread from then on."""
        self._join()
        self._renew()
        self._thread = threading.Thread(target=self._run, name="gnomon-membership", daemon=True)
        self._thread.start()
        # Apart from the renewals: a renewal stuck on a dead link must not hold the fence up.
        threading.Thread(target=self._watch, name="gnomon-fence", daemon=True).start()

    def stop(self) -> None:
        """Leave the cluster: give the scheduler's lease up at once, so a standby takes it
        at its next renewal rather than after the timeout."""
        from gnomon.store import leave_cluster

        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            if self._connection is not None and not self._fenced:
                leave_cluster(self._connection, self.view.member_id)
        except Exception as error:
            log.warning("could not leave the cluster cleanly: %s", error)
        self._close()

    def fenced(self) -> None:
        """The loop has killed its runs' workers: join again once the database answers."""
        self._fenced = True
        self.view.fence = False

    # The thread's side.

    def _run(self) -> None:
        while not self._stop.wait(RENEW_EVERY):
            if self.view.fence:
                # Fenced, the loop not told yet: the old lease is never renewed again, so
                # that it runs out and the others settle the runs killed under it.
                continue
            try:
                if self._fenced:
                    self._rejoin()
                self._renew()
            except Exception as error:
                self._failed(error)

    def _watch(self) -> None:
        while not self._stop.wait(FENCE_CHECK_EVERY):
            self._check_fence()

    def _connect(self) -> Connection:
        from sqlalchemy import create_engine
        from sqlalchemy.pool import NullPool

        from gnomon.store import SERVER_CONNECTION

        if self._connection is not None:
            return self._connection
        name = f"{APPLICATION} {self.base_id}"[:63]
        timeout_ms = max(1000, int(self.timeout * 250))
        self._engine = create_engine(
            self.url,
            poolclass=NullPool,
            connect_args={
                **SERVER_CONNECTION,
                # A renewal that cannot finish within a quarter of the lease is a failure:
                # on a link that went dead too (unacknowledged data, tcp_user_timeout).
                "connect_timeout": max(2, int(self.timeout / 4)),
                "tcp_user_timeout": timeout_ms,
                "application_name": name,
                "options": f"-c statement_timeout={timeout_ms}",
            },
        )
        self._connection = self._engine.connect()
        return self._connection

    def _close(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            except Exception:
                log.debug("closing the membership connection", exc_info=True)
        if self._engine is not None:
            self._engine.dispose()
        self._connection = self._engine = None

    def _join(self) -> None:
        self._join_as(self.view)

    def _join_as(self, view: MemberView) -> None:
        from gnomon.store import join_cluster

        connection = self._connect()
        busy, idle = self._counts()
        join_cluster(
            connection,
            {
                "id": view.member_id,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "version": __version__,
                "config": self._config,
                "workers": self._workers,
                "busy": busy,
                "idle": idle,
            },
            self.timeout,
        )
        self._sent = None

    def _rejoin(self) -> None:
        view = MemberView(self._next_id())
        self._join_as(view)
        self.view = view
        self._last_ok = time.monotonic()
        self._fenced = False
        log.warning(
            "rejoined the cluster as %s", view.member_id, extra={"daemon_id": view.member_id}
        )

    def _renew(self) -> None:
        from gnomon.store import agreed_definitions, renew_membership

        connection = self._connect()
        busy, idle = self._counts()
        definitions = dict(self._definitions())
        renewal: Renewal = renew_membership(
            connection,
            self.view.member_id,
            self.timeout,
            busy,
            idle,
            None if definitions == self._sent else definitions,
            not self._fenced,
        )
        self._sent = definitions
        self._last_ok = time.monotonic()
        if self._failing:
            self._failing = False
            log.info("the database answers the membership again")
        if not renewal.member:
            # The others declared this member dead (its lease ran out): its runs are theirs
            # now. Kill what may still run, then join as a new member.
            log.error(
                "this daemon's lease ran out (%s): the others have settled its runs",
                self.view.member_id,
            )
            self._request_fence()
            return
        view = self.view
        was_leading = view.leading
        view.leader, view.epoch = renewal.leader, renewal.epoch
        view.leading = renewal.leader == view.member_id
        view.agreed = agreed_definitions(connection)
        view.idle_elsewhere, view.released = renewal.idle_elsewhere, renewal.released
        view.renewals += 1
        if view.leading != was_leading:
            self._wake()

    def _failed(self, error: Exception) -> None:
        if not self._failing:
            self._failing = True
            log.error("cannot renew this daemon's lease: %s", error)
        self._close()  # a new connection next time: the old one may be half dead

    def _check_fence(self) -> None:
        if self._fenced or self.view.fence:
            return
        if time.monotonic() - self._last_ok > self.timeout / 2:
            log.critical(
                "no renewal for %.0f s (half the %g s lease): killing this daemon's runs so"
                " that no other daemon runs them twice",
                time.monotonic() - self._last_ok,
                self.timeout,
            )
            self._request_fence()

    def _request_fence(self) -> None:
        """Kill the runs' workers now, from this thread (the loop may be waiting on the
        same dead link), then tell the loop."""
        self.view.fence = True
        self.view.leading = False
        try:
            self._fence()
        finally:
            self._wake()


@dataclass(frozen=True, slots=True)
class Execution:
    """How a member runs a deployment's runs, from its own copy of the deployment."""

    timeout: float | None
    limits: RunLimits
    setup: RunSetup | None
    entrypoint: str  # the flow as this host has it

    @classmethod
    def of(cls, deployment: Deployment) -> Execution:
        from gnomon.daemon._limits import RunLimits
        from gnomon.daemon._runsetup import RunSetup

        timeout = deployment.timeout
        return cls(
            timeout.total_seconds() if timeout else None,
            RunLimits.of(deployment),
            RunSetup.of(deployment),
            deployment.flow,
        )


class ClusterDispatcher:
    """The scheduler's dispatcher in a cluster: its own workers while one is idle, else the
    run is released to the other members. The scheduler tracks a released run as it does
    a run on its own workers; ``ended`` reads which of them ended, for its bookkeeping."""

    def __init__(self, pool: WorkerPool, store: Store, view: Callable[[], MemberView]) -> None:
        self.pool = pool
        self.store = store
        self._view = view
        self.remote: set[str] = set()  # released, or taken by another member
        self._released_since = 0  # released since the view's last count
        self._counted_at = -1  # the renewal that counted them

    def idle_count(self) -> int:
        return self.pool.idle_count()

    def capacity(self) -> int:
        view = self._view()
        if view.renewals != self._counted_at:
            self._counted_at, self._released_since = view.renewals, 0
        elsewhere = max(0, view.idle_elsewhere - view.released - self._released_since)
        return self.pool.capacity() + elsewhere

    def submit(
        self,
        flow_run_id: str,
        timeout: float | None = None,
        limits: RunLimits | None = None,
        setup: RunSetup | None = None,
    ) -> bool:
        if self.pool.idle_count() > 0 or (self.pool.capacity() > 0 and not self._others()):
            return self.pool.submit(flow_run_id, timeout, limits, setup)
        # A run cancelled meanwhile is not released; its end reaches the scheduler through
        # ``ended`` all the same.
        self.store.release_runs([flow_run_id])
        self.remote.add(flow_run_id)
        self._released_since += 1
        return True

    def _others(self) -> bool:
        return self._view().idle_elsewhere > 0

    def cancel(self, flow_run_id: str, reason: str) -> bool:
        if flow_run_id not in self.remote:
            return self.pool.cancel(flow_run_id, reason)
        from gnomon.daemon._tracking import DAEMON_ACTOR

        # The member running it sees the request at its next look (``Claimer.cancels``);
        # an operator's request is in the store already (the scheduler's poll found it).
        row = self.store.read_flow_run(flow_run_id)
        if row is not None and row.cancel_requested_at is None:
            self.store.request_cancel(flow_run_id, DAEMON_ACTOR, reason)
        return True

    def adopt(self, ids: Iterable[str]) -> None:
        """Runs other members hold (or that wait released) when this member starts to
        schedule: tracked as released."""
        self.remote.update(ids)

    def ended(self) -> list[FlowRunRow]:
        """The released runs that have ended since the last look, no longer tracked."""
        if not self.remote:
            return []
        rows = self.store.read_ended(sorted(self.remote))
        for row in rows:
            self.remote.discard(row.id)
        return rows

    def ran_here(self, flow_run_id: str) -> None:
        """A released run this member took and ran itself: no longer remote."""
        self.remote.discard(flow_run_id)


class Claimer:
    """Takes released runs for this member's idle workers, and ends the ones it took that
    an operator (or the scheduler) asked to cancel."""

    def __init__(
        self,
        store: Store,
        pool: WorkerPool,
        view: Callable[[], MemberView],
        executions: Callable[[], Mapping[str, Execution]],
        definitions: Callable[[], Mapping[str, str]],
    ) -> None:
        self.store = store
        self.pool = pool
        self._view = view
        self._executions = executions
        self._definitions = definitions
        self.taken: set[str] = set()
        self._disagreed: frozenset[str] = frozenset()

    def agreed_names(self) -> list[str]:
        """The deployments this member loaded exactly as the scheduler did."""
        agreed = self._view().agreed
        mine = self._definitions()
        names = sorted(name for name, value in mine.items() if agreed.get(name) == value)
        differing = frozenset(name for name in mine if agreed.get(name) not in (None, mine[name]))
        if differing != self._disagreed:
            self._disagreed = differing
            if differing:
                log.warning(
                    "this daemon's definition of %d deployment(s) differs from the"
                    " scheduler's; it runs none of their runs until they agree: %s",
                    len(differing),
                    ", ".join(sorted(differing)[:20]),
                    extra={"event_kind": "definitions_differ", "deployments": sorted(differing)},
                )
        return names

    def claim(self) -> list[str]:
        """Take as many released runs as this member's workers are idle; their ids."""
        idle = self.pool.idle_count()
        if idle <= 0:
            return []
        executions = self._executions()  # of the same deployments as the definitions
        rows = self.store.claim_released(self._view().member_id, self.agreed_names(), idle)
        # The scheduler's host wrote its own path of the flow: this host's may differ.
        self.store.set_entrypoints(
            {
                row.id: executions[row.deployment_name or ""].entrypoint
                for row in rows
                if row.entrypoint != executions[row.deployment_name or ""].entrypoint
            }
        )
        for row in rows:
            execution = executions[row.deployment_name or ""]
            self.taken.add(row.id)
            if not self.pool.submit(row.id, execution.timeout, execution.limits, execution.setup):
                # The pool stopped meanwhile: give the run back.
                self.taken.discard(row.id)
                self.store.release_runs([row.id])
        return [row.id for row in rows]

    def cancels(self) -> None:
        """End the taken runs whose cancel was asked for."""
        if not self.taken:
            return
        for row in self.store.read_member_cancels(self._view().member_id):
            if row.id in self.taken:
                self.pool.cancel(row.id, row.state_message or "cancelled by request")

    def finished(self, flow_run_id: str) -> bool:
        """Whether the run that ended was one this member took (and forget it)."""
        if flow_run_id in self.taken:
            self.taken.discard(flow_run_id)
            return True
        return False
