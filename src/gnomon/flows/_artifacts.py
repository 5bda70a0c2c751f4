"""Artifacts: what a run publishes beside its logs (a markdown report, a table, a link, an
image, a progress bar), Prefect 3's ``prefect.artifacts`` on gnomon's own store.

Each create stores a row with the current flow run and task run (neither outside a run, as
Prefect still allows), committed before the call returns. A key names an artifact's
history: each create with it adds a row, and the newest is its latest. ``data`` holds what
Prefect's server holds, so ``Artifact.get(key).data`` reads the same: markdown text (a
link is markdown too), a table as JSON text with NaN as null, progress as a number from 0
to 100, an image's URL. In asynchronous code the functions return awaitables, as Prefect's
do (see ``_dispatch``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, cast
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from gnomon._text import valid_json, valid_text
from gnomon.exceptions import ObjectNotFound
from gnomon.flows._context import flow_run_var, task_run_var
from gnomon.flows._dispatch import async_dispatch
from gnomon.store.rows import ArtifactRow

if TYPE_CHECKING:
    from gnomon.store import RunStore
    from gnomon.store.rows import NewArtifact

log = logging.getLogger("gnomon.artifacts")

ARTIFACT_KEY_RULE = "lowercase letters, numbers, and dashes"
ARTIFACT_KEY_PATTERN = r"^[a-z0-9-]*$"
MAX_ARTIFACT_KEY_LENGTH = 255  # the key column's width
_KEY = re.compile(ARTIFACT_KEY_PATTERN)

Table = dict[str, list[Any]] | list[dict[str, Any]] | list[list[Any]]


def check_artifact_key(value: str) -> str:
    """``value`` if it can be an artifact key (Prefect's rule), else ValueError saying why."""
    if not _KEY.fullmatch(value):
        raise ValueError(f"Artifact key must only contain {ARTIFACT_KEY_RULE}.")
    if len(value) > MAX_ARTIFACT_KEY_LENGTH:
        raise ValueError(f"Artifact key must be at most {MAX_ARTIFACT_KEY_LENGTH} characters.")
    return value


ArtifactKey = Annotated[str, AfterValidator(check_artifact_key)]


def _store() -> RunStore:
    from gnomon.store import get_store

    return get_store()


def _run_ids() -> tuple[str | None, str | None]:
    """The current task run's id and flow run's id (None outside them)."""
    task = task_run_var.get()
    flow = flow_run_var.get()
    if flow is None and task is not None:
        flow = task.flow_run
    return (task.task_run_id if task else None, flow.flow_run_id if flow else None)


class ArtifactResponse(BaseModel):
    """A stored artifact, as Prefect's client returns it."""

    model_config = ConfigDict(frozen=True)

    id: UUID
    created: datetime
    updated: datetime
    key: str | None
    type: str | None
    description: str | None
    data: Any
    flow_run_id: UUID | None
    task_run_id: UUID | None

    @classmethod
    def of(cls, row: ArtifactRow) -> ArtifactResponse:
        return cls(
            id=UUID(row.id),
            created=row.created,
            updated=row.updated,
            key=row.key,
            type=row.type or None,
            description=row.description,
            data=row.data,
            flow_run_id=UUID(row.flow_run_id) if row.flow_run_id else None,
            task_run_id=UUID(row.task_run_id) if row.task_run_id else None,
        )


def _latest(key: str | None) -> ArtifactResponse | None:
    rows = _store().read_artifacts(key=key, limit=1)
    return ArtifactResponse.of(rows[0]) if rows else None


class Artifact(BaseModel):
    """An artifact to create: its ``type``, its ``key`` (lowercase letters, numbers and
    dashes), a description, and ``data`` (stored as JSON text; the subclasses store their
    own forms)."""

    model_config = ConfigDict(extra="forbid")

    key: ArtifactKey | None = None
    type: str | None = Field(default=None, max_length=32)
    description: str | None = None
    data: Any = None
    flow_run_id: UUID | None = None
    task_run_id: UUID | None = None

    def _format(self) -> Any:
        return json.dumps(self.data)

    async def aformat(self) -> Any:
        return self._format()

    @async_dispatch(aformat)
    def format(self) -> Any:
        """The data as stored."""
        return self._format()

    def _create(self) -> ArtifactResponse:
        from gnomon.store import utcnow

        store = _store()
        task_run_id, flow_run_id = _run_ids()
        if self.flow_run_id is not None:
            flow_run_id = self.flow_run_id.hex
            if store.read_flow_run(flow_run_id) is None:
                raise ObjectNotFound(f"no flow run {flow_run_id} for the artifact")
        if self.task_run_id is not None:
            task_run_id = self.task_run_id.hex
        now = utcnow()
        values: dict[str, Any] = {
            "id": uuid.uuid4().hex,
            "key": self.key,
            "type": self.type or "",  # the column has no null; read back as None
            "description": valid_text(self.description) if self.description else None,
            "data": valid_json(self._format()),
            "flow_run_id": flow_run_id,
            "task_run_id": task_run_id,
            "created": now,
            "updated": now,
        }
        store.insert_artifact(cast("NewArtifact", values))
        return ArtifactResponse.of(ArtifactRow(**values))

    async def acreate(self) -> ArtifactResponse:
        """Store the artifact with the current run; the stored artifact."""
        return await asyncio.to_thread(self._create)

    @async_dispatch(acreate)
    def create(self) -> ArtifactResponse:
        """Store the artifact with the current run; the stored artifact."""
        return self._create()

    @classmethod
    async def aget(cls, key: str | None = None) -> ArtifactResponse | None:
        """The latest artifact with ``key`` (of any key if None), or None."""
        return await asyncio.to_thread(_latest, key)

    @classmethod
    @async_dispatch(aget)
    def get(cls, key: str | None = None) -> ArtifactResponse | None:
        """The latest artifact with ``key`` (of any key if None), or None."""
        return _latest(key)

    @classmethod
    async def aget_or_create(
        cls, key: str | None = None, description: str | None = None, data: Any = None, **kwargs: Any
    ) -> tuple[ArtifactResponse, bool]:
        """The latest artifact with ``key``, or a new one; whether it was created."""
        return await asyncio.to_thread(cls._get_or_create, key, description, data, kwargs)

    @classmethod
    @async_dispatch(aget_or_create)
    def get_or_create(
        cls, key: str | None = None, description: str | None = None, data: Any = None, **kwargs: Any
    ) -> tuple[ArtifactResponse, bool]:
        """The latest artifact with ``key``, or a new one; whether it was created."""
        return cls._get_or_create(key, description, data, kwargs)

    @classmethod
    def _get_or_create(
        cls, key: str | None, description: str | None, data: Any, kwargs: dict[str, Any]
    ) -> tuple[ArtifactResponse, bool]:
        found = _latest(key)
        if found is not None:
            return found, False
        return cls(key=key, description=description, data=data, **kwargs)._create(), True


class LinkArtifact(Artifact):
    """A link, stored as markdown (``[text](link)``) as Prefect stores it."""

    link: str
    link_text: str | None = None
    type: str | None = "markdown"

    def _format(self) -> str:
        return f"[{self.link_text or self.link}]({self.link})"


class MarkdownArtifact(Artifact):
    """Markdown text, shown rendered (and sanitised) on the run's page."""

    markdown: str
    type: str | None = "markdown"

    def _format(self) -> str:
        return self.markdown


class TableArtifact(Artifact):
    """A table: a list of rows as dicts, a dict of columns, or a list of rows as lists."""

    table: Table
    type: str | None = "table"

    def _format(self) -> str:
        return json.dumps(_without_nan(self.table))


def _without_nan(item: Any) -> Any:
    """``item`` with every float NaN in it (at any depth of lists and dicts) as None."""
    if isinstance(item, list):
        return [_without_nan(each) for each in item]
    if isinstance(item, dict):
        return {name: _without_nan(value) for name, value in item.items()}
    if isinstance(item, float) and math.isnan(item):
        return None
    return item


class ProgressArtifact(Artifact):
    """Progress in percent: a value outside 0 to 100 is logged and clamped, as by Prefect."""

    progress: float
    type: str | None = "progress"

    @field_validator("progress")
    @classmethod
    def _a_number(cls, value: float) -> float:
        if math.isnan(value):
            raise ValueError("progress must be a number from 0 to 100, not NaN")
        return value

    def _format(self) -> float:
        if not 0.0 <= self.progress <= 100.0:
            clamped = max(0.0, min(self.progress, 100.0))
            # Prefect's two lines, word for word.
            log.warning("ProgressArtifact received an invalid value, Progress: %s%%", self.progress)
            log.warning("Interpreting as %s%% progress", clamped)
            self.progress = clamped
        return self.progress


class ImageArtifact(Artifact):
    """An image at a URL, shown on the run's page (http and https URLs only)."""

    image_url: str
    type: str | None = "image"

    def _format(self) -> str:
        return self.image_url


def _artifact_id(value: UUID | str) -> str:
    """An artifact's id as stored (32 hex digits), from a UUID or its text."""
    try:
        return value.hex if isinstance(value, UUID) else UUID(str(value)).hex
    except ValueError:
        raise ValueError(f"artifact_id must be an artifact's id (a UUID), not {value!r}") from None


def _update_progress(artifact_id: UUID | str, progress: float, description: str | None) -> UUID:
    artifact = ProgressArtifact(description=description, progress=progress)
    stored = _artifact_id(artifact_id)
    if not _store().update_artifact(stored, artifact._format(), description or None):
        raise ObjectNotFound(f"no artifact with id {stored}")
    return UUID(stored)


async def acreate_link_artifact(
    link: str, link_text: str | None = None, key: str | None = None, description: str | None = None
) -> UUID:
    """Create a link artifact (stored as markdown); its id."""
    artifact = LinkArtifact(key=key, description=description, link=link, link_text=link_text)
    return (await artifact.acreate()).id


@async_dispatch(acreate_link_artifact)
def create_link_artifact(
    link: str, link_text: str | None = None, key: str | None = None, description: str | None = None
) -> UUID:
    """Create a link artifact (stored as markdown); its id."""
    artifact = LinkArtifact(key=key, description=description, link=link, link_text=link_text)
    return artifact._create().id


async def acreate_markdown_artifact(
    markdown: str, key: str | None = None, description: str | None = None
) -> UUID:
    """Create a markdown artifact; its id."""
    return (
        await MarkdownArtifact(key=key, description=description, markdown=markdown).acreate()
    ).id


@async_dispatch(acreate_markdown_artifact)
def create_markdown_artifact(
    markdown: str, key: str | None = None, description: str | None = None
) -> UUID:
    """Create a markdown artifact; its id."""
    return MarkdownArtifact(key=key, description=description, markdown=markdown)._create().id


async def acreate_table_artifact(
    table: Table, key: str | None = None, description: str | None = None
) -> UUID:
    """Create a table artifact (NaN stored as null); its id."""
    return (await TableArtifact(key=key, description=description, table=table).acreate()).id


@async_dispatch(acreate_table_artifact)
def create_table_artifact(
    table: Table, key: str | None = None, description: str | None = None
) -> UUID:
    """Create a table artifact (NaN stored as null); its id."""
    return TableArtifact(key=key, description=description, table=table)._create().id


async def acreate_progress_artifact(
    progress: float, key: str | None = None, description: str | None = None
) -> UUID:
    """Create a progress artifact (percent, 0 to 100); its id, for its updates."""
    return (
        await ProgressArtifact(key=key, description=description, progress=progress).acreate()
    ).id


@async_dispatch(acreate_progress_artifact)
def create_progress_artifact(
    progress: float, key: str | None = None, description: str | None = None
) -> UUID:
    """Create a progress artifact (percent, 0 to 100); its id, for its updates."""
    return ProgressArtifact(key=key, description=description, progress=progress)._create().id


async def aupdate_progress_artifact(
    artifact_id: UUID, progress: float, description: str | None = None
) -> UUID:
    """Set a progress artifact's progress (and description, if given); its id."""
    return await asyncio.to_thread(_update_progress, artifact_id, progress, description)


@async_dispatch(aupdate_progress_artifact)
def update_progress_artifact(
    artifact_id: UUID, progress: float, description: str | None = None
) -> UUID:
    """Set a progress artifact's progress (and description, if given); its id."""
    return _update_progress(artifact_id, progress, description)


async def acreate_image_artifact(
    image_url: str, key: str | None = None, description: str | None = None
) -> UUID:
    """Create an image artifact from the image's URL; its id."""
    return (await ImageArtifact(key=key, description=description, image_url=image_url).acreate()).id


@async_dispatch(acreate_image_artifact)
def create_image_artifact(
    image_url: str, key: str | None = None, description: str | None = None
) -> UUID:
    """Create an image artifact from the image's URL; its id."""
    return ImageArtifact(key=key, description=description, image_url=image_url)._create().id
