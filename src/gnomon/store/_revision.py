"""The schema revision this code expects: the newest in ``migrations/versions``. A module of
its own so the command line's fast path can check a store without importing SQLAlchemy."""

# The newest revision in migrations/versions; a test checks it against Alembic's own view.
HEAD_REVISION = "0021"
