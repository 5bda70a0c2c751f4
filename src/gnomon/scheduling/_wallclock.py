"""Wall-clock matches made instants, across daylight-saving changes: what cron and rrule
schedules share.

A cron expression or an rrule names *wall-clock* times in a zone (croniter and dateutil are
given naive local times, never aware ones). Twice a year a zone's clock skips an hour
(spring forward) or goes over one again (fall back), and a wall time then names no instant
or two. ``WallClock`` turns the matches into instants by a ``Dst`` choice:

* ``repeated``: a wall time a fall-back repeats fires ``once`` (at its first occurrence)
  or ``both`` times.
* ``skipped``: a wall time a spring-forward skips fires right after the jump (``shift``;
  several skipped times fire once there) or not at all (``skip``).

Unstated, a choice follows cronie: a fixed-time job (cron without ``*`` or a step in its
minute and hour fields; an rrule repeating daily or less often) is ``once`` and ``shift``,
so a daily job runs exactly once every local day; a periodic one (``0 * * * *``,
``*/15 * * * *``, an hourly rrule) is ``both`` and ``skip``, so an hourly job runs once
every real hour.

Comparisons are always made in UTC: two aware datetimes sharing a tzinfo compare by wall
time and ignore ``fold``, so 01:30 EST would not count as later than 01:45 EDT.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import MAXYEAR, UTC, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gnomon.scheduling._base import ScheduleError, utc_offset

_SECOND = timedelta(seconds=1)
_E = TypeVar("_E", bound=enum.StrEnum)


class RepeatedTimes(enum.StrEnum):
    """What fires at a wall time a fall-back repeats."""

    ONCE = "once"  # its first occurrence only
    BOTH = "both"  # both occurrences


class SkippedTimes(enum.StrEnum):
    """What fires at a wall time a spring-forward skips."""

    SHIFT = "shift"  # right after the jump (several skipped times: one fire)
    SKIP = "skip"  # nothing


@dataclass(frozen=True)
class Dst:
    """A spec's DST choices; None keeps cronie's rule for its kind (see the module)."""

    repeated: RepeatedTimes | None = None
    skipped: SkippedTimes | None = None

    @classmethod
    def of(cls, table: Mapping[str, Any] | None) -> Dst:
        """The choices a config's ``dst = {repeated = ..., skipped = ...}`` table states;
        ScheduleError naming a key or value it does not know."""
        if not table:
            return cls()
        unknown = sorted(set(table) - {"repeated", "skipped"})
        if unknown:
            raise ScheduleError(f"dst has unknown key {unknown[0]!r} (it takes repeated, skipped)")
        return cls(
            _choice(RepeatedTimes, "repeated", table.get("repeated")),
            _choice(SkippedTimes, "skipped", table.get("skipped")),
        )

    def table(self) -> dict[str, str]:
        """The choices stated, as the config and the store write them."""
        stated = {"repeated": self.repeated, "skipped": self.skipped}
        return {key: str(value) for key, value in stated.items() if value is not None}

    def once(self, periodic: bool) -> bool:
        """Whether a repeated wall time fires once (cronie: unless the job is periodic)."""
        return self.repeated is RepeatedTimes.ONCE if self.repeated else not periodic

    def shift(self, periodic: bool) -> bool:
        """Whether a skipped wall time fires after the jump (cronie: unless periodic)."""
        return self.skipped is SkippedTimes.SHIFT if self.skipped else not periodic

    def describe(self) -> str:
        """The choices stated in words ("" for none)."""
        words = []
        if self.repeated is not None:
            words.append(
                f"repeated times {'once' if self.repeated is RepeatedTimes.ONCE else 'twice'}"
            )
        if self.skipped is not None:
            shifted = "after the jump" if self.skipped is SkippedTimes.SHIFT else "not at all"
            words.append(f"skipped times {shifted}")
        return ", ".join(words)


def _choice(kind: type[_E], key: str, value: Any) -> _E | None:
    if value is None:
        return None
    try:
        return kind(value)
    except ValueError:
        known = " or ".join(repr(str(member)) for member in kind)
        raise ScheduleError(f"dst {key} {value!r} must be {known}") from None


def load_zone(name: str) -> ZoneInfo:
    """The IANA zone called ``name``, or ScheduleError."""
    try:
        return ZoneInfo(name)
    # ZoneInfo raises ZoneInfoNotFoundError (a KeyError) for an unknown key, ValueError
    # for a malformed one ("", "../x") and OSError when the key names a directory.
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ScheduleError(f"unknown timezone {name!r}") from None


# The first wall-clock time strictly after a (naive) wall time that a schedule matches;
# None when it matches none (an rrule that ended).
MatchAfter = Callable[[datetime], datetime | None]


@dataclass(frozen=True)
class WallClock:
    """Instants from wall-clock matches in ``zone``: ``once`` and ``shift`` are the
    resolved ``Dst`` choices (see the module)."""

    zone: ZoneInfo
    once: bool
    shift: bool

    def next_fire(self, match_after: MatchAfter, after: datetime, years: int) -> datetime | None:
        """The first fire strictly after ``after`` (UTC) among ``match_after``'s matches,
        in the zone; None if there is none within ``years`` years of it."""
        local = after.astimezone(self.zone)
        wall = local.replace(tzinfo=None, fold=0)
        last_year = wall.year + years
        horizon = datetime(last_year, 1, 1) if last_year <= MAXYEAR else datetime.max
        found = self._first_fire_from(match_after, wall, after, horizon)
        first_offset, second_offset = _offsets(wall, self.zone)
        shift = first_offset - second_offset
        if self.once or shift <= timedelta(0) or local.fold == 1:
            return found
        # ``after`` is in the first pass of a repeated hour: wall times before it come
        # round again after the fall-back, and a ``both`` schedule fires at them once more.
        change = offset_change(self.zone, after, after + shift)
        repeat = match_after((change + second_offset).replace(tzinfo=None) - _SECOND)
        if repeat is None or repeat > wall:
            return found  # that wall time's first pass is still ahead: ``found`` is it
        repeated = repeat.replace(tzinfo=self.zone, fold=1)
        if found is None:
            return repeated
        return min(found, repeated, key=lambda moment: moment.astimezone(UTC))

    def _first_fire_from(
        self, match_after: MatchAfter, wall: datetime, after: datetime, horizon: datetime
    ) -> datetime | None:
        """The first fire after ``after`` among matches whose wall time is after ``wall``."""
        folds = (0,) if self.once else (0, 1)
        while wall < horizon:
            match = match_after(wall)
            if match is None:
                return None
            first_offset, second_offset = _offsets(match, self.zone)
            if first_offset < second_offset:
                # A spring-forward skipped ``match``: ``shift`` fires right after the jump,
                # as cronie runs a fixed-time job; ``skip`` waits for the next real time.
                jump = offset_change(
                    self.zone, _instant(match, second_offset), _instant(match, first_offset)
                )
                if self.shift:
                    return jump.astimezone(self.zone)
                wall = (jump + second_offset).replace(tzinfo=None) - _SECOND
                continue
            # ``once`` fires only at the first occurrence of a repeated time, so from the
            # second pass of a fall-back it moves on to later wall times.
            for fold in folds:
                candidate = match.replace(tzinfo=self.zone, fold=fold)
                if candidate.astimezone(UTC) > after:
                    return candidate
            wall = match
        return None


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


def offset_change(zone: ZoneInfo, low: datetime, high: datetime) -> datetime:
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
