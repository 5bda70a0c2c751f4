"""How the store's datetimes are kept in each database, for the two that convert them:
``UTCDateTime`` (``_schema``) under SQLAlchemy, and the compiled statements run on the bare
driver (``_driver``) without it.

Every datetime is UTC. SQLite keeps it as naive text (``YYYY-MM-DD HH:MM:SS.ffffff``, the
format of SQLAlchemy's SQLite DATETIME); PostgreSQL as ``timestamp with time zone``. Either
way it comes back aware, in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.now(UTC)


def utc_text(value: datetime) -> str:
    """``value`` as SQLite keeps it: naive UTC text (a naive ``value`` is UTC already)."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    # Formatted in one C call rather than field by field: the batched writer binds ~7
    # datetimes per task run.
    return value.isoformat(" ", "microseconds")[:26]


def from_utc_text(text: str) -> datetime:
    """A datetime SQLite kept (``utc_text``), aware again."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def aware(value: datetime) -> datetime:
    """``value`` as PostgreSQL is given it: aware, a naive value taken to be UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def as_utc(value: datetime) -> datetime:
    """A datetime read from the database, as the store returns it: aware, in UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
