"""RFC 5545 recurrence rules (python-dateutil), read in a deployment's time zone.

"The 4th business day of the month" is ``FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=4``.
dateutil finds the matching *wall-clock* times (it is given naive local times) and
``_wallclock`` makes them instants across DST changes, as for cron: an rrule repeating daily
or less often is a fixed-time job (``once``, ``shift``), an hourly, minutely or secondly
one a periodic job (``both``, ``skip``), unless its ``dst`` says otherwise.

Where the rule starts:

* A ``DTSTART`` in the text is honoured: ``DTSTART:20260105T090000`` is a wall time in the
  deployment's zone, ``DTSTART;TZID=Europe/Paris:...`` or ``...Z`` an instant, read on
  the deployment's wall clock.
* Without one, the rule starts at midnight (in the deployment's zone) of the day of its
  ``anchor``: the time the deployment was first registered, as an interval's. Its
  ``INTERVAL`` and ``COUNT`` count from there, and its times of day default to 00:00.
  So that its days never depend on that day, a yearly, monthly or weekly rule without
  DTSTART must name its days (``BYDAY``, ``BYMONTHDAY``, ``BYYEARDAY`` or ``BYWEEKNO``).

Only ``DTSTART`` and one ``RRULE`` are read (``EXDATE``, ``RDATE``, ``EXRULE`` and
dateutil's ``BYEASTER`` are refused). A rule that never fires, or has ended before the
deployment is registered, is refused by the config's check (``deployments._specs``); one
that ends (``COUNT``, ``UNTIL``) ends its spec, and a stored one that has ended fires no more.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from datetime import MAXYEAR, UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from dateutil.relativedelta import relativedelta
from dateutil.rrule import rrulestr

from gnomon.scheduling._base import ScheduleError, utc_offset
from gnomon.scheduling._wallclock import Dst, WallClock, load_zone

FREQUENCIES = ("YEARLY", "MONTHLY", "WEEKLY", "DAILY", "HOURLY", "MINUTELY", "SECONDLY")
PERIODIC = frozenset({"HOURLY", "MINUTELY", "SECONDLY"})
# A COUNT is turned into the UNTIL of its last occurrence once, by listing them.
MAX_COUNT = 10_000
# Parts that pick days: a yearly, monthly or weekly rule without DTSTART needs one.
DAY_PARTS = ("BYDAY", "BYMONTHDAY", "BYYEARDAY", "BYWEEKNO")
_REFUSED = {
    "EXDATE": "EXDATE is not supported (one RRULE, optionally after a DTSTART)",
    "RDATE": "RDATE is not supported (one RRULE, optionally after a DTSTART)",
    "EXRULE": "EXRULE is not supported (one RRULE, optionally after a DTSTART)",
}
# The Gregorian calendar repeats every 400 years (146,097 days, exactly 20,871 weeks).
_CYCLE_DAYS = 146_097
_CYCLE_MONTHS = 4_800
# A rule is searched from a start moved on by whole periods, this many at a time, so a
# secondly rule registered a year ago is not iterated from its first second each fire.
_REBASE_STEP = 32
_UNITS: dict[str, timedelta | relativedelta] = {
    "YEARLY": relativedelta(years=1),
    "MONTHLY": relativedelta(months=1),
    "WEEKLY": timedelta(weeks=1),
    "DAILY": timedelta(days=1),
    "HOURLY": timedelta(hours=1),
    "MINUTELY": timedelta(minutes=1),
    "SECONDLY": timedelta(seconds=1),
}
_DTSTART = re.compile(r"DTSTART(?:;TZID=(?P<zone>[^:]+))?:(?P<value>\S+)", re.IGNORECASE)


@dataclass(frozen=True)
class RRuleTrigger:
    """Fires at the wall-clock times in ``timezone`` that the rrule ``text`` names.

    ``anchor`` (an instant) starts a rule without DTSTART (see the module). Validated at
    construction: ScheduleError says what is wrong with the text (``never_fires`` and
    ``until`` say whether and when it ends).
    """

    text: str
    timezone: str = "UTC"
    anchor: datetime | None = None
    dst: Dst = field(default_factory=Dst)
    parts: dict[str, str] = field(init=False, repr=False, compare=False)
    start: datetime = field(init=False, repr=False, compare=False)  # wall time in the zone
    _rule: Any = field(init=False, repr=False, compare=False)  # dateutil's rrule
    _clock: WallClock = field(init=False, repr=False, compare=False)
    _empty: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        zone = load_zone(self.timezone)
        parts, dtstart = _split(self.text)
        start = _start(dtstart, zone, self.anchor, parts)
        rule = _parse(self.text, start, zone)
        object.__setattr__(self, "parts", parts)
        object.__setattr__(self, "start", start)
        periodic = parts["FREQ"] in PERIODIC
        clock = WallClock(zone, self.dst.once(periodic), self.dst.shift(periodic))
        object.__setattr__(self, "_clock", clock)
        empty = _first(rule) is None
        if not empty and rule._count:
            # The last of COUNT occurrences as UNTIL: the search can then start anywhere.
            rule = rule.replace(count=None, until=list(rule)[-1])
        object.__setattr__(self, "_rule", rule)
        object.__setattr__(self, "_empty", empty)

    @property
    def never_fires(self) -> bool:
        """Whether the rule names no time at all (its days never exist, say)."""
        return self._empty

    @property
    def until(self) -> datetime | None:
        """The rule's last moment (its UNTIL, or its COUNT-th occurrence) as a wall time in
        its zone; None if it does not end."""
        until: datetime | None = self._rule._until
        return until

    def describe(self) -> str:
        return f"rrule {self.text.strip()!r} in {self.timezone}"

    def next_fire(self, after: datetime) -> datetime | None:
        """The first fire time strictly after ``after``; None once the rule has ended."""
        utc_offset(after)
        if self._empty:
            return None
        try:
            return self._clock.next_fire(self._match_after, after.astimezone(UTC), MAXYEAR)
        except OverflowError:  # a search that ran past datetime's last year
            return None

    def _match_after(self, wall: datetime) -> datetime | None:
        found: datetime | None = _rebased(self, _periods(self, wall)).after(wall)
        return found


def _split(text: str) -> tuple[dict[str, str], str | None]:
    """The RRULE's parts by name (upper case), and the DTSTART line if there is one."""
    dtstart: str | None = None
    rules: list[str] = []
    for line in text.split():
        name = re.split(r"[:;]", line, maxsplit=1)[0].upper()
        if name in _REFUSED:
            raise ScheduleError(_REFUSED[name])
        if name == "DTSTART":
            if dtstart is not None:
                raise ScheduleError("has two DTSTART lines")
            dtstart = line
        elif name == "RRULE" or "=" in name:
            rules.append(line.split(":", 1)[1] if name == "RRULE" else line)
        else:
            raise ScheduleError(f"{line!r} is not a DTSTART or an RRULE")
    if len(rules) != 1:
        raise ScheduleError("must have exactly one RRULE" if rules else "is empty")
    parts: dict[str, str] = {}
    for part in rules[0].split(";"):
        key, equals, value = part.partition("=")
        if not equals or not key or not value:
            raise ScheduleError(f"part {part!r} is not NAME=VALUE")
        parts[key.upper()] = value.upper()
    if parts.get("FREQ") not in FREQUENCIES:
        given = f"FREQ={parts['FREQ']!r}" if "FREQ" in parts else "no FREQ"
        raise ScheduleError(f"{given}: FREQ must be one of {', '.join(FREQUENCIES)}")
    if "BYEASTER" in parts:
        raise ScheduleError("BYEASTER is dateutil's, not RFC 5545's, and is not supported")
    if "COUNT" in parts and "UNTIL" in parts:
        raise ScheduleError("has both COUNT and UNTIL; RFC 5545 allows one of them")
    _check_numbers(parts)
    return parts, dtstart


def _check_numbers(parts: dict[str, str]) -> None:
    for key, low, high in (("INTERVAL", 1, None), ("COUNT", 1, MAX_COUNT)):
        if key not in parts:
            continue
        value = parts[key]
        if not value.isdigit() or int(value) < low or (high is not None and int(value) > high):
            bound = f"from {low} to {high:,}" if high is not None else f"at least {low}"
            hint = " (use UNTIL for a longer rule)" if key == "COUNT" else ""
            raise ScheduleError(f"{key}={value} must be a whole number {bound}{hint}")


def _start(
    dtstart: str | None, zone: ZoneInfo, anchor: datetime | None, parts: dict[str, str]
) -> datetime:
    """Where the rule starts, as a wall time in ``zone`` (see the module)."""
    if dtstart is not None:
        match = _DTSTART.fullmatch(dtstart)
        if match is None:
            raise ScheduleError(f"{dtstart!r} is not a DTSTART like DTSTART:20260105T090000")
        if match["zone"]:
            load_zone(match["zone"])  # dateutil reads an unknown TZID as no zone at all
        try:
            parsed: datetime = rrulestr(f"{dtstart}\nRRULE:FREQ=DAILY;COUNT=1")._dtstart
        except (ValueError, TypeError, OverflowError) as error:
            raise ScheduleError(f"{dtstart!r}: {error}") from None
        if parsed.tzinfo is not None:
            parsed = parsed.astimezone(zone).replace(tzinfo=None)
        return parsed.replace(microsecond=0)
    if parts["FREQ"] in ("YEARLY", "MONTHLY", "WEEKLY") and not any(p in parts for p in DAY_PARTS):
        raise ScheduleError(
            f"FREQ={parts['FREQ']} without DTSTART must name its days ({', '.join(DAY_PARTS)}):"
            " they would otherwise be taken from the day the deployment was registered"
        )
    if anchor is None:
        raise ScheduleError(
            "needs an anchor when it has no DTSTART (a registered deployment's is stored"
            " when it is first synced)"
        )
    utc_offset(anchor)
    return anchor.astimezone(zone).replace(tzinfo=None, hour=0, minute=0, second=0, microsecond=0)


def _parse(text: str, start: datetime, zone: ZoneInfo) -> Any:
    """The rule as dateutil reads it, in naive wall times of ``zone`` from ``start``."""
    try:
        rule = rrulestr(_without_dtstart(text), dtstart=start)
    except ValueError as error:
        if "UNTIL" not in str(error):
            raise ScheduleError(str(error)) from None
        # UNTIL in UTC (its Z), which dateutil takes only with an aware start.
        try:
            rule = rrulestr(_without_dtstart(text), dtstart=start.replace(tzinfo=zone))
        except (ValueError, TypeError) as again:
            raise ScheduleError(str(again)) from None
    except (TypeError, OverflowError) as error:
        raise ScheduleError(str(error)) from None
    until = rule._until
    if until is not None and until.tzinfo is not None:
        until = until.astimezone(zone).replace(tzinfo=None)
    return rule.replace(dtstart=start, until=until)


def _without_dtstart(text: str) -> str:
    return "\n".join(line for line in text.split() if not line.upper().startswith("DTSTART"))


def _first(rule: Any) -> datetime | None:
    """The rule's first occurrence (COUNT and UNTIL aside), or None if it has none.

    dateutil searches a rule whose days never come (February 30) up to year 9999, which
    takes seconds for a daily one. The calendar repeats every 400 years, and so does any
    rule's pattern of periods after a whole number of them: the search runs from the start
    moved on by such cycles to 400 years before the calendar ends, so it has one cycle to
    find an occurrence in.
    """
    unbounded = rule.replace(count=None, until=None)
    interval, unit = rule._interval, _UNITS[FREQUENCIES[rule._freq]]
    if isinstance(unit, relativedelta):
        cycle: timedelta | relativedelta = relativedelta(months=_CYCLE_MONTHS * interval)
        years = _CYCLE_MONTHS * interval // 12
    else:
        cycle = timedelta(days=_CYCLE_DAYS) * interval
        years = 400 * interval  # a cycle of days or finer: at most that many years
    cycles = (MAXYEAR - rule._dtstart.year - years) // years
    if cycles >= 1:
        moved = unbounded.replace(dtstart=rule._dtstart + cycle * cycles)
        if moved.after(moved._dtstart, inc=True) is None:
            return None
    first: datetime | None = rule.after(rule._dtstart, inc=True)
    return first


def _periods(trigger: RRuleTrigger, wall: datetime) -> int:
    """How many whole rule periods (INTERVAL units) lie between the rule's start and ``wall``,
    less one, rounded down to a multiple of _REBASE_STEP (0 if the rule cannot be moved)."""
    rule = trigger._rule
    start: datetime = rule._dtstart
    interval, unit = rule._interval, _UNITS[FREQUENCIES[rule._freq]]
    if wall <= start:
        return 0
    if isinstance(unit, relativedelta):
        if start.day > 28:  # moving it by months would change its day
            return 0
        months = (wall.year - start.year) * 12 + wall.month - start.month
        count = months // (interval * (12 if unit.years else 1)) - 1
    else:
        count = (wall - start) // (unit * interval) - 1
    return max(0, count - count % _REBASE_STEP)


@functools.lru_cache(maxsize=4096)
def _rebased(trigger: RRuleTrigger, periods: int) -> Any:
    """``trigger``'s rule starting ``periods`` periods later: the same occurrences from
    there on (each period's set, BYSETPOS included, depends only on the calendar), found
    without iterating the ones before."""
    rule = trigger._rule
    if periods == 0:
        return rule
    unit = _UNITS[FREQUENCIES[rule._freq]]
    return rule.replace(dtstart=rule._dtstart + unit * (periods * rule._interval))


@functools.cache
def rrule_trigger(
    text: str, timezone: str = "UTC", anchor: datetime | None = None, dst: Dst | None = None
) -> RRuleTrigger:
    """A shared RRuleTrigger: they are immutable, and building one parses the rule and
    checks that it fires."""
    return RRuleTrigger(text, timezone, anchor, dst or Dst())


_FREQUENCY_WORDS = {
    "YEARLY": ("year", "years"),
    "MONTHLY": ("month", "months"),
    "WEEKLY": ("week", "weeks"),
    "DAILY": ("day", "days"),
    "HOURLY": ("hour", "hours"),
    "MINUTELY": ("minute", "minutes"),
    "SECONDLY": ("second", "seconds"),
}
_DAY_NAMES = {
    "MO": "Mon",
    "TU": "Tue",
    "WE": "Wed",
    "TH": "Thu",
    "FR": "Fri",
    "SA": "Sat",
    "SU": "Sun",
}
_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_WEEKDAYS = ["MO", "TU", "WE", "TH", "FR"]
_ORDINAL_DAY = re.compile(r"([+-]?\d+)?(MO|TU|WE|TH|FR|SA|SU)")


def rrule_in_words(trigger: RRuleTrigger) -> str:
    """The rule in words: "Every month on the 4th of Mon-Fri at 00:00"."""
    parts, start = trigger.parts, trigger.start
    frequency = parts["FREQ"]
    one, many = _FREQUENCY_WORDS[frequency]
    interval = int(parts.get("INTERVAL", "1"))
    words = [f"Every {one}" if interval == 1 else f"Every {interval} {many}"]
    if "BYMONTH" in parts:
        months = [_MONTH_NAMES[int(month) - 1] for month in parts["BYMONTH"].split(",")]
        words.append("in " + ", ".join(months))
    if "BYWEEKNO" in parts:
        words.append(f"in ISO week {parts['BYWEEKNO'].replace(',', ', ')}")
    if "BYYEARDAY" in parts:
        words.append(f"on day {_numbers(parts['BYYEARDAY'])} of the year")
    days = _days(parts)
    if "BYSETPOS" in parts:
        days = f"the {_numbers(parts['BYSETPOS'])} of {days or 'those times'}"
    if days:
        words.append(f"on {days}")
    times = _times(parts, start)
    if times:
        words.append(f"at {times}")
    text = " ".join(words)
    if "COUNT" in parts:
        text += f", {parts['COUNT']} times"
    if "UNTIL" in parts and trigger._rule._until is not None:
        text += f", until {trigger._rule._until:%Y-%m-%d %H:%M}"
    return text


def _days(parts: dict[str, str]) -> str:
    """BYMONTHDAY and BYDAY in words ("day 1, 15", "Mon-Fri", "the last Fri")."""
    found = []
    if "BYMONTHDAY" in parts:
        found.append(f"day {_numbers(parts['BYMONTHDAY'])} of the month")
    if "BYDAY" in parts:
        plain, ordinal = [], []
        for item in parts["BYDAY"].split(","):
            match = _ORDINAL_DAY.fullmatch(item)
            if match is None:
                return parts["BYDAY"]
            if match[1]:
                ordinal.append(f"the {_numbers(match[1])} {_DAY_NAMES[match[2]]}")
            else:
                plain.append(match[2])
        if plain:
            found.append(
                "Mon-Fri" if plain == _WEEKDAYS else ", ".join(_DAY_NAMES[d] for d in plain)
            )
        found += ordinal
    return " and ".join(found)


def _numbers(text: str) -> str:
    """ "1,15,-1" as "1st, 15th, last"."""
    return ", ".join(_ordinal(int(item)) for item in text.split(","))


def _ordinal(number: int) -> str:
    if number == -1:
        return "last"
    if number < 0:
        return f"{_ordinal(-number)} from last"
    suffix = (
        "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    )
    return f"{number}{suffix}"


def _times(parts: dict[str, str], start: datetime) -> str:
    """The times of day the rule names, its start's where it names none (sub-daily rules:
    the minutes and seconds they fire at)."""
    frequency = FREQUENCIES.index(parts["FREQ"])
    hours = _field(parts, "BYHOUR", start.hour, frequency <= 3)
    minutes = _field(parts, "BYMINUTE", start.minute, frequency <= 4)
    seconds = _field(parts, "BYSECOND", start.second, frequency <= 5)
    if hours is None:
        if minutes is None:
            return f"second {', '.join(map(str, seconds))}" if seconds else ""
        return f"minute {', '.join(f'{m:02d}' for m in minutes)}" + (
            f" second {', '.join(map(str, seconds))}" if seconds and seconds != [0] else ""
        )
    times = [
        f"{h:02d}:{m:02d}" + (f":{s:02d}" if s else "")
        for h in hours
        for m in minutes or [0]
        for s in seconds or [0]
    ]
    return ", ".join(times[:8]) + (f" and {len(times) - 8} more times" if len(times) > 8 else "")


def _field(parts: dict[str, str], key: str, default: int, defaulted: bool) -> list[int] | None:
    """A time field's values: stated, else the start's for a rule that takes it from there."""
    if key in parts:
        return sorted(int(value) for value in parts[key].split(","))
    return [default] if defaulted else None
