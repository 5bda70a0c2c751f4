"""Deleting old runs and log lines (``retain_runs``, ``retain_logs``, ``gnomon db prune``).

A run's age counts from its end (``end_time``): a backfill of last year's times is as young
as its runs' ends, and a run that started long ago but ended yesterday stays. A run that
never ended is never pruned. Its rows go in small transactions (at most ``batch`` rows
each: its log lines, its states, its task runs, then the runs, whose artifacts, pauses and
breaches go with them by the foreign keys' cascade), and the caller's ``between`` runs
before each, so SQLite's one writer is never held for long and the daemon's loop gets its
turn. A crash between them leaves runs with fewer children, pruned by the next pass.

The runs a deployment's catch-up could reach stay whatever their age: those whose nominal
time is at or after the later of its ``last_fire`` and ``fires_from`` (all of them while
it has neither), since the catch-up decides the fires after that time and a run's row is
what stops a fire from being decided twice (the (deployment, nominal time) key).

Candidates are read along ``ix_flow_runs_created_id``: a run is created before it ends, so
every run that ended before the cut was created before it too; a pass walks that range
once, by keyset, whatever it keeps. No index on ``end_time`` is needed, and the hot writes
(a run's final state) keep the indexes they have.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Table, and_, delete, func, literal, or_, select, tuple_

from gnomon.store._queries import Queries
from gnomon.store._schema import deployments, flow_runs, run_logs, run_states, task_runs
from gnomon.store._vacuum import INCREMENTAL

# Called before each of a prune's write transactions (it may wait for a quiet moment);
# False stops the prune there.
Between = Callable[[], bool]
# Called with the result files of a batch's runs before their rows are deleted (so that a
# crash in between leaves rows without files, pruned next time, never files nobody finds).
ResultFiles = Callable[[Sequence["ResultFile"]], int]


@dataclass(frozen=True, slots=True)
class ResultFile:
    """A pruned run's stored result: its key in the result store, and whether the key is
    the run's own id (its file is the run's alone) or a cache key (a cache record other
    runs may share, which stays while it has not expired)."""

    key: str
    own: bool


@dataclass(slots=True)
class PruneCounts:
    """What a prune deleted (or, dry, would delete)."""

    runs: int = 0
    task_runs: int = 0
    states: int = 0
    logs: int = 0  # the pruned runs' log lines and the log lines past retain_logs
    results: int = 0  # result files
    kept_for_catchup: int = 0  # old runs kept: their deployment's catch-up could reach them
    freed_pages: int = 0  # SQLite pages given back to the file system (``_vacuum``)
    complete: bool = True  # False when ``between`` stopped it early
    # The ids of the old runs kept for catch-up, which a dry run's count of old log
    # lines needs (their lines go by age, the pruned runs' went with them).
    kept: list[str] = field(default_factory=list, repr=False)

    def detail(self) -> dict[str, Any]:
        """The counts as the audit entry keeps them."""
        return {
            "runs": self.runs,
            "task_runs": self.task_runs,
            "states": self.states,
            "logs": self.logs,
            "results": self.results,
            "kept_for_catchup": self.kept_for_catchup,
            "freed_pages": self.freed_pages,
            "complete": self.complete,
        }


class PruneQueries(Queries):
    """Old runs and log lines deleted in small transactions."""

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
        """Delete the runs that ended before ``before`` (but those a catch-up could reach)
        with their task runs, states, log lines, artifacts, pauses and breaches, adding to
        ``counts``; ``dry_run`` counts them only. ``results`` disposes of their result
        files and says how many it removed (or would)."""
        horizons = self._catchup_horizons()
        cursor: tuple[datetime, str] | None = None
        while True:
            rows = self._candidates(before, cursor, batch)
            if not rows:
                return
            cursor = (rows[-1][1], rows[-1][0])
            reachable = [_reachable(row, horizons) for row in rows]
            kept = [row[0] for row, keep in zip(rows, reachable, strict=True) if keep]
            ids = [row[0] for row, keep in zip(rows, reachable, strict=True) if not keep]
            counts.kept.extend(kept)
            counts.kept_for_catchup += len(kept)
            if ids and not self._prune_batch(ids, batch, between, results, counts, dry_run):
                counts.complete = False
                return
            if len(rows) < batch:
                return

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
        """Delete the log lines stored before ``before``, whatever their run (``ix_run_logs_
        timestamp``), ``batch`` at a time, adding to ``counts``. A dry run after one of
        ``prune_runs`` (with its ``runs_before``) leaves out the lines that would have gone
        with the runs, as the prune itself would find them gone."""
        old = run_logs.c.timestamp < before
        if dry_run:
            counts.logs += self._count_old_logs(old, runs_before, counts.kept, batch)
            return
        oldest = select(run_logs.c.id).where(old).order_by(run_logs.c.timestamp).limit(batch)
        while True:
            if not between():
                counts.complete = False
                return
            deleted = self._delete(delete(run_logs).where(run_logs.c.id.in_(oldest)))
            counts.logs += deleted
            if deleted < batch:
                return

    def release_free_pages(self, *, pages: int, between: Between, counts: PruneCounts) -> None:
        """On a SQLite store with ``auto_vacuum = INCREMENTAL`` (``gnomon db vacuum``), give
        its free pages back to the file system, ``pages`` per transaction, adding to
        ``counts``; elsewhere nothing (SQLite reuses them; PostgreSQL's autovacuum)."""
        if self.engine.dialect.name != "sqlite":
            return
        with self.reader.connect() as connection:
            if connection.exec_driver_sql("PRAGMA auto_vacuum").scalar() != INCREMENTAL:
                return
        while True:
            if not between():
                counts.complete = False
                return
            with self.engine.begin() as connection:
                free = int(connection.exec_driver_sql("PRAGMA freelist_count").scalar() or 0)
                if free == 0:
                    return
                # Python's sqlite3 takes one step of a statement that returns no rows, and
                # each step of incremental_vacuum frees one page: one call per page.
                cursor = connection.connection.cursor()
                try:
                    for _ in range(min(pages, free)):
                        cursor.execute("PRAGMA incremental_vacuum")
                finally:
                    cursor.close()  # its last statement ends before the commit
                left = int(connection.exec_driver_sql("PRAGMA freelist_count").scalar() or 0)
            counts.freed_pages += free - left
            if left == 0 or left >= free:
                return

    def _count_old_logs(
        self, old: Any, runs_before: datetime | None, kept: list[str], batch: int
    ) -> int:
        if runs_before is None:
            return self._count(run_logs, old)
        r = flow_runs.c
        pruned = (
            select(r.id)
            .where(r.id == run_logs.c.flow_run_id, r.created < runs_before)
            .where(r.end_time < runs_before)
            .exists()
        )
        total = self._count(run_logs, and_(old, or_(run_logs.c.flow_run_id.is_(None), ~pruned)))
        for start in range(0, len(kept), batch):  # pruned by age, not with their runs
            mine = run_logs.c.flow_run_id.in_(kept[start : start + batch])
            total += self._count(run_logs, and_(old, mine))
        return total

    def _catchup_horizons(self) -> dict[str, datetime | None]:
        """By deployment, the nominal time from which its catch-up may decide fires (None:
        it knows none yet, so any time may be)."""
        c = deployments.c
        with self.reader.connect() as connection:
            found = connection.execute(select(c.name, c.last_fire, c.fires_from)).all()
        return {
            name: max((t for t in (last, since) if t is not None), default=None)
            for name, last, since in found
        }

    def _candidates(
        self, before: datetime, after: tuple[datetime, str] | None, limit: int
    ) -> list[Any]:
        """Up to ``limit`` runs that ended before ``before``, by (created, id) after
        ``after``: (id, created, deployment_name, scheduled_for, result_ref)."""
        c = flow_runs.c
        statement = select(c.id, c.created, c.deployment_name, c.scheduled_for, c.result_ref)
        statement = statement.where(c.created < before, c.end_time < before)
        if after is not None:  # a row value, as the runs listing's keyset: an index range
            created, run_id = after
            statement = statement.where(
                tuple_(c.created, c.id) > tuple_(literal(created, c.created.type), literal(run_id))
            )
        statement = statement.order_by(c.created, c.id).limit(limit)
        with self.reader.connect() as connection:
            return list(connection.execute(statement).all())

    def _prune_batch(
        self,
        ids: list[str],
        batch: int,
        between: Between,
        results: ResultFiles,
        counts: PruneCounts,
        dry_run: bool,
    ) -> bool:
        """One batch of runs: their result files, then their rows, children first; False if
        ``between`` stopped it."""
        counts.results += results(self._result_files(ids))
        children: list[tuple[Table, str]] = [
            (run_logs, "logs"),
            (run_states, "states"),
            (task_runs, "task_runs"),
        ]
        for table, name in children:
            mine = table.c.flow_run_id.in_(ids)
            if dry_run:
                setattr(counts, name, getattr(counts, name) + self._count(table, mine))
                continue
            some = select(table.c.id).where(mine).limit(batch)
            while True:
                if not between():
                    return False
                deleted = self._delete(delete(table).where(table.c.id.in_(some)))
                setattr(counts, name, getattr(counts, name) + deleted)
                if deleted < batch:
                    break
        if dry_run:
            counts.runs += len(ids)
            return True
        if not between():
            return False
        counts.runs += self._delete(delete(flow_runs).where(flow_runs.c.id.in_(ids)))
        return True

    def _result_files(self, ids: list[str]) -> list[ResultFile]:
        """The stored results of these runs and of their task runs."""
        found: list[ResultFile] = []
        with self.reader.connect() as connection:
            for table, owner in ((flow_runs, flow_runs.c.id), (task_runs, task_runs.c.flow_run_id)):
                statement = select(table.c.id, table.c.result_ref).where(
                    owner.in_(ids), table.c.result_ref.is_not(None)
                )
                for run_id, ref in connection.execute(statement):
                    key = ref.get("key") if isinstance(ref, dict) else None
                    if isinstance(key, str) and ref.get("storage", "local") == "local":
                        found.append(ResultFile(key, own=key == run_id))
        return found

    def _count(self, table: Table, where: Any) -> int:
        with self.reader.connect() as connection:
            return int(
                connection.execute(
                    select(func.count()).select_from(table).where(where)
                ).scalar_one()
            )

    def _delete(self, statement: Any) -> int:
        with self.engine.begin() as connection:
            return int(connection.execute(statement).rowcount)


def _reachable(row: Sequence[Any], horizons: dict[str, datetime | None]) -> bool:
    """Whether the run ``row`` (id, created, deployment_name, scheduled_for, ...) is one its
    deployment's catch-up could decide again if it were gone."""
    name, nominal = row[2], row[3]
    if name is None or nominal is None or name not in horizons:
        return False
    horizon = horizons[name]
    return horizon is None or nominal >= horizon
