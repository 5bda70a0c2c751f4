"""APScheduler 3 as the daemon's timer: it sleeps until the next fire time and hands the due
nominal times to the scheduler. It decides nothing and stores nothing: its job store is
in memory, rebuilt from the gnomon store at every start, and the gnomon store stays the
source of truth.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.executors.base import BaseExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger

from gnomon.scheduling import Trigger

# (deployment, due nominal times, the nominal fire after the last of them)
HandOff = Callable[[str, list[datetime], datetime | None], None]


class _GnomonTrigger(BaseTrigger):
    """Adapts a gnomon trigger: APScheduler sees nominal times shifted by the jitter offset."""

    def __init__(self, trigger: Trigger, offset: timedelta, not_before: datetime) -> None:
        self.trigger = trigger
        self.offset = offset
        self.not_before = not_before
        self._last: tuple[datetime, datetime | None] | None = None  # (previous, next)

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
        after = previous_fire_time - self.offset if previous_fire_time else self.not_before
        nominal = self.trigger.next_fire(after)
        following = None if nominal is None else (nominal + self.offset).astimezone(UTC)
        if previous_fire_time is not None:
            self._last = (previous_fire_time, following)
        return following


class _HandOffExecutor(BaseExecutor):
    """Passes due run times to the scheduler instead of running anything."""

    def __init__(self, hand_off: HandOff) -> None:
        super().__init__()
        self._hand_off = hand_off

    def submit_job(self, job: Any, run_times: list[datetime]) -> None:
        trigger: _GnomonTrigger = job.trigger
        offset = trigger.offset
        # Job._get_run_times has just computed the fire after the last run time: remembered.
        following = trigger.get_next_fire_time(run_times[-1], run_times[-1])
        self._hand_off(
            job.id,
            [run_time - offset for run_time in run_times],
            None if following is None else following - offset,
        )

    def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
        raise NotImplementedError  # submit_job above replaces the executor machinery


class Timer:
    """One APScheduler job per deployment, handing its fire times to ``hand_off``."""

    def __init__(self, hand_off: HandOff) -> None:
        self._scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={"default": _HandOffExecutor(hand_off)},
            # Every due time is handed over: gnomon applies its own misfire and catch-up rules.
            job_defaults={
                "coalesce": False,
                "misfire_grace_time": None,
                "max_instances": 1_000_000,
            },
        )

    def schedule(
        self, name: str, trigger: Trigger, offset: timedelta, not_before: datetime
    ) -> None:
        """Schedule (or reschedule) deployment ``name``."""
        self._scheduler.add_job(
            _never_called,
            trigger=_GnomonTrigger(trigger, offset, not_before),
            id=name,
            name=name,
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
