"""The config's ``[[calendars]]`` and ``[[maintenance]]`` entries, and a deployment's
``exclude`` / ``only`` naming calendars::

    [[calendars]]
    name = "us-holidays"
    country = "US"
    subdiv = "NY"

    [[calendars]]
    name = "business-days"
    weekdays = ["mon", "tue", "wed", "thu", "fri"]
    exclude = ["us-holidays"]

    [[calendars]]
    name = "freeze-2026-12"
    ranges = [{start = 2026-12-21, end = 2027-01-04}]
    dates = [2026-12-31]

    [[maintenance]]
    start = 2026-12-08T01:00:00
    end = 2026-12-08T03:00:00
    timezone = "Europe/Berlin"        # of start and end without an offset; [daemon]'s else
    tags = ["warehouse"]              # or deployments = [...]; neither: every deployment
    reason = "database upgrade"

A calendar names others by ``include`` and ``exclude``; ``resolve_calendars`` builds them
in dependency order and reports a cycle naming it. A calendar with a problem is left out,
and a deployment that names it has a problem too (so it keeps its last good version).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    InstanceOf,
    ValidationInfo,
    field_validator,
    model_validator,
)

from gnomon._names import NAME_RULE, is_name
from gnomon.scheduling import Calendar, MaintenanceWindow, ScheduleError, weekday_number

if TYPE_CHECKING:
    from gnomon.store.rows import MaintenanceRow, NewMaintenance

# In a validation context: the config's calendars by name, None for one with problems.
CALENDARS_CONTEXT = "calendars"


def _name(value: str) -> str:
    if not is_name(value):
        raise ValueError(f"must be {NAME_RULE}")
    return value


def _day(value: Any) -> Any:
    if isinstance(value, datetime) or not isinstance(value, date):
        raise ValueError("must be a TOML date like 2026-12-24 (not quoted, no time)")
    return value


def _range(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"start", "end"}:
        first, last = _day(value["start"]), _day(value["end"])
        if last < first:
            raise ValueError(f"the range {first} to {last} ends before it starts")
        return (first, last)
    raise ValueError("must be a table like {start = 2026-12-21, end = 2027-01-04}")


def _weekday(value: Any) -> int:
    try:
        return weekday_number(value)
    except ScheduleError as error:
        raise ValueError(str(error).removeprefix(f"weekday {value!r} ")) from None


Day = Annotated[date, BeforeValidator(_day)]


class CalendarEntry(BaseModel):
    """One ``[[calendars]]`` entry, as written: its own fields checked, its names not yet."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Annotated[str, AfterValidator(_name)]
    description: str | None = None
    dates: tuple[Day, ...] = ()
    ranges: tuple[Annotated[tuple[date, date], BeforeValidator(_range)], ...] = ()
    weekdays: tuple[Annotated[int, BeforeValidator(_weekday)], ...] = ()
    country: str | None = None
    subdiv: str | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _holidays_known(self) -> CalendarEntry:
        """The country and subdivision are ones the ``holidays`` package knows."""
        if self.country is not None or self.subdiv is not None:
            try:
                Calendar(self.name, country=self.country, subdiv=self.subdiv)
            except ScheduleError as error:
                raise ValueError(str(error)) from None
        return self

    def build(self, known: Mapping[str, Calendar]) -> Calendar:
        """The calendar, with the ones it names taken from ``known`` (built before it)."""
        return Calendar(
            self.name,
            frozenset(self.dates),
            self.ranges,
            frozenset(self.weekdays),
            self.country,
            self.subdiv,
            tuple(known[name] for name in self.include),
            tuple(known[name] for name in self.exclude),
        )


def resolve_calendars(
    entries: Mapping[str, CalendarEntry], broken: Collection[str] = ()
) -> tuple[dict[str, Calendar | None], list[tuple[str, str, str, str]]]:
    """Every calendar built (None for one naming an unknown one, a ``broken`` one, or one
    that has a problem itself), and the problems: (calendar, field, value, message). A
    cycle is a problem of the calendar that closes it, naming the cycle."""
    built: dict[str, Calendar | None] = {}
    problems: list[tuple[str, str, str, str]] = []

    def visit(name: str, path: list[str]) -> Calendar | None:
        if name in built:
            return built[name]
        entry, path = entries[name], [*path, name]
        ok = True
        for field in ("include", "exclude"):
            for other in getattr(entry, field):
                if other in broken:
                    message = f"calendar {other!r} has problems (see its entry)"
                elif other not in entries:
                    message = _unknown(other, [*entries, *broken])
                elif other in path:
                    message = "cycle: " + " -> ".join([*path[path.index(other) :], other])
                elif visit(other, path) is None:
                    message = f"calendar {other!r} has problems (see its entry)"
                else:
                    continue
                problems.append((name, field, other, message))
                ok = False
        found = entry.build({k: v for k, v in built.items() if v is not None}) if ok else None
        built[name] = found
        return found

    for name in entries:
        visit(name, [])
    return built, problems


def _unknown(name: str, known: Iterable[str]) -> str:
    names = ", ".join(repr(each) for each in sorted(known)) or "none"
    return f"no [[calendars]] entry has this name (known: {names})"


def _calendar_named(value: Any, info: ValidationInfo) -> Any:
    """A deployment's ``exclude`` or ``only`` item: the config's calendar of that name."""
    if isinstance(value, Calendar):
        return value
    if not isinstance(value, str):
        raise ValueError("must be a calendar's name")
    calendars = (info.context or {}).get(CALENDARS_CONTEXT) or {}
    if value not in calendars:
        raise ValueError(_unknown(value, calendars))
    found = calendars[value]
    if found is None:
        raise ValueError("this calendar has problems (see its [[calendars]] entry)")
    return found


# ``exclude = ["us-holidays"]``: names of [[calendars]], each read as the calendar.
CalendarNames = tuple[Annotated[InstanceOf[Calendar], BeforeValidator(_calendar_named)], ...]


def _moment(value: Any) -> Any:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError("must be a date and time like 2026-12-08T01:00:00 (an offset optional)")


class MaintenanceEntry(BaseModel):
    """One ``[[maintenance]]`` entry: start and end (without an offset: in ``timezone``,
    else the ``[daemon]`` zone), the deployments or tags it stops, and why."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Annotated[str, AfterValidator(_name)]
    start: Annotated[datetime, BeforeValidator(_moment)]
    end: Annotated[datetime, BeforeValidator(_moment)]
    timezone: str | None = None
    deployments: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    reason: str | None = None

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        from gnomon.deployments._models import check_timezone

        return None if value is None else check_timezone(value)

    def window(self, default_zone: str) -> MaintenanceWindow:
        """The window, its naive times read in its zone (``default_zone`` if none)."""
        zone = ZoneInfo(self.timezone or default_zone)
        start, end = (
            moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)
            for moment in (self.start, self.end)
        )
        return MaintenanceWindow(
            start, end, self.reason, self.deployments, self.tags, key=self.name
        )


def stored_window(row: MaintenanceRow) -> MaintenanceWindow:
    """A stored window as the schedules take it (its key: the store's id)."""
    return MaintenanceWindow(
        row.starts_at,
        row.ends_at,
        row.reason,
        tuple(row.deployments or ()),
        tuple(row.tags or ()),
        key=str(row.id),
    )


def config_window_rows(windows: Iterable[MaintenanceWindow]) -> list[NewMaintenance]:
    """The config's windows as the store keeps them (``sync_config_maintenance``)."""
    from gnomon.store import MaintenanceSource

    return [
        {
            "starts_at": window.start,
            "ends_at": window.end,
            "reason": window.reason,
            "deployments": list(window.deployments),
            "tags": list(window.tags),
            "source": MaintenanceSource.CONFIG,
            "name": window.key,
        }
        for window in windows
    ]


def windows_for(
    windows: Iterable[MaintenanceWindow], deployment: str, tags: Iterable[str]
) -> tuple[MaintenanceWindow, ...]:
    """The windows that stop ``deployment``'s fires."""
    tags = tuple(tags)
    return tuple(window for window in windows if window.applies_to(deployment, tags))
