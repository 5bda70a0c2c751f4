"""A deployment's ``schedules = [...]`` entries, its ``active_from`` / ``active_until``
bounds and ``dst`` choices, and the document the store keeps of them.

A deployment fires by ``cron =`` or ``interval =`` (one spec, as ever) or by ``schedules``,
a list of specs whose fire times are united::

    schedules = [
      {cron = "0 6 * * *", parameters = {mode = "full"}},
      {interval = "15m"},
      {rrule = "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=4", dst = {skipped = "skip"}},
    ]

A time two specs produce fires once, with the parameters of the first spec listed that
produces it; a spec's parameters are merged over the deployment's. Each entry is checked
here on its own (its expression read in UTC: a zone changes no expression's validity), and
the whole schedule in the deployment's zone by ``Deployment``.
"""

from __future__ import annotations

import datetime as dt
from datetime import UTC, date, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from gnomon.scheduling import (
    Dst,
    ScheduleError,
    ScheduleKind,
    Window,
    cron_trigger,
    parse_every,
    rrule_trigger,
)

# Where an rrule without DTSTART starts while its entry is checked, before the deployment
# has a registration anchor: its validity does not depend on the day (see _rrule).
CHECK_ANCHOR = datetime(2000, 1, 1, tzinfo=UTC)
KINDS = tuple(str(kind) for kind in ScheduleKind)


def interval_message(text: str, error: ScheduleError) -> str:
    """The scheduling module's complaint about ``text`` without its "interval 'x'" prefix,
    which the problem already shows as the field and value."""
    message = str(error).removeprefix(f"interval {text!r}").lstrip(": ")
    return message.removeprefix("is ").removeprefix("has ")


def iso_dates(value: Any) -> Any:
    """TOML dates and times in ``value`` as ISO 8601 text, so parameters stay JSON for the
    store; a flow parameter typed ``datetime`` gets them back when the run validates them."""
    if isinstance(value, dt.date | dt.time):  # datetime is a date
        return value.isoformat()
    if isinstance(value, list):
        return [iso_dates(item) for item in value]
    if isinstance(value, dict):
        return {key: iso_dates(item) for key, item in value.items()}
    return value


def _interval(value: str | None) -> str | None:
    if value is not None:
        try:
            parse_every(value)
        except ScheduleError as error:
            raise ValueError(interval_message(value, error)) from None
    return value


def _dates_as_text(value: dict[str, Any]) -> dict[str, Any]:
    return {key: iso_dates(item) for key, item in value.items()}


# An interval as written ("15m"), at least gnomon's shortest.
IntervalText = Annotated[str | None, AfterValidator(_interval)]
# A run's parameters, TOML dates and times as ISO text (``iso_dates``).
Parameters = Annotated[dict[str, Any], AfterValidator(_dates_as_text)]


def _dst(value: Any) -> Any:
    """A ``dst = {repeated = ..., skipped = ...}`` table as a ``Dst``."""
    if value is None or isinstance(value, Dst):
        return value
    if not isinstance(value, dict):
        raise ValueError('must be a table like {repeated = "both", skipped = "skip"}')
    try:
        return Dst.of(value)
    except ScheduleError as error:
        raise ValueError(str(error).removeprefix("dst ")) from None


def _bound(value: Any) -> Any:
    if value is None or isinstance(value, date):  # a datetime is a date
        return value
    raise ValueError(
        "must be a TOML date (2027-01-31) or date and time (2027-01-31T06:00:00, in the"
        " deployment's zone without an offset), not quoted"
    )


DstChoice = Annotated[Dst | None, BeforeValidator(_dst)]
# A bound: a TOML date (from its midnight, until its end, in the deployment's zone) or a
# date and time (without an offset: in the deployment's zone).
BoundValue = Annotated[datetime | date | None, BeforeValidator(_bound)]


class ScheduleEntry(BaseModel):
    """One entry of ``schedules``: exactly one of cron, interval, rrule."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cron: str | None = None
    interval: IntervalText = None
    rrule: str | None = None
    parameters: Parameters = Field(default_factory=dict)
    anchor: datetime | None = None  # an interval's; naive: in the deployment's zone
    active_from: BoundValue = None
    active_until: BoundValue = None
    dst: DstChoice = None

    @field_validator("cron")
    @classmethod
    def _check_cron(cls, value: str | None) -> str | None:
        if value is not None:
            cron_trigger(value)
        return value

    @field_validator("rrule")
    @classmethod
    def _check_rrule(cls, value: str | None) -> str | None:
        if value is not None:
            check_rrule(value)
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> ScheduleEntry:
        kinds = [kind for kind in KINDS if getattr(self, kind) is not None]
        if len(kinds) != 1:
            found = " and ".join(kinds) if kinds else "none"
            raise ValueError(f"set exactly one of cron, interval or rrule (found {found})")
        if self.anchor is not None and self.interval is None:
            raise ValueError("anchor applies to an interval only (an rrule takes a DTSTART)")
        if self.dst is not None and self.interval is not None:
            raise ValueError("dst applies to cron and rrule only: an interval is real time")
        return self

    @field_validator("active_until")
    @classmethod
    def _after_active_from(cls, value: BoundValue, info: ValidationInfo) -> BoundValue:
        return check_bounds(info.data.get("active_from"), value)

    @property
    def kind(self) -> ScheduleKind:
        """Which of cron, interval and rrule the entry states."""
        return next(ScheduleKind(kind) for kind in KINDS if getattr(self, kind) is not None)

    @property
    def expression(self) -> str:
        """The cron expression, interval or rrule as written."""
        return str(getattr(self, self.kind))

    @property
    def written(self) -> str:
        """The spec on one line: ``cron 0 6 * * *``, ``rrule FREQ=DAILY``."""
        return f"{self.kind} {' '.join(self.expression.split())}"


def check_bounds(active_from: BoundValue, active_until: BoundValue) -> BoundValue:
    """``active_until``, or ValueError if it comes before ``active_from`` (read in UTC: a
    zone moves both the same way, unless one has an offset and the other not, which the
    deployment's check of its whole schedule then finds in its zone)."""
    try:
        Window.of(active_from, active_until, "UTC")
    except ScheduleError as error:
        raise ValueError(str(error).removeprefix(f"active_until {active_until} ")) from None
    return active_until


def _entries(value: Any) -> Any:
    if value is None or isinstance(value, list | tuple):
        return value
    raise ValueError(
        'must be a list of tables, like [{cron = "0 6 * * *"}, {interval = "15m"},'
        ' {rrule = "FREQ=MONTHLY;BYMONTHDAY=1"}]'
    )


def check_rrule(text: str) -> None:
    """ValueError saying what is wrong with the rrule ``text``, if anything. A rule that
    ended before today (its UNTIL or COUNT) is not wrong: like a deployment past its
    ``active_until``, it has no more fires, and a daemon restarted after a one-off rule
    ran out must start as before."""
    try:
        trigger = rrule_trigger(text, "UTC", CHECK_ANCHOR)
    except ScheduleError as error:
        raise ValueError(f"invalid rrule: {error}") from None
    if trigger.never_fires:
        raise ValueError("never fires: no date matches the rule")


def spec_document(
    kind: ScheduleKind | str,
    expression: str,
    *,
    parameters: dict[str, Any] | None = None,
    anchor: datetime | None = None,
    dst: Dst | None = None,
    active_from: BoundValue = None,
    active_until: BoundValue = None,
) -> dict[str, Any]:
    """One spec as the store keeps it (see ``Schedule.from_document``): only what it states."""
    table: dict[str, Any] = {"kind": str(kind), "expression": expression}
    if parameters:
        table["parameters"] = dict(parameters)
    if anchor is not None:
        table["anchor"] = anchor.isoformat()
    if dst is not None and dst != Dst():
        table["dst"] = dst.table()
    return {**table, **bounds_document(active_from, active_until)}


def bounds_document(active_from: BoundValue, active_until: BoundValue) -> dict[str, str]:
    """The bounds stated, as ISO text (a naive date and time stays naive: it is in the
    deployment's zone, which the store keeps beside it)."""
    bounds = {"active_from": active_from, "active_until": active_until}
    return {key: value.isoformat() for key, value in bounds.items() if value is not None}


# ``schedules``: entries, each checked on its own.
ScheduleEntries = Annotated[tuple[ScheduleEntry, ...] | None, BeforeValidator(_entries)]
