"""Triggers and schedule arithmetic: pure functions of time, never reading the clock.

``Schedule`` is a deployment's schedule as one value (its specs, their union of fire
times, its active window, the jitter offset, the schedule in words), which the daemon, the
CLI, the API and the dashboard all use. ``CronTrigger`` reads a crontab expression in an
IANA zone and follows cronie's DST rules (or the spec's ``Dst`` choices); ``RRuleTrigger``
reads an RFC 5545 rrule the same way; ``IntervalTrigger`` fires every fixed duration from
an anchor; ``jitter_offset`` spreads deployments that share a schedule. ``Calendar`` (named
sets of days, public holidays among them) and ``MaintenanceWindow`` make ``Exclusions``: the
fire times a schedule leaves out, and why (``Blocked``). The triggers and
``Schedule`` satisfy the ``Trigger`` protocol. ``Upstream`` is one of a deployment's ``after``
entries (runs triggered by runs); ``find_cycle`` and ``common_time`` check them.
"""

from gnomon.scheduling._base import ScheduleError, Trigger
from gnomon.scheduling._calendars import (
    WEEKDAYS,
    Blocked,
    BlockKind,
    Calendar,
    Exclusions,
    MaintenanceWindow,
    weekday_number,
)
from gnomon.scheduling._cron import CronTrigger, cron_trigger
from gnomon.scheduling._durations import format_duration, parse_interval
from gnomon.scheduling._interval import MIN_INTERVAL, IntervalTrigger, parse_every
from gnomon.scheduling._jitter import jitter_offset
from gnomon.scheduling._rrule import RRuleTrigger, rrule_trigger
from gnomon.scheduling._schedule import Schedule, ScheduleKind, ScheduleSpec, Window
from gnomon.scheduling._upstream import (
    COMMON_TIME_TRIES,
    Upstream,
    UpstreamOn,
    after_words,
    common_time,
    find_cycle,
)
from gnomon.scheduling._wallclock import Dst, RepeatedTimes, SkippedTimes

__all__ = [
    "COMMON_TIME_TRIES",
    "MIN_INTERVAL",
    "WEEKDAYS",
    "BlockKind",
    "Blocked",
    "Calendar",
    "CronTrigger",
    "Dst",
    "Exclusions",
    "IntervalTrigger",
    "MaintenanceWindow",
    "RRuleTrigger",
    "RepeatedTimes",
    "Schedule",
    "ScheduleError",
    "ScheduleKind",
    "ScheduleSpec",
    "SkippedTimes",
    "Trigger",
    "Upstream",
    "UpstreamOn",
    "Window",
    "after_words",
    "common_time",
    "cron_trigger",
    "find_cycle",
    "format_duration",
    "jitter_offset",
    "parse_every",
    "parse_interval",
    "rrule_trigger",
    "weekday_number",
]
