"""WAL checkpoints of the daemon's SQLite store, at quiet moments.

Left to SQLite, a checkpoint runs inside whichever commit takes the WAL past 1,000 pages:
that writer copies the pages into the database file and syncs it while the next writers
queue behind it, which stalled a burst of runs 10-15 ms every ~50 runs. The daemon and its
workers therefore open their connections with automatic checkpoints off (see
``EXTERNAL_CHECKPOINTS_ENV``), and this thread checkpoints when no run is running or
waiting, or at once when the WAL has grown past ``WAL_CAP_BYTES`` under constant load.
A PASSIVE checkpoint takes no writer's lock: writers go on appending meanwhile.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from gnomon._location import existing_file_uri
from gnomon.store import file_identity

log = logging.getLogger("gnomon.daemon")

CHECK_EVERY = 1.0  # seconds between looks at the WAL
WAL_CAP_BYTES = 64 << 20  # checkpoint even while runs are busy beyond this


class Checkpointer:
    """Checkpoints the WAL of the SQLite database at ``path`` whenever ``busy()`` is false
    (or the WAL passes ``cap`` bytes), from a thread of its own."""

    def __init__(self, path: Path, busy: Callable[[], bool], cap: int = WAL_CAP_BYTES) -> None:
        self.path = path
        self.wal = path.with_name(path.name + "-wal")
        self.busy = busy
        self.cap = cap
        self.opened = file_identity(path)  # the daemon's database, opened just before
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._connection: sqlite3.Connection | None = None
        self._failing = False
        # The WAL as the last complete checkpoint left it (size, mtime): nothing to copy.
        self._checkpointed: tuple[int, int] | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="gnomon-checkpoint", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def run_once(self) -> bool:
        """Checkpoint now if it is time to; whether it did."""
        try:
            status = os.stat(self.wal)
        except FileNotFoundError:
            return False
        size, state = status.st_size, (status.st_size, status.st_mtime_ns)
        if size == 0 or state == self._checkpointed or (size < self.cap and self.busy()):
            return False
        if self._connection is None:
            # Closed by ``stop`` from another thread, once this one has ended. Only the
            # daemon's database, never a file that replaced it, nor an empty one made here:
            # the WAL beside the path is the daemon's file's, and a checkpoint would copy it
            # into the other (see _storefile).
            if file_identity(self.path) != self.opened:
                return False
            self._connection = sqlite3.connect(
                existing_file_uri(self.path),
                isolation_level=None,
                check_same_thread=False,
                uri=True,
            )
        busy, pages, done = self._connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if not busy and done == pages:
            self._checkpointed = state
        log.debug(
            "checkpointed %d of %d WAL pages",
            done,
            pages,
            extra={"wal_bytes": size, "blocked": bool(busy)},
        )
        return True

    def _run(self) -> None:
        while not self._stop.wait(CHECK_EVERY):
            try:
                self.run_once()
            except sqlite3.Error as error:  # tried again in a second; told once
                if not self._failing:
                    log.warning("WAL checkpoint of %s failed: %s", self.path, error)
                self._failing = True
            else:
                self._failing = False
