"""Artifacts (``gnomon.artifacts``): written at once, read newest first.

An artifact is committed before its ``create`` call returns, as Prefect's API call is: the
code that made it may read it back at once (``Artifact.get``), and the run's end cannot
lose it. Its run's own rows go first (``commit_now``), since the artifact refers to them.
A run makes few artifacts, so a transaction each costs little; a progress update is an
UPDATE of its row.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import desc, select, update

from gnomon.store._queries import Queries
from gnomon.store._schema import artifacts, utcnow
from gnomon.store.rows import ArtifactRow

if TYPE_CHECKING:
    from gnomon.store.rows import NewArtifact

_HEX = frozenset("0123456789abcdef")


class ArtifactQueries(Queries):
    """Artifacts written by runs (and by code outside any run), read by key, run or id."""

    def insert_artifact(self, row: NewArtifact) -> None:
        """Store a new artifact now, after every row this process recorded before it."""
        self.commit_now()
        now = utcnow()
        with self.engine.begin() as connection:
            connection.execute(artifacts.insert(), {"created": now, "updated": now, **row})

    def update_artifact(self, id: str, data: Any, description: str | None = None) -> bool:
        """Replace artifact ``id``'s data (and its description, if given) now; False if
        there is no such artifact."""
        values: dict[str, Any] = {"data": data, "updated": utcnow()}
        if description is not None:
            values["description"] = description
        with self.engine.begin() as connection:
            changed = connection.execute(
                update(artifacts).where(artifacts.c.id == id).values(**values)
            ).rowcount
        return bool(changed)

    def read_artifacts(
        self,
        *,
        key: str | None = None,
        flow_run_id: str | None = None,
        id_prefix: str | None = None,
        limit: int | None = None,
    ) -> list[ArtifactRow]:
        """Artifacts newest first (by creation, then id): a key's history, a run's, those
        whose id starts with ``id_prefix`` (lowercase hex), or all; at most ``limit``."""
        statement = select(artifacts).order_by(desc(artifacts.c.created), desc(artifacts.c.id))
        if key is not None:
            statement = statement.where(artifacts.c.key == key)
        if flow_run_id is not None:
            statement = statement.where(artifacts.c.flow_run_id == flow_run_id)
        if id_prefix is not None:
            if not id_prefix or not set(id_prefix) <= _HEX:
                return []  # no id has it; and no LIKE pattern is built from other text
            statement = statement.where(artifacts.c.id.startswith(id_prefix))
        if limit is not None:
            statement = statement.limit(limit)
        return self._all(statement, ArtifactRow)
