"""Runs triggered by runs: which downstreams follow a deployment (``after``), and what the
runs at a nominal time mean for a downstream, given the runs stored then.

A downstream's run at nominal time T is decided once the newest run (generation) of every
upstream at T has ended, on a time that is a schedule's (its first run's cause is not an
operator's request: a manual run's time is when it was asked for): if each ended as its
``on`` wants, a run of cause ``upstream``; else a Skipped row saying which did not. Its
``caused_by`` is the last of those runs to end, and that is the decision's identity: the
downstream has decided T for this set of upstream runs when one of its rows at T is
caused by it, so deciding again (a restart, another end seen) creates nothing. An upstream
reprocessed at T (its next generation, by ``runs retry`` or a backfill) ends after the
others: a new last run, so a new decision, the downstream's next generation of T.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from gnomon.daemon._breach_rules import RunFacts
from gnomon.scheduling import Upstream, UpstreamOn
from gnomon.states import FINAL_TYPES, StateType
from gnomon.store import REQUESTED_CAUSES, RunCause

if TYPE_CHECKING:
    from gnomon.daemon._tracking import Slot
    from gnomon.store.rows import FlowRunRow, WatchedRun

# How many of each upstream's newest ended runs a starting daemon looks at for ends a
# killed daemon did not act on (the catch-up's bound is of the same order).
RECOVERY_SCAN_LIMIT = 1_000

_WANTED = {
    UpstreamOn.COMPLETED: "completed",
    UpstreamOn.FAILED: "failed",
    UpstreamOn.ANY: "completed or failed",
}


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a downstream's upstreams decided for a nominal time: ``run`` it or not, why
    (the run's first state message, or the Skipped row's reason), the upstream run whose
    end decided it, and the downstream's generation of that time to create."""

    run: bool
    reason: str
    caused_by: str
    generation: int


def downstreams_of(slots: Mapping[str, Slot]) -> dict[str, list[str]]:
    """By upstream name, the tracked deployments that run after it (in name order)."""
    followers: dict[str, list[str]] = {}
    for name in sorted(slots):
        for upstream in slots[name].trigger.after:
            followers.setdefault(upstream.deployment, []).append(name)
    return followers


def ended(run: FlowRunRow) -> bool:
    """Whether ``run`` is an end that may decide downstreams (by ``verdict``, which also
    asks whether its time is a schedule's)."""
    return run.state_type in FINAL_TYPES and run.scheduled_for is not None


# How many runs up a chain of upstream runs ``made_by_backfill`` looks (a chain longer than
# any deployments' is a cycle, which the config refuses).
MAX_CHAIN = 64


def made_by_backfill(run: FlowRunRow | None, read: Callable[[str], FlowRunRow | None]) -> bool:
    """Whether ``run`` is a backfill's, or a downstream run that the runs which caused it
    (``caused_by``, and theirs, read with ``read``) lead back to a backfill's: a run made
    after its nominal time on purpose, which cascades as a backfill's run does and is
    neither late nor past its deadline."""
    for _ in range(MAX_CHAIN):
        if run is None or run.trigger == RunCause.BACKFILL:
            return run is not None
        if run.trigger != RunCause.UPSTREAM or run.caused_by is None:
            return False
        run = read(run.caused_by)
    return False


def _end_order(run: FlowRunRow) -> tuple[datetime, str]:
    """Which of two ended runs ended last (a cancelled run may have no end time: its last
    change, then)."""
    return (run.end_time or run.updated or run.created, run.id)


def verdict(name: str, after: Sequence[Upstream], runs: Sequence[FlowRunRow]) -> Verdict | None:
    """The decision of downstream ``name`` at one nominal time, from every run there (its
    own and its upstreams', all generations); None when there is none to make: an
    upstream's newest run there has not ended (or there is none), the time is not a
    schedule's, or this set of upstream runs was decided already."""
    by_name: dict[str, list[FlowRunRow]] = {}
    for run in sorted(runs, key=lambda run: run.generation):
        by_name.setdefault(run.deployment_name or "", []).append(run)
    newest = [by_name.get(upstream.deployment, [None])[-1] for upstream in after]
    firsts = [by_name.get(upstream.deployment, [None])[0] for upstream in after]
    if any(run is None or not ended(run) for run in newest):
        return None
    if any(first is None or first.trigger in REQUESTED_CAUSES for first in firsts):
        return None  # a manual run's time: when it was asked for, no schedule's
    current = [run for run in newest if run is not None]
    last = max(current, key=_end_order)
    own = by_name.get(name, [])
    if any(run.caused_by == last.id for run in own):
        return None  # decided already
    generation = own[-1].generation + 1 if own else 1
    # Its run at that time still going: the new one is Skipped (no two generations of one
    # time run at once).
    busy = bool(own) and own[-1].state_type not in FINAL_TYPES
    for upstream, run in zip(after, current, strict=True):
        if not upstream.on.matches(run.state_type or ""):
            wanted = _WANTED[upstream.on]
            reason = f"upstream {upstream.deployment} ended {run.state_name}, not {wanted}"
            return Verdict(False, reason, last.id, generation)
    if busy:
        reason = f"its generation {own[-1].generation} of this time has not finished"
        return Verdict(False, reason, last.id, generation)
    pairs = zip(after, current, strict=True)
    names = ", ".join(f"{upstream.deployment} {run.state_name}" for upstream, run in pairs)
    return Verdict(True, f"after {names}", last.id, generation)


def ancestors_of(slots: Mapping[str, Slot]) -> dict[str, frozenset[str]]:
    """By tracked deployment that runs only after others (no schedule of its own), every
    deployment upstream of it: its upstreams, theirs, and so on."""
    direct = {name: {u.deployment for u in slot.trigger.after} for name, slot in slots.items()}
    found: dict[str, frozenset[str]] = {}
    for name, slot in slots.items():
        if slot.trigger.specs or not slot.trigger.after:
            continue
        seen: set[str] = set()
        todo = list(direct[name])
        while todo:
            upstream = todo.pop()
            if upstream not in seen:
                seen.add(upstream)
                todo.extend(direct.get(upstream, ()))
        found[name] = frozenset(seen - {name})
    return found


def waiting_runs(
    ancestors: Mapping[str, frozenset[str]],
    offsets: Mapping[str, timedelta],
    unfinished: Sequence[WatchedRun],
) -> list[RunFacts]:
    """The runs of downstreams (``ancestors``: those watched, by name) not created yet
    because a run upstream of them at their nominal time has not ended (``unfinished``):
    as runs that have not started, without an id (their row does not exist yet), each due
    at that nominal time plus the downstream's jitter offset. The deadline watch judges
    them as it judges runs waiting for a worker."""
    have = {(run.deployment_name, run.scheduled_for) for run in unfinished}
    waiting: dict[tuple[str, datetime], RunFacts] = {}
    for run in unfinished:
        nominal = run.scheduled_for
        if nominal is None or run.trigger in REQUESTED_CAUSES:
            continue  # generation 1 (the watch's): a manual run's time is no schedule's
        for name, upstream in ancestors.items():
            key = (name, nominal)
            if run.deployment_name in upstream and key not in have and key not in waiting:
                due = nominal + offsets.get(name, timedelta(0))
                waiting[key] = RunFacts(
                    "", name, nominal, StateType.SCHEDULED, None, None, None, due
                )
    return list(waiting.values())
