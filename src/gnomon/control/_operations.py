"""The control plane: what ``gnomon pause`` and ``POST /api/v1/deployments/{name}/pause`` both
do, so the CLI and the HTTP API cannot drift apart.

The store is the channel. An operation writes the store (with its audit entry, in the same
transaction) and then nudges a running daemon, which also polls the store every second. So
every operation works while the daemon is down, and takes effect in a running daemon within
a second; the nudge only makes that sooner. The nudge is a signal, so it reaches only a
daemon on this host; on PostgreSQL the store also notifies every daemon on the database in
the change's transaction (``Nudge``, heard by ``gnomon.daemon._listen``).
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import json
import re
import secrets
import time
import unicodedata
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from gnomon._names import NAME_RULE, is_name
from gnomon._text import quoted
from gnomon.control._inputs import check_parameters
from gnomon.exceptions import GnomonError, InvalidInput
from gnomon.states import FINAL_TYPES, StateName, StateType
from gnomon.store import AuditAction, Nudge, ReloadStatus, RunCause, TokenAccess

if TYPE_CHECKING:
    from contextlib import AbstractContextManager
    from pathlib import Path

    from gnomon.deployments import ConfigProblem
    from gnomon.store import Actor, ControlStore, FastControl
    from gnomon.store.rows import DeploymentRow, FlowRunRow, NewFlowRun

# Deployment names as the config allows them (letters, digits, '-', '_', '.'), never '..'.
_RUN_ID = re.compile(r"[0-9a-f]{4,32}")
_TOKEN_PREFIX = "gnm_"
RELOAD_WAIT = 30.0  # seconds a reload request waits for the daemon's answer
MAX_LIMIT = 1_000_000  # a concurrency limit: beyond any real one, far inside SQLite's integers


class InvalidName(InvalidInput):
    """A name or id that cannot be one: wrong characters, '..', too long, odd Unicode."""


class UnknownName(GnomonError, LookupError):
    """No deployment, run, token or limit by that name; suggests close matches."""

    def __init__(
        self, kind: str, name: str, known: Sequence[str] = (), lead: str | None = None
    ) -> None:
        self.kind = kind
        self.name = name
        shown = quoted(name, mark='"')  # a 3,000-character name is not echoed in full
        message = f"{lead or f'no {kind} named'} {shown}"
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        if close:
            message += f'; did you mean "{close[0]}"?'
        super().__init__(message)


class Conflict(GnomonError, RuntimeError):
    """The operation cannot apply to the target in its current state (a finished run)."""


class ReloadNotAnswered(GnomonError, TimeoutError):
    """The daemon did not answer a reload request in time (it may still apply it)."""

    def __init__(self, request: int, timeout: float) -> None:
        self.request = request
        super().__init__(
            f"the daemon has not answered reload request {request} within {timeout:g} s; "
            "it may still apply it (see `gnomon audit`)"
        )


@dataclass(frozen=True)
class ReloadOutcome:
    """What a reload (or an apply with no daemon) did: ``status`` is applied, partial or
    refused; ``detail`` has added, removed, changed (fields by deployment), kept_last_good
    and problems."""

    status: ReloadStatus
    detail: dict[str, Any]
    request: int | None = None  # the reload request the daemon answered

    @property
    def exit_code(self) -> int:
        """0 applied, 1 applied but for the deployments with problems, 2 nothing applied."""
        return self.status.exit_code

    @property
    def problems(self) -> list[str]:
        return list(self.detail.get("problems") or [])


class InvalidParameters(InvalidInput):
    """A run request's parameters do not fit the deployment's flow; nothing was queued."""

    def __init__(self, problems: Sequence[ConfigProblem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


def check_name(kind: str, value: str) -> str:
    """``value`` if it can be a deployment, tag or token name, else InvalidName."""
    if not is_name(value):
        raise InvalidName(f"invalid {kind} name {quoted(value)}: use {NAME_RULE}")
    return value


def check_global_limit_name(value: str) -> str:
    """``value`` if it can name a global concurrency limit (as ``concurrency("name")`` takes
    it: 1 to 255 printable characters, not a tag limit's ``tag:``), else InvalidName."""
    check_text("global concurrency limit name", value, 255)
    if not value.strip() or value.startswith("tag:"):
        raise InvalidName(
            f"invalid global concurrency limit name {repr(value)[:120]}: give 1 to 255 "
            "printable characters; tag limits (tag:NAME) are `gnomon concurrency-limit`'s"
        )
    return value


def check_run_id(value: str) -> str:
    """``value`` if it can be a run id or an id prefix (4 to 32 hex digits), else InvalidName."""
    if not isinstance(value, str) or not _RUN_ID.fullmatch(value):
        raise InvalidName(f"invalid run id {quoted(value)}: use 4 to 32 hex digits")
    return value


def check_text(what: str, value: str | None, limit: int = 1000) -> str | None:
    """Free text (a reason): at most ``limit`` characters, no control or format characters."""
    if value is None:
        return None
    if len(value) > limit or any(
        unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co") and char not in "\t"
        for char in value
    ):
        raise InvalidName(f"invalid {what}: at most {limit} printable characters")
    return value


def _tagged(rows: list[DeploymentRow], tag: str) -> list[DeploymentRow]:
    """The deployments with ``tag``; UnknownName (a usage error) if none has it."""
    check_name("tag", tag)
    tagged = [row for row in rows if tag in (row.tags or [])]
    if not tagged:
        known = sorted({each for row in rows for each in row.tags or []})
        raise UnknownName("tag", tag, known, "no deployment has the tag")
    return tagged


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A new API token: 256 random bits, prefixed so it is recognisable in a leak scan."""
    return _TOKEN_PREFIX + secrets.token_urlsafe(32)


@dataclass
class PauseResult:
    """What a pause or resume did, by deployment name; ``until``: when the pause ends by
    itself (None: when resumed)."""

    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    cancelled_runs: list[str] = field(default_factory=list)
    until: datetime | None = None


def no_daemon(_kind: str) -> None:
    """A nudge that does nothing: the daemon finds the change at its next poll."""


def typed_texts(texts: dict[str, str], schema: dict[str, Any]) -> dict[str, Any]:
    """Operator-typed values by the pause's schema: a string field's text as it is, any
    other's read as JSON if it parses (5, true, [1, 2]), else as text (the schema check then
    names what it should have been)."""
    properties = schema.get("properties") or {}
    values: dict[str, Any] = {}
    for key, text in texts.items():
        if (properties.get(key) or {}).get("type") == "string":
            values[key] = text
            continue
        try:
            values[key] = json.loads(text)
        except ValueError:
            values[key] = text
    return values


def check_flow_parameters(deployment: DeploymentRow, requested: dict[str, Any]) -> None:
    """InvalidParameters unless ``requested``, over the deployment's own parameters, fits
    its flow's stored parameter schema: every name one the flow takes, every value of its
    JSON type. A deployment stored before its flow was checked has no schema, and its
    requests are left to the run's own validation. The one check of a run request's
    parameters: the CLI, the API (and the dashboard's forms) all go through it."""
    schema = deployment.parameter_schema
    if not requested or not schema:
        return
    from gnomon.deployments import ConfigProblem, request_problems

    found = request_problems(schema, requested, deployment.parameters or {})
    if found:
        name = deployment.name
        raise InvalidParameters(
            [ConfigProblem(None, name, field, value, message) for field, value, message in found]
        )


class FastOperations:
    """The operations that only pause, resume or read, done by one actor (a user or a
    token): what ``FastControl`` is enough for (the command line's fast commands)."""

    def __init__(
        self, store: FastControl, actor: Actor, nudge: Callable[[str], None] = no_daemon
    ) -> None:
        self.store = store
        self.actor = actor
        # nudge("poll") asks a running daemon to read the store now; nudge("reload") to
        # reload its config (what `apply` needs).
        self.nudge = nudge

    # Deployments.

    def deployment(self, name: str) -> DeploymentRow:
        """The deployment row ``name``; UnknownName (with a suggestion) if there is none."""
        check_name("deployment", name)
        row = self.store.read_deployment(name)
        if row is None or not row.active:
            raise UnknownName("deployment", name, self.store.read_deployment_names())
        return row

    def select(
        self, names: Sequence[str] = (), every: bool = False, tag: str | None = None
    ) -> list[str]:
        """The deployment names an operation targets: given names, all, or those tagged."""
        if every or tag is not None:
            rows = self.store.read_deployments()
            return [row.name for row in (rows if tag is None else _tagged(rows, tag))]
        known: list[str] | None = None
        for name in names:
            check_name("deployment", name)
        active = set(self.store.read_deployment_names())
        for name in names:
            if name not in active:
                known = known or sorted(active)
                raise UnknownName("deployment", name, known)
        return list(dict.fromkeys(names))

    def pause(
        self, names: Sequence[str], reason: str | None = None, until: datetime | None = None
    ) -> PauseResult:
        """Pause deployments: no fire after this returns. Running runs go on. With
        ``until`` (``parse_pause_end``) the daemon resumes them then by itself; a paused
        deployment's pause is only ever made longer (see ``FastControl.set_paused``)."""
        return self._told(self._set_paused(names, True, reason, until))

    def resume(self, names: Sequence[str], reason: str | None = None) -> PauseResult:
        """Resume deployments from their next fire on; the paused period is not caught up.
        Also ends a pause that would have ended by itself, early."""
        return self._told(self._set_paused(names, False, reason))

    def _set_paused(
        self,
        names: Sequence[str],
        paused: bool,
        reason: str | None,
        until: datetime | None = None,
    ) -> PauseResult:
        check_text("reason", reason)
        if until is not None and until.tzinfo is None:
            raise InvalidInput("a pause's end needs a time zone (see parse_pause_end)")
        changed = self.store.set_paused(names, paused, self.actor, reason, until=until)
        unchanged = [name for name in names if name not in changed]
        return PauseResult(changed, unchanged, until=until)

    def _told(self, result: PauseResult) -> PauseResult:
        """``result``, once a running daemon is asked to read what changed, if anything did."""
        if result.changed or result.cancelled_runs:
            self.nudge("poll")
        return result

    # Runs.

    def run(self, run_id: str) -> FlowRunRow:
        """The flow run with this id or unique id prefix."""
        check_run_id(run_id)
        if len(run_id) < 32:
            matches = self.store.find_runs_by_prefix(run_id)
            if len(matches) > 1:
                raise InvalidName(f'run id prefix "{run_id}" is ambiguous; give more of it')
            run_id = matches[0] if matches else run_id
        row = self.store.read_flow_run(run_id)
        if row is None:
            raise UnknownName("run", run_id)
        return row


class Operations(FastOperations):
    """The operations of the control plane, done by one actor (a user or a token)."""

    store: ControlStore

    def __init__(
        self, store: ControlStore, actor: Actor, nudge: Callable[[str], None] = no_daemon
    ) -> None:
        super().__init__(store, actor, nudge)

    def pause(
        self,
        names: Sequence[str],
        reason: str | None = None,
        until: datetime | None = None,
        *,
        cancel_running: bool = False,
    ) -> PauseResult:
        """Pause deployments (until ``until``, if given): no fire after this returns.
        Running runs go on unless ``cancel_running``."""
        result = self._set_paused(names, True, reason, until)
        if cancel_running and names:
            for run_id in self.store.read_running_ids(names):
                if self.store.request_cancel(run_id, self.actor, reason or "paused"):
                    result.cancelled_runs.append(run_id)
        return self._told(result)

    def reload(self, config_path: Path | None, timeout: float = RELOAD_WAIT) -> ReloadOutcome:
        """Ask the running daemon to reload its config and wait for the outcome (see
        ``gnomon.daemon._reload`` for the rule); ReloadNotAnswered after ``timeout``."""
        request = self.store.request_reload(self.actor, str(config_path) if config_path else None)
        self.nudge("poll")
        deadline = time.monotonic() + timeout
        while True:
            row = self.store.read_reload(request)
            if row is not None and row.status != ReloadStatus.PENDING:
                return ReloadOutcome(row.status, row.detail or {}, request)
            if time.monotonic() >= deadline:
                raise ReloadNotAnswered(request, timeout)
            time.sleep(0.05)

    def apply(
        self, config_path: Path | None, lock: AbstractContextManager[object] | None = None
    ) -> ReloadOutcome:
        """Register the config's deployments in the store when no daemon runs, under the
        reload rule: problems not confined to one deployment change nothing; a deployment
        with problems keeps its stored version; the rest applies. Given the store's daemon
        ``lock``, the deployments are written holding it, and a name a killed serving
        script left scheduled is taken over, as the daemon would at its start
        (``sync_deployments``)."""
        from gnomon._settings import find_config_file
        from gnomon.deployments import (
            CONFIG_SOURCE,
            config_window_rows,
            load_config,
            record_takeovers,
            sync_deployments,
            sync_pools,
        )

        result = load_config(config_path)
        problems = [str(problem) for problem in result.problems]
        if any(not problem.confined for problem in result.problems):
            refused = ReloadStatus.REFUSED
            return ReloadOutcome(refused, {"status": refused, "problems": problems})
        with lock or contextlib.nullcontext():  # not while the flows are checked: seconds
            synced = sync_deployments(
                self.store,
                result.config.deployments,
                datetime.now(UTC),
                keep=result.failed,
                schemas=result.schemas,
                lock_held=lock is not None,
            )
            sync_pools(self.store, result.config.pools, self._stored_pools(result.failed))
        record_takeovers(self.store, synced, CONFIG_SOURCE, self.actor)
        # The file's [[maintenance]] windows too, as a daemon's sync stores them.
        self.store.sync_config_maintenance(config_window_rows(result.config.maintenance))
        status = ReloadStatus.PARTIAL if problems else ReloadStatus.APPLIED
        detail = {
            "status": status,
            "added": synced.added,
            "removed": synced.removed,
            "changed": synced.fields,
            "kept_last_good": sorted(result.failed),
            "taken_over": synced.taken_over,
            "problems": problems,
        }
        source = config_path or find_config_file()
        # Daemons on other hosts of a PostgreSQL database reload their own config files.
        self.store.record_audit(
            self.actor,
            AuditAction.APPLY,
            str(source) if source else None,
            None,
            detail,
            notify=Nudge.RELOAD,
        )
        return ReloadOutcome(status, detail)

    def _stored_pools(self, names: Iterable[str]) -> set[str]:
        """The pools the stored versions of deployments ``names`` name (kept by a partial
        apply: their pools stay)."""
        pools = set()
        for name in names:
            row = self.store.read_deployment(name)
            pool = (row.policies or {}).get("pool") if row is not None else None
            if isinstance(pool, str):
                pools.add(pool)
        return pools

    def release(self, name: str) -> DeploymentRow:
        """Retire deployment ``name``, which a serving script left scheduled when it was
        killed (its stop would have retired it): nothing fires it, its runs stay, and the
        config file or another script may define the name. The caller makes sure that
        script is not running (``gnomon deployments release`` takes the store's lock).
        Conflict for the config file's deployments: the file defines them."""
        from gnomon.deployments import SERVE_PREFIX, owner, release_deployment

        row = self.deployment(name)
        source = owner(row)
        if not source.startswith(SERVE_PREFIX):
            raise Conflict(
                f"deployment {name!r} is the config file's, not a serving script's: remove it"
                " from the config file and run `gnomon deployments apply`"
            )
        if not release_deployment(self.store, name, source, datetime.now(UTC)):
            raise Conflict(f"deployment {name!r} was retired or taken over meanwhile")
        self.store.record_audit(self.actor, AuditAction.RELEASE, name, None, {"source": source})
        return row

    # Runs.

    def trigger(
        self, name: str, parameters: dict[str, Any] | None = None, force: bool = False
    ) -> NewFlowRun:
        """Request a run of deployment ``name`` now, with its parameters updated by
        ``parameters``. The daemon applies the overlap policy unless ``force``.
        InvalidParameters if they do not fit the flow (see ``check_flow_parameters``)."""
        deployment = self.deployment(name)
        check_parameters(parameters or {})  # the input rules, before anything is written
        check_flow_parameters(deployment, parameters or {})  # then the flow's schema
        merged = {**(deployment.parameters or {}), **(parameters or {})}
        row = self._requested_run(deployment, merged, RunCause.MANUAL, force=force)
        self.store.create_requested_run(row, self.actor, AuditAction.RUN)
        self.nudge("poll")
        return row

    def retry(self, run_id: str) -> NewFlowRun:
        """Run a finished run's deployment again with the same parameters, as a new run: the
        next generation of its nominal time. Conflict while a run of that time (this one,
        or a later generation) has not finished."""
        original = self.run(run_id)
        if original.deployment_name is None:
            raise Conflict(f"run {original.id} is not a deployment's run; run its flow again")
        if original.state_type not in FINAL_TYPES:
            raise Conflict(
                f"run {original.id} is {original.state_name}; only a finished run can be retried"
            )
        deployment = self.deployment(original.deployment_name)
        row = self._requested_run(
            deployment, original.parameters or {}, RunCause.RETRY, retry_of=original.id
        )
        # The next generation of the same nominal time, not a run at the request's time:
        # what follows from that time (a downstream's run, a backfill) sees it as the one.
        row["scheduled_for"] = original.scheduled_for or original.created
        created = self.store.create_retry_run(row, self.actor)
        if created.id != row["id"]:
            raise Conflict(
                f"run {created.id} (generation {created.generation} of"
                f" {(created.scheduled_for or created.created).isoformat()})"
                f" is {created.state_name}; a time's next"
                " generation starts once it has finished"
            )
        self.nudge("poll")
        return {**row, "generation": created.generation}

    def cancel(self, run_id: str, reason: str | None = None) -> tuple[FlowRunRow, str]:
        """Cancel a run: a waiting one at once, a running one through the daemon (its worker
        is stopped within a second). Conflict if it has already finished."""
        check_text("reason", reason)
        row = self.run(run_id)
        outcome = self.store.request_cancel(row.id, self.actor, reason)
        if outcome is None:
            raise Conflict(f"run {row.id} has already finished ({row.state_name})")
        if outcome == "requested":
            self.nudge("poll")
        return row, outcome

    def resume_run(
        self,
        run_id: str,
        run_input: dict[str, Any] | None = None,
        texts: dict[str, str] | None = None,
    ) -> tuple[FlowRunRow, str]:
        """Resume a paused or suspended run with ``run_input`` and ``texts`` (the CLI's
        ``--input KEY=VALUE``, each read by its field's type in the pause's schema), checked
        against the input the pause waits for; returns the run and its state after it
        (Running, or Resuming: the daemon runs a suspended run again within a second).
        Conflict if it is not paused or its pause timed out; InvalidRunInput (exit 2, 422)
        for input that does not fit, naming the field and the value."""
        from gnomon.exceptions import FlowPauseTimeout, NotPausedError
        from gnomon.flows import resume_run

        row = self.run(run_id)
        if texts:
            pause = self.store.read_open_pause(row.id)
            schema = (pause.input_schema if pause is not None else None) or {}
            run_input = {**(run_input or {}), **typed_texts(texts, schema)}
        check_parameters(run_input or {})  # the input rules: sizes, valid Unicode
        try:
            state = resume_run(self.store, row.id, run_input, self.actor)
        except (NotPausedError, FlowPauseTimeout) as error:
            raise Conflict(str(error)) from error
        if state == StateName.RESUMING:
            self.nudge("poll")
        return row, state

    def _requested_run(
        self,
        deployment: DeploymentRow,
        parameters: dict[str, Any],
        trigger: RunCause,
        *,
        force: bool = False,
        retry_of: str | None = None,
    ) -> NewFlowRun:
        now = datetime.now(UTC)
        return {
            "id": uuid.uuid4().hex,
            "name": f"{deployment.name}@{trigger}-{now:%Y-%m-%dT%H:%M:%S.%fZ}",
            "flow_name": deployment.flow.rpartition(":")[2],
            "entrypoint": deployment.flow,
            "parameters": parameters,
            "tags": list(deployment.tags or []),
            "state_type": StateType.SCHEDULED,
            "state_name": StateName.SCHEDULED,
            "state_message": f"{trigger} run requested by {self.actor.name}",
            "run_count": 0,
            "deployment_name": deployment.name,
            "scheduled_for": now,
            "expected_start_time": now,
            "trigger": trigger,
            "requested_by": self.actor.name,
            "force": force,
            "retry_of": retry_of,
            "created": now,
            "updated": now,
        }

    # Concurrency limits (tag limits, as `gnomon concurrency-limit` manages them).

    def set_limit(self, tag: str, limit: int) -> None:
        check_name("tag", tag)
        if not 0 <= limit <= MAX_LIMIT:
            raise InvalidName(f"a concurrency limit is from 0 to {MAX_LIMIT:,}, not {limit}")
        self.store.set_limit_audited(f"tag:{tag}", limit, self.actor)

    def remove_limit(self, tag: str) -> None:
        check_name("tag", tag)
        if not self.store.delete_limit_audited(f"tag:{tag}", self.actor):
            known = [
                name[4:] for name in self.store.read_concurrency_limits() if name[:4] == "tag:"
            ]
            raise UnknownName("concurrency limit", tag, known)

    # Global concurrency limits (Prefect's, as `gnomon global-concurrency-limit` manages them:
    # ``concurrency()`` holds them, ``rate_limit`` needs their decay).

    def set_global_limit(self, name: str, limit: int, slot_decay_per_second: float = 0.0) -> None:
        """Create or change the global limit ``name``, its decay too (the store checks it)."""
        check_global_limit_name(name)
        if not 0 <= limit <= MAX_LIMIT:
            raise InvalidName(f"a concurrency limit is from 0 to {MAX_LIMIT:,}, not {limit}")
        self.store.set_limit_audited(name, limit, self.actor, slot_decay_per_second)

    def remove_global_limit(self, name: str) -> None:
        check_global_limit_name(name)
        if not self.store.delete_limit_audited(name, self.actor):
            known = [row.name for row in self.store.read_limit_rows() if row.name[:4] != "tag:"]
            raise UnknownName("global concurrency limit", name, known)

    # API tokens.

    def create_token(
        self,
        name: str,
        access: TokenAccess = TokenAccess.ADMIN,
        expires: timedelta | None = None,
    ) -> str:
        """Create token ``name`` with ``access``, valid for ``expires`` from now (None: until
        revoked), and return it: the only time it is shown."""
        check_name("token", name)
        if expires is not None and expires <= timedelta(0):
            raise InvalidInput(f"a token's expiry must be in the future, got {expires}")
        expires_at = None if expires is None else datetime.now(UTC) + expires
        token = new_token()
        if not self.store.create_token(name, hash_token(token), access, expires_at, self.actor):
            raise Conflict(f'a token named "{name}" exists; revoke it first or pick a new name')
        return token

    def revoke_token(self, name: str) -> None:
        check_name("token", name)
        if not self.store.revoke_token(name, self.actor):
            raise UnknownName("token", name, [row.name for row in self.store.read_tokens()])
