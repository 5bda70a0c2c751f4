"""What operators type into the CLI and the HTTP API, read by one rule each: a ``since`` time,
a log level, a time to wait, a pause's end, a manual run's parameters, a run's cause, a
page's cursor.
Each raises ``InvalidInput`` saying why; the CLI turns it into a usage error (exit 2) naming
the option, the API into a 422 naming the field.

Nothing here imports more than the standard library and gnomon's scheduling arithmetic, so
the CLI's fast commands stay fast.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import re
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from gnomon._text import has_lone_surrogate, quoted
from gnomon.exceptions import InvalidInput

if TYPE_CHECKING:
    from gnomon.store import RunCause, RunCursor, TokenAccess

MAX_COUNT = 1_000_000  # the most lines or rows one command prints
MAX_FIRES = 1000  # the most fire times one command or request computes
MAX_BREACHES = 1000  # the most deadline and freshness breaches one listing gives
MAX_LEVEL = 1000  # beyond any logging level in use; far inside SQLite's integers
LEVEL_NAMES = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
MAX_WAIT = 366 * 86400.0  # seconds: a wait longer than a year is a typo
MAX_PARAMETERS_BYTES = 256 * 1024  # a manual run's parameters, as JSON
MAX_PARAMETERS_DEPTH = 32  # nested lists and objects: deeper is a mistake, or an attack


MAX_TOKEN_LIFE = timedelta(days=3660)  # a token's expiry: ten years at most


def parse_expiry(text: str) -> timedelta:
    """How long a new token is valid: a duration (``30d``, ``12h``, ``P90D``), positive and
    at most ten years."""
    from gnomon.scheduling import ScheduleError, parse_interval

    try:
        life = parse_interval(text)
    except ScheduleError as error:
        # The error names the text: "expires '2x' has unknown unit 'x' ..."
        raise InvalidInput(f"expires {str(error).removeprefix('interval ')}") from None
    if life > MAX_TOKEN_LIFE:
        raise InvalidInput(f"expires {quoted(text)} is more than ten years (3660d)")
    return life


def token_access(scope: str | None, read_only: bool = False) -> TokenAccess:
    """What a new token may do: ``scope`` (read, operate, admin; admin if not given), or read
    for the older ``read_only`` flag, which must not contradict it."""
    from gnomon.store import TokenAccess

    if read_only:
        if scope not in (None, TokenAccess.READ):
            raise InvalidInput(f"read-only contradicts scope {scope!r}")
        return TokenAccess.READ
    try:
        return TokenAccess(scope or TokenAccess.ADMIN)
    except ValueError:
        raise InvalidInput(f"scope {scope!r} is not read, operate or admin") from None


def parse_since(text: str, now: datetime) -> datetime:
    """The moment a ``since`` filter names: a duration back from ``now`` (``2h``, ``P1D``)
    or an ISO 8601 time (UTC when it has no offset), as an aware UTC datetime."""
    from gnomon.scheduling import ScheduleError, parse_interval

    shown = quoted(text)
    try:
        back = parse_interval(text)
    except ScheduleError as error:
        problem = str(error)
    else:
        try:
            return now - back
        except OverflowError:
            raise InvalidInput(f"{shown} reaches back before the year 1") from None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        if " is not a" not in problem:  # a duration, but not one that fits: say why
            raise InvalidInput(problem.removeprefix("interval ")) from None
        raise InvalidInput(
            f"{shown} is neither a duration (2h, 30m, 1d) nor an ISO 8601 time"
        ) from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise InvalidInput(f"{shown} is outside the years 1 to 9999 in UTC") from None


def parse_pause_end(
    until: str | None,
    duration: str | None,
    now: datetime,
    names: tuple[str, str] = ("until", "for"),
) -> datetime | None:
    """When a pause ends by itself, as an aware UTC datetime: ``until`` an ISO 8601 time (one
    without an offset is in this machine's local zone), or ``duration`` from ``now`` ("2h",
    "PT30M", up to the whole second); None when neither is given (the pause lasts until
    resumed). ``names`` are the two inputs' names as the caller shows them (the CLI's
    ``--until`` and ``--for``)."""
    until_name, duration_name = names
    if until is not None and duration is not None:
        raise InvalidInput(f"give {until_name} or {duration_name}, not both")
    if duration is not None:
        end = (now + _pause_duration(duration, duration_name)).astimezone(UTC)
        # Up to the whole second, as operators see it and type it back: "--for 2h" pauses
        # at least two hours.
        return end.replace(microsecond=0) + timedelta(seconds=1) if end.microsecond else end
    if until is None:
        return None
    end = _local_time(until, until_name)
    if end <= now:
        raise InvalidInput(
            f"{until_name} {until[:80]!r} has passed (it is now {local_text(now)});"
            " a pause ends in the future"
        )
    try:
        end = end.astimezone(UTC)
    except OverflowError:
        raise InvalidInput(f"{until_name} {until[:80]!r} is after the year 9999 in UTC") from None
    if end - now > MAX_PAUSE:
        raise InvalidInput(f"{until_name} {until[:80]!r} is more than ten years (3660d) away")
    return end


def parse_window(
    start: str | None, end: str | None, duration: str | None, now: datetime
) -> tuple[datetime, datetime]:
    """A maintenance window's span as aware UTC datetimes: from ``start`` (an ISO 8601
    time, one without an offset in this machine's local zone; None: ``now``) until
    ``end`` (such a time) or for ``duration`` ("2h", "PT30M"). It must end in the future
    and after it starts."""
    if (end is None) == (duration is None):
        raise InvalidInput("give the window's end (--end) or its length (--for), one of them")
    first = now if start is None else _local_time(start, "start")
    if duration is not None:
        last = first + _pause_duration(duration, "for")
    else:
        assert end is not None
        last = _local_time(end, "end")
    try:
        first, last = first.astimezone(UTC), last.astimezone(UTC)
    except OverflowError:
        raise InvalidInput("the window reaches past the year 9999 in UTC") from None
    if last <= first:
        raise InvalidInput(f"end {local_text(last)} is not after start {local_text(first)}")
    if last <= now:
        raise InvalidInput(f"end {local_text(last)} has passed (it is now {local_text(now)})")
    return first, last


_YEAR_FIRST = re.compile(r"\s*[0-9]{4}-")


def parse_pause_text(text: str, now: datetime) -> datetime | None:
    """The dashboard's one field for a pause's end: empty (until resumed), a duration
    ("2h", "PT30M") or an ISO 8601 time, which starts with its year ("2026-12-08T09:00");
    read as ``parse_pause_end`` reads them."""
    if not text.strip():
        return None
    names = ("pause until", "pause for")
    if _YEAR_FIRST.match(text):
        return parse_pause_end(text, None, now, names)
    return parse_pause_end(None, text, now, names)


MAX_PAUSE = timedelta(days=3660)  # a pause's duration: ten years at most, as a token's


def _pause_duration(text: str, name: str) -> timedelta:
    from gnomon.scheduling import ScheduleError, parse_interval

    try:
        duration = parse_interval(text)
    except ScheduleError as error:
        problem = str(error).removeprefix(f"interval {text!r}").lstrip(": ")
        raise InvalidInput(f"{name} {text[:80]!r} {problem}") from None
    if duration > MAX_PAUSE:
        raise InvalidInput(f"{name} {text[:80]!r} is more than ten years (3660d)")
    return duration


def _local_time(text: str, name: str) -> datetime:
    """``text`` as an aware time; without an offset, a wall time in the local zone (the
    earlier of a wall time that comes twice), refusing one the clocks skip."""
    shown = f"{name} {text[:80]!r}"
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(
            f"{shown} is not an ISO 8601 time (2026-12-08T09:00, or with an offset:"
            " 2026-12-08T09:00+01:00)"
        ) from None
    if moment.tzinfo is not None:
        return moment
    try:
        local = moment.astimezone()  # a naive time is read as the machine's local time
    except (OverflowError, OSError, ValueError):
        raise InvalidInput(f"{shown} is outside the years this machine's clock reaches") from None
    if local.replace(tzinfo=None) != moment:
        zone = "/".join(dict.fromkeys(time.tzname))  # "CET/CEST"
        raise InvalidInput(
            f"{shown} does not exist in the local zone ({zone}: the clocks skip it); give an offset"
        )
    return local


def local_text(moment: datetime) -> str:
    """``moment`` in this machine's local zone, with the zone's name and offset, as
    operators read it back: "2026-12-08 09:00 CET (+01:00)" (seconds when it has any); in
    UTC when the local zone's clock cannot show it (the last hours of the year 9999)."""
    try:
        local = moment.astimezone()
    except (OverflowError, OSError, ValueError):  # past the year 9999 here: stored by others
        local = moment.astimezone(UTC)
    clock = "%Y-%m-%d %H:%M:%S" if local.second or local.microsecond else "%Y-%m-%d %H:%M"
    offset = local.strftime("%z")
    offset = f"{offset[:3]}:{offset[3:5]}"
    return f"{local.strftime(clock)} {local.tzname()} ({offset})"


def parse_triggers(texts: Iterable[str]) -> frozenset[RunCause]:
    """What caused the runs to list: each of ``texts`` a cause (schedule, catchup, manual,
    retry; any case)."""
    from gnomon.store import RunCause

    causes = set()
    for text in texts:
        try:
            causes.add(RunCause(text.strip().lower()))
        except ValueError:
            choices = ", ".join(RunCause)
            problem = f"{quoted(text, 40)} is not a trigger; use one of {choices}"
            raise InvalidInput(problem) from None
    return frozenset(causes)


# A cursor is the last row's creation time and id, "TIME|ID", in URL-safe base64: opaque to
# clients (who pass it back as it is), and free of characters a URL would need to escape.
_CURSOR_ID = re.compile(r"[0-9a-f]{1,32}")
MAX_CURSOR = 200


def run_cursor_text(cursor: RunCursor) -> str:
    """The text of a page's cursor, which ``parse_run_cursor`` reads back."""
    text = f"{cursor.created.astimezone(UTC).isoformat()}|{cursor.id}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def parse_run_cursor(text: str) -> RunCursor:
    """The cursor ``run_cursor_text`` wrote: where the next page of runs starts."""
    from gnomon.store import RunCursor

    problem = (
        f"{quoted(text, 40)} is not a cursor of this listing (follow the link to the next page)"
    )
    if len(text) > MAX_CURSOR:
        raise InvalidInput(problem)
    try:
        decoded = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        created_text, _, id = decoded.partition("|")
        created = datetime.fromisoformat(created_text)
        if created.tzinfo is None or not _CURSOR_ID.fullmatch(id):
            raise ValueError(decoded)
        return RunCursor(created.astimezone(UTC), id)
    except (binascii.Error, UnicodeDecodeError, ValueError, OverflowError):
        raise InvalidInput(problem) from None


def parse_level(text: str) -> int:
    """A log level: a name (any case) or a number from 0 to ``MAX_LEVEL``."""
    stripped = text.strip()
    if stripped.isdigit() and stripped.isascii():
        if len(stripped) <= len(str(MAX_LEVEL)) and int(stripped) <= MAX_LEVEL:
            return int(stripped)
    elif stripped.upper() in LEVEL_NAMES:
        return logging.getLevelNamesMapping()[stripped.upper()]
    raise InvalidInput(
        f"{quoted(text, 40)}: use one of {', '.join(LEVEL_NAMES)} or a number from 0 to {MAX_LEVEL}"
    )


def parse_seconds(text: str) -> float:
    """A time to wait, in seconds: above 0 and at most ``MAX_WAIT`` (so not NaN or inf)."""
    try:
        seconds = float(text)
    except ValueError:
        raise InvalidInput(f"{quoted(text, 40)} is not a number of seconds") from None
    if not 0 < seconds <= MAX_WAIT:
        raise InvalidInput(f"{quoted(text, 40)}: use a number of seconds above 0, at most a year")
    return seconds


def check_parameters(parameters: Mapping[str, Any]) -> Mapping[str, Any]:
    """``parameters`` if they can be a run's: names are identifiers, values are standard
    JSON (finite numbers, valid Unicode), at most ``MAX_PARAMETERS_DEPTH`` deep and
    ``MAX_PARAMETERS_BYTES`` as JSON. InvalidInput naming the first bad one otherwise."""
    for name in parameters:
        if not isinstance(name, str) or not name.isidentifier():
            raise InvalidInput(f"{quoted(str(name))} is not a parameter name")
    pending: list[tuple[str, Any, int]] = [(name, value, 1) for name, value in parameters.items()]
    while pending:
        path, value, depth = pending.pop()
        problem = _value_problem(value, depth)
        if problem is not None:
            raise InvalidInput(f"parameter {path}: {problem}")
        if isinstance(value, dict):
            pending.extend((f"{path}.{key}", item, depth + 1) for key, item in value.items())
        elif isinstance(value, list):
            pending.extend((f"{path}[{i}]", item, depth + 1) for i, item in enumerate(value))
    size = len(json.dumps(parameters, ensure_ascii=False).encode())
    if size > MAX_PARAMETERS_BYTES:
        raise InvalidInput(
            f"the parameters are {size:,} bytes as JSON; at most {MAX_PARAMETERS_BYTES:,}"
        )
    return parameters


def _value_problem(value: Any, depth: int) -> str | None:
    """Why ``value`` (at nesting ``depth``) cannot be in a run's parameters, or None."""
    if depth > MAX_PARAMETERS_DEPTH:
        return f"nested deeper than {MAX_PARAMETERS_DEPTH} levels"
    if isinstance(value, float) and not math.isfinite(value):
        return "numbers must be finite (no NaN or Infinity)"
    if isinstance(value, str) and has_lone_surrogate(value):
        return "text must be valid Unicode (it holds a lone surrogate such as \\ud800)"
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str) or has_lone_surrogate(key):
                return "keys must be valid Unicode text"
    elif not isinstance(value, list | str | int | float | bool | None):
        return f"{type(value).__name__} is not a JSON value"
    return None
