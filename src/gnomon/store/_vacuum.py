"""Returning a SQLite store's free pages to the file system (``gnomon db vacuum``).

SQLite keeps the pages that deleted rows free for new rows: a pruned store stops growing,
but its file does not shrink. A store switched to ``auto_vacuum = INCREMENTAL`` (which
takes one ``VACUUM``, a rewrite of the whole file that no other connection may share: the
daemon must be stopped) can give free pages back a few at a time, which the daemon's
pruner does after each pass (``PruneQueries.release_free_pages``). Stores are not created
so: it adds pointer-map pages to every write, which the hot path has not been measured with.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from gnomon._location import existing_file_uri
from gnomon.exceptions import StoreFileGone
from gnomon.store._connect import BUSY_TIMEOUT_MS

INCREMENTAL = 2  # PRAGMA auto_vacuum's value for INCREMENTAL


def vacuum_database(path: Path) -> tuple[int, int]:
    """Rewrite the SQLite database at ``path`` compactly, with ``auto_vacuum =
    INCREMENTAL`` from then on; its size in bytes before and after. The caller makes
    sure no other process uses it (the daemon's lock)."""
    if not path.is_file():
        raise StoreFileGone(path)
    before = _size(path)
    connection = sqlite3.connect(existing_file_uri(path), uri=True, isolation_level=None)
    try:
        connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        connection.execute("PRAGMA auto_vacuum = INCREMENTAL")
        connection.execute("VACUUM")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    finally:
        connection.close()
    return before, _size(path)


def _size(path: Path) -> int:
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
