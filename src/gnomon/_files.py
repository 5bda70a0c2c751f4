"""Creating gnomon's own files and directories privately, and who may change a store.

The store holds run parameters in plain text, results are pickles and the logs name
everything, so whatever gnomon creates (the home, the database and its ``-wal``/``-shm``,
lock files, results, logs) is for the store's owner only: files 0600, directories 0700,
whatever the process's umask. The umask itself is never changed: it belongs to the user's
code, which runs in the same processes (a flow's own files keep the user's umask).

One switch shares them with a group instead: a directory with the setgid bit (``chmod
2750``). The kernel gives what is created in it the directory's group (and a directory
its setgid bit, so the rule carries down), and gnomon makes files 0640 and directories
2750 there: the group reads, only the owner writes. Secrets (the results' signing key, the
API token) are made 0600 by their own code, even then.

SQLite creates the ``-wal`` and ``-shm`` files with the database file's permission bits
(and, run as root, with its owner), so creating the database file privately before SQLite
opens it covers them.

Standard library only: the command line's fast path uses it.
"""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from gnomon.exceptions import StoreOwnedByAnotherUser


def refuse_empty_path(value: object) -> object:
    """A path setting's value as given, or ValueError for an empty one: ``Path("")`` is the
    working directory, never what was meant (pydantic validators, before the conversion)."""
    if value == "":
        raise ValueError("an empty path; leave the setting out for its default")
    return value


@dataclass(frozen=True, slots=True)
class Modes:
    """The permission bits of what gnomon creates in one directory."""

    file: int
    directory: int


PRIVATE = Modes(file=0o600, directory=0o700)
GROUP_SHARED = Modes(file=0o640, directory=0o2750)


def modes_in(directory: Path) -> Modes:
    """The modes for what is created in ``directory``: shared with its group if the
    directory is setgid, else private."""
    try:
        setgid = bool(os.stat(directory).st_mode & stat.S_ISGID)
    except OSError:
        setgid = False
    return GROUP_SHARED if setgid else PRIVATE


def private_directory(path: Path) -> Path:
    """``path`` as a directory, creating it and its missing parents with ``modes_in`` their
    parent's modes. An existing directory is left as it is (an operator or systemd chose
    its mode)."""
    path = Path(path).absolute()
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for directory in reversed(missing):
        mode = modes_in(directory.parent).directory
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            continue  # another process made it meanwhile, with the same rule
        # chmod, not mkdir's mode alone: the umask may have taken group bits a shared
        # directory needs, and mkdir drops the setgid bit on some systems.
        os.chmod(directory, mode)
    return path


def open_private(path: Path | str, flags: int = os.O_RDWR) -> int:
    """Open ``path`` (a descriptor), creating it, and its directory, with gnomon's modes if
    it does not exist. A file that exists is opened as it is: its mode is its owner's
    choice."""
    path = Path(path)
    private_directory(path.parent)
    mode = modes_in(path.parent).file
    flags &= ~(os.O_CREAT | os.O_EXCL)
    while True:
        try:
            fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            try:
                return os.open(path, flags)
            except FileNotFoundError:
                continue  # removed between the two calls: create it after all
        try:
            os.fchmod(fd, mode)  # exactly: a umask of 077 would have left 0600
        except BaseException:
            os.close(fd)
            raise
        return fd


def ensure_private_file(path: Path) -> None:
    """Create ``path`` empty, with gnomon's modes, unless it exists (for the SQLite file:
    an empty file is an empty database)."""
    if not os.path.lexists(path):
        with contextlib.suppress(FileExistsError):
            os.close(open_private(path, os.O_RDONLY))


def share_mode(fd: int, directory: Path) -> None:
    """Give a file made elsewhere (``tempfile.mkstemp``: 0600) the mode ``directory``
    calls for, before it is moved into place there."""
    mode = modes_in(directory).file
    if mode != PRIVATE.file:
        os.fchmod(fd, mode)


def check_owner(*paths: Path | None) -> None:
    """Raise ``StoreOwnedByAnotherUser`` if the first of ``paths`` that exists belongs to
    another user than this process's effective one (the files it would create, such as a
    lock file, would then be ones the store's owner, the daemon, cannot open)."""
    for path in paths:
        if path is None:
            continue
        try:
            owner = os.stat(path).st_uid
        except FileNotFoundError:
            continue
        except PermissionError:
            raise StoreOwnedByAnotherUser(path, None, os.geteuid()) from None
        if owner != os.geteuid():
            raise StoreOwnedByAnotherUser(path, owner, os.geteuid())
        return


def user_name(uid: int) -> str:
    """The login name of ``uid``, or the number if it has none."""
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def key_file_exposure(mode: int) -> str | None:
    """What is wrong with a key file of ``mode`` (its ``st_mode``): others can read it,
    or change it (anyone could swap in their own key); None if neither. The key files'
    readers raise their own errors with it."""
    if mode & stat.S_IROTH:
        return "is readable by every user: chmod o-rwx it (0600 or 0640), then use it"
    if mode & (stat.S_IWOTH | stat.S_IWGRP):
        return (
            "is writable by others (anyone could swap in their own key): chmod go-w it"
            " (0600 or 0640), then use it"
        )
    return None
