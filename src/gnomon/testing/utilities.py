"""Prefect's ``prefect.testing.utilities``: ``prefect_test_harness``, under Prefect's name so
that tests migrated by replacing ``prefect`` with ``gnomon`` keep working."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from gnomon._prefect_import import prefect_fallback
from gnomon._settings import reset_settings

# What decides where gnomon's store and results are: set aside inside the harness.
_LOCATION = ("GNOMON_HOME", "GNOMON_DATABASE_URL", "GNOMON_CONFIG")


@contextmanager
def prefect_test_harness(server_startup_timeout: int | None = 30) -> Iterator[None]:
    """Run flows against a temporary gnomon home (its own SQLite store and results) for the
    block, as Prefect's runs them against a temporary server and database.

    ``GNOMON_HOME`` points at a new directory, ``GNOMON_DATABASE_URL`` and ``GNOMON_CONFIG``
    are unset, and the process's store is reopened there; at the end the variables are
    restored, the temporary store is closed (what it recorded written) and removed.
    ``server_startup_timeout`` is accepted for Prefect's signature: there is no server.
    """
    from gnomon.store import reset_store

    saved = {name: os.environ.get(name) for name in _LOCATION}
    with tempfile.TemporaryDirectory(prefix="gnomon-test-harness-") as home:
        os.environ["GNOMON_HOME"] = home
        for name in _LOCATION[1:]:
            os.environ.pop(name, None)
        reset_settings()
        try:
            yield
        finally:
            reset_store()  # writes what the runs recorded before the directory goes
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            reset_settings()


__all__ = ["prefect_test_harness"]

__getattr__ = prefect_fallback(__name__)
