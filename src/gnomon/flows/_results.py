"""Results and cache records stored as signed pickle files in the result storage.

Pickle runs code when it loads, so a result file is only unpickled after its HMAC-SHA256
signature, made with the results' signing key (``_result_keys``), has verified. A file put
there by anyone without the key, signed with another host's key, or truncated by a crash,
is reported and never loaded. Where the files live (``GNOMON_HOME/results``, a shared
directory, an object store) is ``_result_storage``'s part.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import cloudpickle

from gnomon.exceptions import ResultStorageError

if TYPE_CHECKING:
    from gnomon._settings import Settings
    from gnomon.flows._result_keys import SigningKey
    from gnomon.flows._result_storage import Storage
    from gnomon.store import ResultFile

_MAGIC = b"GNOMON-RESULT-1\n"
_SAFE_KEY = re.compile(r"[A-Za-z0-9_.-]{1,200}")
_HEADER_MAX = 65536  # a header holds the key (of any length), two times and the signer


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
    """Signed result files in one storage, addressed by a key: a hash, a run id, or any
    string a ``cache_key_fn`` or a transaction gives (see ``file_name``)."""

    def __init__(self, storage: Storage, settings: Settings) -> None:
        self.storage = storage
        self._settings = settings
        self._signing_key: SigningKey | None = None

    def write(
        self, key: str, value: Any, created: datetime, expiration: datetime | None
    ) -> dict[str, str]:
        """Store ``value`` under ``key`` whole; returns the reference kept in the store."""
        signing = self.signing_key()
        header = json.dumps(
            {
                "key": key,
                "created": created.isoformat(),
                "expiration": expiration.isoformat() if expiration else None,
                "signer": signing.id,
            }
        ).encode()
        body = header + b"\n" + cloudpickle.dumps(value)
        signature = hmac.new(signing.secret, body, hashlib.sha256).digest()
        self.storage.write(file_name(key), _MAGIC + signature + body)
        return result_ref(key)

    def read(self, key: str) -> StoredResult | None:
        """The stored result, or None if there is none. Raises if the file fails its check."""
        name = file_name(key)
        data = self.storage.read(name)
        if data is None:
            return None
        where = f"{self.storage.description}: {name}"
        if not data.startswith(_MAGIC):
            raise ResultStorageError(f"{where}: not a gnomon result file; refusing to load it")
        signing = self.signing_key()
        signature = data[len(_MAGIC) : len(_MAGIC) + 32]
        body = data[len(_MAGIC) + 32 :]
        if not any(_signs(secret, body, signature) for secret in signing.secrets):
            raise ResultStorageError(f"{where}: {_mismatch(body, signing)}")
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
        its check, or cannot be read, is logged and counts as absent (the work is done
        again, never trusted). A key that cannot be had is an error: it is configuration,
        as a storage that cannot be opened is, and every write would fail too."""
        self.signing_key()
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
        self.storage.delete(file_name(key))

    def prune(self, key: str, own: bool, written_before: datetime, now: datetime) -> bool:
        """Whether a pruned run's result file under ``key`` may go (``prune_result_files``):
        a run's own file (named by its id) always; a cache record only once it has expired
        and was written before ``written_before`` (so the runs that wrote it are pruned
        too), never one without expiry. A file that is missing or unreadable is left."""
        name = file_name(key)
        if own:
            return self.storage.exists(name)
        header = _header(self.storage.read_head(name, len(_MAGIC) + 32 + _HEADER_MAX))
        if header is None or header.get("key", key) != key or header.get("expiration") is None:
            return False
        try:
            created = datetime.fromisoformat(header["created"])
            expiration = datetime.fromisoformat(header["expiration"])
        except (KeyError, TypeError, ValueError):
            return False
        return expiration <= now and created < written_before

    def signing_key(self) -> SigningKey:
        """The key, read on first use (ResultStorageError naming the setting if it is bad)."""
        if self._signing_key is None:
            from gnomon.flows._result_keys import signing_key

            self._signing_key = signing_key(self._settings)
        return self._signing_key


def _signs(secret: bytes, body: bytes, signature: bytes) -> bool:
    expected = hmac.new(secret, body, hashlib.sha256).digest()
    return hmac.compare_digest(signature, expected)


def _mismatch(body: bytes, signing: SigningKey) -> str:
    """Why a signature did not verify: another key signed it (the header names which),
    or the file was changed after it was signed."""
    from gnomon.flows._result_keys import key_id

    header = _header(_MAGIC + b"\0" * 32 + body)
    signer = header.get("signer") if header else None
    ids = [key_id(secret) for secret in signing.secrets]
    if isinstance(signer, str) and signer not in ids:
        mine = f"id {ids[0]}" if len(ids) == 1 else f"ids {', '.join(ids)}"
        return (
            f"signed with another key (id {signer}) than this process's ({mine}, from"
            f" {signing.source}); refusing to unpickle it. Hosts that share a result"
            " storage need the same key: set [results] key_file or GNOMON_RESULTS_KEY alike"
            " on each"
        )
    return (
        f"signature does not match the signing key (from {signing.source}): the file was"
        " changed or damaged after it was written; refusing to unpickle it"
    )


def _header(start: bytes | None) -> dict[str, Any] | None:
    """The JSON header of a result file (its key, when it was written, when it expires,
    which key signed it) from the file's first bytes, read without the value; None if
    there is no such file or it is not one. Unverified: for pruning and messages only."""
    if start is None or not start.startswith(_MAGIC):
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
    """What a run's row keeps to find its result: the key, in gnomon's result storage
    (named "local" as before the storage could be elsewhere: the configured one)."""
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


_stores: dict[tuple[object, ...], ResultStore] = {}


def get_result_store() -> ResultStore:
    """The result store the settings name (one per storage and key, reused)."""
    from gnomon._settings import get_settings
    from gnomon.flows._result_storage import open_storage

    settings = get_settings()
    place = (settings.results_dir, settings.results)
    store = _stores.get(place)
    if store is None:
        store = _stores[place] = ResultStore(open_storage(settings), settings)
    return store


def check_result_storage() -> str | None:
    """Open the configured result storage and key and write, read and delete a record
    there, so that a daemon refuses to start on a storage it cannot use rather than fail
    its runs; ConfigError says what is wrong. Returns the storage's description, or None
    when nothing is configured: the default (``GNOMON_HOME/results``, this host's own
    key) is made on first use, as it always was."""
    from gnomon._settings import ResultsSettings, get_settings
    from gnomon.exceptions import ConfigError

    if get_settings().results == ResultsSettings():
        return None
    try:
        store = get_result_store()
        probe = f"probe-{os.getpid()}-{secrets.token_hex(4)}"
        store.write(probe, None, datetime.now(UTC), None)
        try:
            store.read(probe)
        finally:
            store.delete(probe)
    except ResultStorageError as error:
        raise ConfigError(str(error)) from None
    signing = store.signing_key()
    if signing.own and get_settings().results.storage is not None:
        from gnomon.flows._logging import engine_logger

        engine_logger().warning(
            "results are signed with this host's own key: other hosts sharing the storage"
            " cannot use them (set [results] key_file or GNOMON_RESULTS_KEY alike on each)",
            storage=store.storage.description,
            key=signing.source,
        )
    return store.storage.description
