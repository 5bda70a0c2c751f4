"""Syncing the config's deployments into the store, where the daemon and the CLI read them.

The store keeps what the file cannot: an interval's anchor (when the deployment was first
registered, so a restart does not shift its fire times), the last and next fire, and the
pause flag with who, when, why and until when. A sync changes definitions and never those,
except that a file's ``paused = true/false`` is applied when it changes: the store keeps
the value the file had at the last sync (``config_paused``), and a sync that finds the
same value leaves the pause alone, so a file that keeps saying ``paused = false`` does not
undo an operator's pause, a pause until a time or a pause after failures at every reload.
A value the file states anew applies fully: ``false`` resumes, ``true`` pauses until
resumed (also one an operator paused until a time). Keeping ``config_paused`` up to date
is bookkeeping, not a change.
A deployment registered with ``paused = true`` starts paused. It also stores the parameter
JSON schema of each deployment's flow, when the load checked it.

Deployments belong to a source: the config file (``CONFIG_SOURCE``) or a script serving
them (``serve:<script path>``, ``gnomon.serve``). A sync makes the store's deployments of
its own source those it is given: it never deactivates another source's, and it refuses a
name another source has active (the first definition stands; an inactive one is taken
over). One exception: a script serves its deployments only while it holds the store's
daemon lock, so a sync by the lock's holder (``lock_held``) that finds another script's
deployment active finds one whose script was killed (SIGKILL, a power loss) before it
could retire it, and takes it over too (``taken_over``). The config file's stay refused:
the file still defines them while no daemon runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from gnomon.deployments._models import Deployment

if TYPE_CHECKING:
    from gnomon.store import Actor, ControlStore, DeploymentStore
    from gnomon.store.rows import DeploymentRow

# The source of the config file's deployments; rows older than the column have None.
CONFIG_SOURCE = "config"
SERVE_PREFIX = "serve:"

# A deployment's column values by name, as a sync compares and writes them.
Columns = dict[str, Any]

# Columns a deployment's definition in the file sets; a difference in any is a change.
DEFINITION = (
    "flow",
    "schedule_kind",
    "schedule",
    "schedule_specs",
    "timezone",
    "parameters",
    "tags",
    "policies",
    "description",
)


@dataclasses.dataclass(frozen=True)
class SyncResult:
    """Deployment names by what the sync did to them; a re-added deployment is ``added``."""

    added: list[str]
    changed: list[str]
    removed: list[str]
    unchanged: list[str]
    # The definition's columns that changed, by changed deployment ("schedule", "policies"),
    # and "paused" when the file's pause was applied.
    fields: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    # Names another source has active, with that source: not synced (see ``owner``).
    refused: dict[str, str] = dataclasses.field(default_factory=dict)
    # Names taken over from a script no longer serving them, with its source (also in
    # ``added``).
    taken_over: dict[str, str] = dataclasses.field(default_factory=dict)

    def refusals(self, source: str) -> list[str]:
        """A line per refused name, naming both sources."""
        return [
            refusal_message(name, source, other) for name, other in sorted(self.refused.items())
        ]


def refusal_message(name: str, source: str, other: str) -> str:
    """Why ``source`` may not define ``name``: ``other`` has it active; and what to do."""
    refused = f"deployment {name!r} of {describe_source(source)} is refused"
    if other.startswith(SERVE_PREFIX):
        return (
            f"{refused}: {describe_source(other)} serves it (rename one of them, or stop that"
            f" script; if it is no longer running, `gnomon deployments release {name}`)"
        )
    return (
        f"{refused}: the config file defines it, and the config file keeps it while no daemon"
        " runs (rename one of them, or remove it from the config file and run `gnomon"
        " deployments apply`)"
    )


def takeover_message(name: str, source: str, other: str) -> str:
    """That ``source`` took ``name`` over from the script ``other``, which was not running."""
    return (
        f"deployment {name!r} taken over by {describe_source(source)} from"
        f" {describe_source(other)}, which is not running (it was stopped without retiring it:"
        " killed, or its machine went down)"
    )


def record_takeovers(store: ControlStore, result: SyncResult, source: str, actor: Actor) -> None:
    """An audit entry (``takeover``) for each deployment ``result`` took over by ``source``,
    naming the script it was taken from."""
    from gnomon.store import AuditAction

    for name, other in sorted(result.taken_over.items()):
        detail = {"from": other, "to": source}
        store.record_audit(actor, AuditAction.TAKEOVER, name, "its script is not running", detail)


def refuses(row: DeploymentRow, source: str, *, lock_held: bool) -> bool:
    """Whether ``source`` may not take ``row``'s name: another source has it active, and
    that is the config file, or a script that may still be serving it. A holder of the
    store's daemon lock (``lock_held``) knows that no other script is (see above)."""
    other = owner(row)
    if not row.active or other == source:
        return False
    return not (lock_held and other.startswith(SERVE_PREFIX))


def owner(row: DeploymentRow) -> str:
    """The source that defines a stored deployment (rows older than the column: the config)."""
    return row.source or CONFIG_SOURCE


def describe_source(source: str) -> str:
    """A source in words: "the config file", "the script /srv/jobs.py (serve)"."""
    if source.startswith(SERVE_PREFIX):
        return f"the script {source.removeprefix(SERVE_PREFIX)} (serve)"
    return "the config file"


def sync_deployments(
    store: DeploymentStore,
    deployments: Sequence[Deployment],
    now: datetime,
    *,
    keep: Collection[str] = (),
    schemas: Mapping[str, dict[str, Any]] | None = None,
    source: str = CONFIG_SOURCE,
    lock_held: bool = False,
) -> SyncResult:
    """Make the store's deployments of ``source`` those given, in one write transaction.

    New ones are inserted, changed ones updated (keeping their anchor and last fire), and
    active ones of ``source`` it no longer has are marked inactive: they stop scheduling and
    their history stays. A name another source has active is left alone and listed in
    ``refused``, unless the caller holds the store's daemon lock (``lock_held``) and that
    source is a script: then it is taken over as an inactive one would be, and listed in
    ``taken_over``. ``keep`` names deployments to leave as they are although absent
    (on a reload, those whose new definition has problems keep their last good one).

    ``schemas`` are flows' parameter schemas by entrypoint (``LoadResult.schemas``): a
    deployment whose flow has one stores it; one whose flow has none keeps its stored
    schema, unless its flow changed (then it has none). A schema is the flow's, not the
    file's: storing one does not count as a change of the deployment.
    """
    plan = _Plan(deployments, now, frozenset(keep), schemas or {}, source, lock_held)
    store.merge_deployments(plan)
    return plan.result


def release_deployment(store: DeploymentStore, name: str, source: str, now: datetime) -> bool:
    """Retire ``name`` (inactive, its history kept) if ``source`` still has it active, as
    its script would have at its stop; whether it did. For a script that was killed: the
    caller makes sure it is not running (``gnomon deployments release``)."""
    released = []

    def merge(current: dict[str, DeploymentRow]) -> tuple[list[Columns], dict[str, Columns]]:
        row = current.get(name)
        if row is None or not row.active or owner(row) != source:
            return [], {}
        released.append(name)
        return [], {name: {"active": False, "updated": now}}

    store.merge_deployments(merge)
    return bool(released)


class _Plan:
    """The merge ``merge_deployments`` runs inside its transaction; records what it did."""

    def __init__(
        self,
        deployments: Sequence[Deployment],
        now: datetime,
        keep: frozenset[str],
        schemas: Mapping[str, dict[str, Any]],
        source: str,
        lock_held: bool,
    ):
        self.deployments = deployments
        self.source = source
        self.lock_held = lock_held
        self.now = now
        self.keep = keep
        self.schemas = schemas
        self.result = SyncResult([], [], [], [])

    def __call__(
        self, current: dict[str, DeploymentRow]
    ) -> tuple[list[Columns], dict[str, Columns]]:
        inserts: list[Columns] = []
        updates: dict[str, Columns] = {}
        for deployment in self.deployments:
            row = current.get(deployment.name)
            if row is not None and refuses(row, self.source, lock_held=self.lock_held):
                self.result.refused[deployment.name] = owner(row)
                continue
            if row is None:
                inserts.append(self._new_row(deployment))
                self.result.added.append(deployment.name)
                continue
            active = row.active
            if active and owner(row) != self.source:  # a killed script's (see ``refuses``)
                self.result.taken_over[deployment.name] = owner(row)
                active = False  # taken over as a retired one is
            values, outcome = self._changes(deployment, row, active)
            if values:
                updates[deployment.name] = {**values, "updated": self.now}
            outcome.append(deployment.name)
        configured = {deployment.name for deployment in self.deployments}
        for name, row in sorted(current.items()):
            mine = owner(row) == self.source
            if row.active and mine and name not in configured and name not in self.keep:
                updates[name] = {"active": False, "updated": self.now}
                self.result.removed.append(name)
        return inserts, updates

    def _new_row(self, deployment: Deployment) -> Columns:
        interval = deployment.needs_anchor
        return {
            "name": deployment.name,
            **definition(deployment),
            "source_file": _source(deployment),
            "source": self.source,
            # An interval (or an rrule) counts from its first registration unless the file
            # pins it.
            "anchor": deployment.anchor or (self.now if interval else None),
            "active": True,
            **_pause_columns(deployment, bool(deployment.paused), self.now),
            "config_paused": deployment.paused,
            "last_fire": None,
            "fires_from": self.now,
            "registered_at": self.now,
            "updated": self.now,
            "parameter_schema": self.schemas.get(deployment.flow),
        }

    def _changes(
        self, deployment: Deployment, row: DeploymentRow, active: bool
    ) -> tuple[Columns, list[str]]:
        """The columns to update, and which result list the deployment belongs in
        (``active``: whether ``row`` is this source's and scheduled)."""
        wanted = definition(deployment)
        differing = differences(deployment, row)
        values = {column: wanted[column] for column in DEFINITION if column in differing}
        if "anchor" in differing:
            values["anchor"] = deployment.anchor
        elif deployment.needs_anchor and row.anchor is None:
            values["anchor"] = self.now  # a cron deployment that became an interval
        fields = sorted(column for column in DEFINITION if column in differing)
        if "paused" in differing:
            values.update(_pause_columns(deployment, bool(deployment.paused), self.now))
            fields.append("paused")
        if fields:
            self.result.fields[deployment.name] = fields
        outcome = self.result.changed if values else self.result.unchanged
        if row.config_paused != deployment.paused:  # what the file says, kept: not a change
            values["config_paused"] = deployment.paused
        if not active:
            # Back in the config, or taken over: the time it was out is not caught up.
            values.update(active=True, fires_from=self.now)
            outcome = self.result.added
        if row.source_file != _source(deployment):  # moved to another file: not a change
            values["source_file"] = _source(deployment)
        if row.source != self.source:  # one taken over, or older than the column
            values["source"] = self.source
        schema = self.schemas.get(deployment.flow)
        if (schema is not None or "flow" in values) and row.parameter_schema != schema:
            values["parameter_schema"] = schema  # the flow's, not a change of the file's
        return values, outcome


def differences(deployment: Deployment, row: DeploymentRow) -> list[str]:
    """What a sync would change in the stored ``row`` to match the file's ``deployment``:
    columns of its definition, an anchor the file pins, a pause the file states anew
    (``paused`` other than at the last sync, and other than the store's pause: see
    ``_pause_differs``)."""
    wanted = definition(deployment)
    changed = [column for column in DEFINITION if getattr(row, column) != wanted[column]]
    if deployment.anchor is not None and row.anchor != deployment.anchor:
        changed.append("anchor")
    stated = deployment.paused
    if stated is not None and stated != row.config_paused and _pause_differs(stated, row):
        changed.append("paused")
    return changed


def _pause_differs(stated: bool, row: DeploymentRow) -> bool:
    """Whether the file's newly stated ``paused`` changes the store's pause: ``false``
    resumes a paused deployment; ``true`` pauses an unpaused one, and makes a pause that
    would end by itself (an operator's ``--until``/``--for``) last until resumed, so that
    the file's word is not undone when that pause ends."""
    if not stated:
        return bool(row.paused)
    return not row.paused or row.paused_until is not None


class Drift(StrEnum):
    """How the config file and the store (what the daemon loaded) disagree on a deployment."""

    NOT_LOADED = "not_loaded"  # in the file, not (or no longer) scheduled
    NOT_IN_CONFIG = "not_in_config"  # scheduled, but the file no longer has it
    CHANGED = "changed"  # both, but the file's definition was edited since it was loaded
    INVALID = "invalid"  # the file's version has problems: the loaded one stays


@dataclasses.dataclass(frozen=True)
class Comparison:
    """One deployment, as the file has it (``deployment``) and as the store does (``row``,
    if the daemon schedules it), and how they differ (``drift`` None: they agree)."""

    name: str
    deployment: Deployment | None
    row: DeploymentRow | None
    drift: Drift | None
    changed: tuple[str, ...] = ()


def compare(
    deployments: Sequence[Deployment], failed: Collection[str], stored: Sequence[DeploymentRow]
) -> list[Comparison]:
    """The file's ``deployments`` (``failed``: names whose entry has problems) against the
    store's rows: in the file's order, then the deployments only the store schedules."""
    active = {row.name: row for row in stored if row.active and owner(row) == CONFIG_SOURCE}
    compared = []
    for deployment in deployments:
        row = active.pop(deployment.name, None)
        if row is None:
            compared.append(Comparison(deployment.name, deployment, None, Drift.NOT_LOADED))
            continue
        changed = tuple(differences(deployment, row))
        drift = Drift.CHANGED if changed else None
        compared.append(Comparison(deployment.name, deployment, row, drift, changed))
    for name, row in sorted(active.items()):
        drift = Drift.INVALID if name in failed else Drift.NOT_IN_CONFIG
        compared.append(Comparison(name, None, row, drift))
    # Another source's (a serving script's): the file has no say in them.
    served = (row for row in stored if row.active and owner(row) != CONFIG_SOURCE)
    compared += [Comparison(row.name, None, row, None) for row in served]
    return compared


def definition(deployment: Deployment) -> Columns:
    """The store columns the file defines, as JSON-able values."""
    return {
        "flow": deployment.flow,
        "schedule_kind": deployment.schedule_kind,
        "schedule": deployment.schedule,
        "schedule_specs": deployment.schedule_document(),
        "timezone": deployment.timezone,
        "parameters": dict(deployment.parameters),
        "tags": list(deployment.tags),
        "policies": deployment.policies(),
        "description": deployment.description,
    }


def _source(deployment: Deployment) -> str | None:
    return str(deployment.source_file) if deployment.source_file is not None else None


def _pause_columns(deployment: Deployment, paused: bool, now: datetime) -> Columns:
    """The pause columns for ``paused`` as set by the file (un-pausing clears them)."""
    from gnomon.store import pause_values

    source = _source(deployment)
    return pause_values(paused, f"config file {source}", f"paused = true in {source}", now)
