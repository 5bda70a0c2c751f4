"""Reading a crontab expression, so that a mistake is reported by field and value.

croniter does the date arithmetic, but its errors do not say which field is wrong
("[61 * * * *] is not acceptable, out of range") and it quietly accepts things cron does
not (``5/15``, ``FRI-MON``, ``*/90`` that fires hourly). So each field is parsed here, with
crontab(5) syntax only: a comma list of ``*``, ``N``, ``N-M``, ``*/S`` and ``N-M/S``, where
month and day-of-week also take three-letter names (``JAN``, ``MON-FRI``) and day-of-week
``7`` is Sunday like ``0``. croniter then gets a normalised, all-numeric expression.

Six fields mean seconds LAST: ``minute hour day-of-month month day-of-week second``. That
is croniter's own convention (``second_at_beginning=False``), so a six-field expression
means here what it means to croniter. Quartz and systemd put seconds first; we do not.

Day-of-month and day-of-week follow cronie: when both are restricted the day matches if
EITHER does ("0 0 13 * FRI" fires every 13th and every Friday). A field that starts with
``*`` counts as unrestricted, so ``*/2`` in one of them makes the two an intersection, as
crontab(5) says ("restricted, i.e. do not contain the * character").
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from gnomon.scheduling._base import ScheduleError

_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
# The longest each month can be; February 29 exists in leap years.
_MONTH_LENGTHS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

ALIASES: Mapping[str, str] = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_NUMBER = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: Mapping[str, int] = field(default_factory=dict)
    name_hint: str = ""


_FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day-of-month", 1, 31),
    _Field("month", 1, 12, {n: i for i, n in enumerate(_MONTHS, 1)}, "a month name (JAN-DEC)"),
    _Field("day-of-week", 0, 7, {n: i for i, n in enumerate(_DAYS)}, "a day name (SUN-SAT)"),
    _Field("second", 0, 59),
)
_MINUTE, _HOUR, _DAY_OF_MONTH, _MONTH, _DAY_OF_WEEK = range(5)


@dataclass(frozen=True)
class CronSpec:
    """A validated expression, in the form croniter is given it."""

    croniter_expression: str
    # True when neither day field starts with *: a day matching either field counts.
    # False makes croniter intersect them (a lone * then simply drops out).
    day_or: bool
    # A "fixed-time" job in cronie's sense: no ``*`` and no step in the minute and hour
    # fields. Fixed-time jobs follow the wall clock across DST changes (a skipped time
    # runs once, right after the jump; a repeated time runs once); the others fire at
    # every real instant whose local time matches.
    fixed_time: bool


def parse_crontab(expression: str) -> CronSpec:
    """Validate ``expression`` and normalise it, or raise ScheduleError naming the field."""
    text = expression.strip()
    if text.startswith("@"):
        if text.lower() not in ALIASES:
            known = ", ".join(ALIASES)
            raise ScheduleError(f"unknown cron alias {text!r} (known: {known})")
        text = ALIASES[text.lower()]
    raw = text.split()
    if len(raw) not in (5, 6):
        raise ScheduleError(f"expected 5 fields (or 6 with seconds), got {len(raw)}")
    values = [_parse_field(spec, item) for spec, item in zip(_FIELDS, raw, strict=False)]
    values[_DAY_OF_WEEK] = {0 if day == 7 else day for day in values[_DAY_OF_WEEK]}
    day_or = not raw[_DAY_OF_MONTH].startswith("*") and not raw[_DAY_OF_WEEK].startswith("*")
    if not day_or:
        _check_some_day_exists(raw, values)
    normalised = [
        "*" if item == "*" else ",".join(map(str, sorted(found)))
        for item, found in zip(raw, values, strict=True)
    ]
    return CronSpec(
        croniter_expression=" ".join(normalised),
        day_or=day_or,
        fixed_time=not any(c in raw[i] for i in (_MINUTE, _HOUR) for c in "*/"),
    )


def _parse_field(spec: _Field, text: str) -> set[int]:
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise ScheduleError(f"{spec.name} {text!r} has an empty list item")
        span, slash, step_text = item.partition("/")
        if span == "*":
            start, end = spec.low, spec.high
        elif "-" in span:
            first, _, last = span.partition("-")
            start, end = _value(spec, first, item), _value(spec, last, item)
            if start > end:
                # FRI-SUN reads naturally but is 5-0; cron spells it 5-7.
                hint = " (Sunday is also 7: FRI-7)" if spec is _FIELDS[_DAY_OF_WEEK] else ""
                raise ScheduleError(f"{spec.name} range {span!r} is backwards{hint}")
        elif slash:
            raise ScheduleError(
                f"{spec.name} {item!r}: a step needs * or a range before it"
                f" (e.g. {span}-{spec.high}/{step_text})"
            )
        else:
            start = end = _value(spec, span, item)
        step = _step(spec, step_text, item) if slash else 1
        values.update(range(start, end + 1, step))
    return values


def _value(spec: _Field, token: str, item: str) -> int:
    if _NUMBER.fullmatch(token):
        number = int(token)
        if not spec.low <= number <= spec.high:
            raise ScheduleError(f"{spec.name} {number} is outside {spec.low}-{spec.high}")
        return number
    if token.upper() in spec.names:
        return spec.names[token.upper()]
    if not token:
        raise ScheduleError(f"{spec.name} {item!r} is not a number or a range")
    expected = f"a number or {spec.name_hint}" if spec.names else "a number"
    raise ScheduleError(f"{spec.name} {token!r} is not {expected}")


def _step(spec: _Field, text: str, item: str) -> int:
    if not _NUMBER.fullmatch(text):
        raise ScheduleError(f"{spec.name} {item!r} has a step that is not a number")
    step, widest = int(text), spec.high - spec.low
    # "*/90" in the minute field is a common way to ask for "every 90 minutes", which
    # cron cannot express: it would quietly fire once an hour.
    if not 1 <= step <= widest:
        raise ScheduleError(f"{spec.name} step {step} is outside 1-{widest}")
    return step


def _check_some_day_exists(raw: list[str], values: list[set[int]]) -> None:
    """Refuse "0 0 30 2 *": without a day-of-week to OR with, no such date ever comes."""
    months, days = values[_MONTH], values[_DAY_OF_MONTH]
    if not any(day <= _MONTH_LENGTHS[month - 1] for month in months for day in days):
        raise ScheduleError(
            f"never fires: day-of-month {raw[_DAY_OF_MONTH]} does not exist in month {raw[_MONTH]}"
        )
