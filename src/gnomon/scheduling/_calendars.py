"""Calendars and maintenance windows: which fire times a deployment does not run.

A ``Calendar`` is a named set of days: explicit dates, inclusive date ranges, weekdays,
a country's (and subdivision's) public holidays from the ``holidays`` package, and other
calendars it includes, less the calendars it excludes. One with no days of its own but an
``exclude`` starts from every day: ``{exclude = ["us-holidays"]}`` is every day but those.
A calendar's days are days in the zone of the deployment that uses it.

A ``MaintenanceWindow`` is a span of time, [start, end), in which the deployments it
names (by name or tag; none named: all of them) do not fire.

``Exclusions`` is what a deployment's schedule leaves out: the calendars of its
``exclude`` and ``only`` and the windows that apply to it. ``Schedule`` skips the times it
blocks, so they are never decided (no row, no decision); ``blocked`` says why a time is
left out, for ``deployments next`` and ``explain``. Pure: no clock, no store.
"""

from __future__ import annotations

import enum
import functools
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from gnomon.scheduling._base import ScheduleError
from gnomon.scheduling._wallclock import load_zone

_MICROSECOND = timedelta(microseconds=1)
# How far past a blocked time the search for the next open day goes: a schedule whose
# calendars leave out every day of ten years has no more fires (until its config changes).
SEARCH_DAYS = 3660
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def weekday_number(text: str) -> int:
    """0 for "mon" or "Monday", ... 6 for "sun"; ScheduleError for anything else."""
    key = text.strip().lower()[:3] if isinstance(text, str) else ""
    full = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    if key in WEEKDAYS and text.strip().lower() in (key, full[WEEKDAYS.index(key)]):
        return WEEKDAYS.index(key)
    raise ScheduleError(f"weekday {text!r} is not one of {', '.join(WEEKDAYS)} (or in full)")


# The holidays package fills in a year on first look, in place: the daemon's loop and the
# API's threads (one process) must not look while another fills.
_HOLIDAYS_LOCK = threading.Lock()


def _holiday_name(country: str, subdiv: str | None, day: date) -> str | None:
    """The public holiday ``day`` is in the country (and subdivision), or None."""
    with _HOLIDAYS_LOCK:
        found = _holidays(country, subdiv).get(day)
    return str(found) if found else None


@functools.lru_cache(maxsize=64)
def _holidays(country: str, subdiv: str | None) -> Any:
    """The ``holidays`` package's calendar of a country (and subdivision); it fills in
    each year on first look. ScheduleError naming what it does not know."""
    import holidays

    supported = holidays.list_supported_countries()
    if country not in supported:
        raise ScheduleError(f"country {country!r}: no public holidays known for it")
    if subdiv is not None and subdiv not in supported[country]:
        known = ", ".join(supported[country]) or "none"
        raise ScheduleError(
            f"subdiv {subdiv!r}: {country} has no such subdivision (known: {known})"
        )
    return holidays.country_holidays(country, subdiv=subdiv)


@dataclass(frozen=True)
class Calendar:
    """A named set of days (see the module's docstring). Built only if valid."""

    name: str
    dates: frozenset[date] = frozenset()
    ranges: tuple[tuple[date, date], ...] = ()  # inclusive
    weekdays: frozenset[int] = frozenset()  # 0: Monday
    country: str | None = None  # public holidays, ISO 3166 code ("US", "DE")
    subdiv: str | None = None  # a subdivision's too ("CA", "BY")
    include: tuple[Calendar, ...] = ()
    exclude: tuple[Calendar, ...] = ()

    def __post_init__(self) -> None:
        for first, last in self.ranges:
            if last < first:
                raise ScheduleError(f"range {first} to {last}: its end is before its start")
        if self.subdiv is not None and self.country is None:
            raise ScheduleError(f"subdiv {self.subdiv!r} needs a country")
        if self.country is not None:
            _holidays(self.country, self.subdiv)

    @property
    def _has_days(self) -> bool:
        return bool(self.dates or self.ranges or self.weekdays or self.country or self.include)

    def contains(self, day: date) -> bool:
        """Whether ``day`` is one of the calendar's days."""
        if any(other.contains(day) for other in self.exclude):
            return False
        if not self._has_days:
            return bool(self.exclude)  # every day but those; an empty calendar has none
        return (
            day in self.dates
            or day.weekday() in self.weekdays
            or any(first <= day <= last for first, last in self.ranges)
            or (self.country is not None and bool(_holiday_name(self.country, self.subdiv, day)))
            or any(other.contains(day) for other in self.include)
        )

    def holiday(self, day: date) -> str | None:
        """The name of the public holiday ``day`` is in this calendar (or one it includes),
        if it is one: what a listing shows beside the calendar's name."""
        if self.country is not None:
            found = _holiday_name(self.country, self.subdiv, day)
            if found:
                return found
        for other in self.include:
            named = other.holiday(day)
            if named:
                return named
        return None

    def excluded_by(self, day: date) -> Calendar | None:
        """The calendar of this one's ``exclude`` that takes ``day`` out, if one does."""
        return next((other for other in self.exclude if other.contains(day)), None)

    def document(self) -> dict[str, Any]:
        """The calendar as the store keeps it (with the calendars it names, in full)."""
        table: dict[str, Any] = {"name": self.name}
        if self.dates:
            table["dates"] = sorted(day.isoformat() for day in self.dates)
        if self.ranges:
            table["ranges"] = [[a.isoformat(), b.isoformat()] for a, b in self.ranges]
        if self.weekdays:
            table["weekdays"] = [WEEKDAYS[number] for number in sorted(self.weekdays)]
        if self.country is not None:
            table["country"] = self.country
        if self.subdiv is not None:
            table["subdiv"] = self.subdiv
        if self.include:
            table["include"] = [other.document() for other in self.include]
        if self.exclude:
            table["exclude"] = [other.document() for other in self.exclude]
        return table

    @classmethod
    def from_document(cls, table: Mapping[str, Any]) -> Calendar:
        """A calendar from ``document()``'s form."""
        return cls(
            table["name"],
            frozenset(date.fromisoformat(day) for day in table.get("dates", ())),
            tuple(
                (date.fromisoformat(a), date.fromisoformat(b)) for a, b in table.get("ranges", ())
            ),
            frozenset(weekday_number(day) for day in table.get("weekdays", ())),
            table.get("country"),
            table.get("subdiv"),
            tuple(cls.from_document(other) for other in table.get("include", ())),
            tuple(cls.from_document(other) for other in table.get("exclude", ())),
        )


@dataclass(frozen=True)
class MaintenanceWindow:
    """A span of time, [start, end) (UTC instants), in which the deployments it applies
    to do not fire: those named, or tagged with one of ``tags``; every one if it names
    neither. ``key`` says where it comes from: the config's name, or the store's id."""

    start: datetime
    end: datetime
    reason: str | None = None
    deployments: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    key: str = ""

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ScheduleError("a maintenance window's start and end need a time zone")
        object.__setattr__(self, "start", self.start.astimezone(UTC))
        object.__setattr__(self, "end", self.end.astimezone(UTC))
        if self.end <= self.start:
            raise ScheduleError(
                f"end {self.end.isoformat()} is not after start {self.start.isoformat()}"
            )

    def applies_to(self, deployment: str, tags: Iterable[str]) -> bool:
        """Whether the window stops the fires of ``deployment`` (with ``tags``)."""
        if not self.deployments and not self.tags:
            return True
        return deployment in self.deployments or not set(self.tags).isdisjoint(tags)

    def contains(self, moment: datetime) -> bool:
        return self.start <= moment < self.end

    def describe(self) -> str:
        """ "maintenance 2026-12-08T01:00:00+00:00 to 2026-12-08T03:00:00+00:00 (reason)"."""
        span = f"maintenance {self.start.isoformat()} to {self.end.isoformat()}"
        return f"{span} ({self.reason})" if self.reason else span


class BlockKind(enum.StrEnum):
    """What keeps a fire time from running."""

    CALENDAR = "calendar"  # a day of an `exclude` calendar, or of none of the `only` ones
    MAINTENANCE = "maintenance"  # inside a maintenance window
    PAUSED = "paused"  # the deployment is paused then (the control plane's knowledge)


@dataclass(frozen=True)
class Blocked:
    """Why a fire time does not run: the kind, what did it (a calendar's name, a window's
    key, who paused) and the reason in words."""

    kind: BlockKind
    by: str | None
    reason: str

    def view(self) -> dict[str, Any]:
        return {"kind": str(self.kind), "by": self.by, "reason": self.reason}


@dataclass(frozen=True)
class Exclusions:
    """The calendars and windows a deployment's schedule leaves out, its calendars' days
    read in ``zone``. ``only``: its fires are on days of at least one of them."""

    zone: str = "UTC"
    exclude: tuple[Calendar, ...] = ()
    only: tuple[Calendar, ...] = ()
    windows: tuple[MaintenanceWindow, ...] = field(default=())

    def __post_init__(self) -> None:
        load_zone(self.zone)

    def __bool__(self) -> bool:
        return bool(self.exclude or self.only or self.windows)

    def with_windows(self, windows: Sequence[MaintenanceWindow]) -> Exclusions:
        return Exclusions(self.zone, self.exclude, self.only, tuple(windows))

    def blocked(self, nominal: datetime) -> Blocked | None:
        """Why the fire at ``nominal`` does not run (the first reason found: a maintenance
        window, then an excluding calendar, then the ``only`` ones), or None if it runs."""
        for window in self.windows:
            if window.contains(nominal):
                return Blocked(BlockKind.MAINTENANCE, window.key or None, window.describe())
        day = nominal.astimezone(load_zone(self.zone)).date()
        for calendar in self.exclude:
            if calendar.contains(day):
                holiday = calendar.holiday(day)
                named = f" ({holiday})" if holiday else ""
                reason = f"{day} is in calendar {calendar.name!r}{named}"
                return Blocked(BlockKind.CALENDAR, calendar.name, reason)
        if self.only and not any(calendar.contains(day) for calendar in self.only):
            names = ", ".join(repr(calendar.name) for calendar in self.only)
            which = "calendar" if len(self.only) == 1 else "any of calendars"
            by = ",".join(calendar.name for calendar in self.only)
            reason = f"{day} is not in {which} {names}{_excluded_why(self.only, day)}"
            return Blocked(BlockKind.CALENDAR, by, reason)
        return None

    def reopens(self, nominal: datetime) -> datetime | None:
        """If the fire at ``nominal`` is blocked, the instant from which to look for the
        next fire (fires after it may run); None if it is not blocked. Beyond SEARCH_DAYS
        the search gives up: the result is then further than that past ``nominal``."""
        after = nominal
        for _ in range(8):  # a window's end may fall on an excluded day, and back
            moved = self._past_windows(after)
            moved = self._past_days(moved)
            if moved == after:
                break
            after = moved
        return None if after == nominal else after - _MICROSECOND

    def _past_windows(self, moment: datetime) -> datetime:
        moved = True
        while moved:
            moved = False
            for window in self.windows:
                if window.contains(moment):
                    moment, moved = window.end, True
        return moment

    def _past_days(self, moment: datetime) -> datetime:
        if not (self.exclude or self.only):
            return moment
        zone = load_zone(self.zone)
        day = moment.astimezone(zone).date()
        first = day
        while not self._open_day(day):
            day += timedelta(days=1)
            if (day - first).days > SEARCH_DAYS:
                break
        if day == first:
            return moment
        # The day's first instant (a midnight a spring-forward skips maps to the jump).
        start = datetime.combine(day, time(), zone).astimezone(UTC)
        return max(start, moment + _MICROSECOND)

    def _open_day(self, day: date) -> bool:
        if any(calendar.contains(day) for calendar in self.exclude):
            return False
        return not self.only or any(calendar.contains(day) for calendar in self.only)

    def document(self) -> dict[str, Any]:
        """The calendars as the schedule's stored document keeps them (windows live in the
        store's own table)."""
        table: dict[str, Any] = {}
        if self.exclude:
            table["exclude"] = [calendar.document() for calendar in self.exclude]
        if self.only:
            table["only"] = [calendar.document() for calendar in self.only]
        return table

    @classmethod
    def from_document(cls, document: Mapping[str, Any], zone: str) -> Exclusions:
        """The calendars of a schedule's stored ``document`` (see ``document``)."""
        return cls(
            zone,
            tuple(Calendar.from_document(table) for table in document.get("exclude", ())),
            tuple(Calendar.from_document(table) for table in document.get("only", ())),
        )


def _excluded_why(only: Sequence[Calendar], day: date) -> str:
    """For a single ``only`` calendar whose own ``exclude`` takes ``day`` out: which, and
    the holiday if it is one (" (its exclude 'us-holidays' has it: Christmas Day)")."""
    other = only[0].excluded_by(day) if len(only) == 1 else None
    if other is None:
        return ""
    holiday = other.holiday(day)
    return f" (its exclude {other.name!r} has it{': ' + holiday if holiday else ''})"
