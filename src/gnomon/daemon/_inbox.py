"""Fire times the timer hands over ahead of time, held until they are due.

APScheduler's thread puts them in (``put``); the loop thread takes the due ones at each
tick (``take_due``) and sleeps until the next is due (``next_due``). A time is keyed by
(deployment, nominal), so one handed over twice (the timer rescheduled by a reload) is one
fire, and it carries the trigger that computed it: if a reload has changed the
deployment's trigger since, the time is dropped and the new schedule decides.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gnomon.daemon._tracking import Slot
    from gnomon.scheduling import Trigger


class FireInbox:
    """Handed-over fire times: put from any thread, taken by the loop thread only."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._incoming: list[tuple[str, datetime, Trigger | None]] = []
        self._held: dict[tuple[str, datetime], Trigger | None] = {}  # the loop's own

    def put(
        self,
        name: str,
        nominal_times: Sequence[datetime],
        trigger: Trigger | None,
    ) -> None:
        """Add ``name``'s fire times."""
        with self._lock:
            self._incoming.extend((name, nominal, trigger) for nominal in nominal_times)

    def take_due(self, slots: Mapping[str, Slot], now: datetime) -> list[tuple[str, datetime]]:
        """The (deployment, nominal) fire times due by ``now`` (nominal plus the slot's
        jitter offset). Times of a deployment that is gone, whose trigger changed, or that
        fired them already are dropped."""
        with self._lock:
            incoming, self._incoming = self._incoming, []
        for name, nominal, trigger in incoming:
            self._held[(name, nominal)] = trigger
        due: list[tuple[str, datetime]] = []
        for key, trigger in list(self._held.items()):
            name, nominal = key
            slot = slots.get(name)
            if (
                slot is None
                or (trigger is not None and trigger != slot.trigger)
                or (slot.last_fire is not None and nominal <= slot.last_fire)
            ):
                del self._held[key]
            elif nominal + slot.offset <= now:
                del self._held[key]
                due.append(key)
        return due

    def next_due(self, slots: Mapping[str, Slot]) -> datetime | None:
        """When the earliest time held (as of the last ``take_due``) is due."""
        dues = [
            nominal + slot.offset
            for (name, nominal) in self._held
            if (slot := slots.get(name)) is not None
        ]
        return min(dues, default=None)
