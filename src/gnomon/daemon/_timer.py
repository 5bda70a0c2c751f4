"""The daemon's one timer: each deployment's next fire time, in a heap ordered by when it
is due (the nominal time plus the deployment's jitter offset).

It reads no clock and owns no thread. The scheduler takes the due fires at each tick
(``take_due``) and plans each taken deployment's next fire once the fire's runs are
dispatched (``plan_next``); the daemon's loop sleeps until the top of the heap
(``next_due``). A deployment has at most one fire in the heap, so a schedule firing every
second costs one entry, not a list of the fire times to come.

Entries are checked when they reach the top, not removed when they go stale: an entry is
void once its deployment is gone, its trigger or jitter has changed (a reload), or a fire
at or after it has been decided (a catch-up). ``plan`` gives every deployment without a
live entry its next fire after the time given, ``restart`` every deployment (after a
catch-up, which decided the fires before it).
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gnomon.daemon._tracking import Slot
    from gnomon.scheduling import Trigger


@dataclass(frozen=True, slots=True)
class _Planned:
    """A deployment's next fire, and the schedule that computed it."""

    nominal: datetime
    trigger: Trigger
    offset: timedelta

    def fits(self, slot: Slot) -> bool:
        """Whether the deployment still has the schedule this fire was computed by."""
        return self.trigger == slot.trigger and self.offset == slot.offset


class FireTimer:
    """The next fire of each deployment, ordered by when it is due."""

    def __init__(self) -> None:
        self._heap: list[tuple[datetime, datetime, str]] = []  # (due, nominal, name)
        self._planned: dict[str, _Planned] = {}
        self._taken: list[tuple[str, datetime]] = []  # fires taken, their next not planned

    def plan(self, slots: Mapping[str, Slot], now: datetime) -> None:
        """Plan the next fire of every deployment without one (new, or its schedule
        changed): the first after its last fire that is not due before ``now``. A fire
        planned before by the same schedule stays, due or not."""
        for name in self._planned.keys() - slots.keys():
            del self._planned[name]
        for name, slot in slots.items():
            planned = self._planned.get(name)
            if planned is None or not planned.fits(slot):
                self._plan(name, slot, now - slot.offset)

    def restart(self, slots: Mapping[str, Slot], now: datetime) -> None:
        """Plan every deployment afresh from ``now`` (after a catch-up has decided the fire
        times before it): the timer does not list the fires of a gap one by one."""
        self._heap.clear()
        self._planned.clear()
        self._taken.clear()
        self.plan(slots, now)

    def take_due(self, slots: Mapping[str, Slot], now: datetime) -> list[tuple[str, datetime]]:
        """The (deployment, nominal) fires due by ``now``, in due order; ``plan_next`` plans
        the next fire of each."""
        due: list[tuple[str, datetime]] = []
        while self._heap and self._heap[0][0] <= now:
            _, nominal, name = heapq.heappop(self._heap)
            planned = self._planned.get(name)
            slot = slots.get(name)
            if planned is None or planned.nominal != nominal or slot is None:
                continue  # void: replanned since, or the deployment is gone
            if not planned.fits(slot):
                del self._planned[name]  # a reload changed it: ``plan`` gives it a new one
                continue
            if slot.last_fire is not None and nominal <= slot.last_fire:
                # Decided already (a catch-up): go on after the last decided fire.
                self._plan(name, slot, slot.last_fire)
                continue
            due.append((name, nominal))
            self._taken.append((name, nominal))
        return due

    def plan_next(self, slots: Mapping[str, Slot]) -> None:
        """Plan the fire after each fire ``take_due`` returned (after its runs are
        dispatched: the 1,000 next-fire searches of a large fire need not delay them)."""
        taken, self._taken = self._taken, []
        for name, nominal in taken:
            slot = slots.get(name)
            planned = self._planned.get(name)
            if slot is not None and planned is not None and planned.nominal == nominal:
                self._plan(name, slot, nominal)

    def next_due(self) -> datetime | None:
        """When the earliest planned fire is due."""
        heap = self._heap
        while heap:
            _, nominal, name = heap[0]
            planned = self._planned.get(name)
            if planned is not None and planned.nominal == nominal:
                return heap[0][0]
            heapq.heappop(heap)  # void
        return None

    def _plan(self, name: str, slot: Slot, after: datetime) -> None:
        if slot.last_fire is not None and slot.last_fire > after:
            after = slot.last_fire
        nominal = slot.trigger.next_fire(after)
        if nominal is None:
            self._planned.pop(name, None)  # the schedule has no more fires
            return
        self._planned[name] = _Planned(nominal, slot.trigger, slot.offset)
        heapq.heappush(self._heap, (nominal + slot.offset, nominal, name))
