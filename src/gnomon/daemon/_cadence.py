"""The loop's timing rules, apart from any clock: when it polls the store, when a gap
between two of its ticks is downtime, and when it tries a failing store again.

Every function and class here takes the time as an argument (monotonic seconds, or an aware
wall-clock datetime), so tests give literal times; the loop passes its clock's readings.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

POLL_INTERVAL = 1.0  # what other processes change in the store takes effect within this
MIN_POLL_GAP = 0.1  # polls the CLI asks for (SIGUSR1) run at most this often, however many
# The loop ticks at least once a second; a gap of this much wall-clock time between two
# ticks (the process stopped, the machine suspended, the clock stepped forward) is downtime:
# the catch-up policy decides the fire times in it, as after a restart.
DOWNTIME_GAP = 5.0
CLOCK_STEP = 1.0  # wall and monotonic time disagreeing by more: the wall clock was stepped
FIRST_RETRY = 0.1  # seconds before a failed store is tried again, doubling ...
MAX_RETRY = 2.0  # ... up to this, so the loop keeps ticking and SIGTERM is heard


def poll_due(now: float, next_poll: float, backlog: bool) -> bool:
    """Whether the timed poll of the store (three queries) is due at ``now``: at
    ``next_poll``, or, while runs wait for a worker (``backlog``), up to one interval later
    rather than delay their start. A poll the CLI requests is never put off so long."""
    return now >= next_poll + (POLL_INTERVAL if backlog else 0.0)


@dataclass(slots=True)
class PollTimer:
    """When the loop reads what other processes changed in the store: every
    ``POLL_INTERVAL``, and soon after a request (SIGUSR1, the API), coalesced to at most
    one poll per ``MIN_POLL_GAP`` however many requests arrive."""

    next_timed: float = 0.0
    last: float = float("-inf")
    requested: bool = False

    def request(self) -> None:
        self.requested = True

    def due(self, now: float, backlog: bool) -> bool:
        if self.requested and now >= self.last + MIN_POLL_GAP:
            return True
        return poll_due(now, self.next_timed, backlog)

    def done(self, now: float) -> None:
        self.requested = False
        self.last = now
        self.next_timed = now + POLL_INTERVAL

    def wait(self, now: float, backlog: bool) -> float:
        """Seconds until the next poll is due (see ``due``): a requested one, or the timed
        one, which a backlog puts off (waking for it sooner would find it not due, and
        the loop would spin until it is)."""
        timed = self.next_timed + (POLL_INTERVAL if backlog else 0.0) - now
        if self.requested:
            timed = min(timed, self.last + MIN_POLL_GAP - now)
        return max(0.0, timed)


@dataclass(frozen=True, slots=True)
class ClockGap:
    """How far the wall clock and the monotonic clock moved between two ticks."""

    wall: float  # seconds
    monotonic: float

    @property
    def step(self) -> float:
        """How far the wall clock was stepped (forward > 0, back < 0), beyond time passing."""
        return self.wall - self.monotonic

    @property
    def stepped(self) -> bool:
        return abs(self.step) > CLOCK_STEP

    @property
    def downtime(self) -> bool:
        """Whether the loop was effectively down: more than DOWNTIME_GAP of wall-clock time
        passed (stopped, suspended, stepped forward, or blocked) since its last tick."""
        return self.wall > DOWNTIME_GAP


class ClockWatch:
    """Compares each tick's wall-clock and monotonic readings with the previous tick's."""

    def __init__(self) -> None:
        self._previous: tuple[datetime, float] | None = None

    def observe(self, wall: datetime, monotonic: float) -> ClockGap:
        previous, self._previous = self._previous, (wall, monotonic)
        if previous is None:
            return ClockGap(0.0, 0.0)
        return ClockGap((wall - previous[0]).total_seconds(), monotonic - previous[1])


@dataclass(slots=True)
class StoreOutage:
    """A run of failed store transactions in the loop: since when, and when to try again
    (``FIRST_RETRY`` doubling to ``MAX_RETRY``)."""

    since: datetime | None = None  # the wall-clock time of the first failure
    failures: int = 0
    retry_at: float = float("-inf")  # monotonic

    @property
    def active(self) -> bool:
        return self.since is not None

    def failed(self, wall: datetime, monotonic: float) -> float:
        """Note a failure; returns the delay before the next attempt."""
        if self.since is None:
            self.since = wall
        delay = min(MAX_RETRY, FIRST_RETRY * 2**self.failures)
        self.failures += 1
        self.retry_at = monotonic + delay
        return delay

    def ready(self, monotonic: float) -> bool:
        """Whether the store may be tried (again) now."""
        return monotonic >= self.retry_at

    def ended(self, wall: datetime) -> timedelta:
        """The store works again: how long the outage lasted."""
        since = self.since or wall
        self.since, self.failures, self.retry_at = None, 0, float("-inf")
        return wall - since
