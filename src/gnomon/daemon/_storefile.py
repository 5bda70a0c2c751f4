"""The database file is the one the daemon opened.

A SQLite database deleted (``rm gnomon.db``) or replaced (``mv backup.db gnomon.db``) while
the daemon runs splits it from everything else: the daemon's open connections keep writing
the old file, while the next ``gnomon`` command, a new worker or ``gnomon pause`` open
whatever the path names now, a fresh empty store or the backup. So the daemon compares,
with its once-a-second store poll, the device and inode of the database path with those of
the file it opened, and stops if they differ: loudly (one ERROR line saying what happened
and what to do), as for SIGTERM as far as the old file allows, and with ``EXIT_STORE_GONE``,
which systemd's unit lists in ``RestartPreventExitStatus=``: a restart would open the new
file, or create an empty one, and split the runs again. Workers that find their database
missing exit with the same code (see ``_worker``).
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from gnomon.store import file_identity

if TYPE_CHECKING:
    from gnomon.store import Store

log = logging.getLogger("gnomon.daemon")

# sysexits' EX_NOINPUT ("an input file did not exist or was not readable"); no other gnomon
# process exits with it.
EXIT_STORE_GONE = 66

RESTORE_HINT = (
    "to restore a backup: with the daemon stopped, put it in place, remove {wal} and {shm} "
    "if they are there, then start the daemon (README, Backups)"
)


class StoreFileChanged(BaseException):
    """The store's path no longer names the file the daemon opened: the daemon must stop.

    A BaseException, like SystemExit: the loop retries store errors (``except Exception``),
    and this one must end it rather than be retried.
    """


class StoreFileGuard:
    """Checks that the store's database path still names the file the store opened.

    Made once the daemon's store is open (its WAL and shared-memory files exist then, and
    stay until the daemon's last connection closes). When the file has changed, the guard
    also removes the old file's ``-wal`` and ``-shm`` from beside the path, if they are
    still those it found: SQLite ties them to the path, not the file, so the new file (a
    restored backup) would otherwise be read through the old file's WAL. The daemon's and
    its workers' open connections keep them open and go on with the old file to the end
    of the shutdown; new connections of theirs refuse the new file (``StoreFileGone``).
    """

    def __init__(self, store: Store) -> None:
        self.path = store.database_file
        self.opened = store.opened_file
        self.journals = {}
        if self.path is not None:
            for suffix in ("-wal", "-shm"):
                journal = self.path.with_name(self.path.name + suffix)
                self.journals[journal] = file_identity(journal)

    def check(self) -> None:
        """Raise StoreFileChanged, after one ERROR line, if the path no longer names the
        opened file; nothing for stores that are not SQLite files."""
        if self.path is None or self.opened is None:
            return
        what = changed(self.path, self.opened)
        if what is None:
            return
        self._detach_journals()
        hint = RESTORE_HINT.format(wal=f"{self.path}-wal", shm=f"{self.path}-shm")
        message = (
            f"{what}: stopping (exit code {EXIT_STORE_GONE}, not restarted by systemd) rather"
            f" than write runs where no other process sees them; {hint}"
        )
        log.error(message, extra={"database": str(self.path), "exit_code": EXIT_STORE_GONE})
        raise StoreFileChanged(message)

    def _detach_journals(self) -> None:
        for journal, opened in self.journals.items():
            if opened is not None and file_identity(journal) == opened:
                with contextlib.suppress(FileNotFoundError):
                    journal.unlink()


def changed(path: Path, opened: tuple[int, int]) -> str | None:
    """What happened to the database at ``path`` that the daemon opened as ``opened``
    (device, inode), in words; None while the path still names that file, or if it cannot
    be told (the directory cannot be read: the store's own errors say so)."""
    try:
        status = os.stat(path)
    except FileNotFoundError:
        return f"the database file {path} was deleted or moved away while the daemon ran"
    except OSError:
        return None
    now = (status.st_dev, status.st_ino)
    if now == opened:
        return None
    return (
        f"the database file {path} was replaced while the daemon ran (it opened device "
        f"{opened[0]} inode {opened[1]}; the path now names inode {now[1]} on device {now[0]})"
    )
