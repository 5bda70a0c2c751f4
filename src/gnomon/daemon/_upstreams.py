"""Runs triggered by runs: which downstreams follow a deployment (``after``), and what an
upstream's end at a nominal time means for a downstream, given the runs stored then.

A downstream's run at nominal time T is decided once every upstream has a run at T that
ended (and is of a cause that starts downstreams: ``CASCADING_CAUSES``): if each ended as
its ``on`` wants, a run of cause ``upstream``; else a Skipped row saying which did not.
Either way the row is keyed (downstream, T), so deciding twice (a restart, a second end
seen) creates nothing twice. Upstreams not all ended yet: nothing yet, the last to end
decides. The row's ``caused_by`` is that last run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from gnomon.daemon._breach_rules import RunFacts
from gnomon.scheduling import Upstream, UpstreamOn
from gnomon.states import FINAL_TYPES, StateType
from gnomon.store import CASCADING_CAUSES

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
    (the run's first state message, or the Skipped row's reason), and the upstream run
    whose end decided it."""

    run: bool
    reason: str
    caused_by: str


def downstreams_of(slots: Mapping[str, Slot]) -> dict[str, list[str]]:
    """By upstream name, the tracked deployments that run after it (in name order)."""
    followers: dict[str, list[str]] = {}
    for name in sorted(slots):
        for upstream in slots[name].trigger.after:
            followers.setdefault(upstream.deployment, []).append(name)
    return followers


def counts(run: FlowRunRow | None) -> bool:
    """Whether ``run`` is an end that decides a downstream: ended, of a cascading cause."""
    return run is not None and run.state_type in FINAL_TYPES and run.trigger in CASCADING_CAUSES


def verdict(
    after: Sequence[Upstream], runs: Mapping[str, FlowRunRow], ended: str
) -> Verdict | None:
    """The downstream's verdict from its upstreams' runs at one nominal time (by
    deployment name), seen at the end of run ``ended``; None while one of them has not
    ended (or has no such run). A run is caused by ``ended``; a Skipped row by the
    upstream run that did not end as wanted."""
    found = [runs.get(upstream.deployment) for upstream in after]
    if not all(counts(run) for run in found):
        return None
    for upstream, run in zip(after, found, strict=True):
        assert run is not None  # counts()
        if not upstream.on.matches(run.state_type or ""):
            wanted = _WANTED[upstream.on]
            reason = f"upstream {upstream.deployment} ended {run.state_name}, not {wanted}"
            return Verdict(False, reason, run.id)
    names = ", ".join(f"{u.deployment} {runs[u.deployment].state_name}" for u in after)
    return Verdict(True, f"after {names}", ended)


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
        if nominal is None or run.trigger not in CASCADING_CAUSES:
            continue
        for name, upstream in ancestors.items():
            key = (name, nominal)
            if run.deployment_name in upstream and key not in have and key not in waiting:
                due = nominal + offsets.get(name, timedelta(0))
                waiting[key] = RunFacts(
                    "", name, nominal, StateType.SCHEDULED, None, None, None, due
                )
    return list(waiting.values())
