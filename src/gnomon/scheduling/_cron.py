"""Cron triggers: crontab expressions read in an IANA time zone, correct across DST.

croniter finds the next matching *wall-clock* time (it is given naive local times, never
aware ones); ``_wallclock`` turns wall-clock matches into instants, following cronie's
rules for daylight-saving changes unless the spec's ``dst`` says otherwise:

* A fixed-time job (no ``*`` and no step in the minute and hour fields, like
  ``30 2 * * *`` or ``@daily``) follows the wall clock. When a spring-forward jump skips
  its time, it fires once, right after the jump (``30 2 * * *`` in New York on 2027-03-14
  fires at 03:00 EDT); when a fall-back repeats its time, it fires once, at the first
  occurrence (``30 1 * * *`` on 2027-11-07 fires at 01:30 EDT, not again at 01:30 EST).
  A daily job therefore runs exactly once every local day.
* Any other job (``0 * * * *``, ``*/15 * * * *``) fires at every real instant whose local
  time matches: twice for 01:00 on a fall-back night (EDT, then EST), and not at all for a
  skipped 02:00. An hourly job therefore runs once every real hour.

``dst = {repeated = "once" | "both", skipped = "shift" | "skip"}`` chooses either side for
any expression (``Dst``).

Why not croniter's own DST handling (pass it an aware datetime)? It fires a fixed-time
job twice on a fall-back night (01:30 EDT and again 01:30 EST), where cron runs it once.

Fire times are whole seconds, returned as aware datetimes in the trigger's zone.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, field
from datetime import MAXYEAR, UTC, datetime
from zoneinfo import ZoneInfo

from croniter import CroniterBadDateError, croniter

from gnomon.scheduling._base import utc_offset
from gnomon.scheduling._crontab import CronSpec, parse_crontab
from gnomon.scheduling._wallclock import Dst, WallClock, load_zone

# croniter gives up after this many years without a match. The rarest valid expression,
# February 29 that is also a given weekday ("0 0 29 2 */7"), can be 40 years apart.
MAX_YEARS = 50
_EPOCH = datetime(1970, 1, 1)


@functools.lru_cache(maxsize=4096)
def _next_fire_shared(trigger: CronTrigger, after: datetime) -> datetime | None:
    """``trigger``'s next fire after ``after`` (UTC), remembered for every trigger with the
    same expression and zone: a fleet's deployments share a few schedules (hourly, nightly
    at 02:00), and a daemon starting with thousands of them asks each for its first fire
    after the same moment. A croniter search costs 0.1-0.2 ms."""
    return trigger._search(after)


@dataclass(frozen=True)
class CronTrigger:
    """Fires when the local time in ``timezone`` matches the crontab ``expression``, with
    the ``dst`` choices for times a DST change repeats or skips (cronie's by default).

    Validated at construction: ScheduleError names the bad field ("minute 61 is outside
    0-59"), an unknown zone, or an expression that can never fire.
    """

    expression: str
    timezone: str = "UTC"
    dst: Dst = field(default_factory=Dst)
    _spec: CronSpec = field(init=False, repr=False, compare=False)
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)
    _clock: WallClock = field(init=False, repr=False, compare=False)
    _matcher: croniter = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        spec = parse_crontab(self.expression)
        object.__setattr__(self, "_spec", spec)
        object.__setattr__(self, "_zone", load_zone(self.timezone))
        periodic = not spec.fixed_time
        clock = WallClock(self._zone, self.dst.once(periodic), self.dst.shift(periodic))
        object.__setattr__(self, "_clock", clock)
        matcher = croniter(
            spec.croniter_expression,
            _EPOCH,
            day_or=spec.day_or,
            max_years_between_matches=MAX_YEARS,
        )
        object.__setattr__(self, "_matcher", matcher)

    def describe(self) -> str:
        return f"cron {self.expression.strip()!r} in {self.timezone}"

    def next_fire(self, after: datetime) -> datetime | None:
        """The first fire time strictly after ``after``; None past the search horizon."""
        utc_offset(after)
        return _next_fire_shared(self, after.astimezone(UTC))

    def _search(self, after: datetime) -> datetime | None:
        try:
            return self._next_fire(after)
        # No match within MAX_YEARS, or a search that ran past datetime's last year.
        except (CroniterBadDateError, OverflowError):
            return None
        except ValueError:
            # croniter reports running past year 9999 as ValueError("year 10000 is out of
            # range"); anywhere earlier a ValueError is a bug and must surface.
            if after.year + MAX_YEARS <= MAXYEAR:
                raise
            return None

    def _next_fire(self, after: datetime) -> datetime | None:
        return self._clock.next_fire(self._match_after, after, MAX_YEARS)

    def _match_after(self, wall: datetime) -> datetime:
        """The first wall-clock time strictly after ``wall`` that the expression matches."""
        # A croniter object keeps its position, so each search works on a shallow copy of
        # the parsed template: the trigger stays immutable and safe to share between
        # threads, without re-parsing the expression (which costs more than the search).
        matches = copy.copy(self._matcher)
        # Whole seconds only: croniter goes through float timestamps, and every match is a
        # whole second, so dropping the microseconds changes nothing.
        found: datetime = matches.get_next(datetime, start_time=wall.replace(microsecond=0))
        return found


@functools.cache
def cron_trigger(expression: str, timezone: str = "UTC", dst: Dst | None = None) -> CronTrigger:
    """A shared CronTrigger: they are immutable, and building one parses and validates the
    expression, which dominated the start-up of a daemon with 10,000 deployments."""
    return CronTrigger(expression, timezone, dst or Dst())
