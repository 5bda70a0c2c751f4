"""Results and cache records stored as signed pickle files under ``GNOMON_HOME/results``.

Pickle runs code when it loads, so a result file is only unpickled after its HMAC-SHA256
signature, made with a key that only this state directory holds, has verified. A file put
there by anyone without the key, or truncated by a crash, is reported and never loaded.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cloudpickle

from gnomon._files import private_directory, share_mode
from gnomon.exceptions import ResultStorageError

if TYPE_CHECKING:
    from gnomon.store import ResultFile

_MAGIC = b"GNOMON-RESULT-1\n"
_SAFE_KEY = re.compile(r"[A-Za-z0-9_.-]{1,200}")
_HEADER_MAX = 65536  # a header holds the key (of any length) and two times


@dataclass(frozen=True, slots=True)
class StoredResult:
    value: Any
    created: datetime
    expiration: datetime | None

    @property
    def result(self) -> Any:
        """The value, by the name Prefect's ``ResultRecord`` gives it (``txn.read().result``)."""
        return self.value


class ResultStore:
    """Signed result files in one directory, addressed by a key: a hash, a run id, or any
    string a ``cache_key_fn`` or a transaction gives (see ``file_name``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._secret: bytes | None = None

    def write(
        self, key: str, value: Any, created: datetime, expiration: datetime | None
    ) -> dict[str, str]:
        """Store ``value`` under ``key`` atomically; returns the reference kept in the store."""
        path = self._path(key)
        header = json.dumps(
            {
                "key": key,
                "created": created.isoformat(),
                "expiration": expiration.isoformat() if expiration else None,
            }
        ).encode()
        body = header + b"\n" + cloudpickle.dumps(value)
        signature = hmac.new(self._key(), body, hashlib.sha256).digest()
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-")  # 0600
        try:
            share_mode(fd, self.root)  # 0640 where the directory is shared (gnomon._files)
            with os.fdopen(fd, "wb") as handle:
                handle.write(_MAGIC + signature + body)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return result_ref(key)

    def read(self, key: str) -> StoredResult | None:
        """The stored result, or None if there is none. Raises if the file fails its check."""
        path = self._path(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        if not data.startswith(_MAGIC):
            raise ResultStorageError(f"{path}: not a gnomon result file; refusing to load it")
        signature = data[len(_MAGIC) : len(_MAGIC) + 32]
        body = data[len(_MAGIC) + 32 :]
        expected = hmac.new(self._key(), body, hashlib.sha256).digest()
        if not hmac.compare_digest(signature, expected):
            raise ResultStorageError(
                f"{path}: signature does not match this state directory's key; refusing to "
                "unpickle it"
            )
        header, _, payload = body.partition(b"\n")
        meta = json.loads(header)
        if meta.get("key", key) != key:  # another key's file by the same name: not this one
            return None
        expiration = meta["expiration"]
        return StoredResult(
            value=cloudpickle.loads(payload),
            created=datetime.fromisoformat(meta["created"]),
            expiration=datetime.fromisoformat(expiration) if expiration else None,
        )

    def read_current(self, key: str, now: datetime) -> StoredResult | None:
        """The record under ``key`` if it is there, unexpired and verified; a file that fails
        its check is logged and counts as absent (the work is done again, never trusted)."""
        try:
            stored = self.read(key)
        except ResultStorageError as error:
            from gnomon.flows._logging import engine_logger

            engine_logger().warning("cache record ignored", key=key, reason=str(error))
            return None
        if stored is None or (stored.expiration is not None and stored.expiration <= now):
            return None
        return stored

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def prune(self, key: str, own: bool, written_before: datetime, now: datetime) -> bool:
        """Whether a pruned run's result file under ``key`` may go (``prune_result_files``):
        a run's own file (named by its id) always; a cache record only once it has expired
        and was written before ``written_before`` (so the runs that wrote it are pruned
        too), never one without expiry. A file that is missing or unreadable is left."""
        path = self._path(key)
        if own:
            return path.exists()
        header = _header(path)
        if header is None or header.get("key", key) != key or header.get("expiration") is None:
            return False
        try:
            created = datetime.fromisoformat(header["created"])
            expiration = datetime.fromisoformat(header["expiration"])
        except (KeyError, TypeError, ValueError):
            return False
        return expiration <= now and created < written_before

    def _path(self, key: str) -> Path:
        return self.root / file_name(key)

    def _key(self) -> bytes:
        if self._secret is None:
            private_directory(self.root)
            self._secret = _load_or_create_key(self.root / ".key")
        return self._secret


def _header(path: Path) -> dict[str, Any] | None:
    """The JSON header of a result file (its key, when it was written, when it expires),
    read without the value; None if there is no such file or it is not one."""
    try:
        with path.open("rb") as handle:
            start = handle.read(len(_MAGIC) + 32 + _HEADER_MAX)
    except OSError:
        return None
    if not start.startswith(_MAGIC):
        return None
    line, newline, _ = start[len(_MAGIC) + 32 :].partition(b"\n")
    try:
        header = json.loads(line) if newline else None
    except ValueError:
        return None
    return header if isinstance(header, dict) else None


def prune_result_files(
    files: Sequence[ResultFile], written_before: datetime, now: datetime, *, dry_run: bool
) -> int:
    """Remove the result files of pruned runs that no one else may still read (see
    ``ResultStore.prune``); how many it removed (or, ``dry_run``, would remove)."""
    store = get_result_store()
    removed = 0
    for file in {(file.key, file.own) for file in files}:
        key, own = file
        if store.prune(key, own, written_before, now):
            if not dry_run:
                store.delete(key)
            removed += 1
    return removed


def result_ref(key: str) -> dict[str, str]:
    """What a run's row keeps to find its result: the key, in gnomon's local store."""
    return {"storage": "local", "key": key}


def file_name(key: str) -> str:
    """The file that holds ``key``'s record. A key made of safe characters (the hashes and
    run ids gnomon makes) names it directly; any other string a ``cache_key_fn`` returns
    (spaces, slashes, ``..``, any length) is named by its digest after a ``~``, a character
    safe names never hold, so the two kinds never share a file and no key leaves the
    directory. The record keeps the key itself, and ``read`` checks it."""
    if not isinstance(key, str):
        raise ResultStorageError(f"a result key must be a string, got {key!r}")
    if _SAFE_KEY.fullmatch(key) and not key.startswith("."):
        return key
    return "~" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _load_or_create_key(path: Path) -> bytes:
    """Read the signing key, creating it first if this is a new state directory.

    The key is written to a temporary file (0600 whatever the directory: a key readers
    could copy would let them sign pickles) and hard-linked into place, so a process racing
    to create it either wins or reads the winner's complete key, never a half-written one.
    """
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".key-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(secrets.token_bytes(32))
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            os.unlink(tmp)
    key = path.read_bytes()
    if len(key) != 32:
        raise ResultStorageError(f"{path}: result signing key is damaged")
    return key


_stores: dict[Path, ResultStore] = {}


def get_result_store() -> ResultStore:
    from gnomon._settings import get_settings

    root = get_settings().results_dir
    store = _stores.get(root)
    if store is None:
        store = _stores[root] = ResultStore(root)
    return store
