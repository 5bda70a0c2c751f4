"""Plain values the control queries take: who acts, and what logs to find. A module of its
own, free of SQLAlchemy, for the command line's fast path."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Actor:
    """Who makes a change, and through what: an OS user on the CLI, a token over the API."""

    name: str
    origin: str  # "cli", "api" or "daemon"


@dataclass(frozen=True)
class LogQuery:
    """The filters of ``gnomon logs``: all optional, combined with AND."""

    deployment: str | None = None
    flow_run_id: str | None = None
    min_level: int | None = None
    since: datetime | None = None
    after_id: int = 0
