"""How every connection to the store is opened, whoever opens it: the waits SQLite's busy
timeout bounds, and the libpq settings of a PostgreSQL session. ``Store``'s engine
(``_db``) and the command line's ``FastStore`` (``_fast``) both open theirs so; this module
imports no SQLAlchemy, for the second.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, unquote

# How long a connection waits for another's lock before it fails: SQLite's busy timeout,
# PostgreSQL's lock_timeout. Writers queue instead of failing.
BUSY_TIMEOUT_MS = 30_000

# libpq settings for every connection to a server database: a connection attempt gives up
# after 10 s, and a server that stops answering is noticed in ~25 s, not never. Keepalives
# only probe an idle connection: one with a statement in flight when the network goes
# would have the kernel retransmit it for ~15 minutes (tcp_retries2), so data left
# unacknowledged for 25 s fails it too (tcp_user_timeout, libpq 12 or newer).
SERVER_CONNECTION = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 25_000,
}

# The URL scheme of a PostgreSQL store (psycopg 3, the driver SQLAlchemy uses for it).
SERVER_SCHEME = "postgresql+psycopg"


def server_settings(application_name: str | None) -> dict[str, Any]:
    """The libpq settings of a store session besides where it connects: the timeouts
    above, its name in ``pg_stat_activity`` (``gnomon`` unless the URL names it) and a
    bounded lock wait."""
    return {
        **SERVER_CONNECTION,
        "application_name": application_name or "gnomon",
        "options": f"-c lock_timeout={BUSY_TIMEOUT_MS}",
    }


def libpq_parameters(url: str) -> dict[str, Any] | None:
    """The libpq connection parameters (``psycopg.connect``'s keywords) that ``Store``'s
    engine connects with for the ``postgresql+psycopg://`` URL ``url``: where, as whom
    and the URL's options, read as SQLAlchemy reads them, then ``server_settings``.

    None for any URL this rule does not cover exactly (another scheme, an IPv6 address,
    several hosts, an option given twice): those are left to ``Store``.
    """
    scheme, separator, rest = url.partition("://")
    if scheme != SERVER_SCHEME or not separator:
        return None
    rest, _, query = rest.partition("?")
    location, _, database = rest.partition("/")
    credentials, at, address = location.rpartition("@")
    host, _, port = address.partition(":")
    if "@" in credentials or "[" in address or (port and not port.isdigit()):
        return None
    parameters: dict[str, Any] = {}
    if at:
        user, colon, password = credentials.partition(":")
        if user:
            parameters["user"] = unquote(user)
        if colon:
            parameters["password"] = unquote(password)
    if host:
        parameters["host"] = host
    if port:
        parameters["port"] = int(port)
    if database:
        parameters["dbname"] = database
    options = parse_qsl(query)
    if len({key for key, _ in options}) < len(options):
        return None
    parameters.update(options)
    if any(mark in str(parameters.get(key, "")) for key in ("host", "port") for mark in ",:"):
        return None  # SQLAlchemy's multi-host forms
    return {**parameters, **server_settings(parameters.get("application_name"))}
