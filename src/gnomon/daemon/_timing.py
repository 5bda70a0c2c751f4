"""APScheduler 3 as the daemon's timer: it sleeps until shortly before the next fire time and
hands the due nominal times to the scheduler. It decides nothing and stores nothing: its job
store is in memory, rebuilt from the gnomon store at every start, and the gnomon store stays
the source of truth.

Fires are handed over ``HAND_OFF_LEAD`` ahead of time, all the deployments due in one
APScheduler round in one batch: APScheduler's bookkeeping (a job and a next-fire search per
deployment) is done before the fire is due, and the daemon's loop, which sleeps until the
exact moment (``Scheduler.next_due``), then decides every fire of that moment in one
transaction instead of taking them as APScheduler trickles them out.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_SUBMITTED, JobEvent
from apscheduler.executors.base import BaseExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger

from gnomon.daemon._cadence import DOWNTIME_GAP
from gnomon.scheduling import Trigger

HAND_OFF_LEAD = timedelta(milliseconds=250)


@dataclass(frozen=True, slots=True)
class HandedFires:
    """A deployment's due nominal times, with the trigger that computed them (a reload may
    have changed the deployment's since)."""

    name: str
    nominal_times: list[datetime]
    trigger: Trigger


HandOff = Callable[[list[HandedFires]], None]


class _GnomonTrigger(BaseTrigger):
    """Adapts a gnomon trigger: APScheduler sees nominal times shifted by ``shift`` (the
    jitter offset, less the hand-off lead)."""

    def __init__(self, trigger: Trigger, shift: timedelta, not_before: datetime) -> None:
        self.trigger = trigger
        self.shift = shift
        self.not_before = not_before
        self._last: tuple[datetime, datetime | None] | None = None  # (previous, next)
        self._offset = _wall_offset()  # wall minus monotonic time at the last call

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        # APScheduler asks twice after each fire (Job._get_run_times, then to reschedule the
        # job): the second answer comes from the last pair, not a second cron search.
        last = self._last
        if last is not None and previous_fire_time is not None and last[0] == previous_fire_time:
            return last[1]
        # The first fire is the first one after the catch-up horizon (`not_before`), not after
        # `now`: a fire falling between catch-up and the timer's start is not lost.
        after = previous_fire_time - self.shift if previous_fire_time else self.not_before
        if self._stepped_forward():
            # The wall clock jumped (an NTP step, a resumed VM): APScheduler would list every
            # fire time in the jump, one by one. The daemon's loop decides those by the
            # catch-up policy (it sees the jump too); the timer goes on from now.
            after = max(after, now - self.shift)
        nominal = self.trigger.next_fire(after)
        following = None if nominal is None else (nominal + self.shift).astimezone(UTC)
        if previous_fire_time is not None:
            self._last = (previous_fire_time, following)
        return following

    def _stepped_forward(self) -> bool:
        """Whether the wall clock moved ahead of the monotonic one by more than
        DOWNTIME_GAP since the last call: both are read at one instant, so a thread that
        ran late (a busy machine) never looks like a step."""
        previous, self._offset = self._offset, _wall_offset()
        return self._offset - previous > DOWNTIME_GAP


def _wall_offset() -> float:
    return time.time() - time.monotonic()


class _HandOffExecutor(BaseExecutor):
    """Collects due run times instead of running anything; ``flush`` hands them over."""

    def __init__(self, hand_off: HandOff) -> None:
        super().__init__()
        self._hand_off = hand_off
        self._batch: list[HandedFires] = []  # only APScheduler's thread touches it

    def submit_job(self, job: Any, run_times: list[datetime]) -> None:
        trigger: _GnomonTrigger = job.trigger
        shift = trigger.shift
        self._batch.append(
            HandedFires(job.id, [run_time - shift for run_time in run_times], trigger.trigger)
        )

    def flush(self, _event: JobEvent | None = None) -> None:
        """Hand over what this round collected. APScheduler dispatches its job events after
        the round, so the first event of a round delivers the whole round."""
        batch, self._batch = self._batch, []
        if batch:
            self._hand_off(batch)

    def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
        raise NotImplementedError  # submit_job above replaces the executor machinery


class Timer:
    """One APScheduler job per deployment, handing fire times to ``hand_off`` ``lead`` ahead."""

    def __init__(self, hand_off: HandOff, lead: timedelta = HAND_OFF_LEAD) -> None:
        self.lead = lead
        executor = _HandOffExecutor(hand_off)
        self._scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={"default": executor},
            # Every due time is handed over: gnomon applies its own misfire and catch-up rules.
            job_defaults={
                "coalesce": False,
                "misfire_grace_time": None,
                "max_instances": 1_000_000,
            },
        )
        self._scheduler.add_listener(executor.flush, EVENT_JOB_SUBMITTED | EVENT_JOB_MAX_INSTANCES)

    def schedule(
        self, name: str, trigger: Trigger, offset: timedelta, not_before: datetime
    ) -> None:
        """Schedule (or reschedule) deployment ``name``."""
        self._scheduler.add_job(
            _never_called,
            trigger=_GnomonTrigger(trigger, offset - self.lead, not_before),
            id=name,
            name=name,
            replace_existing=True,
        )

    def restart_from(self, now: datetime) -> None:
        """Reschedule every deployment from ``now`` (after downtime the loop catches up the
        fire times before it; the timer must not hand them over one by one)."""
        for job in self._scheduler.get_jobs():
            trigger: _GnomonTrigger = job.trigger
            self._scheduler.add_job(
                _never_called,
                trigger=_GnomonTrigger(trigger.trigger, trigger.shift, now),
                id=job.id,
                name=job.name,
                replace_existing=True,
            )

    def remove(self, name: str) -> None:
        if self._scheduler.get_job(name) is not None:
            self._scheduler.remove_job(name)

    def names(self) -> set[str]:
        return {job.id for job in self._scheduler.get_jobs()}

    def start(self) -> None:
        self._scheduler.start()

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)


def _never_called() -> None:
    raise AssertionError("the hand-off executor never calls job functions")
