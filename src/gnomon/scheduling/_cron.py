"""Cron triggers: crontab expressions read in an IANA time zone, correct across DST.

croniter finds the next matching *wall-clock* time (it is given naive local times, never
aware ones); this module turns wall-clock matches into instants, following cronie's rules
for daylight-saving changes:

* A fixed-time job (no ``*`` and no step in the minute and hour fields, like
  ``30 2 * * *`` or ``@daily``) follows the wall clock. When a spring-forward jump skips
  its time, it fires once, right after the jump (``30 2 * * *`` in New York on 2027-03-14
  fires at 03:00 EDT); when a fall-back repeats its time, it fires once, at the first
  occurrence (``30 1 * * *`` on 2027-11-07 fires at 01:30 EDT, not again at 01:30 EST).
  A daily job therefore runs exactly once every local day.
* Any other job (``0 * * * *``, ``*/15 * * * *``) fires at every real instant whose local
  time matches: twice for 01:00 on a fall-back night (EDT, then EST), and not at all for a
  skipped 02:00. An hourly job therefore runs once every real hour.

Why not croniter's own DST handling (pass it an aware datetime)? It fires a fixed-time
job twice on a fall-back night (01:30 EDT and again 01:30 EST), where cron runs it once.

Fire times are whole seconds, returned as aware datetimes in the trigger's zone.
Comparisons are always made in UTC: two aware datetimes sharing a tzinfo compare by wall
time and ignore ``fold``, so 01:30 EST would not count as later than 01:45 EDT.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, field
from datetime import MAXYEAR, UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter

from gnomon.scheduling._base import ScheduleError, utc_offset
from gnomon.scheduling._crontab import CronSpec, parse_crontab

# croniter gives up after this many years without a match. The rarest valid expression,
# February 29 that is also a given weekday ("0 0 29 2 */7"), can be 40 years apart.
MAX_YEARS = 50
_SECOND = timedelta(seconds=1)
_EPOCH = datetime(1970, 1, 1)


def load_zone(name: str) -> ZoneInfo:
    """The IANA zone called ``name``, or ScheduleError."""
    try:
        return ZoneInfo(name)
    # ZoneInfo raises ZoneInfoNotFoundError (a KeyError) for an unknown key, ValueError
    # for a malformed one ("", "../x") and OSError when the key names a directory.
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ScheduleError(f"unknown timezone {name!r}") from None


@functools.lru_cache(maxsize=4096)
def _next_fire_shared(trigger: CronTrigger, after: datetime) -> datetime | None:
    """``trigger``'s next fire after ``after`` (UTC), remembered for every trigger with the
    same expression and zone: a fleet's deployments share a few schedules (hourly, nightly
    at 02:00), and a daemon starting with thousands of them asks each for its first fire
    after the same moment. A croniter search costs 0.1-0.2 ms."""
    return trigger._search(after)


@dataclass(frozen=True)
class CronTrigger:
    """Fires when the local time in ``timezone`` matches the crontab ``expression``.

    Validated at construction: ScheduleError names the bad field ("minute 61 is outside
    0-59"), an unknown zone, or an expression that can never fire.
    """

    expression: str
    timezone: str = "UTC"
    _spec: CronSpec = field(init=False, repr=False, compare=False)
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)
    _matcher: croniter = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        spec = parse_crontab(self.expression)
        object.__setattr__(self, "_spec", spec)
        object.__setattr__(self, "_zone", load_zone(self.timezone))
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
        local = after.astimezone(self._zone)
        wall = local.replace(tzinfo=None, fold=0)
        found = self._first_fire_from(wall, after)
        first_offset, second_offset = _offsets(wall, self._zone)
        shift = first_offset - second_offset
        if self._spec.fixed_time or shift <= timedelta(0) or local.fold == 1:
            return found
        # ``after`` is in the first pass of a repeated hour: wall times before it come
        # round again after the fall-back, and a periodic job fires at them once more.
        change = _offset_change(self._zone, after, after + shift)
        repeat = self._match_after((change + second_offset).replace(tzinfo=None) - _SECOND)
        if repeat > wall:
            return found  # that wall time's first pass is still ahead: ``found`` is it
        repeated = repeat.replace(tzinfo=self._zone, fold=1)
        if found is None:
            return repeated
        return min(found, repeated, key=lambda moment: moment.astimezone(UTC))

    def _first_fire_from(self, wall: datetime, after: datetime) -> datetime | None:
        """The first fire after ``after`` among matches whose wall time is after ``wall``."""
        folds = (0,) if self._spec.fixed_time else (0, 1)
        last_year = wall.year + MAX_YEARS
        horizon = datetime(last_year, 1, 1) if last_year <= MAXYEAR else datetime.max
        while wall < horizon:
            match = self._match_after(wall)
            first_offset, second_offset = _offsets(match, self._zone)
            if first_offset < second_offset:
                # A spring-forward skipped ``match``. A fixed-time job fires right after the
                # jump, as cronie runs it; a periodic one waits for its next real time.
                jump = _offset_change(
                    self._zone, _instant(match, second_offset), _instant(match, first_offset)
                )
                if self._spec.fixed_time:
                    return jump.astimezone(self._zone)
                wall = (jump + second_offset).replace(tzinfo=None) - _SECOND
                continue
            # A fixed-time job fires only at the first occurrence of a repeated time, so
            # from the second pass of a fall-back it moves on to later wall times.
            for fold in folds:
                candidate = match.replace(tzinfo=self._zone, fold=fold)
                if candidate.astimezone(UTC) > after:
                    return candidate
            wall = match
        return None

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


def _instant(wall: datetime, offset: timedelta) -> datetime:
    """The UTC instant at which local time ``wall`` is read under UTC ``offset``."""
    return (wall - offset).replace(tzinfo=UTC)


def _offsets(wall: datetime, zone: ZoneInfo) -> tuple[timedelta, timedelta]:
    """The UTC offsets of ``wall``'s first and second occurrence (PEP 495 fold 0 and 1).

    Equal for an ordinary time; first > second for a time a fall-back repeats; first <
    second for a time a spring-forward skips.
    """
    return (
        utc_offset(wall.replace(tzinfo=zone, fold=0)),
        utc_offset(wall.replace(tzinfo=zone, fold=1)),
    )


def _offset_change(zone: ZoneInfo, low: datetime, high: datetime) -> datetime:
    """The instant in (low, high] at which ``zone``'s UTC offset changes, in UTC.

    The caller knows exactly one change lies there. Offsets change on whole seconds
    (tzdata stores transitions as integer seconds), so a bisection over seconds is exact.
    """
    before = utc_offset(low.astimezone(zone))
    low = low.astimezone(UTC).replace(microsecond=0)
    high = high.astimezone(UTC)
    if high.microsecond:
        high = high.replace(microsecond=0) + _SECOND
    while high - low > _SECOND:
        middle = low + (high - low) // _SECOND // 2 * _SECOND
        if utc_offset(middle.astimezone(zone)) == before:
            low = middle
        else:
            high = middle
    return high


@functools.cache
def cron_trigger(expression: str, timezone: str = "UTC") -> CronTrigger:
    """A shared CronTrigger: they are immutable, and building one parses and validates the
    expression, which dominated the start-up of a daemon with 10,000 deployments."""
    return CronTrigger(expression, timezone)
