"""What every trigger is: the ``Trigger`` protocol, and the error a bad schedule raises."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from gnomon.exceptions import GnomonError


class ScheduleError(GnomonError, ValueError):
    """A schedule (cron expression, time zone, interval or jitter) is invalid.

    The message names the field and the value ("minute 61 is outside 0-59"); the caller
    prefixes where the schedule came from (file, deployment).
    """


@runtime_checkable
class Trigger(Protocol):
    """When a deployment fires. Pure arithmetic: a trigger never reads the clock."""

    def next_fire(self, after: datetime) -> datetime | None:
        """The first fire time strictly after ``after`` (aware), or None if it never fires again."""
        ...

    def describe(self) -> str:
        """A one-line description for logs and the dashboard."""
        ...


def utc_offset(moment: datetime) -> timedelta:
    """``moment``'s UTC offset; a naive datetime is a caller's bug, not a schedule error."""
    offset = moment.utcoffset()
    if offset is None:
        raise TypeError(f"expected a timezone-aware datetime, got naive {moment.isoformat()}")
    return offset
