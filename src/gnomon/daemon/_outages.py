"""How the loop rides out what it does not control: a store that fails, a disk that fills,
a wall clock that jumps, a process that was frozen.

``Outages`` decides nothing about fires. It tells the loop when the store may be tried
again and since when the daemon was effectively down (the catch-up policy decides what of
that downtime runs), reports to the daemon's health, and logs each change once (a failing
store again every minute while it lasts).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from gnomon.daemon._cadence import ClockWatch, StoreOutage

if TYPE_CHECKING:
    from gnomon._space import SpaceFloor
    from gnomon.daemon._health import Health

log = logging.getLogger("gnomon.daemon")

OUTAGE_REMINDER = 60.0  # seconds between the ERROR lines of one store outage


@dataclass(frozen=True, slots=True)
class Downtime:
    """A span the daemon did not decide fires in: since when, and why (for Missed rows)."""

    since: datetime
    why: str


class Outages:
    """The loop's view of the faults under it (see the module's docstring).

    ``describe(error)`` says what store fault ``error`` is, or None for a bug (which the
    loop re-raises); ``count_error()`` counts a failed store transaction in the metrics.
    """

    def __init__(
        self,
        health: Health,
        disk: SpaceFloor,
        describe: Callable[[BaseException], str | None],
        count_error: Callable[[], None] = lambda: None,
    ) -> None:
        self.health = health
        self.disk = disk
        self._describe = describe
        self._count_error = count_error
        self._clock = ClockWatch()
        self._store = StoreOutage()
        self._logged = float("-inf")
        self._down_since: datetime | None = None

    @property
    def store_failing(self) -> bool:
        return self._store.active

    @property
    def retry_at(self) -> float:
        return self._store.retry_at

    def may_try_store(self, monotonic: float) -> bool:
        return self._store.ready(monotonic)

    def take_downtime(self) -> Downtime | None:
        """Downtime to catch up, if any; the caller catches it up or gives it back."""
        if self._down_since is None:
            return None
        why = "while the store failed" if self._store.active else "in a gap in the ticks"
        return Downtime(self._down_since, why)

    def caught_up(self) -> None:
        self._down_since = None

    def observe_clock(self, now: datetime, monotonic: float) -> None:
        """A stepped wall clock is logged; a forward step or a stall beyond DOWNTIME_GAP is
        downtime for the catch-up policy. A backward step repeats nothing: a fire time at or
        before a deployment's last fire is never fired again."""
        gap = self._clock.observe(now, monotonic)
        if gap.stepped:
            direction = "forward" if gap.step > 0 else "back"
            log.warning(
                "the wall clock was stepped %s by %.1f s",
                direction,
                abs(gap.step),
                extra={"clock_step_seconds": round(gap.step, 3)},
            )
        if gap.downtime:
            log.warning(
                "no tick for %.1f s of wall-clock time: its fire times follow catchup",
                gap.wall,
                extra={"gap_seconds": round(gap.wall, 3)},
            )
            self._down(now - timedelta(seconds=gap.wall))

    def check_disk(self, floor: str) -> None:
        """Say, once each way, when the store's disk falls below the free-space ``floor``
        (log lines are then dropped, see gnomon._space) and when it has room again."""
        room = self.disk.room()
        if room == (self.health.problem("disk") is None):
            return
        free = _megabytes(self.disk.free)
        if room:
            self.health.report("disk", None)
            log.warning("%s free on the store's disk again: log lines are stored again", free)
            return
        self.health.report("disk", "low disk space", f"{free} free, min_free_space {floor}")
        log.warning(
            "only %s free on the store's disk (min_free_space %s): run log lines are not "
            "stored or written to the log file until there is room again",
            free,
            floor,
            extra={"free_bytes": self.disk.free},
        )

    def store_failed(self, error: Exception, now: datetime, monotonic: float) -> None:
        """Note a failed pass; re-raises ``error`` if it is not the store's fault."""
        fault = self._describe(error)
        if fault is None:
            raise error
        first = not self._store.active
        delay = self._store.failed(now, monotonic)
        self._down(self._store.since or now)
        self.health.report("store", "the store cannot be written", fault)
        self._count_error()
        if first or monotonic - self._logged >= OUTAGE_REMINDER:
            self._logged = monotonic
            log.error(
                "the store cannot be written: %s; retrying in %.1f s, still scheduling "
                "(fires meanwhile follow catchup)",
                fault,
                delay,
                extra={
                    "error_type": type(error).__name__,
                    "error": fault,
                    "outage_since": (self._store.since or now).isoformat(),
                },
            )

    def store_worked(self, now: datetime) -> None:
        """A pass wrote to the store: an outage, if there was one, is over."""
        if not self._store.active:
            return
        lasted = self._store.ended(now)
        self._logged = float("-inf")
        self.health.report("store", None)
        log.warning(
            "the store works again after %.1f s",
            lasted.total_seconds(),
            extra={"outage_seconds": round(lasted.total_seconds(), 3)},
        )

    def _down(self, since: datetime) -> None:
        if self._down_since is None or since < self._down_since:
            self._down_since = since


def _megabytes(count: int | None) -> str:
    return "?" if count is None else f"{count / 1e6:.0f} MB"
