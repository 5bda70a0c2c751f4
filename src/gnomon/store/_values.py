"""Plain values the control queries take: who acts, what logs to find, where a page of runs
starts. A module of its own, free of SQLAlchemy, for the command line's fast path."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from gnomon.store._kinds import Origin

if TYPE_CHECKING:
    from gnomon.store.rows import LogRow


@dataclass(frozen=True)
class Actor:
    """Who makes a change, and through what: an OS user on the CLI, a token over the API or
    the dashboard, with the client's address for those (the audit entry's ``client``)."""

    name: str
    origin: Origin
    address: str | None = None


def pause_values(
    paused: bool, by: str, reason: str | None, now: datetime, until: datetime | None = None
) -> dict[str, Any]:
    """The deployment columns a pause sets (who, when, why, and ``until`` when it ends by
    itself) or a resume clears. A resume also moves ``fires_from``: the paused period is
    not caught up, even by a daemon that starts after it."""
    if paused:
        return {
            "paused": True,
            "paused_by": by,
            "paused_at": now,
            "paused_reason": reason,
            "paused_until": until,
        }
    return {
        "paused": False,
        "paused_by": None,
        "paused_at": None,
        "paused_reason": None,
        "paused_until": None,
        "fires_from": now,
    }


def resumes_from(until: datetime) -> datetime:
    """The ``fires_from`` of a pause that ended at ``until``: the schedule decides the fires
    after ``fires_from``, and a fire at the until time itself is the pause's first one not
    paused ("paused until 09:00" runs the 09:00 fire)."""
    return until - timedelta(microseconds=1)


@dataclass(frozen=True, order=True)
class RunCursor:
    """A place in the listing of runs, which is ordered by (created, id) newest first: the
    last row of a page, and the next page starts below it. The id breaks ties between runs
    created in the same instant, so no row is skipped or shown twice."""

    created: datetime
    id: str


@dataclass(frozen=True)
class LogQuery:
    """The filters of ``gnomon logs``: all optional, combined with AND."""

    deployment: str | None = None
    flow_run_id: str | None = None
    min_level: int | None = None
    since: datetime | None = None
    after_id: int = 0


def in_time_order(rows: Iterable[LogRow]) -> list[LogRow]:
    """Log rows by when they were logged, lines of the same instant in the order they were
    stored (by id). Ids alone are not time order: each process stores its lines in batches,
    and the daemon holds its own back while runs wait for a worker, so a line can be
    stored after a later one from another process."""
    return sorted(rows, key=lambda row: (row.timestamp, row.id))


# The newest lines by time are chosen among this many more of the newest stored.
LATE_LINES = 100


def newest_window(limit: int) -> int:
    """How many of the newest stored lines to read for the newest ``limit`` by time: twice
    as many, and at least ``LATE_LINES`` more, so a line stored that many lines out of turn
    still takes its place. Reading by id uses the indexes as they are; ordering a busy
    deployment's million lines by time took 1.6 s."""
    return limit + max(limit, LATE_LINES)


def newest_in_time_order(rows: Iterable[LogRow], limit: int | None) -> list[LogRow]:
    """The newest ``limit`` of ``rows`` (the newest ``newest_window(limit)`` stored, or all)
    by time, oldest first."""
    ordered = in_time_order(rows)
    return ordered if limit is None else ordered[max(0, len(ordered) - limit) :]
