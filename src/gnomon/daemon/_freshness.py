"""When each deployment with ``fresh_within`` goes stale, kept so that the deadline watch
looks only at those due, however many deployments it watches.

A deployment is stale ``fresh_within`` after the later of its last success and the time it
started counting (registration, coming back into the config, a resume: its
``fires_from``, or a resume the watch saw). Those times sit in a heap by when they come,
as the fire timer keeps fires (``_timer``): an entry is checked when it comes up, and is
void once the deployment's times have moved (a success, a resume, a reload). A deployment
that comes up while paused is set aside until it is resumed, and counts from then. Reads
no clock: the caller gives the time.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from gnomon.daemon._breach_rules import stale_time


class Freshness:
    """The stale times of the deployments watched for freshness."""

    def __init__(self) -> None:
        self._window: dict[str, timedelta] = {}
        self._last: dict[str, datetime] = {}  # the end of its newest completed run
        self._counting: dict[str, datetime] = {}
        self._heap: list[tuple[datetime, str]] = []
        self._planned: dict[str, datetime] = {}  # its entry in the heap: the others are void
        self._set_aside: set[str] = set()  # came up while paused

    def watch(
        self,
        windows: Mapping[str, timedelta],
        counting: Mapping[str, datetime | None],
        last_successes: Mapping[str, datetime],
    ) -> None:
        """Watch these deployments (at start, and after a reload): their ``fresh_within``,
        when they started counting, and last successes read for those new here."""
        for name in self._window.keys() - windows.keys():
            self._window.pop(name)
            self._planned.pop(name, None)
            self._set_aside.discard(name)
        self._last.update(last_successes)
        for name, window in windows.items():
            self._window[name] = window
            # The row's, or a resume seen here since, whichever is later.
            since = max(filter(None, (counting.get(name), self._counting.get(name))), default=None)
            if since is not None:
                self._counting[name] = since
            self._plan(name)

    def watches(self, name: str) -> bool:
        return name in self._window

    def last_success(self, name: str) -> datetime | None:
        return self._last.get(name)

    def succeeded(self, name: str, ended: datetime) -> None:
        """A run of ``name`` completed at ``ended``: it is fresh until ``fresh_within``
        after that."""
        last = self._last.get(name)
        if last is None or ended > last:
            self._last[name] = ended
            self._plan(name)

    def stale(
        self,
        now: datetime,
        paused: Callable[[str], bool],
        counting_from: Callable[[str], datetime | None],
    ) -> list[tuple[str, datetime]]:
        """The deployments stale by ``now``, each with the time it went stale, each time
        given once. ``paused`` says which are paused (those are set aside until resumed);
        ``counting_from`` reads when a deployment last started counting (its resume),
        asked only of a deployment coming up or resumed, so a pause and a resume between
        two stale times are not missed."""
        for name in sorted(self._set_aside):
            if not paused(name):
                self._set_aside.discard(name)
                self._count_from(name, counting_from(name) or now)
        found = []
        while self._heap and self._heap[0][0] <= now:
            due, name = heapq.heappop(self._heap)
            if due != self._planned.get(name):
                continue  # void: its times moved, and another entry has them
            if paused(name):
                self._set_aside.add(name)
            elif not self._count_from(name, counting_from(name)):
                found.append((name, due))
        return found

    def _count_from(self, name: str, since: datetime | None) -> bool:
        """Count ``name`` from ``since`` if that is later than it did; whether it was."""
        current = self._counting.get(name)
        if since is None or (current is not None and since <= current):
            return False
        self._counting[name] = since
        self._plan(name)
        return True

    def _plan(self, name: str) -> None:
        """Put the deployment's stale time in the heap, unless it is there (or was given)."""
        window = self._window.get(name)
        if window is None:
            return
        due = stale_time(window, self._last.get(name), self._counting.get(name))
        if due is not None and due != self._planned.get(name):
            self._planned[name] = due
            heapq.heappush(self._heap, (due, name))
