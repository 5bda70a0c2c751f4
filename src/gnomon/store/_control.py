"""Operator control in the store: manual runs, cancellations, reloads, the audit log,
concurrency limits and API tokens (pauses and the reads of the fast commands are
``_calls``').

Every change is written in one transaction with its audit row, so a change without its
audit entry (or an entry for a change that did not happen) cannot be committed. The CLI and
the HTTP API both call these; a running daemon sees their effect by polling the store.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, and_, bindparam, delete, desc, func, or_, select, union_all, update
from sqlalchemy.exc import IntegrityError

from gnomon.states import (
    FINAL_TYPES,
    HELD_NAMES,
    LIVE_TYPES,
    UNRUN_NAMES,
    WAITING_TYPES,
    StateName,
    StateType,
)
from gnomon.store._calls import audit_call
from gnomon.store._kinds import REQUESTED_CAUSES, AuditAction, Nudge, ReloadStatus, TokenAccess
from gnomon.store._queries import (
    Queries,
    Row,
    check_limit,
    execute_call,
    notify_in,
    slot_counts,
    upsert_limit,
)
from gnomon.store._scheduled import first_state_row
from gnomon.store._schema import (
    CANCEL_REQUEST,
    RECENT_RUN,
    TOKEN_INFO,
    TOKEN_SCOPE,
    api_tokens,
    audit_log,
    concurrency_limits,
    concurrency_slots,
    config_reloads,
    flow_runs,
    run_states,
    utcnow,
)
from gnomon.store._values import Actor
from gnomon.store.rows import (
    AuditEntry,
    CancelRequest,
    ConcurrencyLimitRow,
    FlowRunRow,
    RecentRun,
    ReloadRequest,
    TokenInfo,
    TokenScope,
)

if TYPE_CHECKING:
    from gnomon.store.rows import NewFlowRun

WAITING = sorted(WAITING_TYPES)
RECENT_CHUNK = 100  # deployments per statement reading their newest runs
# A retry that loses the race for its generation to another finds that one the next time.
_GENERATION_ATTEMPTS = 3


@functools.cache
def _recent_runs(count: int) -> Select[Any]:
    """The newest ``per_deployment`` runs of ``count`` deployments (``name_0``...), by
    deployment and newest first: built once per count, as building it takes longer than
    running it."""
    parts = [
        select(*RECENT_RUN, flow_runs.c.created)
        .where(flow_runs.c.deployment_name == bindparam(f"name_{n}"))
        .order_by(desc(flow_runs.c.created), desc(flow_runs.c.id))
        .limit(bindparam("per_deployment"))
        .subquery()
        for n in range(count)
    ]
    runs = union_all(*(select(*part.c) for part in parts)).subquery()
    return select(*(runs.c[column.name] for column in RECENT_RUN)).order_by(
        runs.c.deployment_name, desc(runs.c.created), desc(runs.c.id)
    )


class ControlQueries(Queries):
    """Operator changes with their audit rows, and the reads the CLI and the API show."""

    def record_audit(
        self,
        actor: Actor,
        action: AuditAction,
        target: str | None,
        reason: str | None = None,
        detail: dict[str, Any] | None = None,
        notify: Nudge | None = None,
    ) -> None:
        """Audit a change that has no row of its own here (a reload, an apply); with
        ``notify``, the daemons on the database are told it in the same transaction (an
        apply: they reload)."""
        with self.engine.begin() as connection:
            execute_call(connection, audit_call(actor, action, target, reason, detail))
            if notify is not None:
                notify_in(connection, notify)

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
        statement = (
            select(audit_log)
            .order_by(desc(audit_log.c.timestamp), desc(audit_log.c.id))
            .limit(limit)
        )
        if since is not None:
            statement = statement.where(audit_log.c.timestamp >= since)
        if before is not None:
            at, entry_id = before
            statement = statement.where(
                or_(
                    audit_log.c.timestamp < at,
                    and_(audit_log.c.timestamp == at, audit_log.c.id < entry_id),
                )
            )
        wanted = {"actor": actor, "action": action, "target": target}
        for name, value in wanted.items():
            if value is not None:
                statement = statement.where(audit_log.c[name] == value)
        return self._all(statement, AuditEntry)

    # Reload requests (see gnomon.daemon._reload).

    def request_reload(self, actor: Actor, config: str | None) -> int:
        """Ask the daemon to reload its config; returns the request's id, whose row the
        daemon fills in with the outcome."""
        with self.engine.begin() as connection:
            result = connection.execute(
                config_reloads.insert(),
                {
                    "requested_at": utcnow(),
                    "requested_by": actor.name,
                    "origin": actor.origin,
                    "status": ReloadStatus.PENDING,
                    "detail": {"config": config},
                },
            )
            (request_id,) = result.inserted_primary_key or (None,)
            notify_in(connection, Nudge.RELOAD)
        assert isinstance(request_id, int)
        return request_id

    def read_pending_reloads(self) -> list[ReloadRequest]:
        """Reload requests not answered yet, oldest first."""
        return self._all(
            select(config_reloads)
            .where(config_reloads.c.status == ReloadStatus.PENDING)
            .order_by(config_reloads.c.id),
            ReloadRequest,
        )

    def read_reload(self, request_id: int) -> ReloadRequest | None:
        statement = select(config_reloads).where(config_reloads.c.id == request_id)
        return self._one(statement, ReloadRequest)

    def finish_reload(
        self,
        request_ids: Sequence[int],
        actor: Actor,
        status: ReloadStatus,
        detail: dict[str, Any],
        target: str | None,
    ) -> None:
        """Record a reload's outcome in its requests and, in the same transaction, the audit
        log (by ``actor``: whoever asked first, or the daemon for a SIGHUP)."""
        now = utcnow()
        with self.engine.begin() as connection:
            if request_ids:
                connection.execute(
                    update(config_reloads)
                    .where(config_reloads.c.id.in_(list(request_ids)))
                    .values(status=status, finished_at=now, detail=detail)
                )
            execute_call(
                connection, audit_call(actor, AuditAction.RELOAD, target, None, detail, now)
            )

    # Deployments.

    def read_recent_states(
        self, names: Iterable[str], per_deployment: int
    ) -> dict[str, list[RecentRun]]:
        """The newest runs of each deployment (id, state, nominal time), newest first.

        One limited select per deployment, joined with UNION ALL (``RECENT_CHUNK`` to a
        statement): each reads its newest rows from the (deployment, created, id) index
        and stops. A window function over the deployments' runs read every run of every
        deployment first: seconds with a million runs."""
        names = list(names)
        recent: dict[str, list[RecentRun]] = {name: [] for name in names}
        with self.reader.connect() as connection:
            for start in range(0, len(names), RECENT_CHUNK):
                chunk = names[start : start + RECENT_CHUNK]
                values: dict[str, Any] = {f"name_{n}": name for n, name in enumerate(chunk)}
                values["per_deployment"] = per_deployment
                for found in connection.execute(_recent_runs(len(chunk)), values):
                    row = RecentRun(*found)
                    assert row.deployment_name is not None  # selected by it
                    recent[row.deployment_name].append(row)
        return recent

    # Runs.

    def read_finished_runs(self, deployment: str, limit: int) -> list[FlowRunRow]:
        """A deployment's newest runs that started and finished (not its Skipped or Missed
        fires, which never started), newest first: what its run durations are read from."""
        return self._all(
            select(flow_runs)
            .where(
                flow_runs.c.deployment_name == deployment,
                flow_runs.c.state_type.in_(sorted(FINAL_TYPES)),
                flow_runs.c.start_time.is_not(None),
                flow_runs.c.end_time.is_not(None),
            )
            .order_by(desc(flow_runs.c.created))
            .limit(limit),
            FlowRunRow,
        )

    def create_requested_run(self, run: NewFlowRun, actor: Actor, action: AuditAction) -> None:
        """Insert a manual run or a retry (Pending) with its first state and audit entry."""
        row: Row = {"created": utcnow(), **run}
        now = row["created"]
        with self.engine.begin() as connection:
            connection.execute(flow_runs.insert(), row)
            connection.execute(run_states.insert(), first_state_row(row))
            execute_call(
                connection,
                audit_call(
                    actor,
                    action,
                    row["id"],
                    detail={"deployment": row["deployment_name"], "retry_of": row.get("retry_of")},
                    now=now,
                ),
            )
            notify_in(connection, Nudge.POLL)

    def create_retry_run(self, run: NewFlowRun, actor: Actor) -> FlowRunRow:
        """Insert ``run`` as the next generation of its deployment's nominal time
        (``scheduled_for``), with its first state and audit entry, unless a run of that time
        has not finished: generations of one nominal time never run at once. Returns the
        newest unfinished run of that time: ``run`` as created, or the one that stopped it.

        The check and the insert share a transaction, which on PostgreSQL first takes an
        advisory lock of that nominal time: two retries at once queue, and the second finds
        the first unfinished."""
        for _ in range(_GENERATION_ATTEMPTS):
            try:
                return self._create_next_generation(run, actor)
            except IntegrityError:
                continue
        raise RuntimeError(f"no generation of run {run['id']} could be created")  # unreachable

    def _create_next_generation(self, run: NewFlowRun, actor: Actor) -> FlowRunRow:
        row: Row = {"created": utcnow(), **run}
        same_time = and_(
            flow_runs.c.deployment_name == row["deployment_name"],
            flow_runs.c.scheduled_for == row["scheduled_for"],
        )
        unfinished = (
            select(flow_runs)
            .where(same_time, flow_runs.c.state_type.not_in(sorted(FINAL_TYPES)))
            .order_by(desc(flow_runs.c.generation))
            .limit(1)
        )
        newest = select(func.coalesce(func.max(flow_runs.c.generation), 0)).where(same_time)
        with self.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # Retries of one nominal time queue here (SQLite's writers queue anyway):
                # without it, one could read no unfinished run before the other committed
                # its generation, then read that generation as the newest, and add another.
                key = f"retry:{row['deployment_name']}:{row['scheduled_for']}"
                connection.execute(select(func.pg_advisory_xact_lock(func.hashtext(key))))
            holding = connection.execute(unfinished).first()
            if holding is not None:
                return FlowRunRow(*holding)
            row["generation"] = int(connection.execute(newest).scalar_one()) + 1
            connection.execute(flow_runs.insert(), row)
            connection.execute(run_states.insert(), first_state_row(row))
            detail = {
                "deployment": row["deployment_name"],
                "retry_of": row.get("retry_of"),
                "generation": row["generation"],
            }
            audit = audit_call(
                actor, AuditAction.RETRY, row["id"], detail=detail, now=row["created"]
            )
            execute_call(connection, audit)
            notify_in(connection, Nudge.POLL)
            created = connection.execute(select(flow_runs).where(flow_runs.c.id == row["id"]))
            return FlowRunRow(*created.one())

    def request_cancel(self, flow_run_id: str, actor: Actor, reason: str | None) -> str | None:
        """Cancel a run: a waiting one at once, a running one by flagging it for the daemon.

        Returns "cancelled", "requested", or None if the run is already final. The waiting
        case is one conditional UPDATE, so it cannot race a worker claiming the run: either
        the claim or the cancellation wins.
        """
        now = utcnow()
        message = f"cancelled by {actor.name}" + (f": {reason}" if reason else "")
        with self.engine.begin() as connection:
            cancelled = connection.execute(
                update(flow_runs)
                .where(
                    flow_runs.c.id == flow_run_id,
                    # A suspended run has no process to stop either.
                    or_(
                        flow_runs.c.state_type.in_(WAITING),
                        flow_runs.c.state_name == StateName.SUSPENDED,
                    ),
                )
                .values(
                    state_type=StateType.CANCELLED,
                    state_name=StateName.CANCELLED,
                    state_message=message,
                    end_time=now,
                    updated=now,
                    cancel_requested_at=now,
                )
            ).rowcount
            if cancelled:
                connection.execute(
                    run_states.insert(),
                    {
                        "flow_run_id": flow_run_id,
                        "timestamp": now,
                        "type": StateType.CANCELLED,
                        "name": StateName.CANCELLED,
                        "message": message,
                    },
                )
                outcome = "cancelled"
            else:
                requested = connection.execute(
                    update(flow_runs)
                    .where(
                        flow_runs.c.id == flow_run_id,
                        or_(
                            flow_runs.c.state_type.in_(sorted(LIVE_TYPES)),
                            flow_runs.c.state_name.in_(sorted(HELD_NAMES)),
                        ),
                    )
                    # The message tells the daemon (and `runs show`) who asked and why.
                    .values(cancel_requested_at=now, updated=now, state_message=message)
                ).rowcount
                if not requested:
                    return None
                outcome = "requested"
            execute_call(
                connection,
                audit_call(
                    actor, AuditAction.CANCEL, flow_run_id, reason, {"outcome": outcome}, now
                ),
            )
            notify_in(connection, Nudge.POLL)
        return outcome

    def read_cancel_requests(self, since: datetime) -> list[CancelRequest]:
        """Runs whose cancellation was requested at or after ``since``: id, state type, and
        the message naming who asked and why."""
        return self._all(
            select(*CANCEL_REQUEST).where(flow_runs.c.cancel_requested_at >= since),
            CancelRequest,
        )

    def read_last_outcomes(self) -> dict[str, tuple[StateType | None, datetime | None]]:
        """By deployment: the state type of its newest finished run (Skipped and Missed fires
        are not runs that finished) and when its newest completed run ended."""
        finished = flow_runs.c.state_type.in_(sorted(FINAL_TYPES))
        ranked = (
            select(
                flow_runs.c.deployment_name,
                flow_runs.c.state_type,
                func.row_number()
                .over(partition_by=flow_runs.c.deployment_name, order_by=desc(flow_runs.c.end_time))
                .label("rank"),
            )
            .where(
                flow_runs.c.deployment_name.is_not(None),
                flow_runs.c.end_time.is_not(None),
                finished,
                flow_runs.c.state_name.not_in(sorted(UNRUN_NAMES)),
            )
            .subquery()
        )
        newest = select(ranked.c.deployment_name, ranked.c.state_type).where(ranked.c.rank == 1)
        successes = (
            select(flow_runs.c.deployment_name, func.max(flow_runs.c.end_time))
            .where(
                flow_runs.c.state_type == StateType.COMPLETED,
                flow_runs.c.deployment_name.is_not(None),
            )
            .group_by(flow_runs.c.deployment_name)
        )
        with self.reader.connect() as connection:
            outcomes: dict[str, tuple[StateType | None, datetime | None]] = {
                name: (StateType(state_type), None)
                for name, state_type in connection.execute(newest).tuples()
            }
            for name, ended in connection.execute(successes).tuples():
                outcomes[name] = (outcomes.get(name, (None, None))[0], ended)
        return outcomes

    def read_requested_runs(self, since: datetime) -> list[FlowRunRow]:
        """Manual runs and retries created at or after ``since`` that still wait."""
        return self._all(
            select(flow_runs)
            .where(
                flow_runs.c.created >= since,
                flow_runs.c.trigger.in_(sorted(REQUESTED_CAUSES)),
                flow_runs.c.state_type.in_(WAITING),
                # A resumed suspended run is queued again by read_resumed_runs' caller.
                flow_runs.c.state_name != StateName.RESUMING,
            )
            .order_by(flow_runs.c.created),
            FlowRunRow,
        )

    def read_running_ids(self, deployment_names: Sequence[str]) -> list[str]:
        """Ids of the running runs of these deployments."""
        with self.reader.connect() as connection:
            return list(
                connection.execute(
                    select(flow_runs.c.id).where(
                        flow_runs.c.deployment_name.in_(list(deployment_names)),
                        flow_runs.c.state_type == StateType.RUNNING,
                    )
                ).scalars()
            )

    # Concurrency limits, audited.

    def set_limit_audited(
        self, name: str, limit: int, actor: Actor, slot_decay_per_second: float = 0.0
    ) -> None:
        """Create or change a concurrency limit (its decay too), with its audit entry."""
        check_limit(name, limit, slot_decay_per_second)
        detail: dict[str, Any] = {"limit": limit}
        if slot_decay_per_second:
            detail["slot_decay_per_second"] = slot_decay_per_second
        now = utcnow()
        with self.engine.begin() as connection:
            upsert_limit(connection, name, limit, slot_decay_per_second, now)
            execute_call(
                connection, audit_call(actor, AuditAction.LIMIT_SET, name, detail=detail, now=now)
            )
            notify_in(connection, Nudge.POLL)

    def read_limit_rows(self) -> list[ConcurrencyLimitRow]:
        """Every concurrency limit, by name."""
        return self._all(
            select(concurrency_limits).order_by(concurrency_limits.c.name), ConcurrencyLimitRow
        )

    def count_pool_waits(self) -> dict[str, int]:
        """Runs waiting for a slot of their deployment's run pool (AwaitingPool), by
        deployment (through the state_type index: only Pending runs are read)."""
        with self.reader.connect() as connection:
            rows = connection.execute(
                select(flow_runs.c.deployment_name, func.count())
                .where(
                    flow_runs.c.state_type == StateType.PENDING,
                    flow_runs.c.state_name == StateName.AWAITING_POOL,
                )
                .group_by(flow_runs.c.deployment_name)
            ).all()
        return {name: int(count) for name, count in rows if name is not None}

    def count_active_slots(self) -> dict[str, int]:
        """Slots taken now, by limit name: those held, and rate-limit slots not yet freed."""
        with self.reader.connect() as connection:
            rows = connection.execute(
                select(concurrency_slots.c.limit_name, func.sum(concurrency_slots.c.occupy))
                .where(slot_counts(utcnow()))
                .group_by(concurrency_slots.c.limit_name)
            ).all()
        return {name: int(total) for name, total in rows}

    def delete_limit_audited(self, name: str, actor: Actor) -> bool:
        """Remove a concurrency limit, with its audit entry; False if there was none."""
        with self.engine.begin() as connection:
            deleted = connection.execute(
                delete(concurrency_limits).where(concurrency_limits.c.name == name)
            ).rowcount
            if deleted:
                execute_call(connection, audit_call(actor, AuditAction.LIMIT_RM, name))
                notify_in(connection, Nudge.POLL)
        return bool(deleted)

    # API tokens.

    def create_token(
        self,
        name: str,
        token_hash: str,
        access: TokenAccess,
        expires_at: datetime | None,
        actor: Actor,
    ) -> bool:
        """Store a token's hash under ``name`` with its access and expiry; False if the name
        is taken."""
        now = utcnow()
        with self.engine.begin() as connection:
            taken = connection.execute(
                select(api_tokens.c.name).where(api_tokens.c.name == name)
            ).first()
            if taken:
                return False
            connection.execute(
                api_tokens.insert(),
                {
                    "name": name,
                    "token_hash": token_hash,
                    "read_only": access is TokenAccess.READ,
                    "access": access,
                    "expires_at": expires_at,
                    "created": now,
                    "created_by": actor.name,
                },
            )
            detail = {
                "access": str(access),
                "expires_at": None if expires_at is None else expires_at.isoformat(),
            }
            execute_call(
                connection, audit_call(actor, AuditAction.TOKEN_CREATE, name, detail=detail)
            )
        return True

    def revoke_token(self, name: str, actor: Actor) -> bool:
        """Delete token ``name``; False if there is none."""
        with self.engine.begin() as connection:
            deleted = connection.execute(
                delete(api_tokens).where(api_tokens.c.name == name)
            ).rowcount
            if deleted:
                execute_call(connection, audit_call(actor, AuditAction.TOKEN_REVOKE, name))
        return bool(deleted)

    def read_tokens(self) -> list[TokenInfo]:
        """Every token's name, scope and use (never the hash)."""
        return self._all(select(*TOKEN_INFO).order_by(api_tokens.c.name), TokenInfo)

    def find_token(self, token_hash: str) -> TokenScope | None:
        """The token with this hash (name and scope), or None."""
        statement = select(*TOKEN_SCOPE).where(api_tokens.c.token_hash == token_hash)
        return self._one(statement, TokenScope)

    def touch_tokens(self, used: dict[str, datetime]) -> None:
        """Record when tokens were last used (the API batches these)."""
        with self.engine.begin() as connection:
            for name, when in used.items():
                connection.execute(
                    update(api_tokens).where(api_tokens.c.name == name).values(last_used=when)
                )

    def count_tokens(self) -> int:
        with self.reader.connect() as connection:
            return int(
                connection.execute(select(func.count()).select_from(api_tokens)).scalar_one()
            )
