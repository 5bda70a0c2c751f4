"""Several daemons on one PostgreSQL database: membership, leadership, released runs.

Every time here is the database's (``now()``), never a host's: hosts' clocks may disagree,
the server's is the one all members see. A member's lease runs ``timeout`` seconds from its
last renewal; a renewal succeeds only while the lease has not run out, so a member the
others have declared dead cannot come back under its old name (it joins again as a new
member, see ``daemon/_cluster``). The leader row is taken the same way, and also from a
holder whose membership connection is gone (its process died: the server ended its
session), so a killed scheduler is replaced within a second, not a timeout.

The membership functions take the member's own connection (its server process id is the
liveness the leader row records); the runs' methods are the store's (``ClusterQueries``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    bindparam,
    case,
    delete,
    exists,
    func,
    insert,
    literal_column,
    or_,
    select,
    text,
    update,
)

from gnomon.states import HELD_NAMES, StateName, StateType
from gnomon.store._kinds import NOTIFY_CHANNEL, Nudge
from gnomon.store._queries import Queries
from gnomon.store._schema import cluster_leader, daemons, deployments, flow_runs, utcnow
from gnomon.store.rows import DaemonRow, FlowRunRow

LEADER_ROW = 1
_WAITING = (StateType.SCHEDULED, StateType.PENDING)


def _lease(seconds: float) -> Any:
    return func.now() + func.make_interval(0, 0, 0, 0, 0, 0, seconds)


@dataclass(frozen=True, slots=True)
class Renewal:
    """What a member learns at each renewal: whether it is still a member, whether it
    leads (and the leadership's epoch), and what the others can take."""

    member: bool
    leader: str | None  # the leading member's id, None if no one leads
    epoch: int
    idle_elsewhere: int  # idle workers of the other live members
    released: int  # runs released and not yet taken by any member


def join_cluster(connection: Connection, values: Mapping[str, Any], timeout: float) -> None:
    """Record the member ``values["id"]`` with a lease of ``timeout`` seconds (and the
    leader row, should the schema have been made without its migration's row)."""
    from sqlalchemy.dialects.postgresql import insert as upsert

    connection.execute(
        upsert(cluster_leader).values(id=LEADER_ROW, epoch=0).on_conflict_do_nothing()
    )
    connection.execute(
        insert(daemons).values(
            **values,
            started_at=func.now(),
            heartbeat_at=func.now(),
            lease_until=_lease(timeout),
            backend_pid=func.pg_backend_pid(),
        )
    )
    connection.commit()


def renew_membership(
    connection: Connection,
    member_id: str,
    timeout: float,
    busy: int,
    idle: int,
    definitions: Mapping[str, str] | None,
    lead: bool,
) -> Renewal:
    """Renew the member's lease (refused once it has run out), and take or keep the
    leadership if ``lead`` (a member that does not want it never takes it); one
    transaction."""
    values: dict[str, Any] = {
        "heartbeat_at": func.now(),
        "lease_until": _lease(timeout),
        "busy": busy,
        "idle": idle,
        "backend_pid": func.pg_backend_pid(),
    }
    if definitions is not None:
        values["definitions"] = dict(definitions)
    renewed = connection.execute(
        update(daemons)
        .where(daemons.c.id == member_id, daemons.c.lease_until > func.now())
        .values(values)
        .returning(daemons.c.id)
    ).first()
    if renewed is None:
        connection.commit()
        return Renewal(False, None, 0, 0, 0)
    leader = cluster_leader.c
    if lead:
        holder_gone = ~exists(
            select(literal_column("1"))
            .select_from(text("pg_stat_activity"))
            .where(literal_column("pid") == leader.backend_pid)
        )
        connection.execute(
            update(cluster_leader)
            .where(
                leader.id == LEADER_ROW,
                or_(
                    leader.daemon_id == member_id,
                    leader.daemon_id.is_(None),
                    leader.expires_at.is_(None),
                    leader.expires_at < func.now(),
                    holder_gone,
                ),
                # This member keeps it only while its lease has not run out: past that,
                # it may have been taken and given back, and it must start again.
                or_(leader.daemon_id.is_distinct_from(member_id), leader.expires_at > func.now()),
            )
            .values(
                daemon_id=member_id,
                epoch=leader.epoch
                + case((leader.daemon_id.is_distinct_from(member_id), 1), else_=0),
                backend_pid=func.pg_backend_pid(),
                expires_at=_lease(timeout),
            )
        )
    holder, epoch = connection.execute(
        select(leader.daemon_id, leader.epoch).where(leader.id == LEADER_ROW)
    ).one()
    idle_elsewhere = connection.execute(
        select(func.coalesce(func.sum(daemons.c.idle), 0)).where(
            daemons.c.id != member_id, daemons.c.lease_until > func.now()
        )
    ).scalar_one()
    released = connection.execute(
        select(func.count()).select_from(flow_runs).where(flow_runs.c.released_at.is_not(None))
    ).scalar_one()
    connection.commit()
    return Renewal(True, holder, epoch, int(idle_elsewhere), int(released))


def leave_cluster(connection: Connection, member_id: str) -> None:
    """Give the leadership up (if held) and the membership: a clean stop, after which
    another member leads at its next renewal."""
    connection.execute(
        update(cluster_leader)
        .where(cluster_leader.c.daemon_id == member_id)
        .values(daemon_id=None, expires_at=None, backend_pid=None)
    )
    connection.execute(delete(daemons).where(daemons.c.id == member_id))
    connection.commit()


def agreed_definitions(connection: Connection) -> dict[str, str | None]:
    """The stored definition hash of every active deployment (the scheduler's)."""
    c = deployments.c
    rows = connection.execute(select(c.name, c.definition_hash).where(c.active)).all()
    connection.commit()
    return {row.name: row.definition_hash for row in rows}


class ClusterQueries(Queries):
    """The runs' side of several daemons: release, claim, ends, and a dead member's runs."""

    def release_runs(self, ids: Sequence[str]) -> set[str]:
        """Hand waiting runs to whichever member takes them; the ids released (not a run
        that started or ended meanwhile)."""
        if not ids:
            return set()
        c = flow_runs.c
        with self.engine.begin() as connection:
            rows = connection.execute(
                update(flow_runs)
                .where(c.id.in_(list(ids)), c.state_type.in_(_WAITING))
                .values(released_at=func.now(), daemon_id=None)
                .returning(c.id)
            ).all()
            if rows:  # the members hear it as the release commits
                connection.execute(select(func.pg_notify(NOTIFY_CHANNEL, Nudge.RELEASE.value)))
        return {row.id for row in rows}

    def claim_released(self, member_id: str, names: Sequence[str], limit: int) -> list[FlowRunRow]:
        """Take up to ``limit`` released runs of the deployments ``names``, oldest release
        first, skipping the rows other members are taking (``FOR UPDATE SKIP LOCKED``)."""
        if limit <= 0 or not names:
            return []
        c = flow_runs.c
        taken = (
            select(c.id)
            .where(
                c.released_at.is_not(None),
                c.state_type.in_(_WAITING),
                c.deployment_name.in_(list(names)),
            )
            .order_by(c.released_at, c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        with self.engine.begin() as connection:
            rows = connection.execute(
                update(flow_runs)
                .where(c.id.in_(taken))
                .values(daemon_id=member_id, released_at=None)
                .returning(*flow_runs.c)
            ).all()
        return [FlowRunRow(*row) for row in rows]

    def read_ended(self, ids: Sequence[str]) -> list[FlowRunRow]:
        """The runs among ``ids`` that have ended (or been suspended)."""
        if not ids:
            return []
        c = flow_runs.c
        ended = ~c.state_type.in_(
            (StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING, StateType.PAUSED)
        ) | (c.state_name == StateName.SUSPENDED)
        with self.reader.connect() as connection:
            rows = connection.execute(select(flow_runs).where(c.id.in_(list(ids)), ended)).all()
        return [FlowRunRow(*row) for row in rows]

    def read_member_cancels(self, member_id: str) -> list[FlowRunRow]:
        """The member's unfinished runs an operator (or the scheduler) asked to cancel."""
        c = flow_runs.c
        with self.reader.connect() as connection:
            rows = connection.execute(
                select(flow_runs).where(
                    c.daemon_id == member_id,
                    c.cancel_requested_at.is_not(None),
                    c.state_type.in_((*_WAITING, StateType.RUNNING, StateType.PAUSED)),
                )
            ).all()
        return [FlowRunRow(*row) for row in rows]

    def read_leader(self) -> tuple[str | None, int, datetime | None]:
        """Who leads, the leadership's epoch, and until when."""
        c = cluster_leader.c
        with self.reader.connect() as connection:
            row = connection.execute(
                select(c.daemon_id, c.epoch, c.expires_at).where(c.id == LEADER_ROW)
            ).first()
        return (None, 0, None) if row is None else (row[0], row[1], row[2])

    def read_member_leases(self) -> tuple[datetime, list[DaemonRow]]:
        """The database's time, and every member as of then."""
        with self.reader.connect() as connection:
            now = connection.execute(select(func.now())).scalar_one()
            rows = connection.execute(select(daemons).order_by(daemons.c.started_at)).all()
        return now, [DaemonRow(*row) for row in rows]

    def settle_member(
        self, member_id: str, message: str, *, gone: bool = False
    ) -> tuple[list[FlowRunRow], list[FlowRunRow]]:
        """Settle a dead member's runs, if its lease has run out: its waiting runs are
        released to the others (in the transaction that removes the member), then its
        running (or paused) runs Crashed with ``message``. Returns the runs crashed and
        the runs released (as they were); none if it renewed meanwhile or another member
        settled it first. ``gone``: the caller knows the member's process is gone (it ran
        on this host), so its lease need not have run out."""
        c = flow_runs.c
        with self.engine.begin() as connection:
            expired = daemons.c.lease_until < func.now()
            removed = connection.execute(
                delete(daemons)
                .where(daemons.c.id == member_id, *(() if gone else (expired,)))
                .returning(daemons.c.id)
            ).first()
            if removed is None:
                return [], []
            held = connection.execute(
                select(flow_runs)
                .where(
                    c.daemon_id == member_id,
                    c.state_type.in_((*_WAITING, StateType.RUNNING, StateType.PAUSED)),
                )
                .with_for_update()
            ).all()
            rows = [FlowRunRow(*row) for row in held]
            live = [
                row
                for row in rows
                if row.state_type == StateType.RUNNING or row.state_name in HELD_NAMES
            ]
            waiting = [row for row in rows if row not in live]
            if waiting:
                connection.execute(
                    update(flow_runs)
                    .where(c.id.in_([row.id for row in waiting]))
                    .values(released_at=func.now(), daemon_id=None)
                )
        crashed = [
            row
            for row in live
            if self.set_run_state(  # type: ignore[attr-defined]
                row.id,
                StateType.CRASHED,
                StateName.CRASHED,
                message,
                only_if_active=True,
                end_time=utcnow(),
            )
        ]
        return crashed, waiting

    def set_entrypoints(self, entrypoints: Mapping[str, str]) -> None:
        """Set runs' flow entrypoints (by run id), as the member that took them has them."""
        self._set_each(flow_runs.c.id, flow_runs.c.entrypoint, entrypoints)

    def store_definitions(self, definitions: Mapping[str, str]) -> None:
        """Record the scheduler's definition hash of each deployment."""
        self._set_each(deployments.c.name, deployments.c.definition_hash, definitions)

    def _set_each(self, key: Any, column: Any, values: Mapping[str, str]) -> None:
        """Set ``column`` of each row whose ``key`` is one of ``values``, in one transaction."""
        if not values:
            return
        statement = (
            update(key.table)
            .where(key == bindparam("row_key"))
            .values({column.name: bindparam("row_value")})
        )
        with self.engine.begin() as connection:
            connection.execute(
                statement, [{"row_key": name, "row_value": value} for name, value in values.items()]
            )


__all__ = [
    "ClusterQueries",
    "Renewal",
    "agreed_definitions",
    "join_cluster",
    "leave_cluster",
    "renew_membership",
]
