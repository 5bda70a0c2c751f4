"""Prefect's ``prefect.schedules``: ``Cron``, ``Interval`` and ``RRule`` build a ``Schedule``
that ``flow.serve(schedules=...)`` and ``flow.to_deployment(schedules=...)`` take.

A ``Schedule`` is checked when built, as Prefect's is (a bad cron expression or rrule is a
ValueError naming it). What gnomon's scheduler runs is asked of it with
``deployment_fields()``: the ``cron`` / ``interval`` / ``rrule`` / ``anchor`` /
``timezone`` / ``parameters`` fields of a gnomon deployment's schedule (the TOML config's
keys; several schedules become its ``schedules = [...]``). What that scheduler cannot run
raises ``ScheduleError`` there, naming the field: ``day_or=False``, ``active=False`` (for a
schedule of its own: ``flow.serve`` leaves out the inactive ones of several).
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

from gnomon._prefect_import import prefect_fallback
from gnomon.scheduling import ScheduleError, cron_trigger, format_duration, parse_every


@dataclasses.dataclass(frozen=True)
class Schedule:
    """One schedule of a deployment: exactly one of ``interval``, ``cron``, ``rrule``.

    ``anchor_date`` is None unless given: gnomon then anchors an interval at its
    deployment's first registration and keeps it across restarts (Prefect anchors at the
    moment the schedule is built).
    """

    interval: datetime.timedelta | None = None
    cron: str | None = None
    rrule: str | None = None
    timezone: str | None = None
    anchor_date: datetime.datetime | None = None
    day_or: bool = True
    active: bool = True
    parameters: dict[str, Any] = dataclasses.field(default_factory=dict)
    slug: str | None = None

    def __post_init__(self) -> None:
        kinds = [kind for kind in ("interval", "cron", "rrule") if getattr(self, kind) is not None]
        if len(kinds) != 1:
            found = ", ".join(kinds) if kinds else "none"
            raise ValueError(
                f"a schedule needs exactly one of interval, cron, rrule (found: {found})"
            )
        if self.cron is not None:
            cron_trigger(self.cron, self.timezone or "UTC")  # ScheduleError is a ValueError
        if self.rrule is not None:
            _check_rrule(self.rrule)
        if self.interval is not None and self.interval <= datetime.timedelta(0):
            raise ValueError(f"interval must be positive, got {self.interval!r}")

    def deployment_fields(self, *, allow_inactive: bool = False) -> dict[str, Any]:
        """The fields of a gnomon deployment's schedule that fire on this one (the TOML
        config's ``cron``, ``interval`` or ``rrule``, ``anchor``, ``timezone``, and its
        own ``parameters``, with ``active`` when ``allow_inactive`` and it is not);
        ScheduleError for what gnomon's scheduler cannot run."""
        self._check_deployable(allow_inactive)
        fields: dict[str, Any] = {"timezone": self.timezone or "UTC"}
        if self.parameters:
            fields["parameters"] = dict(self.parameters)
        if not self.active:
            fields["active"] = False
        if self.cron is not None:
            return {"cron": self.cron, **fields}
        if self.rrule is not None:
            return {"rrule": self.rrule, **fields}
        assert self.interval is not None  # __post_init__: exactly one kind
        interval = format_duration(self.interval)
        parse_every(interval)  # at least gnomon's minimum interval, else ScheduleError
        fields["interval"] = interval
        if self.anchor_date is not None:
            fields["anchor"] = _aware(self.anchor_date, self.timezone)
        return fields

    def _check_deployable(self, allow_inactive: bool) -> None:
        if not self.day_or:
            raise ScheduleError(
                f"cron {self.cron!r}: day_or=False is not supported; gnomon's cron joins "
                "day-of-month and day-of-week with OR, as cron does"
            )
        if not self.active and not allow_inactive:
            raise ScheduleError(
                "active=False: a gnomon deployment's schedule is paused with "
                "`gnomon pause NAME`, not in its definition"
            )


def _check_rrule(rrule: str) -> None:
    """The rule parses, as Prefect checks it; gnomon's own rules for rrules (a DTSTART or
    named days, no EXDATE, ...) apply when it is deployed, naming the field."""
    from dateutil.rrule import rrulestr

    try:
        rrulestr(rrule, cache=True)
    except (ValueError, TypeError) as error:
        raise ValueError(f"invalid rrule {rrule!r}: {error}") from None


def _aware(moment: datetime.datetime, timezone: str | None) -> datetime.datetime:
    """``moment`` with a zone: a naive one is in ``timezone`` (UTC if none), as Prefect's."""
    if moment.tzinfo is not None:
        return moment
    from zoneinfo import ZoneInfo

    return moment.replace(tzinfo=ZoneInfo(timezone or "UTC"))


def Cron(  # noqa: N802 -- Prefect's name
    cron: str,
    /,
    timezone: str | None = None,
    day_or: bool = True,
    active: bool = True,
    parameters: dict[str, Any] | None = None,
    slug: str | None = None,
) -> Schedule:
    """A cron schedule: ``Cron("0 8 * * 1", timezone="America/New_York")``."""
    return Schedule(
        cron=cron,
        timezone=timezone,
        day_or=day_or,
        active=active,
        parameters=parameters or {},
        slug=slug,
    )


def Interval(  # noqa: N802 -- Prefect's name
    interval: datetime.timedelta | float,
    /,
    anchor_date: datetime.datetime | None = None,
    timezone: str | None = None,
    active: bool = True,
    parameters: dict[str, Any] | None = None,
    slug: str | None = None,
) -> Schedule:
    """An interval schedule; a number is seconds: ``Interval(timedelta(hours=1))``."""
    if not isinstance(interval, datetime.timedelta):
        interval = datetime.timedelta(seconds=interval)
    return Schedule(
        interval=interval,
        anchor_date=anchor_date,
        timezone=timezone,
        active=active,
        parameters=parameters or {},
        slug=slug,
    )


def RRule(  # noqa: N802 -- Prefect's name
    rrule: str,
    /,
    timezone: str | None = None,
    active: bool = True,
    parameters: dict[str, Any] | None = None,
    slug: str | None = None,
) -> Schedule:
    """An RFC 5545 rrule schedule: ``RRule("FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=4")``
    (the 4th business day of each month); deployed as a deployment's ``rrule``."""
    return Schedule(
        rrule=rrule,
        timezone=timezone,
        active=active,
        parameters=parameters or {},
        slug=slug,
    )


__all__ = ["Cron", "Interval", "RRule", "Schedule"]

__getattr__ = prefect_fallback(__name__)
