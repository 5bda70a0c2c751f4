"""The key result files are signed with: where it comes from, and how it is read.

Every host that shares a result storage must sign with the same key, or each refuses the
others' records. The key is, in this order: ``GNOMON_RESULTS_KEY`` (hex or base64), the file
``[results] key_file`` names (``GNOMON_RESULTS_KEY_FILE``), systemd's credential
``$CREDENTIALS_DIRECTORY/gnomon-results-key`` where the unit loads one, else
``GNOMON_HOME/results/.key``, 32 random bytes made on first use (one host's key).

A key file holds the key as hex (``openssl rand -hex 32``) or base64 text, or as raw bytes
(as gnomon writes its default key); at least 32 bytes of key. A key file that others can
read or change is refused, as the secrets' key file is: a key in other hands signs pickles
this host would load.

A text key file may hold several keys, one a line (``#`` comments and blank lines aside;
``GNOMON_RESULTS_KEY`` separates them by commas): the first signs, every one verifies, so a
key is replaced across hosts without a cache lost on the way, as the secrets' key is. Add
the new key below the old on every host, then move it first on every host, then remove
the old one; each step may roll across the hosts one by one.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import re
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gnomon._files import key_file_exposure, private_directory
from gnomon.exceptions import ResultStorageError

if TYPE_CHECKING:
    from gnomon._settings import Settings

KEY_BYTES = 32  # HMAC-SHA256's block of security: a shorter key is refused
CREDENTIAL = "gnomon-results-key"  # the name systemd's LoadCredential= gives the key
_HEX = re.compile(r"(?:[0-9a-fA-F]{2})+")
_TEXT = re.compile(rb"[\x20-\x7e\t\r\n]*")
_MAKE_ONE = "make one with `openssl rand -hex 32`"


@dataclass(frozen=True, slots=True)
class SigningKey:
    """The key records are signed with, the older ones they are still verified with (a
    rotation's), and where they came from (for messages)."""

    secret: bytes
    source: str
    own: bool = False  # this host's GNOMON_HOME/results/.key, which no other host has
    older: tuple[bytes, ...] = ()

    @property
    def id(self) -> str:
        """A short name for the signing key, written beside each signature so that a
        record signed with another key says so (``key_id``)."""
        return key_id(self.secret)

    @property
    def secrets(self) -> tuple[bytes, ...]:
        """Every key a record may be signed with: the signing key, then the older ones."""
        return (self.secret, *self.older)


def key_id(secret: bytes) -> str:
    """A key's short name: a digest, from which the key cannot be recovered."""
    return hashlib.sha256(b"gnomon result key id\0" + secret).hexdigest()[:12]


def signing_key(settings: Settings) -> SigningKey:
    """The key the settings give; ResultStorageError naming the setting (and the file)
    when it is missing, unreadable, open to others, not a key, or too short."""
    results = settings.results
    if results.key is not None and results.key_file is not None:
        raise ResultStorageError(
            f"both GNOMON_RESULTS_KEY and results.key_file ({results.key_file}) are set:"
            " set one of them, the same on every host"
        )
    if results.key is not None:
        where = "GNOMON_RESULTS_KEY"
        text = results.key.get_secret_value().replace(",", "\n").encode()
        return _keys(_decode(text, where), where)
    if results.key_file is not None:
        return _from_file(results.key_file, f"{results.key_file} (results.key_file)")
    credentials = os.environ.get("CREDENTIALS_DIRECTORY")
    if credentials and (Path(credentials) / CREDENTIAL).exists():
        path = Path(credentials) / CREDENTIAL
        return _from_file(path, f"{path} ($CREDENTIALS_DIRECTORY/{CREDENTIAL})")
    path = settings.results_dir / ".key"
    return SigningKey(_load_or_create(path), f"{path} (this host's own)", own=True)


def _keys(secrets: list[bytes], where: str) -> SigningKey:
    return SigningKey(secrets[0], where, older=tuple(secrets[1:]))


def _from_file(path: Path, where: str) -> SigningKey:
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except OSError as error:
        reason = error.strerror or str(error)
        raise ResultStorageError(
            f"cannot read the results signing key {where}: {reason}; {_MAKE_ONE}"
        ) from None
    exposure = key_file_exposure(mode)
    if exposure is not None:
        raise ResultStorageError(f"the results signing key {where} {exposure}")
    return _keys(_decode(data, where), where)


def _decode(data: bytes, where: str) -> list[bytes]:
    """The keys in ``data``: hex or base64, one a line, if it is text (printable ASCII),
    else raw bytes, one key (32 random bytes are printable once in 10^13 draws)."""
    if not _TEXT.fullmatch(data):
        return [_long_enough(data, where)]
    keys = []
    lines = data.decode("ascii").splitlines()
    for number, line in enumerate(lines, 1):
        text = line.partition("#")[0].strip()
        if text:
            at = f"{where}, line {number}," if len(lines) > 1 else where
            keys.append(_long_enough(_decode_text(text, at), at))
    if not keys:
        raise ResultStorageError(f"the results signing key {where} holds no key; {_MAKE_ONE}")
    return keys


def _long_enough(key: bytes, where: str) -> bytes:
    if len(key) < KEY_BYTES:
        raise ResultStorageError(
            f"the results signing key {where} is too short: {len(key)} bytes, it needs at"
            f" least {KEY_BYTES}; {_MAKE_ONE}"
        )
    return key


def _decode_text(text: str, where: str) -> bytes:
    if _HEX.fullmatch(text):
        return bytes.fromhex(text)
    for altchars in (None, b"-_"):  # standard, then URL-safe
        with contextlib.suppress(binascii.Error):
            return base64.b64decode(text, altchars=altchars, validate=True)
    raise ResultStorageError(
        f"the results signing key {where} is neither hex nor base64 text; {_MAKE_ONE}"
    )


def _load_or_create(path: Path) -> bytes:
    """Read this host's own key, creating it first if this is a new state directory.

    The key is written to a temporary file (0600 whatever the directory: a key readers
    could copy would let them sign pickles) and hard-linked into place, so a process racing
    to create it either wins or reads the winner's complete key, never a half-written one.
    """
    private_directory(path.parent)
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".key-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(secrets.token_bytes(KEY_BYTES))
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            os.unlink(tmp)
    key = path.read_bytes()
    if len(key) != KEY_BYTES:
        raise ResultStorageError(f"{path}: result signing key is damaged")
    return key
