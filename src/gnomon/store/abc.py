"""The store's interfaces, one per role: what each part of gnomon may ask of the store.

``Store`` (SQLite or PostgreSQL behind SQLAlchemy) plays every role; code outside the store
names the role it uses, so what it depends on is written down and checked (``_store``
holds mypy to ``Store`` satisfying each):

``RunStore``
    What a worker's engine needs to run flows and tasks: record runs, their states and log
    lines through the batched writer (committed within ``flush_interval``, or at once by
    ``flush`` and ``commit_now``), claim a stored run, move a run to a state at once,
    take and free concurrency slots, and write and read the artifacts its code makes.
``ScheduleStore``
    What the daemon needs: a ``RunStore`` (it records states and log lines for its workers)
    that also creates deployments' runs by (deployment, nominal time), keeps each
    deployment's last fire, reads what operators changed (pauses, cancellations, manual
    runs, reload requests) and what a dead daemon or worker left behind.
``DeploymentStore``
    What syncing the config needs: one transaction that reads every deployment row and
    writes the changes, so a sync never overwrites a pause it did not see.
``ControlStore``
    What operators and readers need (the command line, the HTTP API and its dashboard):
    each change written with its audit row in the same transaction, and the reads they
    show. It syncs the config too (``gnomon apply``).
``ArtifactReader``
    Reading the artifacts runs made: a part of ``RunStore`` (``Artifact.get`` in a flow)
    and of ``ControlStore`` (the CLI, the API and the run page).
``VariableStore``
    Variables and secrets (ciphertexts only): read, and written with their audit rows, by
    flows (``Variable``, ``Secret``) and by operators (a part of ``ControlStore``).
``FastControl``
    The part of ``ControlStore`` that ``gnomon pause``, ``resume``, ``runs list`` and
    ``logs`` use, which must answer within a few hundred milliseconds: pauses and the
    reads around them. ``FastStore`` (SQLAlchemy-free, see ``_fast``) plays this role
    alone.
``Pausing``
    Pausing and resuming deployments, audited: a part of ``FastControl`` (operators) and
    of ``ScheduleStore`` (the daemon ends pauses and pauses deployments after failures).
``PruneStore``
    Deleting old runs and log lines in small transactions, audited (the daemon's
    ``retain_runs`` / ``retain_logs``, ``gnomon db prune``).

Rows are typed, by the classes of ``gnomon.store.rows`` (generated from the schema): reads
return frozen rows, writes take dicts of column values typed as ``TypedDict`` s. Importing
this module imports no SQLAlchemy: the command line's fast path imports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
    from datetime import datetime

    from gnomon.states import StateFilter, StateType
    from gnomon.store._backfills import BackfillStep, TimeRun
    from gnomon.store._kinds import (
        AuditAction,
        BackfillStatus,
        Nudge,
        ReloadStatus,
        RunCause,
        TokenAccess,
    )
    from gnomon.store._prune import Between, PruneCounts, ResultFiles
    from gnomon.store._values import Actor, LogQuery, RunCursor
    from gnomon.store.rows import (
        ArtifactRow,
        AuditEntry,
        BackfillRow,
        BreachRow,
        CancelRequest,
        ClaimedRun,
        ConcurrencyLimitRow,
        DeploymentRow,
        FlowRunChanges,
        FlowRunRow,
        LogRow,
        MaintenanceRow,
        NewArtifact,
        NewBreach,
        NewFlowRun,
        NewLog,
        NewMaintenance,
        NewState,
        NewTaskRun,
        PauseChange,
        RecentRun,
        ReloadRequest,
        RunBin,
        RunPauseRow,
        ScheduleState,
        SecretRow,
        StateRow,
        TaskRunRow,
        TokenInfo,
        TokenScope,
        VariableRow,
        WatchedRun,
    )


class ArtifactReader(Protocol):
    """Reading artifacts: the runs' code (``Artifact.get``) and the operators' views."""

    def read_artifacts(
        self,
        *,
        key: str | None = None,
        flow_run_id: str | None = None,
        id_prefix: str | None = None,
        limit: int | None = None,
    ) -> list[ArtifactRow]:
        """Artifacts newest first (by creation, then id): a key's history, a run's, those
        whose id starts with ``id_prefix``, or all; at most ``limit``."""


class RunStore(ArtifactReader, Protocol):
    """A worker's store: runs, states and logs recorded, runs claimed, slots taken."""

    # Batched writes: recorded now, committed by the writer thread.

    def insert_flow_run(self, row: NewFlowRun) -> None:
        """Queue a new flow run row."""

    def update_flow_run(self, id: str, **values: Any) -> None:
        """Queue new values for columns of flow run ``id``."""

    def insert_task_run(self, row: NewTaskRun) -> None:
        """Queue a new task run row."""

    def update_task_run(self, id: str, **values: Any) -> None:
        """Queue new values for columns of task run ``id``."""

    def settle_flow_run(self, id: str, values: FlowRunChanges, state: NewState) -> None:
        """Queue flow run ``id``'s new state: its column values and history row together."""

    def add_state(self, row: NewState) -> None:
        """Queue a ``run_states`` row."""

    def add_log(self, row: NewLog) -> None:
        """Queue a ``run_logs`` row (dropped while the store's disk is below the floor)."""

    def flush(self, timeout: float | None = None) -> None:
        """Commit every row recorded so far and wait for it; raises ``StoreWriteError``."""

    def commit_now(self) -> None:
        """Commit every row recorded so far in this thread, for a write that must be durable."""

    def open_connections(self) -> None:
        """Open every connection this process may use now (before it gives root up)."""

    # Runs, written or read at once.

    def claim_flow_run(
        self, flow_run_id: str, at: datetime | None = None, *, worker_pid: int | None = None
    ) -> ClaimedRun | None:
        """Start a Scheduled or Pending run: its claimed columns, or None if another won."""

    def set_run_state(
        self,
        flow_run_id: str,
        state_type: StateType,
        state_name: str,
        message: str | None = None,
        /,  # so that ``values``, the run's other columns by name, cannot be taken for them
        *,
        only_if_active: bool = False,
        only_if_newest: bool = False,
        **values: Any,
    ) -> bool:
        """Move a run to a state now (row and history, one transaction); whether it moved.
        ``only_if_newest``: only if no later generation of its nominal time exists."""

    def read_flow_run(self, id: str) -> FlowRunRow | None:
        """The flow run row ``id``, or None."""

    def read_task_run(self, id: str) -> TaskRunRow | None:
        """The task run row ``id``, or None (a run another process ran: a Dask worker's)."""

    # Concurrency limits and slots.

    def read_concurrency_limits(self, names: list[str] | None = None) -> dict[str, int]:
        """Every limit (or those of ``names`` that exist): slots by name."""

    def set_concurrency_limit(
        self, name: str, limit: int, slot_decay_per_second: float = 0.0
    ) -> None:
        """Create the limit ``name`` of ``limit`` slots, or change it and its decay (not
        audited); ValueError for a negative limit or a negative or infinite decay."""

    def delete_concurrency_limit(self, name: str) -> bool:
        """Delete a limit and its slots (not audited); False if there was no such limit."""

    def try_acquire_slots(
        self, names: list[str], occupy: int, holder: str, rate_limit: bool = False
    ) -> bool:
        """Take ``occupy`` slots on every limit in ``names``, or none and return False.
        ``rate_limit``: slots that free themselves at each limit's ``slot_decay_per_second``
        (a leaky bucket), never released; ConcurrencySlotAcquisitionError for a limit with
        no decay."""

    def release_slots(self, holder: str) -> int:
        """Free every slot ``holder`` holds; how many slot rows were freed."""

    def reap_stale_slots(self) -> int:
        """Free the held slots of this host's processes that are gone (not rate-limit slots,
        which free themselves); how many were freed."""

    # Artifacts, written at once (after this process's recorded rows).

    def insert_artifact(self, row: NewArtifact) -> None:
        """Store a new artifact now, after every row this process recorded before it."""

    def update_artifact(self, id: str, data: Any, description: str | None = None) -> bool:
        """Replace an artifact's data (and description, if given) now; False if none."""

    # Pauses (``pause_flow_run``, ``suspend_flow_run``).

    def open_pause(
        self,
        flow_run_id: str,
        pause_key: str,
        *,
        suspend: bool,
        timeout_at: datetime | None,
        input_schema: dict[str, Any] | None,
        description: str | None,
        message: str,
    ) -> RunPauseRow | None:
        """Pause a running run (pause row and Paused or Suspended state, one transaction);
        None, or the run's pause of that key if it has one already (nothing changes)."""

    def read_pause(self, flow_run_id: str, pause_key: str) -> RunPauseRow | None:
        """The run's pause of ``pause_key``, or None."""

    def expire_pause(self, pause_id: int, now: datetime) -> bool:
        """End a pause that timed out unless it was resumed first; whether it expired."""


class DeploymentStore(Protocol):
    """Where the config's deployments are synced."""

    def merge_deployments(
        self,
        merge: Callable[
            [dict[str, DeploymentRow]],
            tuple[Sequence[Mapping[str, Any]], Mapping[str, Mapping[str, Any]]],
        ],
    ) -> None:
        """Give ``merge`` the deployment rows by name and write its inserts and updates, in
        one write transaction."""


class Pausing(Protocol):
    """Pausing and resuming deployments: operators (``FastControl``) and the daemon
    (``ScheduleStore``, a deployment pausing itself after failures) both do."""

    def set_paused(
        self,
        names: Sequence[str],
        paused: bool,
        actor: Actor,
        reason: str | None,
        now: datetime | None = None,
        until: datetime | None = None,
    ) -> list[str]:
        """Pause (until ``until``, if given) or resume deployments, audited and told to the
        daemons (``Nudge``); those whose pause changed (a pause made longer counts)."""


class BackfillStore(Protocol):
    """Backfills (see ``_backfills``): asked for and cancelled by operators, their runs
    made a batch at a time by the daemon."""

    def create_backfill(self, values: dict[str, object], actor: Actor) -> BackfillRow:
        """Record a backfill, audited; the row as stored."""

    def read_backfill(self, backfill_id: int) -> BackfillRow | None: ...

    def read_backfills(
        self,
        deployment: str | None = None,
        status: BackfillStatus | None = None,
        limit: int = 100,
    ) -> list[BackfillRow]:
        """Backfills newest first, a deployment's or everyone's, of one status or any."""

    def read_backfill_states(self, backfill_id: int) -> dict[str, int]:
        """The backfill's runs counted by state name."""

    def read_backfill_unfinished(self, backfill_id: int) -> list[FlowRunRow]: ...

    def read_backfill_runs(self, backfill_id: int, limit: int) -> list[FlowRunRow]:
        """The backfill's newest ``limit`` runs, newest first."""

    def count_backfill_unfinished(self, backfill_id: int) -> int: ...

    def read_time_runs(
        self, deployment: str, first: datetime, last: datetime
    ) -> dict[datetime, TimeRun]:
        """The newest run of each of the deployment's nominal times in [first, last]."""

    def create_backfill_runs(
        self,
        backfill: BackfillRow,
        times: Sequence[datetime],
        limit: int,
        make_run: Callable[[datetime, int], NewFlowRun],
    ) -> BackfillStep | None:
        """Decide ``times`` and create up to ``limit`` runs, moving the backfill's cursor;
        None if it no longer runs."""

    def finish_backfill(
        self, backfill_id: int, status: BackfillStatus, actor: Actor, reason: str | None = None
    ) -> bool:
        """End a running backfill (a cancel audited); False if it had ended."""


class ScheduleStore(RunStore, DeploymentStore, Pausing, BackfillStore, Protocol):
    """The daemon's store: a worker's, plus fires, operators' requests and recovery."""

    url: str  # the database's, which says what a store fault concerns (``store_fault``)

    def probe_write(self) -> None:
        """A write that changes nothing kept, failing as a fire's would: is the store back?"""

    # Fires.

    def create_runs(self, runs: Sequence[NewFlowRun]) -> set[str]:
        """Insert runs unless their (deployment, nominal time) has one; the ids created."""

    def create_runs_unless_paused(self, runs: Sequence[NewFlowRun]) -> tuple[set[str], set[str]]:
        """``create_runs`` but for paused deployments: the ids created, the paused names."""

    def record_fire_times_many(self, fires: Sequence[tuple[str, datetime]]) -> None:
        """Persist each deployment's last nominal fire, in one transaction."""

    def count_deployment_retries(self, flow_run_id: str) -> int:
        """How many times the daemon queued this run again (its deployment's ``retries``)."""

    def read_schedule_states(self) -> dict[str, ScheduleState]:
        """By active deployment: ``anchor``, ``paused`` and ``paused_until``,
        ``last_fire`` and ``fires_from``."""

    def read_last_outcomes(self) -> dict[str, tuple[StateType | None, datetime | None]]:
        """By deployment: its newest finished run's state type, its newest success's end."""

    # Pauses the daemon makes (``pause_after_failures``: ``Pausing``) and ends.

    def end_timed_pause(
        self, name: str, until: datetime, actor: Actor, reason: str, now: datetime
    ) -> bool:
        """Resume ``name`` as its pause until ``until`` ends, audited; False if it changed."""

    def read_outcomes(self, name: str, limit: int) -> list[FlowRunRow]:
        """The deployment's newest completed or failed runs since its schedule's fires_from."""

    # What operators changed, polled every second.

    def read_pause_changes(self, since: datetime) -> list[PauseChange]:
        """Name, paused flag and pause end of active deployments changed at or after
        ``since``."""

    def read_cancel_requests(self, since: datetime) -> list[CancelRequest]:
        """Runs whose cancellation was requested at or after ``since``."""

    def read_requested_runs(self, since: datetime) -> list[FlowRunRow]:
        """Manual runs and retries created at or after ``since`` that still wait."""

    def read_pending_reloads(self) -> list[ReloadRequest]:
        """Reload requests not answered yet, oldest first."""

    def read_reload(self, request_id: int) -> ReloadRequest | None:
        """The reload request ``request_id``, or None."""

    def finish_reload(
        self,
        request_ids: Sequence[int],
        actor: Actor,
        status: ReloadStatus,
        detail: dict[str, Any],
        target: str | None,
    ) -> None:
        """Answer reload requests with their outcome, audited in the same transaction."""

    # What a dead daemon or worker left behind.

    def count_active_slots(self) -> dict[str, int]:
        """Slots taken now, by limit name (a run pool's are ``pool:<name>``)."""

    def read_slot_holders(self, prefix: str) -> list[str]:
        """The holders of the slots held on limits whose names start with ``prefix``."""

    def read_unfinished_deployment_runs(self) -> list[FlowRunRow]:
        """Deployments' runs that are Scheduled, Pending or Running, oldest fire first."""

    # Runs triggered by runs (a deployment's ``after``).

    def read_runs_at(self, names: Sequence[str], nominal: datetime) -> list[FlowRunRow]:
        """The runs of these deployments at this nominal time."""

    def read_unfollowed_runs(
        self, downstream: str, upstream: str, since: datetime, limit: int
    ) -> list[FlowRunRow]:
        """``upstream``'s newest ended runs since ``since`` that may start ``downstream``
        and whose nominal time has no run of it yet."""

    def read_resumed_runs(self, since: datetime) -> list[FlowRunRow]:
        """Suspended runs resumed at or after ``since``, waiting to run again."""

    def fail_expired_suspensions(self, now: datetime) -> list[str]:
        """Fail the suspended runs whose pause timed out; the ids failed."""

    def search_logs(self, query: LogQuery, limit: int | None, newest: bool) -> list[LogRow]:
        """Log rows matching ``query``: the newest ``limit``, or the first after its cursor."""

    # Deadlines and freshness (the daemon's deadline watch).

    def record_breach(self, row: NewBreach) -> BreachRow | None:
        """Record a breach unless its (deployment, kind, nominal time) has one: the row
        recorded, or None if it existed."""

    def clear_breach(self, breach_id: int, at: datetime) -> bool:
        """Record that a breach ended at ``at``; False if it had ended already."""

    def mark_breaches_notified(self, breach_ids: Sequence[int]) -> None:
        """Record that these breaches' events were handed to the notification targets."""

    def read_open_breaches(self) -> list[BreachRow]:
        """Every breach not cleared yet, oldest first."""

    def read_watched_runs(self, nominal_before: datetime, names: Sequence[str]) -> list[WatchedRun]:
        """Runs of deployments ``names`` not finished, nominal time before ``nominal_before``."""

    def read_watched_run(self, flow_run_id: str) -> WatchedRun | None:
        """One run as ``read_watched_runs`` gives it, whatever its state; None if gone."""

    def read_last_successes(self, names: Sequence[str]) -> dict[str, datetime]:
        """By deployment of ``names``: when its newest completed run ended."""

    # Maintenance windows (the daemon's poll and config sync).

    def read_maintenance(self, ending_after: datetime | None = None) -> list[MaintenanceRow]:
        """The windows that end after ``ending_after`` (every one if None), by start."""

    def sync_config_maintenance(self, rows: Sequence[NewMaintenance]) -> bool:
        """Make the config's windows these; whether anything changed."""

    def read_deployment(self, name: str) -> DeploymentRow | None:
        """The deployment row ``name`` (active or removed from the config), or None."""

    def request_cancel(self, flow_run_id: str, actor: Actor, reason: str | None) -> str | None:
        """Cancel a run, audited: "cancelled", "requested" (it runs), or None if final."""


class FastControl(Pausing, Protocol):
    """What the command line's fast commands ask: pauses, and the deployments, runs and
    log lines they read."""

    # Deployments.

    def read_deployment_names(self) -> list[str]:
        """Names of the active deployments, sorted."""

    def read_deployment(self, name: str) -> DeploymentRow | None:
        """The deployment row ``name`` (active or removed from the config), or None."""

    def read_deployments(self, active_only: bool = True) -> list[DeploymentRow]:
        """Deployment rows by name; only those still in the config unless ``active_only``."""

    # Runs.

    def find_runs_by_prefix(self, prefix: str, limit: int = 2) -> list[str]:
        """Ids starting with ``prefix`` (operators type the first characters of an id)."""

    def read_flow_run(self, id: str) -> FlowRunRow | None:
        """The flow run row ``id``, or None."""

    def read_runs(
        self,
        deployment: str | None = None,
        state: StateFilter | None = None,
        since: datetime | None = None,
        limit: int = 50,
        *,
        until: datetime | None = None,
        trigger: Collection[RunCause] | None = None,
        before: RunCursor | None = None,
    ) -> list[FlowRunRow]:
        """Flow runs newest first (by created, then id), filtered by deployment, state,
        cause (one of ``trigger``) and age (created from ``since``, before ``until``); at
        most ``limit``, from ``before`` on: the cursor of the previous page's last row."""

    # Logs.

    def search_logs(self, query: LogQuery, limit: int | None, newest: bool) -> list[LogRow]:
        """Log rows matching ``query``: the newest ``limit``, or the first after its cursor."""

    def last_log_id(self) -> int:
        """The id of the newest log line; 0 if there is none."""


class VariableStore(Protocol):
    """Variables and secrets, each write audited in its transaction (see
    ``_variables``): a write returns True if it replaced a value, False if it created one,
    None if the name was taken and ``overwrite`` false."""

    def read_variable(self, name: str) -> VariableRow | None: ...

    def read_variables(self) -> list[VariableRow]: ...

    def write_variable(
        self, name: str, value: Any, tags: list[str], overwrite: bool, actor: Actor
    ) -> bool | None: ...

    def delete_variable(self, name: str, actor: Actor) -> bool: ...

    def read_secret(self, name: str) -> SecretRow | None: ...

    def read_secrets(self) -> list[SecretRow]: ...

    def write_secret(
        self, name: str, ciphertext: str, overwrite: bool, actor: Actor
    ) -> bool | None: ...

    def delete_secret(self, name: str, actor: Actor) -> bool: ...

    def rewrite_secrets(self, rewrap: Callable[[str], str], actor: Actor) -> list[str]:
        """Every secret's ciphertext replaced by ``rewrap`` of it, in one transaction."""


class Auditing(Protocol):
    """Auditing a change that has no row of its own: a part of ``ControlStore`` and of
    ``PruneStore``."""

    def record_audit(
        self,
        actor: Actor,
        action: AuditAction,
        target: str | None,
        reason: str | None = None,
        detail: dict[str, Any] | None = None,
        notify: Nudge | None = None,
    ) -> None:
        """Audit a change that has no row of its own here (a reload, an apply, a prune);
        with ``notify``, the daemons on the database are told it in the same transaction
        (see ``Nudge``)."""


class ControlStore(
    FastControl, DeploymentStore, ArtifactReader, VariableStore, BackfillStore, Auditing, Protocol
):
    """The operators' store: audited changes, and what the CLI, the API and the dashboard
    show (``FastControl``'s methods, and these)."""

    # Audit.

    def read_audit(
        self,
        since: datetime | None = None,
        limit: int = 100,
        *,
        before: tuple[datetime, int] | None = None,
        actor: str | None = None,
        action: AuditAction | None = None,
        target: str | None = None,
    ) -> list[AuditEntry]:
        """Audit entries newest first (by time, then id), at most ``limit``, not older than
        ``since``; only those older than the ``before`` entry (its time and id: a page's
        cursor), and only by ``actor``, of ``action`` and on ``target`` if given."""

    # Reloads.

    def request_reload(self, actor: Actor, config: str | None) -> int:
        """Ask the daemon to reload its config; the request's id, for its outcome."""

    def read_reload(self, request_id: int) -> ReloadRequest | None:
        """The reload request ``request_id``, or None."""

    # Deployments.

    def read_recent_states(
        self, names: Iterable[str], per_deployment: int
    ) -> dict[str, list[RecentRun]]:
        """The newest runs of each deployment (id, state, nominal time), newest first."""

    # Runs.

    def read_finished_runs(self, deployment: str, limit: int) -> list[FlowRunRow]:
        """A deployment's newest runs that started and finished (not its Skipped or Missed
        fires), newest first: what its run durations are read from."""

    def create_requested_run(self, run: NewFlowRun, actor: Actor, action: AuditAction) -> None:
        """Insert a manual run with its first state and audit entry."""

    def create_retry_run(self, run: NewFlowRun, actor: Actor) -> FlowRunRow:
        """Insert ``run`` as the next generation of its nominal time, audited, unless a run
        of that time is unfinished; the newest unfinished run of that time (``run``, or the
        one that stopped it)."""

    def request_cancel(self, flow_run_id: str, actor: Actor, reason: str | None) -> str | None:
        """Cancel a run, audited: "cancelled", "requested" (it runs), or None if final."""

    def read_running_ids(self, deployment_names: Sequence[str]) -> list[str]:
        """Ids of the running runs of these deployments."""

    def read_open_pause(self, flow_run_id: str) -> RunPauseRow | None:
        """The run's newest pause not resumed yet, or None."""

    def resume_paused_run(
        self, pause: RunPauseRow, actor: Actor, run_input: dict[str, Any] | None
    ) -> bool:
        """Resume the run of ``pause`` with its input, audited; False if it was resumed
        already, timed out, or is no longer paused."""

    def read_task_runs(
        self, flow_run_id: str, offset: int = 0, limit: int | None = None
    ) -> list[TaskRunRow]:
        """A flow run's task runs, in the order they were created (``limit`` of them from
        the ``offset``-th, if given)."""

    def count_task_states(self, flow_run_id: str) -> dict[str, int]:
        """How many of a flow run's task runs are in each state, by state name."""

    def read_caused_runs(self, flow_run_id: str, limit: int = 100) -> list[FlowRunRow]:
        """The downstream runs the end of this run decided (``caused_by``)."""

    def read_states(
        self, flow_run_id: str | None = None, task_run_id: str | None = None
    ) -> list[StateRow]:
        """State transitions in order: a task run's, or a flow run's own (not its tasks')."""

    def read_task_states(self, task_run_ids: Sequence[str]) -> list[StateRow]:
        """The state transitions of these task runs, in order."""

    # Concurrency limits.

    def read_concurrency_limits(self, names: list[str] | None = None) -> dict[str, int]:
        """Every limit (or those of ``names`` that exist): slots by name."""

    def set_concurrency_limit(
        self, name: str, limit: int, slot_decay_per_second: float = 0.0
    ) -> None:
        """Create or change a limit without an audit entry (a run pool's, which the
        config owns: ``deployments.sync_pools``)."""

    def delete_concurrency_limit(self, name: str) -> bool:
        """Remove a limit without an audit entry (a run pool's no longer declared)."""

    def read_limit_rows(self) -> list[ConcurrencyLimitRow]:
        """Every concurrency limit, by name."""

    def count_active_slots(self) -> dict[str, int]:
        """Slots taken now, by limit name (rate-limit slots until they free themselves)."""

    def count_pool_waits(self) -> dict[str, int]:
        """Runs waiting for a slot of their deployment's run pool, by deployment."""

    def set_limit_audited(
        self, name: str, limit: int, actor: Actor, slot_decay_per_second: float = 0.0
    ) -> None:
        """Create or change a concurrency limit and its decay, with its audit entry."""

    def delete_limit_audited(self, name: str, actor: Actor) -> bool:
        """Remove a concurrency limit, with its audit entry; False if there was none."""

    # API tokens.

    def create_token(
        self,
        name: str,
        token_hash: str,
        access: TokenAccess,
        expires_at: datetime | None,
        actor: Actor,
    ) -> bool:
        """Store a token's hash under ``name`` with what it may do and when it expires (None:
        never), audited; False if the name is taken."""

    def revoke_token(self, name: str, actor: Actor) -> bool:
        """Delete token ``name``, audited; False if there is none."""

    def read_tokens(self) -> list[TokenInfo]:
        """Every token's name, scope and use (never the hash)."""

    def find_token(self, token_hash: str) -> TokenScope | None:
        """The token with this hash (name and scope), or None."""

    def touch_tokens(self, used: dict[str, datetime]) -> None:
        """Record when tokens were last used."""

    def count_tokens(self) -> int:
        """How many tokens there are."""

    # The dashboard's overview (bounded reads: see ``_overview``).

    def read_run_bins(
        self, names: Sequence[str], start: datetime, end: datetime, width: int
    ) -> list[RunBin]:
        """Finished runs of the deployments ``names`` with nominal time in [start, end),
        counted by bins of ``width`` seconds and by state."""

    def read_run_totals(self, start: datetime, end: datetime) -> list[RunBin]:
        """Finished runs of all deployments with nominal time from the hour of ``start`` to
        ``end``, counted by state."""

    def read_state_runs(self, state_name: str, start: datetime, end: datetime) -> list[RunBin]:
        """Runs finished in ``state_name`` from the hour of ``start`` to ``end``, by
        deployment."""

    def read_last_finished(self) -> list[RecentRun]:
        """Each active deployment's newest finished run."""

    def read_late_runs(self, before: datetime, limit: int) -> list[RecentRun]:
        """Up to ``limit`` runs still waiting to start whose nominal time is before ``before``."""

    def read_unfinished_runs(self, names: Sequence[str], limit: int) -> list[RecentRun]:
        """Up to ``limit`` runs of the deployments ``names`` that have not finished."""

    # Deadlines and freshness.

    def read_breaches(
        self, deployment: str | None = None, *, open_only: bool = False, limit: int = 100
    ) -> list[BreachRow]:
        """Breaches newest first: a deployment's or everyone's, only the open ones if
        ``open_only``; at most ``limit``."""

    # Maintenance windows.

    def add_maintenance(self, row: NewMaintenance, actor: Actor) -> MaintenanceRow:
        """Add an operator's window, audited in the same transaction; the row added."""

    def sync_config_maintenance(self, rows: Sequence[NewMaintenance]) -> bool:
        """Make the config's windows these (`deployments apply`); whether anything changed."""

    def remove_maintenance(
        self, window_id: int, actor: Actor, reason: str | None = None
    ) -> MaintenanceRow | None:
        """Remove an operator's window, audited; None if there was none (a config window
        is returned as it is, not removed)."""

    def read_maintenance(self, ending_after: datetime | None = None) -> list[MaintenanceRow]:
        """The windows that end after ``ending_after`` (every one if None), by start."""


class PruneStore(Auditing, Protocol):
    """Old runs and log lines deleted in small transactions (see ``_prune``), and the
    audit entry that says so."""

    def prune_runs(
        self,
        before: datetime,
        *,
        batch: int,
        between: Between,
        results: ResultFiles,
        counts: PruneCounts,
        dry_run: bool = False,
    ) -> None:
        """Delete the runs that ended before ``before``, but those a deployment's catch-up
        could reach, with everything that is theirs, adding to ``counts``."""

    def prune_logs(
        self,
        before: datetime,
        *,
        batch: int,
        between: Between,
        counts: PruneCounts,
        dry_run: bool = False,
        runs_before: datetime | None = None,
    ) -> None:
        """Delete the log lines stored before ``before``, adding to ``counts`` (a dry run
        after ``prune_runs`` names its ``runs_before``, to count each line once)."""

    def release_free_pages(self, *, pages: int, between: Between, counts: PruneCounts) -> None:
        """Give a SQLite store's free pages back to the file system, if it was made able
        to (``gnomon db vacuum``), adding to ``counts``."""
