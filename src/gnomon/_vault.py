"""Secrets encrypted at rest: where the key is, and Fernet over it.

A secret's value is stored as a Fernet token (AES-128-CBC with an HMAC-SHA256, from
``cryptography``, the Python Cryptographic Authority's library) of its JSON, so the
database alone, or a backup of it, gives nothing away. The key is never in the database:
it is read from the file the setting ``secrets_key_file`` names, else from
``$CREDENTIALS_DIRECTORY/gnomon-secrets-key`` (systemd's ``LoadCredential=``), each time a
secret is sealed or opened, so a key file changed for a rotation is read at once.

A key file holds one key per line (``#`` comments and blank lines aside). The first seals;
every one of them opens (``MultiFernet``). Rotation: put a new key first, keep the old one
below it, run ``gnomon secret rotate`` (every secret sealed again with the first key, in
one transaction), then remove the old line.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gnomon._files import key_file_exposure
from gnomon.exceptions import SecretsKeyError

if TYPE_CHECKING:
    from cryptography.fernet import MultiFernet

    from gnomon._settings import Settings

CREDENTIAL = "gnomon-secrets-key"  # the name systemd's LoadCredential= gives the key
KEY_FILE_HELP = (
    "set secrets_key_file in the config (or GNOMON_SECRETS_KEY_FILE) to a key file, or give"
    f" the daemon's unit LoadCredential={CREDENTIAL}:/path/to/key; `gnomon secret key-gen"
    " PATH` makes a key file"
)


@dataclass(frozen=True)
class Vault:
    """The keys of one key file: seals values with the first, opens with any."""

    fernet: MultiFernet
    source: str  # where the keys came from, for messages

    def seal(self, value: Any) -> str:
        """``value`` (JSON-able) as a Fernet token: the text stored for it."""
        return self.fernet.encrypt(json.dumps(value).encode()).decode("ascii")

    def unseal(self, name: str, ciphertext: str) -> Any:
        """The value of secret ``name`` from its stored token; SecretsKeyError if no key of
        this file opens it (it was sealed with another key)."""
        from cryptography.fernet import InvalidToken

        try:
            return json.loads(self.fernet.decrypt(ciphertext.encode("ascii")))
        except (InvalidToken, UnicodeEncodeError, ValueError):
            raise SecretsKeyError(
                f'secret "{name}" cannot be decrypted with the key(s) in {self.source}: it'
                " was encrypted with another key (a key file replaced without `gnomon"
                " secret rotate`?)"
            ) from None

    def reseal(self, ciphertext: str) -> str:
        """A stored token sealed again with the first key (``gnomon secret rotate``)."""
        from cryptography.fernet import InvalidToken

        try:
            return self.fernet.rotate(ciphertext.encode("ascii")).decode("ascii")
        except InvalidToken:
            raise SecretsKeyError(
                f"a stored secret cannot be decrypted with the keys in {self.source}: keep"
                " the old key below the new one until the rotation is done"
            ) from None


def key_file(settings: Settings) -> Path:
    """The key file: the setting, else systemd's credential; SecretsKeyError if neither."""
    if settings.secrets_key_file is not None:
        return settings.secrets_key_file
    credentials = os.environ.get("CREDENTIALS_DIRECTORY")
    if credentials:
        return Path(credentials) / CREDENTIAL
    raise SecretsKeyError(
        "no key for secrets: secrets_key_file is not set and $CREDENTIALS_DIRECTORY is not"
        f" either; {KEY_FILE_HELP}"
    )


def open_vault(settings: Settings | None = None) -> Vault:
    """The vault of the configured key file, read now; SecretsKeyError naming the file
    and what is wrong with it (missing, unreadable, readable by anyone, not a key)."""
    from cryptography.fernet import Fernet, MultiFernet

    if settings is None:
        from gnomon._settings import get_settings

        settings = get_settings()
    path = key_file(settings)
    where = (
        f"{path} (secrets_key_file)"
        if settings.secrets_key_file is not None
        else f"{path} ($CREDENTIALS_DIRECTORY/{CREDENTIAL})"
    )
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or "not a key file (not ASCII)"
        raise SecretsKeyError(f"cannot read the key for secrets {where}: {reason}") from None
    exposure = key_file_exposure(mode)
    if exposure is not None:
        raise SecretsKeyError(f"the key for secrets {where} {exposure}")
    keys = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            keys.append(Fernet(line))
        except ValueError:
            raise SecretsKeyError(
                f"the key for secrets {where}, line {number}, is not a key: each line holds"
                " one (44 characters of URL-safe base64, as `gnomon secret key-gen` writes)"
            ) from None
    if not keys:
        raise SecretsKeyError(f"the key file for secrets {where} holds no key")
    return Vault(MultiFernet(keys), where)


def new_key() -> str:
    """A new random key, as a key file's line holds it."""
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode("ascii")


def write_key_file(path: Path) -> None:
    """Write a new key to ``path``, a file created 0600 (never over an existing one:
    losing a key loses every secret sealed with it); FileExistsError if it exists."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        os.write(fd, f"{new_key()}\n".encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
