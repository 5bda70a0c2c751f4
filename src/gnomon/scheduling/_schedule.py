"""A deployment's schedule as one value: what the daemon fires by, what the CLI, the API and
the dashboard show, built the same way from a deployment in the config or its store row.

A ``Schedule`` is one or more ``ScheduleSpec`` (each a kind, an expression, a zone, an
anchor for an interval or an rrule without DTSTART, its DST choices, its active window and
its own parameters) whose fire times are their union, within the deployment's active
window, plus the deployment's jitter: a fixed offset per deployment (``jitter_offset``)
between a fire's nominal time and when it is due. It is a ``Trigger`` itself
(``next_fire`` gives nominal times), so the daemon's timer and catch-up take it as they
took a single trigger; ``spec_at`` says which spec a nominal time is the fire of.

A time two specs produce fires once, as the fire of the first spec listed that produces it
(with that spec's parameters).

Its ``exclusions`` (the calendars of the deployment's ``exclude`` and ``only``, and the
maintenance windows that apply to it) take fire times out: ``next_fire`` skips them, so
neither the timer nor the catch-up ever decides one; ``upcoming`` lists them with why.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from types import MappingProxyType
from typing import Any

from gnomon.scheduling._base import ScheduleError, Trigger
from gnomon.scheduling._calendars import SEARCH_DAYS, Blocked, Exclusions, MaintenanceWindow
from gnomon.scheduling._cron import cron_trigger
from gnomon.scheduling._crontab import ALIASES
from gnomon.scheduling._durations import format_duration
from gnomon.scheduling._interval import IntervalTrigger, parse_every
from gnomon.scheduling._jitter import jitter_offset
from gnomon.scheduling._rrule import RRuleTrigger, rrule_in_words, rrule_trigger
from gnomon.scheduling._upstream import Upstream, after_words
from gnomon.scheduling._wallclock import Dst, load_zone

_MICROSECOND = timedelta(microseconds=1)


class ScheduleKind(enum.StrEnum):
    """What a spec's expression is."""

    CRON = "cron"
    INTERVAL = "interval"
    RRULE = "rrule"


Bound = date | datetime | str | None


@dataclass(frozen=True)
class Window:
    """When fires may happen: from ``start`` to ``end``, both included (UTC instants; None:
    unbounded). Built from the config's ``active_from`` / ``active_until`` by ``of``."""

    start: datetime | None = None
    end: datetime | None = None
    written_from: str | None = field(default=None, compare=False)
    written_until: str | None = field(default=None, compare=False)

    @classmethod
    def of(cls, active_from: Bound, active_until: Bound, timezone: str) -> Window:
        """The window between two bounds, each a date (in the zone: from its midnight, until
        its end), a datetime (one without an offset is in the zone) or their ISO text."""
        zone = load_zone(timezone)
        first, last = _bound(active_from, "active_from"), _bound(active_until, "active_until")
        start = end = None
        if isinstance(first, datetime):
            start = _aware(first, zone)
        elif isinstance(first, date):
            start = datetime.combine(first, time(), zone).astimezone(UTC)
        if isinstance(last, datetime):
            end = _aware(last, zone)
        elif isinstance(last, date):
            end = datetime.combine(last + timedelta(days=1), time(), zone).astimezone(UTC)
            end -= _MICROSECOND
        if start is not None and end is not None and end < start:
            raise ScheduleError(f"active_until {_text(last)} is before active_from {_text(first)}")
        return cls(start, end, _text(first), _text(last))

    def clamp(self, after: datetime) -> datetime:
        """Where to search for the first fire in the window after ``after``."""
        if self.start is not None and after < self.start:
            return self.start - _MICROSECOND
        return after

    def holds(self, moment: datetime | None) -> datetime | None:
        """``moment`` if the window holds it; None if it is past the end (or None)."""
        if moment is None or (self.end is not None and moment > self.end):
            return None
        return moment

    def contains(self, moment: datetime) -> bool:
        """Whether ``moment`` is inside the window."""
        return (self.start is None or moment >= self.start) and self.holds(moment) is not None

    def describe(self) -> str:
        """The window in words ("" when unbounded): "from 2026-01-01 until 2026-12-31"."""
        words = []
        if self.written_from is not None:
            words.append(f"from {self.written_from}")
        if self.written_until is not None:
            words.append(f"until {self.written_until}")
        return " ".join(words)

    def table(self) -> dict[str, str]:
        """The bounds as the store keeps them (what was written)."""
        bounds = {"active_from": self.written_from, "active_until": self.written_until}
        return {key: value for key, value in bounds.items() if value is not None}


def _bound(value: Bound, name: str) -> date | datetime | None:
    if value is None or isinstance(value, date):  # a datetime is a date
        return value
    try:
        return date.fromisoformat(value) if len(value) == 10 else datetime.fromisoformat(value)
    except ValueError:
        raise ScheduleError(f"{name} {value!r} is not a date or a date and time") from None


def _aware(moment: datetime, zone: Any) -> datetime:
    return (moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)).astimezone(UTC)


def _text(value: date | datetime | None) -> str | None:
    return None if value is None else value.isoformat()


@dataclass(frozen=True)
class ScheduleSpec:
    """One way a deployment fires: a cron expression or an rrule in a zone, or an interval
    from an anchor; its DST choices, active window and own parameters. Built only if
    valid (``ScheduleError`` names the value otherwise)."""

    kind: ScheduleKind
    expression: str  # as written: "30 2 * * *", "15m", "FREQ=MONTHLY;BYMONTHDAY=1"
    timezone: str = "UTC"  # a cron's or an rrule's zone; an interval's fires ignore it
    anchor: datetime | None = None  # an interval's first fire; an rrule's start day
    dst: Dst = field(default_factory=Dst)
    window: Window = field(default_factory=Window)
    # Merged over the deployment's parameters for the runs this spec fires.
    parameters: Mapping[str, Any] = field(default_factory=dict, compare=False)
    _parameters_key: str = field(init=False, repr=False)  # compares the parameters
    trigger: Trigger = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "parameters", MappingProxyType(dict(self.parameters)))
        key = json.dumps(dict(self.parameters), sort_keys=True, default=str)
        object.__setattr__(self, "_parameters_key", key)
        object.__setattr__(self, "trigger", self._build())

    def _build(self) -> Trigger:
        if self.kind is ScheduleKind.CRON:
            return cron_trigger(self.expression, self.timezone, self.dst)
        if self.kind is ScheduleKind.RRULE:
            try:
                trigger = rrule_trigger(self.expression, self.timezone, self.anchor, self.dst)
            except ScheduleError as error:
                raise ScheduleError(f"rrule {self.expression!r}: {error}") from None
            # One that names no time (or none after its anchor) has no fires: the config's
            # check refuses it (``deployments._specs``), a stored one is simply over.
            return trigger
        if self.anchor is None:
            raise ScheduleError(
                f"interval {self.expression!r} needs an anchor (a registered deployment's is"
                " stored when it is first synced)"
            )
        if self.dst != Dst():
            raise ScheduleError(f"interval {self.expression!r}: dst applies to cron and rrule")
        return IntervalTrigger(parse_every(self.expression), self.anchor)

    def next_fire(self, after: datetime) -> datetime | None:
        """The spec's first fire strictly after ``after`` within its window, in UTC."""
        fire = self.trigger.next_fire(self.window.clamp(after))
        return self.window.holds(None if fire is None else fire.astimezone(UTC))

    @property
    def written(self) -> str:
        """The spec as the config writes it: ``cron 30 2 * * *``, ``interval 15m``."""
        return f"{self.kind} {' '.join(self.expression.split())}"

    def describe(self) -> str:
        """The spec in words: "At 09:00, Monday through Friday", "every 15m", with its
        window and DST choices when it states them."""
        if isinstance(self.trigger, IntervalTrigger):
            words = f"every {format_duration(self.trigger.every)}"
        elif isinstance(self.trigger, RRuleTrigger):
            words = rrule_in_words(self.trigger)
        else:
            words = _cron_in_words(self.expression)
        return ", ".join(
            part for part in (words, self.window.describe(), self.dst.describe()) if part
        )


@dataclass(frozen=True)
class Schedule:
    """When a deployment fires: the union of its specs' fire times within its window, each
    due its jitter offset after its nominal time. Pure arithmetic; it never reads the clock.

    ``after`` are the upstreams whose runs' ends start runs of the deployment at their
    nominal times (the daemon's doing, not the timer's); a deployment may have them and
    no spec, and then its own schedule never fires."""

    owner: str  # the deployment's name, which fixes its jitter offset
    specs: tuple[ScheduleSpec, ...]
    jitter: timedelta = timedelta(0)
    window: Window = field(default_factory=Window)  # the deployment's active_from / active_until
    # Calendars and maintenance windows whose times do not fire (see _calendars).
    exclusions: Exclusions = field(default_factory=Exclusions)
    offset: timedelta = field(init=False, compare=False)  # a fire is due this long after
    after: tuple[Upstream, ...] = ()

    def __post_init__(self) -> None:
        if not self.specs and not self.after:
            raise ScheduleError(f"deployment {self.owner!r} has no schedule")
        object.__setattr__(self, "offset", jitter_offset(self.owner, self.jitter))

    @classmethod
    def single(
        cls,
        owner: str,
        kind: ScheduleKind | str,
        expression: str,
        timezone: str | None = None,
        anchor: datetime | None = None,
        jitter: timedelta = timedelta(0),
    ) -> Schedule:
        """A schedule of one spec (a deployment's ``cron =`` or ``interval =``)."""
        spec = ScheduleSpec(ScheduleKind(kind), expression, timezone or "UTC", anchor)
        return cls(owner, (spec,), jitter)

    @classmethod
    def from_document(
        cls,
        owner: str,
        document: Mapping[str, Any],
        timezone: str | None = None,
        anchor: datetime | None = None,
        jitter: timedelta = timedelta(0),
    ) -> Schedule:
        """A schedule from its ``document``, in ``timezone``; ``anchor`` is the registration's,
        for intervals and rrules that state none. The document is what the store keeps of a
        deployment's ``schedules`` (JSON): ``{"specs": [{"kind", "expression", and as
        stated "parameters", "dst" ({"repeated", "skipped"}), "anchor", "active_from",
        "active_until"}], "active_from", "active_until"}``, bounds as ISO text."""
        zone = timezone or "UTC"
        specs = tuple(_spec(table, zone, anchor) for table in document.get("specs", ()))
        window = Window.of(document.get("active_from"), document.get("active_until"), zone)
        try:
            exclusions = Exclusions.from_document(document, zone)
        except (KeyError, TypeError, ValueError) as error:
            raise ScheduleError(f"stored calendars are unreadable: {error}") from None
        after = tuple(Upstream.of(table) for table in document.get("after", ()))
        return cls(owner, specs, jitter, window, exclusions, after=after)

    def with_windows(self, windows: Sequence[MaintenanceWindow]) -> Schedule:
        """This schedule with these maintenance windows (those that apply to it) left out."""
        exclusions = self.exclusions.with_windows(windows)
        if exclusions == self.exclusions:
            return self
        return dataclasses.replace(self, exclusions=exclusions)

    def next_fire(self, after: datetime) -> datetime | None:
        """The first nominal fire time strictly after ``after``, of any spec, in UTC, that
        its exclusions leave in; None if none fires again.

        In UTC because arithmetic and comparisons on a zone's wall time ignore ``fold``: a
        cron fire in the hour a fall-back repeats (01:20 the second time, fold=1) plus a
        jitter offset, even of zero, would be the first 01:20, an hour early."""
        if not self.specs:  # runs only after its upstreams
            return None
        if len(self.specs) == 1 and not self.exclusions:  # most; the daemon asks per fire
            fire = self.window.holds(self.specs[0].next_fire(self.window.clamp(after)))
            return fire if fire is None or self._dues(fire) else None
        found = self.next_fire_spec(after)
        return None if found is None else found[0]

    def next_fire_spec(self, after: datetime) -> tuple[datetime, int] | None:
        """The next nominal fire time (UTC) its exclusions leave in, and the index of the
        spec it is the fire of: the first listed of those that produce it."""
        found = self._next_any(after)
        if not self.exclusions:
            return found
        while found is not None:
            reopens = self.exclusions.reopens(found[0])
            if reopens is None:
                return found
            if reopens - found[0] > timedelta(days=SEARCH_DAYS):
                return None  # every day excluded for years: no more fires
            found = self._next_any(reopens)
        return None

    def blocked(self, nominal: datetime) -> Blocked | None:
        """Why the fire at ``nominal`` is left out (a calendar, a maintenance window), or
        None if it fires."""
        return self.exclusions.blocked(nominal) if self.exclusions else None

    def upcoming(self, after: datetime) -> Iterator[tuple[datetime, int, Blocked | None]]:
        """The fire times after ``after`` as the specs produce them, the excluded ones
        included: (due time, spec index, why it is left out or None), endless unless the
        schedule ends (take what you need)."""
        found = self._next_any(after)
        while found is not None:
            yield found[0] + self.offset, found[1], self.blocked(found[0])
            found = self._next_any(found[0])

    def _next_any(self, after: datetime) -> tuple[datetime, int] | None:
        """``next_fire_spec`` before the exclusions."""
        after = self.window.clamp(after)
        best: tuple[datetime, int] | None = None
        for index, spec in enumerate(self.specs):
            fire = spec.next_fire(after)
            if fire is not None and (best is None or fire < best[0]):
                best = (fire, index)
        if best is None or self.window.holds(best[0]) is None or not self._dues(best[0]):
            return None
        return best

    def _dues(self, nominal: datetime) -> bool:
        """Whether the fire at ``nominal`` can be due: its jitter offset does not take it
        past datetime's last moment (year 9999), where the schedule has no more fires."""
        try:
            nominal + self.offset
        except OverflowError:
            return False
        return True

    def spec_at(self, nominal: datetime) -> int | None:
        """The index of the spec whose fire ``nominal`` is (the first listed that produces
        it), or None if it is no fire of this schedule."""
        if not self.window.contains(nominal):
            return None
        before = nominal - _MICROSECOND
        for index, spec in enumerate(self.specs):
            if spec.next_fire(before) == nominal:
                return index
        return None

    def parameters_at(self, nominal: datetime) -> Mapping[str, Any]:
        """The parameters of the spec whose fire ``nominal`` is (empty if none is)."""
        if len(self.specs) == 1:
            return self.specs[0].parameters
        index = self.spec_at(nominal)
        return self.specs[index].parameters if index is not None else {}

    def next_fires(self, after: datetime, count: int) -> list[datetime]:
        """When the next ``count`` fires after ``after`` are due (nominal time plus the
        jitter offset), fewer if the schedule ends."""
        return [due for due, _ in self.next_fires_by_spec(after, count)]

    def next_fires_by_spec(self, after: datetime, count: int) -> list[tuple[datetime, int]]:
        """``next_fires`` with the index of the spec each fire is of."""
        fires: list[tuple[datetime, int]] = []
        found = self.next_fire_spec(after)
        while found is not None and len(fires) < count:
            fires.append((found[0] + self.offset, found[1]))
            found = self.next_fire_spec(found[0])
        return fires

    @property
    def written(self) -> str:
        """The specs as the config writes them, then its upstreams, joined by "; "."""
        parts = [spec.written for spec in self.specs]
        return "; ".join([*parts, after_words(self.after)] if self.after else parts)

    @property
    def timezone(self) -> str | None:
        """The zone of its cron and rrule specs (None for intervals alone, or several)."""
        zones = {spec.timezone for spec in self.specs if spec.kind is not ScheduleKind.INTERVAL}
        return zones.pop() if len(zones) == 1 else None

    def describe(self) -> str:
        """The schedule in words, its specs and upstreams joined by "; ", then its window
        and calendars."""
        parts = [spec.describe() for spec in self.specs]
        words = "; ".join([*parts, after_words(self.after)] if self.after else parts)
        bounds = [self.window.describe()]
        exclusions = self.exclusions
        if exclusions.exclude:
            bounds.append("except " + ", ".join(c.name for c in exclusions.exclude))
        if exclusions.only:
            bounds.append("only on " + ", ".join(c.name for c in exclusions.only))
        shown = "; ".join(bound for bound in bounds if bound)
        return f"{words} ({shown})" if shown else words


def _spec(table: Mapping[str, Any], timezone: str, anchor: datetime | None) -> ScheduleSpec:
    """A spec from its stored ``table`` (see ``Schedule.from_document``)."""
    kind = ScheduleKind(table["kind"])
    own = table.get("anchor")
    if own is not None:
        written = own if isinstance(own, datetime) else datetime.fromisoformat(own)
        anchor = _aware(written, load_zone(timezone))  # naive: in the deployment's zone
    return ScheduleSpec(
        kind,
        table["expression"],
        timezone,
        anchor if kind is not ScheduleKind.CRON else None,
        Dst.of(table.get("dst")),
        Window.of(table.get("active_from"), table.get("active_until"), timezone),
        table.get("parameters") or {},
    )


@functools.lru_cache(maxsize=4096)
def _cron_in_words(expression: str) -> str:
    """A cron expression in words (cron-descriptor), or as written if it has none.
    Remembered: cron-descriptor takes a third of a millisecond, and a page listing a
    thousand deployments describes each of them on every refresh."""
    from cron_descriptor import Options, get_description

    fields = ALIASES.get(expression.strip().lower(), expression).split()
    if len(fields) == 6:  # gnomon puts seconds last; cron-descriptor wants them first
        fields = [fields[5], *fields[:5]]
    options = Options()
    options.use_24hour_time_format = True
    options.verbose = False
    try:
        return str(get_description(" ".join(fields), options))
    except Exception:  # a description is a nicety; the expression itself was validated
        return expression
