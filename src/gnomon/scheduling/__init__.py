"""Triggers and schedule arithmetic: pure functions of time, never reading the clock.

``CronTrigger`` reads a crontab expression in an IANA zone and follows cronie's DST rules;
``IntervalTrigger`` fires every fixed duration from an anchor; ``jitter_offset`` spreads
deployments that share a schedule. Both triggers satisfy the ``Trigger`` protocol.
"""

from gnomon.scheduling._base import ScheduleError, Trigger
from gnomon.scheduling._cron import CronTrigger
from gnomon.scheduling._durations import format_duration, parse_interval
from gnomon.scheduling._interval import MIN_INTERVAL, IntervalTrigger, parse_every
from gnomon.scheduling._jitter import jitter_offset

__all__ = [
    "MIN_INTERVAL",
    "CronTrigger",
    "IntervalTrigger",
    "ScheduleError",
    "Trigger",
    "format_duration",
    "jitter_offset",
    "parse_every",
    "parse_interval",
]
