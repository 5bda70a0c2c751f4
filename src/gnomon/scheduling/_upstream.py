"""Runs triggered by runs: a deployment's ``after = [{deployment = "extract", on =
"completed"}]`` as values, and the arithmetic the config's check needs (do upstreams share
nominal times?). Pure: no clock, no store.

A downstream run takes its upstreams' nominal time as its own, so it exists only for times
all its upstreams produce; ``common_time`` finds whether there is one ahead.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from gnomon.states import FAILED_TYPES, StateType

# How many fire times of the sparsest upstream the config's check tries for a time every
# other upstream produces too (see ``common_time``).
COMMON_TIME_TRIES = 200
_MICROSECOND = timedelta(microseconds=1)


class UpstreamOn(enum.StrEnum):
    """Which ends of an upstream's run start the downstream's: ``completed``, ``failed``
    (Failed, TimedOut, Crashed: ``states.FAILED_TYPES``) or ``any`` of the two. A run
    cancelled, skipped or missed ran to neither: the downstream records a Skipped run."""

    COMPLETED = "completed"
    FAILED = "failed"
    ANY = "any"

    def matches(self, state_type: str) -> bool:
        """Whether a run that ended with ``state_type`` starts the downstream."""
        completed = state_type == StateType.COMPLETED
        failed = state_type in FAILED_TYPES
        if self is UpstreamOn.COMPLETED:
            return completed
        if self is UpstreamOn.FAILED:
            return failed
        return completed or failed


@dataclass(frozen=True)
class Upstream:
    """One entry of a deployment's ``after``: the upstream deployment and which of its
    runs' ends start a run of the downstream."""

    deployment: str
    on: UpstreamOn = UpstreamOn.COMPLETED

    def table(self) -> dict[str, str]:
        """The entry as the store keeps it (in the schedule's document)."""
        return {"deployment": self.deployment, "on": str(self.on)}

    @classmethod
    def of(cls, table: Mapping[str, Any]) -> Upstream:
        return cls(str(table["deployment"]), UpstreamOn(table.get("on", "completed")))

    def describe(self) -> str:
        """``extract`` (completed, the default, is left out) or ``extract (failed)``."""
        if self.on is UpstreamOn.COMPLETED:
            return self.deployment
        return f"{self.deployment} ({self.on})"


def after_words(after: Sequence[Upstream]) -> str:
    """``after extract, load (any)``; "" for none."""
    if not after:
        return ""
    return "after " + ", ".join(upstream.describe() for upstream in after)


def find_cycle(edges: Mapping[str, Sequence[str]]) -> list[str] | None:
    """A cycle in the graph of ``edges`` (downstream -> its upstreams), as the names along
    it with the first repeated at the end (``["a", "b", "a"]``); None if there is none.
    Names without edges of their own end a path."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        path.append(name)
        for upstream in edges.get(name, ()):
            if state.get(upstream) == 1:
                return [*path[path.index(upstream) :], upstream]
            if upstream not in state:
                found = visit(upstream)
                if found is not None:
                    return found
        path.pop()
        state[name] = 2
        return None

    for name in sorted(edges):
        if name not in state:
            found = visit(name)
            if found is not None:
                return found
    return None


# A source of nominal times: the first after a time, or None when there are no more.
NextTime = Callable[[datetime], datetime | None]


def common_time(
    sources: Sequence[NextTime], after: datetime, tries: int = COMMON_TIME_TRIES
) -> datetime | None:
    """A nominal time every source produces, among the next ``tries`` of the sparsest
    (the one whose ``tries``-th time is furthest away, or that ends first); None if none
    is. A source produces a time when its first time after the instant before is it."""
    if not sources:
        return None
    listed = [_next_times(source, after, tries) for source in sources]

    def sparseness(index: int) -> tuple[bool, datetime]:
        times = listed[index]
        return (len(times) < tries, times[-1] if times else after)

    sparsest = max(range(len(sources)), key=sparseness)
    others = [source for index, source in enumerate(sources) if index != sparsest]
    for moment in listed[sparsest]:
        before = moment - _MICROSECOND
        if all(source(before) == moment for source in others):
            return moment
    return None


def _next_times(source: NextTime, after: datetime, count: int) -> list[datetime]:
    times: list[datetime] = []
    current = source(after)
    while current is not None and len(times) < count:
        times.append(current)
        current = source(current)
    return times
