"""What operators type into the CLI and the HTTP API, read by one rule each: a ``since`` time,
a log level, a time to wait, a manual run's parameters, a run's cause, a page's cursor.
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
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from gnomon._text import has_lone_surrogate
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
        raise InvalidInput(
            f"expires {text[:80]!r}: {str(error).removeprefix('interval ')}"
        ) from None
    if life > MAX_TOKEN_LIFE:
        raise InvalidInput(f"expires {text[:80]!r} is more than ten years (3660d)")
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

    shown = repr(text[:80])
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
            raise InvalidInput(f"{text[:40]!r} is not a trigger; use one of {choices}") from None
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

    problem = f"{text[:40]!r} is not a cursor of this listing (follow the link to the next page)"
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
        f"{text[:40]!r}: use one of {', '.join(LEVEL_NAMES)} or a number from 0 to {MAX_LEVEL}"
    )


def parse_seconds(text: str) -> float:
    """A time to wait, in seconds: above 0 and at most ``MAX_WAIT`` (so not NaN or inf)."""
    try:
        seconds = float(text)
    except ValueError:
        raise InvalidInput(f"{text[:40]!r} is not a number of seconds") from None
    if not 0 < seconds <= MAX_WAIT:
        raise InvalidInput(f"{text[:40]!r}: use a number of seconds above 0, at most a year")
    return seconds


def check_parameters(parameters: Mapping[str, Any]) -> Mapping[str, Any]:
    """``parameters`` if they can be a run's: names are identifiers, values are standard
    JSON (finite numbers, valid Unicode), at most ``MAX_PARAMETERS_DEPTH`` deep and
    ``MAX_PARAMETERS_BYTES`` as JSON. InvalidInput naming the first bad one otherwise."""
    for name in parameters:
        if not isinstance(name, str) or not name.isidentifier():
            raise InvalidInput(f"{str(name)[:100]!r} is not a parameter name")
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
