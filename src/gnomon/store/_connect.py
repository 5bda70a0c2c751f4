"""How every connection to the store is opened, whoever opens it: the waits SQLite's busy
timeout bounds, and the libpq settings of a PostgreSQL session. ``Store``'s engine (``_db``)
opens its connections so, and so must the command line's fast path: this module imports no
SQLAlchemy.
"""

from __future__ import annotations

from typing import Any

# How long a connection waits for another's lock before it fails: SQLite's busy timeout,
# PostgreSQL's lock_timeout. Writers queue instead of failing.
BUSY_TIMEOUT_MS = 30_000

# libpq settings for every connection to a server database: a connection attempt gives up
# after 10 s, and a server that stops answering is noticed in ~25 s, not never.
SERVER_CONNECTION = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}


def server_settings(application_name: str | None) -> dict[str, Any]:
    """The libpq settings of a store session besides where it connects: the timeouts
    above, its name in ``pg_stat_activity`` (``gnomon`` unless the URL names it) and a
    bounded lock wait."""
    return {
        **SERVER_CONNECTION,
        "application_name": application_name or "gnomon",
        "options": f"-c lock_timeout={BUSY_TIMEOUT_MS}",
    }
