"""Where result files live: a directory, or any file system fsspec reaches by URL.

``[results] storage`` (``GNOMON_RESULTS_STORAGE``) names it; unset, it is
``GNOMON_HOME/results``. A path, or a ``file://`` URL, is a directory on this machine or a
mount that several hosts share (NFS): gnomon's own file code writes there, atomically
(a temporary file renamed into place) and privately (``gnomon._files``). Any other URL
(``s3://bucket/results``, ``memory://`` in tests) goes through fsspec, imported only
then, with the package for its protocol (s3fs for ``s3://``) installed by the user; an
object store's PUT replaces a record whole, as the rename does.

Both kinds store bytes under a file name (``_results.file_name``) and report a failure as
a ``ResultStorageError`` naming the setting, its value and the cause.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from gnomon._files import private_directory, share_mode
from gnomon.exceptions import ResultStorageError

if TYPE_CHECKING:
    from gnomon._settings import Settings

_LOCAL_PROTOCOLS = ("file", "local")  # fsspec's names for this machine's file system


class Storage(Protocol):
    """Result files by name: what ``ResultStore`` needs of a place to keep them."""

    description: str  # the setting and its value, for messages

    def read(self, name: str) -> bytes | None:
        """The file's bytes, or None if there is no such file."""

    def read_head(self, name: str, size: int) -> bytes | None:
        """At most the first ``size`` bytes, or None if there is no such file."""

    def write(self, name: str, data: bytes) -> None:
        """Store ``data`` under ``name``, replacing any file there whole."""

    def delete(self, name: str) -> None:
        """Remove the file, if it is there."""

    def exists(self, name: str) -> bool: ...

    def lock_directory(self) -> Path:
        """A local directory for the lock files of SERIALIZABLE transactions."""


class LocalFiles:
    """Files in a directory, made 0600 (0640 in a setgid directory) and renamed into place,
    so a reader on any host sees a whole record or none."""

    def __init__(self, root: Path, description: str) -> None:
        self.root = root
        self.description = description
        self._made = False

    def read(self, name: str) -> bytes | None:
        try:
            return (self.root / name).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as error:
            raise self._failed("cannot read", error) from None

    def read_head(self, name: str, size: int) -> bytes | None:
        try:
            with (self.root / name).open("rb") as handle:
                return handle.read(size)
        except OSError:
            return None

    def write(self, name: str, data: bytes) -> None:
        try:
            self._ensure_root()
            fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-")  # 0600
        except OSError as error:
            raise self._failed("cannot write", error) from None
        try:
            share_mode(fd, self.root)  # 0640 where the directory is shared (gnomon._files)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, self.root / name)
        except BaseException as error:
            Path(tmp).unlink(missing_ok=True)
            if isinstance(error, OSError):
                raise self._failed("cannot write", error) from None
            raise

    def delete(self, name: str) -> None:
        (self.root / name).unlink(missing_ok=True)

    def exists(self, name: str) -> bool:
        return (self.root / name).exists()

    def lock_directory(self) -> Path:
        return private_directory(self.root / "locks")

    def _ensure_root(self) -> None:
        if not self._made:
            private_directory(self.root)
            self._made = True

    def _failed(self, what: str, error: OSError) -> ResultStorageError:
        return ResultStorageError(f"{self.description}: {what}: {_reason(error)}")


class FsspecFiles:
    """Files under an fsspec URL (an object store's bucket and prefix).

    Its SERIALIZABLE locks are local files (``GNOMON_HOME/results/locks``): they order the
    runs of one host, not of several; use a shared directory for locks across hosts.
    """

    def __init__(self, url: str, protocol: str, description: str, local_locks: Path) -> None:
        self.description = description
        self._local_locks = local_locks
        self.fs, base = _filesystem(url, protocol, description)
        self._base = base.rstrip("/")
        self._made = False

    def read(self, name: str) -> bytes | None:
        try:
            with self._failing("cannot read"):
                data: bytes = self.fs.cat_file(self._path(name))
        except FileNotFoundError:
            return None
        return data

    def read_head(self, name: str, size: int) -> bytes | None:
        try:
            data: bytes = self.fs.cat_file(self._path(name), start=0, end=size)
        except Exception:
            return None
        return data

    def write(self, name: str, data: bytes) -> None:
        path = self._path(name)
        with self._failing("cannot write"):
            try:
                self.fs.pipe_file(path, data)
            except FileNotFoundError:  # a file system with directories, and none there yet
                self.fs.makedirs(self._base, exist_ok=True)
                self.fs.pipe_file(path, data)

    def delete(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError), self._failing("cannot delete"):
            self.fs.rm_file(self._path(name))

    def exists(self, name: str) -> bool:
        with self._failing("cannot read"):
            return bool(self.fs.exists(self._path(name)))

    def lock_directory(self) -> Path:
        return private_directory(self._local_locks)

    def _path(self, name: str) -> str:
        return f"{self._base}/{name}"

    @contextlib.contextmanager
    def _failing(self, what: str) -> Iterator[None]:
        """A file system's own errors (OSError, or its client's: botocore's, paramiko's)
        as a ResultStorageError naming the setting; a missing file stays FileNotFoundError."""
        try:
            yield
        except FileNotFoundError:
            raise
        except Exception as error:
            cause = (
                _reason(error) if isinstance(error, OSError) else f"{type(error).__name__}: {error}"
            )
            raise ResultStorageError(f"{self.description}: {what}: {cause}") from None


def open_storage(settings: Settings) -> LocalFiles | FsspecFiles:
    """The storage the settings name; ResultStorageError for a URL whose protocol fsspec
    does not know, or whose package is not installed."""
    value = settings.results.storage
    if value is None:
        return LocalFiles(settings.results_dir, f"result storage {settings.results_dir}")
    shown = _without_password(value)
    description = f"result storage {shown!r} (results.storage, GNOMON_RESULTS_STORAGE)"
    protocol = settings.results.storage_protocol
    if protocol is None:
        return LocalFiles(Path(value), description)
    if protocol in _LOCAL_PROTOCOLS:
        # The same directory either way; gnomon's file code writes it atomically and
        # privately, where fsspec's local file system writes in place.
        path = value.split("://", 1)[1]
        return LocalFiles(Path(path or "/").expanduser().absolute(), description)
    return FsspecFiles(value, protocol, description, settings.results_dir / "locks")


def _filesystem(url: str, protocol: str, description: str) -> tuple[Any, str]:
    """fsspec's file system for ``url`` and the path in it."""
    import fsspec

    if protocol not in fsspec.available_protocols():
        raise ResultStorageError(
            f"{description}: unknown protocol {protocol!r}; fsspec knows"
            f" {', '.join(fsspec.available_protocols())}"
        )
    try:
        fs, path = fsspec.core.url_to_fs(url)
        return fs, str(path)
    except ImportError as error:  # "Install s3fs to access S3"
        raise ResultStorageError(f"{description}: {error}") from None
    except (ValueError, TypeError, OSError) as error:  # a URL its file system cannot use
        raise ResultStorageError(f"{description}: {error}") from None


def _without_password(value: str) -> str:
    """``value`` with a URL's password (``ftp://user:secret@host/...``) shown as ``***``:
    the description goes into messages and logs."""
    scheme, separator, rest = value.partition("://")
    authority, slash, path = rest.partition("/")
    user, at, host = authority.rpartition("@")
    if not separator or not at or ":" not in user:
        return value
    return f"{scheme}://{user.partition(':')[0]}:***@{host}{slash}{path}"


def _reason(error: Exception) -> str:
    """An error in words: an OSError's reason and file, another's type and message."""
    if not isinstance(error, OSError):
        return f"{type(error).__name__}: {error}"
    if error.strerror and error.filename:
        return f"{error.strerror}: {error.filename}"
    return error.strerror or str(error) or type(error).__name__
