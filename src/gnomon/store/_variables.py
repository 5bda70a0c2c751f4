"""Variables and secrets: named values that operators (CLI, API) and flows (``Variable``,
``Secret``) set, each change written in one transaction with its audit row.

A secret is stored as its ciphertext only; the key that opens it is never in the database
(see ``gnomon._vault``), and its audit rows never hold its value. Creating a name that
exists without ``overwrite`` changes nothing: a write says so by returning None, and two
processes creating one name at once are told apart by the primary key (the second's
insert fails and is reported the same way).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Table, delete, select, update
from sqlalchemy.exc import IntegrityError

from gnomon.store._calls import audit_call
from gnomon.store._kinds import AuditAction
from gnomon.store._queries import Queries, execute_call
from gnomon.store._schema import secrets, utcnow, variables
from gnomon.store._values import Actor
from gnomon.store.rows import SecretRow, VariableRow


class VariableQueries(Queries):
    """Reads and audited writes of ``variables`` and ``secrets``."""

    # Variables.

    def read_variable(self, name: str) -> VariableRow | None:
        return self._one(select(variables).where(variables.c.name == name), VariableRow)

    def read_variables(self) -> list[VariableRow]:
        """Every variable, by name."""
        return self._all(select(variables).order_by(variables.c.name), VariableRow)

    def write_variable(
        self, name: str, value: Any, tags: list[str], overwrite: bool, actor: Actor
    ) -> bool | None:
        """Create variable ``name``, or replace its value and tags if ``overwrite``; True if
        it replaced one, False if it created it, None if it exists and ``overwrite`` is
        false (nothing written). Audited with the new value."""
        detail = {"value": value, "tags": tags}
        return self._write(
            variables, name, {"value": value, "tags": tags}, overwrite, actor, detail
        )

    def delete_variable(self, name: str, actor: Actor) -> bool:
        """Remove variable ``name`` (audited with its last value); False if there is none."""
        with self.engine.begin() as connection:
            found = connection.execute(
                delete(variables).where(variables.c.name == name).returning(variables.c.value)
            ).first()
            if found is not None:
                detail = {"value": found.value}
                execute_call(
                    connection, audit_call(actor, AuditAction.VARIABLE_RM, name, None, detail)
                )
        return found is not None

    # Secrets: ciphertext in, ciphertext out; the key is the caller's.

    def read_secret(self, name: str) -> SecretRow | None:
        return self._one(select(secrets).where(secrets.c.name == name), SecretRow)

    def read_secrets(self) -> list[SecretRow]:
        """Every secret, by name (ciphertexts included: they are useless without the key)."""
        return self._all(select(secrets).order_by(secrets.c.name), SecretRow)

    def write_secret(
        self, name: str, ciphertext: str, overwrite: bool, actor: Actor
    ) -> bool | None:
        """Create secret ``name``, or replace it if ``overwrite``: as ``write_variable``,
        audited without the value."""
        values = {"ciphertext": ciphertext, "updated_by": actor.name}
        return self._write(secrets, name, values, overwrite, actor, None)

    def delete_secret(self, name: str, actor: Actor) -> bool:
        """Remove secret ``name`` (audited); False if there is none."""
        with self.engine.begin() as connection:
            deleted = connection.execute(delete(secrets).where(secrets.c.name == name)).rowcount
            if deleted:
                execute_call(connection, audit_call(actor, AuditAction.SECRET_RM, name))
        return bool(deleted)

    def rewrite_secrets(self, rewrap: Callable[[str], str], actor: Actor) -> list[str]:
        """Replace every secret's ciphertext by ``rewrap`` of it (a key rotation), all in one
        transaction with one audit row; the names rewritten. The values are the same, so
        when each was set and by whom stay. If ``rewrap`` fails on one, nothing changes."""
        with self.engine.begin() as connection:
            rows = connection.execute(select(secrets.c.name, secrets.c.ciphertext)).all()
            for name, ciphertext in rows:
                connection.execute(
                    update(secrets)
                    .where(secrets.c.name == name)
                    .values(ciphertext=rewrap(ciphertext))
                )
            names = sorted(name for name, _ in rows)
            detail = {"secrets": names}
            execute_call(
                connection, audit_call(actor, AuditAction.SECRET_ROTATE, None, None, detail)
            )
        return names

    def _write(
        self,
        table: Table,
        name: str,
        values: dict[str, Any],
        overwrite: bool,
        actor: Actor,
        detail: dict[str, Any] | None,
    ) -> bool | None:
        action = AuditAction.VARIABLE_SET if table is variables else AuditAction.SECRET_SET
        key = table.c.name == name
        retries = 1  # a second attempt, after another process's insert (see below)
        while True:
            now = utcnow()
            try:
                with self.engine.begin() as connection:
                    found = connection.execute(select(table.c.name).where(key)).first()
                    if found is not None and not overwrite:
                        return None
                    if found is not None:
                        connection.execute(update(table).where(key).values(**values, updated=now))
                    else:
                        row = {"name": name, **values, "created": now, "updated": now}
                        connection.execute(table.insert(), row)
                    audit = {**(detail or {}), "replaced": found is not None}
                    execute_call(connection, audit_call(actor, action, name, None, audit, now))
                return found is not None
            except IntegrityError:
                # Another process created it between this one's check and its insert: now
                # it exists, so the second attempt replaces it or finds it taken.
                if not retries:
                    raise
                retries -= 1
