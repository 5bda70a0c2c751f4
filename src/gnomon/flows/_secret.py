"""Prefect's ``Secret`` block: a value kept encrypted in the store, loaded by name.

``Secret(value=...).save(name)`` seals the value with the key of ``gnomon._vault`` (never
in the database) and stores the ciphertext; ``Secret.load(name).get()`` opens it. The value
is a pydantic ``Secret`` (or a ``SecretStr`` given as one), so ``repr``, ``str`` and
``model_dump`` show ``**********``. A loaded or saved value is also remembered by the
process's masking (``gnomon._secrets.remember_secret``): a flow that logs or prints it, or
raises an error quoting it, stores ``********`` in its place.

Names follow Prefect's block document names: lowercase letters, digits and ``-``. Saves
and deletions are audited (never the value), with the run or the OS user as the actor.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, PrivateAttr, SecretStr, field_validator
from pydantic import Secret as PydanticSecret

from gnomon._secrets import remember_secret
from gnomon.exceptions import InvalidInput
from gnomon.flows._dispatch import async_dispatch
from gnomon.flows._variables import checked_name, json_text, python_actor

if TYPE_CHECKING:
    from gnomon.store import Store

T = TypeVar("T")

SECRET_NAME = re.compile(r"[a-z0-9-]{1,255}")
NAME_RULE = 'lowercase letters, digits and "-", at most 255 characters'


def is_secret_name(name: object) -> bool:
    return isinstance(name, str) and SECRET_NAME.fullmatch(name) is not None


def check_secret_name(name: object) -> str:
    """``name`` if it can name a secret, else InvalidInput (a ValueError) saying why."""
    return checked_name("secret", SECRET_NAME, NAME_RULE, name)


def check_secret_value(name: str, value: Any) -> Any:
    """``value`` if a secret can hold it (a string or a JSON value), else InvalidInput
    naming the secret (never quoting the value)."""
    if json_text(value)[0] is None:
        raise InvalidInput(
            f'invalid value for secret "{name}": a string or a JSON value (a'
            f" {type(value).__name__} is not one)"
        )
    return value


def _not_found(name: str) -> ValueError:
    return ValueError(f"Unable to find block document named {name} for block type secret")


def _store() -> Store:
    from gnomon.store import get_store

    return get_store()


class Secret(BaseModel, Generic[T]):
    """A value that should be kept secret (Prefect's ``prefect.blocks.system.Secret``)."""

    # A validation error must not quote the value it refused (pydantic adds input_value).
    model_config = ConfigDict(hide_input_in_errors=True)

    value: SecretStr | PydanticSecret[Any]
    _block_document_name: str | None = PrivateAttr(default=None)

    @field_validator("value", mode="before")
    @classmethod
    def _hidden(cls, value: Any) -> Any:
        if isinstance(value, SecretStr | PydanticSecret):
            return value
        if isinstance(value, bytes):  # text as bytes, which Prefect's SecretStr takes too
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError:
                raise ValueError("a secret given as bytes must be UTF-8 text") from None
        if json_text(value)[0] is None:
            raise ValueError(f"a secret's value is a string or a JSON value, not a {type(value)}")
        return PydanticSecret[type(value)](value)  # type: ignore[misc,operator]

    def __str__(self) -> str:
        return repr(self)

    def get(self) -> Any:
        """The secret's value; a string holding JSON is given decoded, as Prefect does."""
        value = self.value.get_secret_value()
        if isinstance(value, str):
            try:
                return json.loads(value)
            except json.JSONDecodeError:
                return value
        return value

    # Loading.

    @classmethod
    async def aload(cls, name: str, validate: bool = True) -> Secret[Any]:
        """``load``, for async code."""
        return await asyncio.to_thread(cls._load, name)

    @classmethod
    @async_dispatch(aload)
    def load(cls, name: str, validate: bool = True) -> Secret[Any]:
        """The secret saved as ``name``; ValueError if there is none, SecretsKeyError if
        the key is missing or does not open it. ``validate`` is accepted for Prefect's
        signature (a secret's schema never changes)."""
        return cls._load(name)

    @classmethod
    def _load(cls, name: str) -> Secret[Any]:
        from gnomon._vault import open_vault

        row = _store().read_secret(name) if is_secret_name(name) else None
        if row is None:
            raise _not_found(name)
        value = open_vault().unseal(name, row.ciphertext)
        remember_secret(value)
        secret = cls(value=value)
        secret._block_document_name = name
        return secret

    # Saving.

    async def asave(self, name: str | None = None, overwrite: bool = False) -> None:
        """``save``, for async code."""
        await asyncio.to_thread(self._save, name, overwrite)

    @async_dispatch(asave)
    def save(self, name: str | None = None, overwrite: bool = False) -> None:
        """Save the value encrypted as ``name`` (or the name it was loaded from); ValueError
        if that name is taken and not ``overwrite``. Returns None: there is no block
        document id (Prefect returns one)."""
        self._save(name, overwrite)

    def _save(self, name: str | None, overwrite: bool) -> None:
        from gnomon._vault import open_vault

        name = self._block_document_name if name is None else name
        if name is None:
            raise ValueError(
                "You're attempting to save a block document without a name. Please call"
                " `save` with a `name`."
            )
        check_secret_name(name)
        value = self.value.get_secret_value()
        ciphertext = open_vault().seal(value)
        if _store().write_secret(name, ciphertext, overwrite, python_actor()) is None:
            raise ValueError(
                f"You are attempting to save values with a name ({name}) that is already in"
                " use for this block type. If you would like to overwrite the values that"
                " are saved, then save with `overwrite=True`."
            )
        remember_secret(value)
        self._block_document_name = name

    # Deleting.

    @classmethod
    async def adelete(cls, name: str) -> None:
        """``delete``, for async code."""
        await asyncio.to_thread(cls._delete, name)

    @classmethod
    @async_dispatch(adelete)
    def delete(cls, name: str) -> None:
        """Delete the secret saved as ``name``; ValueError if there is none."""
        cls._delete(name)

    @classmethod
    def _delete(cls, name: str) -> None:
        if not (is_secret_name(name) and _store().delete_secret(name, python_actor())):
            raise _not_found(name)
