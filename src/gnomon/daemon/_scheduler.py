"""Schedule decisions: what happens when a deployment's fire time comes, and what runs next.

The scheduler owns no thread and reads no clock: it keeps each deployment's next fire in
its timer (``_timer``), the daemon's loop calls ``tick(now)`` when the earliest is due
(``next_due``), and tests call it with literal times. Every decision (fired, queued,
skipped, missed) becomes a run row before it has any effect, keyed by (deployment, nominal
fire time), so a crash between deciding and acting
can never make a fire happen twice or not at all.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from gnomon.daemon._limits import RunLimits
from gnomon.daemon._pools import PoolSlots
from gnomon.daemon._runsetup import RunSetup
from gnomon.daemon._timer import FireTimer
from gnomon.daemon._tracking import (
    DAEMON_ACTOR,
    ENDED_ACTIONS,
    STARTING_ACTIONS,
    Decision,
    DecisionAction,
    DispatchedRun,
    Dispatcher,
    Slot,
    Waiting,
    catchup_split,
    final_decision,
    fire_chunks,
    fire_times_between,
    log_decision,
    milliseconds,
    overlap_refusal,
    run_row,
)
from gnomon.daemon._upstreams import (
    RECOVERY_SCAN_LIMIT,
    downstreams_of,
    ended,
    made_by_backfill,
    verdict,
)
from gnomon.deployments import Deployment, Overlap, windows_for
from gnomon.states import FAILED_TYPES, StateName, StateType, is_failed
from gnomon.store import SCHEDULED_CAUSES, RunCause, resumes_from

if TYPE_CHECKING:
    from gnomon.scheduling import MaintenanceWindow
    from gnomon.store import ScheduleStore
    from gnomon.store.rows import FlowRunRow, NewFlowRun, ScheduleState

log = logging.getLogger("gnomon.daemon")

# Final state types a deployment's `retries` apply to: the failed ones.
RETRIED_TYPES = FAILED_TYPES
# How long a tick may leave fired deployments' last and next fires unstored (see `tick`).
RECORD_FIRES_WITHIN = timedelta(seconds=1)
# How the AwaitingRetry state of a deployment retry begins (counted by the store).
RETRY_MESSAGE = "deployment retry"


class Scheduler:
    """Turns fire times into runs and runs into work for the dispatcher."""

    def __init__(self, store: ScheduleStore, dispatcher: Dispatcher, daemon_id: str) -> None:
        self.store = store
        self.dispatcher = dispatcher
        self.daemon_id = daemon_id
        self._slots: dict[str, Slot] = {}
        self._waiting: list[Waiting] = []
        self._sequence = itertools.count()
        self._timer = FireTimer()
        self._finished: list[tuple[str, str]] = []
        self._retries: list[tuple[str, str, str]] = []  # (deployment, run, state) to retry
        self._dispatched: dict[str, DispatchedRun] = {}
        self._forced: set[str] = set()  # requested runs that start whatever the overlap
        # The deployment of every run queued or running here: finding it must not cost a
        # look at every deployment per finished run (a daemon may have thousands).
        self._owners: dict[str, str] = {}
        # Deployments whose last fire is not stored yet (see ``tick``).
        self._unrecorded: set[str] = set()
        self._unrecorded_since: datetime | None = None
        # Paused deployments whose pause ends by itself, by name: when it ends.
        self._pause_ends: dict[str, datetime] = {}
        # Every maintenance window (the config's and the operators'): each deployment's
        # schedule leaves out the times of those that apply to it.
        self._windows: tuple[MaintenanceWindow, ...] = ()
        # By upstream, the deployments that run after it; ended runs of upstreams whose
        # downstreams are still to be decided (see ``follow_upstreams``).
        self._followers: dict[str, list[str]] = {}
        self._ended: list[str] = []
        self.pools = PoolSlots(store)
        self._lock = threading.Lock()

    # Deployments.

    def set_deployments(
        self, deployments: Sequence[Deployment], rows: dict[str, ScheduleState]
    ) -> None:
        """Track these deployments (as synced into the store; ``rows`` are their store rows).
        One whose schedule cannot be built keeps its previous schedule, if it had one, and
        is not tracked otherwise: it is logged, and the others go on."""
        kept: dict[str, Slot] = {}
        for deployment in deployments:
            row = rows[deployment.name]
            previous = self._slots.get(deployment.name)
            try:
                schedule = deployment.timing(row.anchor).with_windows(
                    windows_for(self._windows, deployment.name, deployment.tags)
                )
            except Exception as error:  # bad input never stops the other deployments
                log.error(
                    "deployment %r not scheduled: %s: %s",
                    deployment.name,
                    type(error).__name__,
                    error,
                    extra={"deployment": deployment.name},
                )
                if previous is not None:
                    kept[deployment.name] = previous
                continue
            slot = Slot(
                deployment=deployment,
                trigger=schedule,
                offset=schedule.offset,
                paused=row.paused,
                last_fire=row.last_fire,
                fires_from=row.fires_from,
                paused_until=row.paused_until if row.paused else None,
            )
            if previous is not None:
                slot.running, slot.queued = previous.running, previous.queued
                slot.paused_before = previous.paused_before
                # The row's last fire lags a fire the tick has not stored yet (see ``tick``).
                if previous.last_fire is not None and (
                    slot.last_fire is None or previous.last_fire > slot.last_fire
                ):
                    slot.last_fire = previous.last_fire
            kept[deployment.name] = slot
        self._slots = kept
        self._followers = downstreams_of(kept)
        self._pause_ends = {
            name: slot.paused_until
            for name, slot in kept.items()
            if slot.paused and slot.paused_until is not None
        }

    def deployment(self, name: str) -> Slot | None:
        return self._slots.get(name)

    def set_windows(self, windows: Sequence[MaintenanceWindow], now: datetime) -> None:
        """Use these maintenance windows from now on: each deployment's schedule leaves out
        the times of those that apply to it, and a fire planned inside one is planned
        again. A run already running when a window starts goes on: windows stop fires."""
        self._windows = tuple(windows)
        for slot in self._slots.values():
            deployment = slot.deployment
            slot.trigger = slot.trigger.with_windows(
                windows_for(self._windows, deployment.name, deployment.tags)
            )
        self._timer.plan(self._slots, now)

    def slots(self) -> dict[str, Slot]:
        return dict(self._slots)

    def set_paused(
        self, name: str, paused: bool, now: datetime, until: datetime | None = None
    ) -> None:
        """Pause (until ``until``, when the pause ends by itself) or resume; resuming does
        not catch up the paused period."""
        slot = self._slots.get(name)
        if slot is None:
            return
        if paused:
            slot.paused = True
            self._note_pause(slot, until)  # also a paused one's pause, made longer
            return
        if slot.paused:
            slot.paused = False
            slot.last_fire = now
        self._note_pause(slot, None)

    def _note_pause(self, slot: Slot, until: datetime | None) -> None:
        """Keep when the slot's pause ends by itself (``until``; None: it does not)."""
        slot.paused_until = until
        name = slot.deployment.name
        if until is None:
            self._pause_ends.pop(name, None)
        else:
            self._pause_ends[name] = until

    def end_pauses(self, now: datetime) -> list[Decision]:
        """Resume the deployments whose pause ends by ``now`` (the daemon's own doing,
        audited); what they missed while paused is not caught up. Called before any fire
        is decided (``tick``, ``catch_up``), so a fire at or after a pause's end is never
        decided paused."""
        decisions = []
        due = sorted((until, name) for name, until in self._pause_ends.items() if until <= now)
        for until, name in due:
            slot = self._slots.get(name)
            if slot is None or not slot.paused or slot.paused_until != until:
                self._pause_ends.pop(name, None)
                continue
            reason = f"pause until {until.astimezone(UTC).isoformat()} ended"
            # A store failure leaves it to end at the next attempt.
            ended = self.store.end_timed_pause(name, until, DAEMON_ACTOR, reason, now)
            self._pause_ends.pop(name, None)
            if not ended:
                continue  # changed in the store meanwhile: the store poll brings it
            slot.paused, slot.paused_until, slot.paused_before = False, None, until
            slot.fires_from = resumes_from(until)
            decision = Decision(name, until, DecisionAction.RESUMED, None, reason)
            log_decision(decision)
            decisions.append(decision)
        return decisions

    # The timer.

    def plan_fires(self, now: datetime) -> None:
        """Plan the next fire of each deployment that has none planned (at start-up, after
        a catch-up decided the fires before ``now``; after a reload, for the deployments
        added or rescheduled): the first after its last fire not due before ``now``."""
        self._timer.plan(self._slots, now)

    def restart_fires(self, now: datetime) -> None:
        """Plan every deployment's next fire afresh after a catch-up at ``now`` (downtime:
        a gap in the ticks or a failed store)."""
        self._timer.restart(self._slots, now)

    def next_due(self) -> datetime | None:
        """When the earliest planned fire is due, or a pause ends if that is earlier; the
        loop sleeps until then."""
        due = self._timer.next_due()
        if self._pause_ends:
            ends = min(self._pause_ends.values())
            return ends if due is None or ends < due else due
        return due

    def run_finished(self, flow_run_id: str, state_type: str) -> DispatchedRun | None:
        """Note a run's end for the next tick (called from the pool's threads); returns the
        run as it was dispatched (None if this scheduler did not dispatch it)."""
        with self._lock:
            self._finished.append((flow_run_id, state_type))
            return self._dispatched.pop(flow_run_id, None)

    def tick(self, now: datetime) -> list[Decision]:
        """End the pauses due to end, apply finished runs (retried, or counted towards
        ``pause_after_failures``) and handed-over fires, then start what can start."""
        pauses = self.end_pauses(now)
        with self._lock:
            finished, self._finished = self._finished, []
        for flow_run_id, state_type in finished:
            self.pools.give_back(flow_run_id)
            slot = self._forget(flow_run_id)
            if slot is not None and state_type in RETRIED_TYPES:
                self._retries.append((slot.deployment.name, flow_run_id, state_type))
            elif slot is not None:
                self._note_end(slot.deployment.name, flow_run_id)
        while self._retries:
            # Taken off only once done: a store failure leaves it for the next tick.
            name, flow_run_id, state_type = self._retries[0]
            slot = self._slots.get(name)
            if slot is not None and not self.retry_if_allowed(slot, flow_run_id, state_type):
                pauses += self._pause_after_failures(slot, now)
                self._note_end(name, flow_run_id)  # its retries used up: it has ended
            self._retries.pop(0)
        pauses += self.follow_upstreams(now)
        due = self._timer.take_due(self._slots, now)
        decisions: list[Decision] = []
        try:
            due.sort(key=lambda fire: fire[1])
            for fires in fire_chunks(due, self.dispatcher.capacity()):
                decisions += self.fire_many(
                    fires, now, record_fire_times=False, log_decisions=False
                )
                self.dispatch(now)
            if not due:
                self.dispatch(now)
        finally:
            # Also when the store failed: the catch-up after the outage decides this fire.
            self._timer.plan_next(self._slots)
        for decision in decisions:  # after the dispatch: the first runs need not wait for it
            log_decision(decision)
        if self._note_decided(decisions):  # skipped and missed fires decide downstreams too
            decisions += self.follow_upstreams(now)
            self.dispatch(now)
        # The deployments' last fires are stored once the fire's runs are all
        # started (or after RECORD_FIRES_WITHIN): that write would otherwise hold the store's
        # write lock while the workers claim the first runs. A crash before it only leaves
        # last_fire behind: the catch-up's repeat of such a fire is a duplicate key, and
        # `requeue` moves last_fire up to the runs left waiting.
        if decisions:
            self._unrecorded.update(decision.deployment for decision in decisions)
            self._unrecorded_since = self._unrecorded_since or now
        settled = not self._waiting and self.dispatcher.idle_count() > 0
        since = self._unrecorded_since
        if since is not None and (settled or now - since >= RECORD_FIRES_WITHIN):
            self.record_fire_times()
        return pauses + decisions

    def record_fire_times(self) -> None:
        """Store the last fires ``tick`` has not stored yet (also at shutdown)."""
        names, self._unrecorded = self._unrecorded, set()
        self._unrecorded_since = None
        self._record_fire_times(names & self._slots.keys())

    def _forget(self, flow_run_id: str) -> Slot | None:
        """Stop tracking a run; returns the deployment it belonged to (None if that is no
        longer active)."""
        slot = self._owner(flow_run_id)
        self._owners.pop(flow_run_id, None)
        if slot is not None:
            slot.running.discard(flow_run_id)
            slot.queued.discard(flow_run_id)
            slot.backfilling.discard(flow_run_id)
        return slot

    def _owner(self, flow_run_id: str) -> Slot | None:
        """The active deployment the run is queued or running for."""
        name = self._owners.get(flow_run_id)
        slot = self._slots.get(name) if name is not None else None
        if slot is None or not (
            flow_run_id in slot.running
            or flow_run_id in slot.queued
            or flow_run_id in slot.backfilling
        ):
            return None
        return slot

    def _pause_after_failures(self, slot: Slot, now: datetime) -> list[Decision]:
        """Pause the deployment (the daemon's doing, audited) if its newest
        ``pause_after_failures`` runs that completed or failed since it was last resumed
        all failed; the decision, with the last failed run, is notified (``auto_paused``).
        Counted from the store's runs, so the count outlives a restart."""
        limit = slot.deployment.pause_after_failures
        if limit is None or slot.paused:
            return []
        name = slot.deployment.name
        runs = self.store.read_outcomes(name, limit)
        if len(runs) < limit or not all(is_failed(run.state_type) for run in runs):
            return []
        last = runs[0]
        failures = "1 failure" if limit == 1 else f"{limit} consecutive failures"
        reason = f"paused after {failures}; last: {last.name} {last.state_name}"
        changed = self.store.set_paused([name], True, DAEMON_ACTOR, reason, now=now)
        slot.paused = True
        self._note_pause(slot, None)
        if not changed:
            return []  # an operator paused it meanwhile
        nominal = last.scheduled_for or last.created
        decision = Decision(
            name, nominal, DecisionAction.AUTO_PAUSED, last.id, reason, last.state_name
        )
        log_decision(decision)
        return [decision]

    def ended_while_away(self, name: str, flow_run_id: str, state_type: str) -> None:
        """A run a dead daemon left ended failed (Crashed at recovery): the next tick
        retries it or counts it towards ``pause_after_failures``, as a run ending here."""
        self._retries.append((name, flow_run_id, state_type))

    def retry_if_allowed(self, slot: Slot, flow_run_id: str, state_type: str) -> bool:
        """Queue a failed or crashed run again while the deployment's retries last.

        The same run row goes back to AwaitingRetry, so its fire time stays one run; not
        once an operator's `runs retry` made the next generation of its time (they would
        run at once).
        """
        retries = slot.deployment.retries
        used = self.store.count_deployment_retries(flow_run_id)
        if used >= retries:
            return False
        message = (
            f"{RETRY_MESSAGE} {used + 1} of {retries} after the run ended {state_type.lower()}"
        )
        if not self.store.set_run_state(
            flow_run_id,
            StateType.SCHEDULED,
            StateName.AWAITING_RETRY,
            message,
            only_if_newest=True,
            daemon_id=self.daemon_id,
            run_count=0,  # its claim counts the runs of a resumed suspended run on
        ):
            return False
        row = self.store.read_flow_run(flow_run_id)
        if row is None:
            self._queue(slot, flow_run_id, datetime.now(UTC))
        else:
            self._queue_row(slot, row)
        log.info(
            "run queued again: %s",
            message,
            extra={"flow_run_id": flow_run_id, "deployment": slot.deployment.name},
        )
        return True

    # Decisions.

    def fire_many(
        self,
        fires: Sequence[tuple[str, datetime]],
        now: datetime,
        trigger: RunCause = RunCause.SCHEDULE,
        *,
        record_fire_times: bool = True,
        log_decisions: bool = True,
    ) -> list[Decision]:
        """Decide every fire, create all the resulting runs in one transaction, queue them;
        and log the decisions, unless the caller will (``log_decisions=False``)."""
        planned: list[tuple[Decision, NewFlowRun | None]] = []
        for name, nominal in sorted(fires, key=lambda fire: fire[1]):
            slot = self._slots.get(name)
            if slot is None:
                continue
            planned.append(self._decide(slot, nominal, now, trigger))
        rows = [row for _, row in planned if row is not None]
        # A pause committed by another process before this transaction wins over the fire:
        # `gnomon pause` returning means no fire after it.
        created, paused = self.store.create_runs_unless_paused(rows)
        for name in paused:
            self._slots[name].paused = True
        decisions = []
        for planned_decision, row in planned:
            decision = planned_decision
            if row is not None and row["deployment_name"] in paused:
                decision = Decision(decision.deployment, decision.nominal, DecisionAction.PAUSED)
            elif row is not None and row["id"] not in created:
                decision = Decision(
                    decision.deployment,
                    decision.nominal,
                    DecisionAction.DUPLICATE,
                    None,
                    "a run for this fire time already exists",
                )
            elif decision.action in STARTING_ACTIONS and decision.flow_run_id:
                self._queue(
                    self._slots[decision.deployment],
                    decision.flow_run_id,
                    decision.nominal,
                    trigger=trigger,
                )
            slot = self._slots[decision.deployment]
            if slot.last_fire is None or decision.nominal > slot.last_fire:
                slot.last_fire = decision.nominal
            if log_decisions:
                log_decision(decision)
            decisions.append(decision)
        if record_fire_times:
            self._record_fire_times({d.deployment for d in decisions})
        return decisions

    def _decide(
        self,
        slot: Slot,
        nominal: datetime,
        now: datetime,
        trigger: RunCause,
        *,
        overlap_applies: bool = True,
    ) -> tuple[Decision, NewFlowRun | None]:
        deployment = slot.deployment
        name = deployment.name
        if slot.paused or (slot.paused_before is not None and nominal < slot.paused_before):
            return Decision(name, nominal, DecisionAction.PAUSED), None
        due = nominal + slot.offset
        grace = deployment.misfire_grace
        # A downstream's nominal time is its upstream's, long before that one ended.
        if grace is not None and trigger is not RunCause.UPSTREAM and now - due > grace:
            late = (
                f"{milliseconds(now - due)} ms late,"
                f" beyond misfire_grace of {milliseconds(grace)} ms"
            )
            return final_decision(
                slot, nominal, now, trigger, self.daemon_id, StateName.MISSED, late
            )
        if not overlap_applies:  # a backfill's cascade: as its own runs, started as they come
            row = run_row(slot, nominal, now, trigger, self.daemon_id)
            return Decision(name, nominal, DecisionAction.FIRED, row["id"]), row
        refusal = overlap_refusal(slot)
        if refusal is not None:
            return final_decision(
                slot, nominal, now, trigger, self.daemon_id, StateName.SKIPPED, refusal
            )
        active = len(slot.running) + len(slot.queued)
        overlap = deployment.overlap
        if overlap is Overlap.CANCEL_PREVIOUS:
            self._cancel_previous(slot, f"the {nominal.isoformat()} fire")
        action = (
            DecisionAction.QUEUED if active and overlap is Overlap.QUEUE else DecisionAction.FIRED
        )
        row = run_row(slot, nominal, now, trigger, self.daemon_id)
        return Decision(name, nominal, action, row["id"]), row

    def _cancel_previous(self, slot: Slot, by: str) -> None:
        """overlap = cancel_previous: end the deployment's running and queued runs."""
        for flow_run_id in sorted(slot.running):
            self.dispatcher.cancel(flow_run_id, f"cancelled by {by}")
        for flow_run_id in sorted(slot.queued):
            self._drop_queued(slot, flow_run_id)
            self.store.set_run_state(
                flow_run_id,
                StateType.CANCELLED,
                StateName.CANCELLED,
                f"cancelled by {by} (overlap = cancel_previous)",
                only_if_active=True,
            )

    def _drop_queued(self, slot: Slot, flow_run_id: str) -> None:
        """Forget a queued run, which its caller records Cancelled: an end to follow."""
        self._note_end(slot.deployment.name, flow_run_id)
        slot.queued.discard(flow_run_id)
        slot.backfilling.discard(flow_run_id)
        self._owners.pop(flow_run_id, None)
        self._forced.discard(flow_run_id)
        self.pools.give_back(flow_run_id)
        self._waiting = [w for w in self._waiting if w.flow_run_id != flow_run_id]
        heapq.heapify(self._waiting)

    def _queue_row(self, slot: Slot, row: FlowRunRow, *, requested: bool = False) -> None:
        """Queue a stored run at its nominal time, due when its row says it was due to start
        (a retry's later generation: when it was asked for, not its nominal time)."""
        nominal = row.scheduled_for or row.created
        due = row.expected_start_time
        self._queue(
            slot,
            row.id,
            nominal,
            requested=requested,
            trigger=row.trigger,
            generation=row.generation,
            offset=None if due is None else due - nominal,
        )

    def _queue(
        self,
        slot: Slot,
        flow_run_id: str,
        nominal: datetime,
        *,
        requested: bool = False,
        trigger: RunCause | None = None,
        generation: int = 1,
        offset: timedelta | None = None,
        cascade: bool = False,
    ) -> None:
        """Queue a run, due at ``nominal`` plus ``offset``: by default the deployment's
        jitter offset; a requested (manual) run's is none."""
        backfill = trigger is RunCause.BACKFILL or cascade
        (slot.backfilling if backfill else slot.queued).add(flow_run_id)
        self._owners[flow_run_id] = slot.deployment.name
        deployment = slot.deployment
        timeout = deployment.timeout
        waiting = Waiting(
            backfill,
            -deployment.priority,
            nominal,
            next(self._sequence),
            flow_run_id,
            deployment.name,
            timeout.total_seconds() if timeout else None,
            offset if offset is not None else timedelta(0) if requested else slot.offset,
            RunLimits.of(deployment),
            trigger,
            generation,
            RunSetup.of(deployment),
            deployment.pool,
        )
        heapq.heappush(self._waiting, waiting)

    def queue_backfill_run(self, slot: Slot, run: NewFlowRun) -> None:
        """Queue a run a backfill made (``_backfills``): due when it was made, started
        whatever the overlap policy, after the other waiting runs."""
        nominal = run["scheduled_for"] or run["created"]
        made = run.get("expected_start_time") or run["created"]
        self._queue(
            slot,
            run["id"],
            nominal,
            trigger=RunCause.BACKFILL,
            generation=run.get("generation", 1),
            offset=made - nominal,
        )

    def requeue(self, rows: Iterable[FlowRunRow]) -> None:
        """Queue existing Pending runs (recovered after a restart) in nominal order.

        A scheduled run is a fire decided: the catch-up starts after it even if the daemon
        that created it died before storing its last_fire (for a first fire, none at all).
        """
        for row in rows:
            slot = self._slots.get(row.deployment_name or "")
            if slot is None:
                continue
            self.note_fire(row)
            self._queue_row(slot, row)

    def note_fire(self, row: FlowRunRow) -> None:
        """Count a run a dead daemon left (waiting or running) as a decided fire: the
        catch-up starts after it even if that daemon died before storing its last_fire."""
        slot = self._slots.get(row.deployment_name or "")
        nominal = row.scheduled_for
        if slot is None or nominal is None or row.trigger not in SCHEDULED_CAUSES:
            return
        if slot.last_fire is None or nominal > slot.last_fire:
            slot.last_fire = nominal

    def adopt(self, row: FlowRunRow) -> bool:
        """Track a run another daemon holds (or that waits released to the daemons), found
        when this daemon starts to schedule for a cluster (``_cluster``): it counts for its
        deployment's overlap policy as a run this scheduler dispatched does, and its end
        reaches ``run_finished``. False if its deployment is not scheduled here."""
        slot = self._slots.get(row.deployment_name or "")
        if slot is None:
            return False
        self.note_fire(row)
        nominal = row.scheduled_for or row.created
        backfill = row.trigger is RunCause.BACKFILL
        (slot.backfilling if backfill else slot.running).add(row.id)
        self._owners[row.id] = slot.deployment.name
        with self._lock:
            self._dispatched[row.id] = DispatchedRun(
                row.id,
                slot.deployment.name,
                slot.deployment.flow.rpartition(":")[2],
                nominal,
                row.expected_start_time or nominal,
                row.trigger,
                row.generation,
            )
        return True

    # Operators' requests, found in the store by the daemon's poll.

    def knows(self, flow_run_id: str) -> bool:
        """Whether the run is queued or running here."""
        return self._owner(flow_run_id) is not None

    def admit(self, row: FlowRunRow, now: datetime) -> Decision | None:
        """Take a manual run or retry an operator requested (a Scheduled row) under its
        deployment's overlap policy, unless it is forced; None if it is not waiting any more
        (cancelled meanwhile, or admitted already)."""
        flow_run_id, name = row.id, row.deployment_name or ""
        nominal = row.scheduled_for or row.created
        if self.knows(flow_run_id):
            return None
        slot = self._slots.get(name)
        forced = row.force
        reason = None
        if slot is None:
            reason = "the deployment is not active in the daemon"
        elif not forced:
            reason = overlap_refusal(slot)
        if reason is not None:
            state = StateName.CANCELLED if slot is None else StateName.SKIPPED
            if not self.store.set_run_state(
                flow_run_id, StateType.CANCELLED, state, reason, only_if_active=True, end_time=now
            ):
                return None
            decision = Decision(name, nominal, DecisionAction.SKIPPED, flow_run_id, reason)
            log_decision(decision)
            return decision
        assert slot is not None
        if slot.deployment.overlap is Overlap.CANCEL_PREVIOUS and not forced:
            self._cancel_previous(slot, f"{row.trigger} run {flow_run_id}")
        message = f"{row.trigger} run requested by {row.requested_by or 'an operator'}"
        if not self._take(flow_run_id, message):
            return None
        if forced:
            self._forced.add(flow_run_id)
        self._queue_row(slot, row, requested=True)
        decision = Decision(name, nominal, DecisionAction.QUEUED, flow_run_id, message)
        log_decision(decision)
        return decision

    def resume(self, row: FlowRunRow, now: datetime) -> Decision | None:
        """Queue again a suspended run an operator resumed: it runs from the top in a
        worker, when its deployment's overlap allows (it is not skipped: its fire was
        decided long ago). None if it is not waiting any more, or queued already."""
        flow_run_id, name = row.id, row.deployment_name or ""
        slot = self._slots.get(name)
        if self.knows(flow_run_id) or slot is None:
            return None
        message = row.state_message or "resumed"  # "resumed by <who>", from the resume
        if not self._take(flow_run_id, message):
            return None
        nominal = row.scheduled_for or row.created
        self._queue_row(slot, row, requested=True)
        decision = Decision(name, nominal, DecisionAction.QUEUED, flow_run_id, message)
        log_decision(decision)
        return decision

    def _take(self, flow_run_id: str, message: str) -> bool:
        """Move a waiting run to Pending for this daemon; False if it is not waiting any
        more (cancelled meanwhile)."""
        return self.store.set_run_state(
            flow_run_id,
            StateType.PENDING,
            StateName.PENDING,
            message,
            only_if_active=True,
            daemon_id=self.daemon_id,
        )

    def cancel_requested(self, flow_run_id: str, reason: str) -> bool:
        """Carry out a cancellation an operator requested: stop a running run's worker, or
        forget a queued run (the request already recorded it Cancelled). Whether it was ours."""
        slot = self._owner(flow_run_id)
        if slot is None:
            return False
        if flow_run_id in slot.running or self._backfill_running(slot, flow_run_id):
            return self.dispatcher.cancel(flow_run_id, reason)
        self._drop_queued(slot, flow_run_id)
        return True

    def dispatch(self, now: datetime) -> int:
        """Hand waiting runs to the workers, highest priority first, then oldest fire
        first, as many as they take now (and their pools allow); returns how many."""
        started = 0
        held: list[Waiting] = []
        try:
            self.pools.new_pass()
            while self._waiting and self.dispatcher.capacity() > 0:
                waiting = heapq.heappop(self._waiting)
                slot = self._slots.get(waiting.deployment)
                if slot is None or waiting.flow_run_id not in (
                    slot.backfilling if waiting.backfill else slot.queued
                ):
                    continue
                held.append(waiting)  # until it starts: a store failure leaves it waiting
                # A backfill's runs are as many as it lets be unfinished: they start as
                # they come.
                free = waiting.backfill or waiting.flow_run_id in self._forced
                if not free and not self._may_start(slot):
                    continue
                if not self._pool_slot(waiting, now):
                    continue
                if not self._submit(waiting, slot):
                    break
                held.pop()
                started += 1
        finally:
            for waiting in held:
                heapq.heappush(self._waiting, waiting)
        return started

    def _submit(self, waiting: Waiting, slot: Slot) -> bool:
        """Hand the run to the dispatcher; False if it takes no more now."""
        self._forced.discard(waiting.flow_run_id)
        dispatched = DispatchedRun(
            waiting.flow_run_id,
            waiting.deployment,
            slot.deployment.flow.rpartition(":")[2],
            waiting.nominal,
            waiting.nominal + waiting.offset,
            waiting.trigger,
            waiting.generation,
        )
        with self._lock:  # before submit: the run may end before submit returns
            self._dispatched[waiting.flow_run_id] = dispatched
        if not self.dispatcher.submit(
            waiting.flow_run_id, waiting.timeout, waiting.limits, waiting.setup
        ):
            with self._lock:
                del self._dispatched[waiting.flow_run_id]
            self.pools.give_back(waiting.flow_run_id)
            return False
        if not waiting.backfill:
            slot.queued.discard(waiting.flow_run_id)
            slot.running.add(waiting.flow_run_id)
        return True

    def _pool_slot(self, waiting: Waiting, now: datetime) -> bool:
        """Whether the run may start as far as its pool goes: it has none, holds a slot
        already, or takes one now (see ``_pools``)."""
        if waiting.pool is None or self.pools.holds(waiting.flow_run_id):
            return True
        return self.pools.take(waiting.flow_run_id, waiting.pool, waiting.deployment, now)

    def _may_start(self, slot: Slot) -> bool:
        deployment = slot.deployment
        if deployment.overlap is Overlap.ALLOW:
            return len(slot.running) < deployment.max_concurrent
        return not slot.running

    def waiting_count(self) -> int:
        return len(self._waiting)

    def running_count(self) -> int:
        return sum(
            len(slot.running)
            + sum(1 for run in slot.backfilling if self._backfill_running(slot, run))
            for slot in self._slots.values()
        )

    def _backfill_running(self, slot: Slot, flow_run_id: str) -> bool:
        """Whether a backfill's run was handed to a worker (not waiting any more)."""
        if flow_run_id not in slot.backfilling:
            return False
        with self._lock:
            return flow_run_id in self._dispatched

    # After downtime.

    def catch_up(
        self,
        now: datetime,
        why: str = "while the daemon was down",
        since: datetime | None = None,
        up_since: datetime | None = None,
    ) -> list[Decision]:
        """Apply each deployment's catch-up policy to the fire times missed before ``now``
        (``why`` they were missed goes into the Missed rows' message): those after its last
        fire and after the time its schedule decides from (registered, back in the config,
        resumed), or after ``since`` for one that knows neither.

        Fire times from ``up_since`` on (when a starting daemon had its deployments) were
        not missed while it was down, only late while it started: they fire as the
        schedule's, under ``misfire_grace`` like any late fire, not the catch-up policy.

        Pauses that ended meanwhile end first: what fell due after their end is downtime
        like any other, what fell due before it is not caught up.
        """
        ended = self.end_pauses(now)
        fires: list[tuple[str, datetime]] = []
        late: list[tuple[str, datetime]] = []
        missed: list[tuple[Slot, datetime]] = []
        for slot in self._slots.values():
            start = max(filter(None, (slot.last_fire, slot.fires_from)), default=since)
            if slot.paused or start is None:
                continue
            due = fire_times_between(slot.trigger, start, now)
            name = slot.deployment.name
            if up_since is not None:
                late.extend((name, nominal) for nominal in due if nominal >= up_since)
                due = [nominal for nominal in due if nominal < up_since]
            if not due:
                continue
            run, skip = catchup_split(slot.deployment, due)
            fires.extend((name, nominal) for nominal in run)
            missed.extend((slot, nominal) for nominal in skip)
        decisions = ended + self._record_missed(missed, now, why)
        decisions += self.fire_many(fires, now, trigger=RunCause.CATCHUP)
        if late:
            decisions += self.fire_many(late, now)
        self._note_decided(decisions)
        return decisions + self.follow_upstreams(now)

    # Runs triggered by runs (``after``; see ``_upstreams``).

    def _note_end(self, name: str, flow_run_id: str) -> None:
        """Follow the end of a run of ``name`` if anything runs after it."""
        if name in self._followers:
            self._ended.append(flow_run_id)

    def _note_decided(self, decisions: Iterable[Decision]) -> bool:
        """Follow the fires decided Skipped or Missed (rows that ended at once); whether
        there are any to follow."""
        for decision in decisions:
            if decision.action in ENDED_ACTIONS and decision.flow_run_id is not None:
                self._note_end(decision.deployment, decision.flow_run_id)
        return bool(self._ended)

    def follow_upstreams(self, now: datetime) -> list[Decision]:
        """Decide the downstreams of the upstream runs that ended: at each one's nominal
        time, a run (queued here) or a Skipped row, once all their upstreams ended then."""
        decisions: list[Decision] = []
        while self._ended:
            # Taken off only once done: a store failure leaves it for the next tick, and
            # deciding again creates nothing twice (the downstream's rows are read first).
            run = self.store.read_flow_run(self._ended[0])
            if run is not None and run.scheduled_for is not None and ended(run):
                # A backfill's runs cascade as backfill runs do, down the whole chain:
                # whatever the overlap policy (its times are long past; the backfill's
                # max_concurrent bounds them).
                cascade = made_by_backfill(run, self.store.read_flow_run)
                for name in self._followers.get(run.deployment_name or "", ()):
                    decision = self._follow(self._slots[name], run.scheduled_for, now, cascade)
                    if decision is not None:
                        decisions.append(decision)
            self._ended.pop(0)
        return decisions

    def follow_missed_ends(self, now: datetime) -> list[Decision]:
        """At start: decide the downstreams of upstream runs that ended with no daemon to
        follow them (killed between an upstream's end and its downstream's row), those
        created since the downstream's fires_from (registered, back, resumed)."""
        for name, slot in sorted(self._slots.items()):
            since = slot.fires_from
            if since is None or slot.paused:
                continue
            for upstream in slot.trigger.after:
                runs = self.store.read_unfollowed_runs(
                    name, upstream.deployment, since, RECOVERY_SCAN_LIMIT
                )
                self._ended.extend(run.id for run in reversed(runs))  # oldest first
        return self.follow_upstreams(now)

    def _follow(
        self, slot: Slot, nominal: datetime, now: datetime, cascade: bool = False
    ) -> Decision | None:
        """The downstream ``slot``'s decision at ``nominal``, where an upstream run ended;
        None if there is none to make (see ``_upstreams.verdict``). ``cascade``: the run
        that ended was a backfill's, so the downstream's overlap policy does not apply."""
        name = slot.deployment.name
        after = slot.trigger.after
        names = [name, *(upstream.deployment for upstream in after)]
        found = verdict(name, after, self.store.read_runs_at(names, nominal))
        if found is None:
            return None
        # Its calendars and maintenance windows leave the time out: recorded Skipped, with
        # why (every upstream time has its row here, so its own downstreams follow).
        blocked = slot.trigger.blocked(nominal) if found.run else None
        if found.run and blocked is None:
            decision, row = self._decide(
                slot, nominal, now, RunCause.UPSTREAM, overlap_applies=not cascade
            )
        else:
            decision, row = final_decision(
                slot,
                nominal,
                now,
                RunCause.UPSTREAM,
                self.daemon_id,
                StateName.SKIPPED,
                found.reason if blocked is None else f"excluded: {blocked.reason}",
            )
        if row is not None:
            row["caused_by"] = found.caused_by
            row["generation"] = found.generation
            starting = decision.action in STARTING_ACTIONS
            if starting:
                row["state_message"] = found.reason
            created, paused = self.store.create_runs_unless_paused([row])
            if paused:
                slot.paused = True
                decision = Decision(name, nominal, DecisionAction.PAUSED)
            elif row["id"] not in created:
                return None  # decided meanwhile
            elif starting:
                self._queue(
                    slot,
                    row["id"],
                    nominal,
                    trigger=RunCause.UPSTREAM,
                    generation=found.generation,  # the deadline watch judges the first only
                    cascade=cascade,
                )
                decision = Decision(name, nominal, decision.action, row["id"], found.reason)
            else:
                self._note_end(name, row["id"])  # its own downstreams follow a Skipped row
        log_decision(decision)
        return decision

    def _record_missed(
        self, missed: list[tuple[Slot, datetime]], now: datetime, why: str
    ) -> list[Decision]:
        rows = []
        for slot, nominal in missed:
            reason = f"missed {why} (catchup = {slot.deployment.catchup.value})"
            rows.append(
                final_decision(
                    slot, nominal, now, RunCause.CATCHUP, self.daemon_id, StateName.MISSED, reason
                )[1]
            )
        created = self.store.create_runs(rows)
        for slot, nominal in missed:
            # A Missed fire is decided: the timer must not hand it over again.
            if slot.last_fire is None or nominal > slot.last_fire:
                slot.last_fire = nominal
        decisions = [
            Decision(
                slot.deployment.name,
                nominal,
                DecisionAction.MISSED,
                row["id"],
                row["state_message"],
            )
            for (slot, nominal), row in zip(missed, rows, strict=True)
            if row["id"] in created
        ]
        for decision in decisions:
            log_decision(decision)
        return decisions

    def _record_fire_times(self, names: Iterable[str]) -> None:
        """Store each deployment's last fire."""
        updates = [
            (name, last) for name in names if (last := self._slots[name].last_fire) is not None
        ]
        self.store.record_fire_times_many(updates)
