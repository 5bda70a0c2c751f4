"""A deployment's ``after = [...]`` entries (runs triggered by runs) and the checks that
need every deployment of the config: an upstream that does not exist, a cycle, upstreams
that share no nominal time.

A downstream run takes its upstreams' nominal time as its own, so a downstream of several
upstreams runs only at times they all produce. Whether they can is checked at load by
``common_time`` over each one's next fire times: those of its schedule, or for an upstream
that is itself a downstream without a schedule, the times its own upstreams share. An
interval without an ``anchor`` in the file counts from its registration, which the load
does not know: it is checked from one anchor shared by all (so two intervals that only
share times when registered together pass; give them an anchor).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, field_validator

from gnomon.deployments._specs import CHECK_ANCHOR
from gnomon.scheduling import (
    COMMON_TIME_TRIES,
    ScheduleError,
    Upstream,
    UpstreamOn,
    common_time,
    find_cycle,
)

if TYPE_CHECKING:
    from gnomon.deployments._models import Deployment

NextTime = Callable[[datetime], datetime | None]


class UpstreamEntry(BaseModel):
    """One entry of ``after``: ``{deployment = "extract", on = "completed"}`` (``on`` is
    ``completed`` unless stated; also ``failed`` or ``any``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    deployment: str
    on: UpstreamOn = UpstreamOn.COMPLETED

    @field_validator("deployment")
    @classmethod
    def _check_name(cls, value: str) -> str:
        from gnomon.deployments._models import check_name

        return check_name(value)

    def upstream(self) -> Upstream:
        return Upstream(self.deployment, self.on)


def _no_repeats(entries: tuple[UpstreamEntry, ...] | None) -> tuple[UpstreamEntry, ...] | None:
    if entries is None:
        return None
    if not entries:
        raise ValueError('is empty: list at least one {deployment = "..."} (or leave it out)')
    names = [entry.deployment for entry in entries]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"names {twice[0]!r} twice: one entry per upstream")
    return entries


# A deployment's ``after``: None when not stated.
AfterEntries = Annotated[tuple[UpstreamEntry, ...] | None, AfterValidator(_no_repeats)]


class UpstreamProblem(ValueError):
    """What is wrong with a deployment's ``after`` given the other deployments: ``value``
    is what the problem names (an upstream, or the cycle)."""

    def __init__(self, deployment: str, value: object, message: str) -> None:
        super().__init__(message)
        self.deployment = deployment
        self.value = value


def upstream_problems(
    deployments: Iterable[Deployment], declared: Iterable[str], now: datetime
) -> list[UpstreamProblem]:
    """The problems of the deployments' ``after`` entries: an upstream no deployment is
    declared as (``declared``: valid or not), each deployment of a cycle (the problem
    names the cycle), and a downstream whose upstreams share no nominal time from ``now``
    on (among the next ``COMMON_TIME_TRIES`` fires of the sparsest)."""
    valid = {deployment.name: deployment for deployment in deployments}
    known = set(declared) | set(valid)
    problems: list[UpstreamProblem] = []
    for deployment in valid.values():
        for upstream in deployment.upstreams:
            if upstream.deployment not in known:
                close = difflib.get_close_matches(upstream.deployment, sorted(known), n=1)
                hint = f'; did you mean "{close[0]}"?' if close else ""
                problems.append(
                    UpstreamProblem(
                        deployment.name, upstream.deployment, f"no deployment has this name{hint}"
                    )
                )
    edges = {name: [u.deployment for u in d.upstreams] for name, d in valid.items()}
    cycle = find_cycle(edges)
    in_cycles: set[str] = set()
    while cycle is not None:
        text = " -> ".join(cycle)
        for name in cycle[:-1]:
            if name not in in_cycles:
                problems.append(UpstreamProblem(name, text, "runs after itself: a cycle"))
        in_cycles.update(cycle)
        # Another cycle, if any, among the edges left once this one is cut.
        edges = {name: ups for name, ups in edges.items() if name not in in_cycles}
        cycle = find_cycle(edges)
    bad = {problem.deployment for problem in problems}
    times = _Times(valid, now)
    for deployment in valid.values():
        names = [upstream.deployment for upstream in deployment.upstreams]
        if len(names) < 2 or deployment.name in bad or any(n not in valid for n in names):
            continue
        if times.common(names) is None:
            problems.append(
                UpstreamProblem(
                    deployment.name,
                    names,
                    "these upstreams share no nominal time (none among the next"
                    f" {COMMON_TIME_TRIES} fires of the sparsest): a downstream runs at"
                    " times all its upstreams produce",
                )
            )
    return problems


class _Times:
    """Each deployment's nominal times as the check sees them: its schedule's fires, and
    for a downstream without a schedule, the times its upstreams share."""

    def __init__(self, deployments: Mapping[str, Deployment], now: datetime) -> None:
        self.deployments = deployments
        self.now = now

    def common(self, names: list[str]) -> datetime | None:
        sources = [self.source(name, set()) for name in names]
        return common_time([s for s in sources if s is not None], self.now)

    def source(self, name: str, seen: set[str]) -> NextTime | None:
        """``name``'s next nominal time after a moment (None: it cannot say, in a cycle or
        a deployment whose schedule cannot be built)."""
        deployment = self.deployments.get(name)
        if deployment is None or name in seen:
            return None
        try:
            schedule = deployment.timing(CHECK_ANCHOR)
        except ScheduleError:
            return None
        if schedule.specs:
            return schedule.next_fire
        ups = [self.source(u.deployment, seen | {name}) for u in deployment.upstreams]
        sources = [source for source in ups if source is not None]

        def shared(after: datetime) -> datetime | None:
            return common_time(sources, after)

        return shared if sources else None
