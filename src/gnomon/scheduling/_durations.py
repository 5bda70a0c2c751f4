"""Reading and writing durations: "90s", "1h30m", "2d", "500ms" and ISO 8601 "PT15M"."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

from gnomon._text import quoted
from gnomon.scheduling._base import ScheduleError

_MICROSECONDS = {
    "us": 1,
    "ms": 1_000,
    "s": 1_000_000,
    "m": 60_000_000,
    "h": 3_600_000_000,
    "d": 86_400_000_000,
    "w": 604_800_000_000,
}
# systemd.time(7) spellings of the same units.
_SPELLINGS = {
    "us": ("us", "usec", "usecs"),
    "ms": ("ms", "msec", "msecs"),
    "s": ("s", "sec", "secs", "second", "seconds"),
    "m": ("m", "min", "mins", "minute", "minutes"),
    "h": ("h", "hr", "hrs", "hour", "hours"),
    "d": ("d", "day", "days"),
    "w": ("w", "week", "weeks"),
}
_UNIT_NAMES = {name: unit for unit, names in _SPELLINGS.items() for name in names}
_NUMBER = r"[0-9]+(?:[.,][0-9]+)?"
_HUMAN = re.compile(rf"(?:\s*{_NUMBER}\s*[a-z]+)+\s*", re.IGNORECASE)
_ZERO = re.compile(r"0+(?:[.,]0*)?")
_HUMAN_PART = re.compile(rf"({_NUMBER})\s*([a-z]+)", re.IGNORECASE)
_ISO = re.compile(
    rf"P(?:(?P<Y>{_NUMBER})Y)?(?:(?P<MO>{_NUMBER})M)?(?:(?P<w>{_NUMBER})W)?(?:(?P<d>{_NUMBER})D)?"
    rf"(?:T(?=[0-9])(?:(?P<h>{_NUMBER})H)?(?:(?P<m>{_NUMBER})M)?(?:(?P<s>{_NUMBER})S)?)?"
)
_EXAMPLES = "e.g. 90s, 15m, 1h30m, 2d, 500ms, PT15M"


def parse_interval(text: str) -> timedelta:
    """The positive duration ``text`` spells, or ScheduleError naming it.

    Accepts unit sums ("90s", "1h30m", "1h 30m", "2d", "500ms", "1.5h"; systemd's unit
    names such as "min" and "hours" too) and ISO 8601 durations ("PT15M", "P1DT2H",
    "PT0.5S"). ISO years and months are refused: they have no fixed length.
    """
    stripped = text.strip()
    if stripped.upper().startswith("P"):
        microseconds = _iso_microseconds(text, stripped.upper())
    elif _HUMAN.fullmatch(stripped):
        microseconds = _human_microseconds(text, stripped)
    elif stripped.startswith("-") or _ZERO.fullmatch(stripped):  # "0" needs no unit to be 0
        raise ScheduleError(f"interval {quoted(text)} must be positive")
    else:
        raise ScheduleError(f"interval {quoted(text)} is not a duration ({_EXAMPLES})")
    if microseconds <= 0:
        raise ScheduleError(f"interval {quoted(text)} must be positive")
    try:
        return timedelta(microseconds=microseconds)
    except OverflowError:
        raise ScheduleError(f"interval {quoted(text)} is too long") from None


def _human_microseconds(text: str, stripped: str) -> int:
    total = Decimal(0)
    for number, unit in _HUMAN_PART.findall(stripped):
        if unit.lower() not in _UNIT_NAMES:
            units = "us, ms, s, m, h, d, w"
            named = f"{quoted(text)} has unknown unit {quoted(unit)}"
            raise ScheduleError(f"interval {named} (use {units})")
        total += _decimal(number) * _MICROSECONDS[_UNIT_NAMES[unit.lower()]]
    return round(total)


def _iso_microseconds(text: str, upper: str) -> int:
    match = _ISO.fullmatch(upper)
    if match is None or not any(match.groupdict().values()):
        raise ScheduleError(f"interval {quoted(text)} is not an ISO 8601 duration ({_EXAMPLES})")
    if match["Y"] or match["MO"]:
        raise ScheduleError(
            f"interval {quoted(text)}: years and months have no fixed length; use a cron schedule"
        )
    parts = {unit: match[unit] for unit in ("w", "d", "h", "m", "s") if match[unit]}
    return round(sum(_decimal(value) * _MICROSECONDS[unit] for unit, value in parts.items()))


def _decimal(number: str) -> Decimal:
    # ISO 8601 allows a decimal comma as well as a point.
    return Decimal(number.replace(",", "."))


def format_duration(delta: timedelta, units: int | None = None) -> str:
    """``delta`` written as parse_interval reads it back: "1h 30m", "2d", "1m 500ms".

    With ``units``, only that many units are kept, counting from the largest non-zero one
    and rounding down: format_duration(2h 13m 40s, units=2) is "2h 13m".
    """
    remainder = delta // timedelta(microseconds=1)
    if remainder < 0:
        return "-" + format_duration(-delta, units)
    parts: list[str] = []
    for unit in ("d", "h", "m", "s", "ms", "us"):
        count, remainder = divmod(remainder, _MICROSECONDS[unit])
        if count or parts:
            parts.append(f"{count}{unit}" if count else "")
    kept = parts[:units] if units is not None else parts
    return " ".join(part for part in kept if part) or "0s"
