"""Variables and secrets as operators manage them: ``gnomon variable``, ``gnomon secret``,
their API routes and the dashboard's variables page, all through ``VariableOperations``.

Names and values follow the rules flows follow (``gnomon.flows``' ``check_variable_name``,
``variable_value``, ``check_secret_name``): a bad one is InvalidInput (exit 2, 422). Each
change is the store's, written with its audit row. A secret's value goes in sealed by the
key of ``gnomon._vault`` and never comes out here: its views hold its name and dates only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gnomon.control._operations import Conflict, UnknownName
from gnomon.control._views import View, iso
from gnomon.exceptions import InvalidInput
from gnomon.flows import (
    check_secret_name,
    check_secret_value,
    check_tags,
    check_variable_name,
    variable_value,
)

if TYPE_CHECKING:
    from gnomon._vault import Vault
    from gnomon.store import Actor, VariableStore
    from gnomon.store.rows import SecretRow, VariableRow

_OVERWRITE = 'to replace it, give --overwrite (the API: "overwrite": true)'


class VariableOperations:
    """Variables and secrets, changed by one actor (a user or a token)."""

    def __init__(self, store: VariableStore, actor: Actor) -> None:
        self.store = store
        self.actor = actor

    # Variables.

    def variable(self, name: str) -> VariableRow:
        """Variable ``name``; UnknownName (with a suggestion) if there is none."""
        row = self.store.read_variable(check_variable_name(name))
        if row is None:
            raise UnknownName("variable", name, [row.name for row in self.store.read_variables()])
        return row

    def set_variable(
        self, name: str, value: Any, tags: list[str] | None = None, overwrite: bool = False
    ) -> bool:
        """Create variable ``name``, or replace it with ``overwrite``; True if it replaced
        one. Conflict if it exists and ``overwrite`` is not given."""
        check_variable_name(name)
        stored, tag_list = variable_value(name, value), check_tags(tags)
        replaced = self.store.write_variable(name, stored, tag_list, overwrite, self.actor)
        if replaced is None:
            raise Conflict(f'variable "{name}" exists; {_OVERWRITE}')
        return replaced

    def remove_variable(self, name: str) -> None:
        if not self.store.delete_variable(check_variable_name(name), self.actor):
            raise UnknownName("variable", name, [row.name for row in self.store.read_variables()])

    # Secrets.

    def set_secret(
        self, name: str, value: Any, overwrite: bool = False, vault: Vault | None = None
    ) -> bool:
        """Seal ``value`` as secret ``name`` (with the configured key unless ``vault``);
        True if it replaced one. Conflict if it exists and ``overwrite`` is not given;
        SecretsKeyError if there is no usable key."""
        from gnomon._vault import open_vault

        check_secret_value(check_secret_name(name), value)
        if value == "":
            raise InvalidInput(f'the value for secret "{name}" is empty')
        ciphertext = (vault or open_vault()).seal(value)
        replaced = self.store.write_secret(name, ciphertext, overwrite, self.actor)
        if replaced is None:
            raise Conflict(f'secret "{name}" exists; {_OVERWRITE}')
        return replaced

    def remove_secret(self, name: str) -> None:
        if not self.store.delete_secret(check_secret_name(name), self.actor):
            raise UnknownName("secret", name, [row.name for row in self.store.read_secrets()])

    def rotate_secrets(self, vault: Vault | None = None) -> list[str]:
        """Seal every secret again with the key file's first key (see ``gnomon._vault``),
        in one transaction; the names. SecretsKeyError (nothing changed) if a secret
        cannot be opened with the file's keys."""
        from gnomon._vault import open_vault

        return self.store.rewrite_secrets((vault or open_vault()).reseal, self.actor)


def variable_view(row: VariableRow) -> View:
    return {
        "name": row.name,
        "value": row.value,
        "tags": list(row.tags or []),
        "created": iso(row.created),
        "updated": iso(row.updated),
    }


def secret_view(row: SecretRow) -> View:
    """A secret as listed: its name, when it was set and by whom; never its value."""
    return {
        "name": row.name,
        "created": iso(row.created),
        "updated": iso(row.updated),
        "updated_by": row.updated_by,
    }
