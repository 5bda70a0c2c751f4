"""A deployment's schedule as one value: what the daemon fires by, what the CLI, the API and
the dashboard show, built the same way from a deployment in the config or its store row.

A ``Schedule`` is one or more ``ScheduleSpec`` (each a kind, an expression, a zone and, for
an interval, an anchor) whose fire times are their union, plus the deployment's jitter: a
fixed offset per deployment (``jitter_offset``) between a fire's nominal time and when it
is due. It is a ``Trigger`` itself (``next_fire`` gives nominal times), so the daemon's
timer and catch-up take it as they took a single trigger.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from gnomon.scheduling._base import ScheduleError, Trigger
from gnomon.scheduling._cron import cron_trigger
from gnomon.scheduling._crontab import ALIASES
from gnomon.scheduling._durations import format_duration
from gnomon.scheduling._interval import IntervalTrigger, parse_every
from gnomon.scheduling._jitter import jitter_offset


class ScheduleKind(enum.StrEnum):
    """What a spec's expression is."""

    CRON = "cron"
    INTERVAL = "interval"


@dataclass(frozen=True)
class ScheduleSpec:
    """One way a deployment fires: a cron expression in a zone, or an interval from an
    anchor. Built only if valid (``ScheduleError`` names the value otherwise)."""

    kind: ScheduleKind
    expression: str  # as written: "30 2 * * *", "15m"
    timezone: str = "UTC"  # a cron's zone; an interval's fires do not depend on it
    anchor: datetime | None = None  # an interval's first fire (and phase)
    trigger: Trigger = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "trigger", self._build())

    def _build(self) -> Trigger:
        if self.kind is ScheduleKind.CRON:
            return cron_trigger(self.expression, self.timezone)
        if self.anchor is None:
            raise ScheduleError(
                f"interval {self.expression!r} needs an anchor (a registered deployment's is"
                " stored when it is first synced)"
            )
        return IntervalTrigger(parse_every(self.expression), self.anchor)

    @property
    def written(self) -> str:
        """The spec as the config writes it: ``cron 30 2 * * *``, ``interval 15m``."""
        return f"{self.kind} {self.expression}"

    def describe(self) -> str:
        """The spec in words: "At 09:00, Monday through Friday", "every 15m"."""
        if isinstance(self.trigger, IntervalTrigger):
            return f"every {format_duration(self.trigger.every)}"
        return _cron_in_words(self.expression)


@dataclass(frozen=True)
class Schedule:
    """When a deployment fires: the union of its specs' fire times, each due its jitter
    offset after its nominal time. Pure arithmetic; it never reads the clock."""

    owner: str  # the deployment's name, which fixes its jitter offset
    specs: tuple[ScheduleSpec, ...]
    jitter: timedelta = timedelta(0)
    offset: timedelta = field(init=False, compare=False)  # a fire is due this long after

    def __post_init__(self) -> None:
        if not self.specs:
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
        """A schedule of one spec (every deployment's today)."""
        spec = ScheduleSpec(ScheduleKind(kind), expression, timezone or "UTC", anchor)
        return cls(owner, (spec,), jitter)

    def next_fire(self, after: datetime) -> datetime | None:
        """The first nominal fire time strictly after ``after``, of any spec, in UTC; None if
        none fires again.

        In UTC because arithmetic and comparisons on a zone's wall time ignore ``fold``: a
        cron fire in the hour a fall-back repeats (01:20 the second time, fold=1) plus a
        jitter offset, even of zero, would be the first 01:20, an hour early."""
        if len(self.specs) == 1:  # every deployment's today; the daemon asks per fire
            fire = self.specs[0].trigger.next_fire(after)
            return None if fire is None else fire.astimezone(UTC)
        fires = [fire for spec in self.specs if (fire := spec.trigger.next_fire(after))]
        return min(fires).astimezone(UTC) if fires else None

    def next_fires(self, after: datetime, count: int) -> list[datetime]:
        """When the next ``count`` fires after ``after`` are due (nominal time plus the
        jitter offset), fewer if the schedule ends."""
        fires: list[datetime] = []
        moment = self.next_fire(after)
        while moment is not None and len(fires) < count:
            fires.append(moment + self.offset)
            moment = self.next_fire(moment)
        return fires

    @property
    def written(self) -> str:
        """The specs as the config writes them, joined by "; "."""
        return "; ".join(spec.written for spec in self.specs)

    @property
    def timezone(self) -> str | None:
        """The zone of its cron specs (None for intervals alone, or several zones)."""
        zones = {spec.timezone for spec in self.specs if spec.kind is ScheduleKind.CRON}
        return zones.pop() if len(zones) == 1 else None

    def describe(self) -> str:
        """The schedule in words, its specs joined by "; "."""
        return "; ".join(spec.describe() for spec in self.specs)


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
