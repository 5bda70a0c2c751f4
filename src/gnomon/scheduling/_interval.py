"""Interval triggers: every fixed duration from an anchor, in plain UTC arithmetic.

An interval is real elapsed time, so DST does not affect it: "every 1h" fires every 3,600
seconds through a fall-back night. For wall-clock schedules use a cron trigger.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from gnomon.scheduling._base import ScheduleError, utc_offset
from gnomon.scheduling._durations import format_duration, parse_interval

# The shortest interval a deployment may have. The daemon decides each moment's fires in
# one pass of its loop and records every fire as a row: a sub-second interval would be a
# run storm that no worker pool keeps up with, and is almost always a typo ("1ms" for "1m").
MIN_INTERVAL = timedelta(seconds=1)


def parse_every(text: str) -> timedelta:
    """The interval ``text`` spells (see ``parse_interval``), or ScheduleError naming it if it
    cannot be read or is shorter than ``MIN_INTERVAL``."""
    every = parse_interval(text)
    if every < MIN_INTERVAL:
        raise ScheduleError(f"interval {text!r} must be at least {format_duration(MIN_INTERVAL)}")
    return every


@dataclass(frozen=True)
class IntervalTrigger:
    """Fires at ``anchor``, ``anchor + every``, ``anchor + 2 * every``, ... and never before.

    The anchor pins the phase, so a restarted daemon keeps the same fire times instead of
    counting from whenever it started.
    """

    every: timedelta
    anchor: datetime

    def __post_init__(self) -> None:
        if self.every <= timedelta(0):
            raise ScheduleError(f"interval {format_duration(self.every)} must be positive")
        if self.every < MIN_INTERVAL:
            raise ScheduleError(
                f"interval {format_duration(self.every)} must be at least "
                f"{format_duration(MIN_INTERVAL)}"
            )
        if self.anchor.utcoffset() is None:
            raise ScheduleError(f"interval anchor {self.anchor.isoformat()} has no time zone")

    def describe(self) -> str:
        return f"every {format_duration(self.every)} from {self.anchor.isoformat()}"

    def next_fire(self, after: datetime) -> datetime | None:
        """The first ``anchor + k * every`` (k >= 0) strictly after ``after``, in UTC.

        O(1): integer division of timedeltas, exact to the microsecond.
        """
        utc_offset(after)
        anchor = self.anchor.astimezone(UTC)
        if after < anchor:
            return anchor
        periods = (after - anchor) // self.every + 1
        try:
            return anchor + periods * self.every
        except OverflowError:  # past datetime's year 9999
            return None
