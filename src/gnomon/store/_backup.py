"""A consistent copy of a SQLite store, safe to take while the daemon runs.

SQLite's online backup API copies every page in one step, inside one read transaction: in
WAL mode that reads a snapshot (what was committed when it began, the WAL included) and
never blocks the daemon's or the workers' writes. The copy is written to a private (0600)
file beside the target and moved into place only once complete and synced, so a backup
cut short never leaves a partial file under the target's name. It is a self-contained
database (rollback journal, no ``-wal`` needed); gnomon switches it to WAL when it opens it.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

from gnomon._location import existing_file_uri
from gnomon.exceptions import GnomonError, StoreFileGone
from gnomon.store._connect import BUSY_TIMEOUT_MS


class BackupExists(GnomonError, FileExistsError):
    """The backup's target exists and overwriting it was not asked for."""

    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__(f"{path} exists; not overwriting it without --force")


def backup_database(source: Path, target: Path, *, overwrite: bool = False) -> int:
    """Copy the SQLite database at ``source`` to ``target`` (mode 0600); returns its size
    in bytes. Raises BackupExists if ``target`` exists (unless ``overwrite``) and
    StoreFileGone if ``source`` does not: a backup never creates a store."""
    if not source.is_file():
        raise StoreFileGone(source)
    if target.exists() and not overwrite:
        raise BackupExists(target)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    # O_EXCL: never write through a file (or a link) someone else put there.
    os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
    try:
        os.chmod(partial, 0o600)  # whatever the umask
        _copy(source, partial)
        _sync(partial)
        _move(partial, target, overwrite)
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    _sync(target.parent)
    return target.stat().st_size


def _copy(source: Path, target: Path) -> None:
    reader = sqlite3.connect(existing_file_uri(source), uri=True, isolation_level=None)
    try:
        reader.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        writer = sqlite3.connect(target, isolation_level=None)
        try:
            reader.backup(writer)  # all pages in one step: one snapshot
            writer.execute("PRAGMA journal_mode = DELETE")
        finally:
            writer.close()
    finally:
        reader.close()


def _move(partial: Path, target: Path, overwrite: bool) -> None:
    """Put the finished copy in place; without ``overwrite``, atomically only if ``target``
    does not exist by then (a hard link fails on an existing name)."""
    if overwrite:
        os.replace(partial, target)
        return
    try:
        os.link(partial, target)
    except FileExistsError:
        raise BackupExists(target) from None


def _sync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
