"""What keeps a store from working, in words an operator can act on.

A store fault is the database's, not gnomon's: locked by another program past the busy
timeout, a full disk, a read-only file or directory, a corrupt file, a directory that cannot
be made, a SQLite file gone, a database server out of reach, a schema a newer gnomon
migrated (``refuse_unknown_revision``). ``store_fault`` finds one in an
error's chain (SQLAlchemy wraps the driver's error, ``StoreWriteError`` wraps SQLAlchemy's)
and says it in a few words, so that the command line can print one line instead of a
traceback and the daemon can name the cause. It imports no SQLAlchemy: the command line's
fast path raises the driver's errors.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

from gnomon._location import sqlite_file
from gnomon.exceptions import StoreFileGone, StoreSchemaTooNew
from gnomon.store._connect import BUSY_TIMEOUT_MS
from gnomon.store._revision import HEAD_REVISION

# SQLite's primary result codes, by the name Python gives them (``sqlite_errorname`` of an
# extended code starts with its primary's name: SQLITE_READONLY_DBMOVED, SQLITE_IOERR_WRITE).
_CAUSES = {
    "SQLITE_BUSY": (
        f"the database is locked by another program (waited {BUSY_TIMEOUT_MS // 1000} s "
        "for it to finish)"
    ),
    "SQLITE_LOCKED": "the database is locked by another connection",
    "SQLITE_FULL": "the disk is full",
    "SQLITE_READONLY": "the database is read-only (its file, directory or file system)",
    "SQLITE_CANTOPEN": (
        "the database file cannot be opened (its directory is missing, read-only or not accessible)"
    ),
    "SQLITE_PERM": "permission denied",
    "SQLITE_NOTADB": "the file is not a SQLite database (corrupt, or another kind of file)",
    "SQLITE_CORRUPT": "the database file is corrupt",
    "SQLITE_IOERR": "a disk I/O error",
    "SQLITE_NOMEM": "out of memory",
}
# Free space under which a failed write is put down to a full disk: a few pages.
FULL_BELOW_BYTES = 64 << 10
# Errors that say gnomon itself went wrong (a bad statement, a broken constraint): those
# keep their traceback.
_NOT_FAULTS = (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError)


def store_fault(error: BaseException, url: str) -> str | None:
    """The fault of the store at ``url`` behind ``error``, in a few words, or None if it is
    not one. An ``OSError`` counts if it concerns the SQLite file's directory (its lock
    files, or the directory that could not be made)."""
    database = sqlite_file(url)
    causes = list(_chain(error))
    for cause in causes:  # the driver's own error says more than its wrappers
        if isinstance(cause, StoreFileGone):
            return str(cause)
        if isinstance(cause, StoreSchemaTooNew):
            return cause.reason
        if isinstance(cause, sqlite3.DatabaseError) and not isinstance(cause, _NOT_FAULTS):
            return _sqlite_cause(cause, database)
        if isinstance(cause, OSError) and database and _near(cause.filename, database.parent):
            return f"{cause.strerror or cause}: {cause.filename}"
    for cause in causes:
        if _is_server_error(cause):
            original = getattr(cause, "orig", None) or cause
            lines = str(original).strip().splitlines() or [""]
            return f"{type(original).__name__}: {lines[0]}"
    return None


def refuse_unknown_revision(revision: str | None, url: str) -> None:
    """Raise ``StoreSchemaTooNew`` if the database at ``url`` is at a ``revision`` this code
    does not know, one a newer gnomon migrated it to (None, never migrated, is known).

    Revisions are numbered "0001", "0002", ... (a test keeps them so): any other name, or a
    number after ``HEAD_REVISION``, is a newer gnomon's.
    """
    if revision is None or _known(revision):
        return
    from gnomon._version import __version__

    raise StoreSchemaTooNew(store_name(url), revision, HEAD_REVISION, __version__)


def _known(revision: str) -> bool:
    numbered = len(revision) == 4 and revision.isascii() and revision.isdigit()
    return numbered and revision <= HEAD_REVISION


def _sqlite_cause(error: sqlite3.DatabaseError, database: Path | None) -> str:
    name = getattr(error, "sqlite_errorname", "") or ""
    written = name.startswith(("SQLITE_IOERR", "SQLITE_READONLY", "SQLITE_CANTOPEN"))
    if written and database and read_only_file_system(database):
        # A disk error remounts a file system read-only under open files (ext4's
        # errors=remount-ro): SQLite sees failed writes, not a read-only database.
        return f"the file system of {database.parent} is read-only"
    if name.startswith(("SQLITE_FULL", "SQLITE_IOERR")) and database and _full(database.parent):
        # A write the disk refused shows as an I/O error as often as SQLITE_FULL (the -shm
        # file failing to grow: SQLITE_IOERR_SHMSIZE).
        return f"{_CAUSES['SQLITE_FULL']} (no space left on the file system of {database.parent})"
    for prefix, cause in _CAUSES.items():
        if name == prefix or name.startswith(prefix + "_"):
            return cause if name == prefix else f"{cause} ({name})"
    text = str(error)
    if "locked" in text:  # an error raised without its code
        return _CAUSES["SQLITE_BUSY"]
    return f"{name or type(error).__name__}: {text}"


def _full(directory: Path) -> bool:
    """Whether the file system of ``directory`` has (next to) no space left for this user."""
    try:
        status = os.statvfs(directory)
    except OSError:
        return False
    blocks = status.f_bfree if os.geteuid() == 0 else status.f_bavail
    return blocks * status.f_frsize < FULL_BELOW_BYTES


def read_only_file_system(path: Path) -> bool:
    """Whether the file system of ``path`` (an existing file or directory) is read-only:
    mounted so, or turned so by a disk error. The second shows in no mount flag (ext4
    marks it inside the file system), only as ``EROFS`` when a file is opened to write,
    which is what this tries for a file (it writes nothing)."""
    try:
        if os.statvfs(path).f_flag & os.ST_RDONLY:
            return True
        if path.is_dir():
            return False
        os.close(os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC))
    except OSError as error:
        return error.errno == errno.EROFS
    return False


def _is_server_error(error: BaseException) -> bool:
    """Whether ``error`` is a server driver's operational error (a server that refuses
    connections or goes away, a lock wait past its timeout): psycopg's own, as the command
    line's fast path raises it, or SQLAlchemy's wrapper of one."""
    for module in ("sqlalchemy.exc", "psycopg"):
        loaded = sys.modules.get(module)  # neither is imported to ask
        if loaded is not None and isinstance(error, loaded.OperationalError):
            return True
    return False


def _chain(error: BaseException) -> Iterator[BaseException]:
    """``error``, then its causes and contexts, each once."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def store_name(url: str) -> str:
    """The store as the operator knows it: the SQLite file's path, else the URL with its
    password masked, in the user part and in the query (``?password=``, ``sslpassword=``:
    any key named like a secret, see ``gnomon._secrets``)."""
    from urllib.parse import parse_qsl, urlencode, urlsplit

    from gnomon._secrets import is_secret_key

    path = sqlite_file(url)
    if path is not None:
        return str(path)
    parts = urlsplit(url)
    credentials, at, host = parts.netloc.rpartition("@")
    if at and ":" in credentials:
        credentials = f"{credentials.partition(':')[0]}:***"
    query = [
        (key, "***" if is_secret_key(key) else value)
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
    ]
    shown = f"{parts.scheme}://{credentials}{at}{host}{parts.path}"
    return f"{shown}?{urlencode(query, safe='*/:@')}" if query else shown


def _near(filename: object, directory: Path) -> bool:
    """Whether an OSError's ``filename`` is ``directory``, in it, or one of its parents."""
    if not isinstance(filename, (str, Path)):
        return False
    path = Path(filename).absolute()
    return path.is_relative_to(directory) or directory.is_relative_to(path)
