"""A floor of free space under gnomon's files (``[daemon] min_free_space``).

Below it, run log lines are neither stored nor written to the daemon's log file, so that
the rows that matter (runs, their states) still fit when a chatty flow or another program
fills the disk. The daemon passes the floor to its workers in ``GNOMON_MIN_FREE_SPACE``
(bytes); its loop says when the floor is crossed, each way, in one line. Standard library
only: the worker's hot path consults it for every log line, at the cost of a clock read.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

FLOOR_ENV = "GNOMON_MIN_FREE_SPACE"
CHECK_EVERY = 1.0  # seconds a reading of the free space is trusted


def floor_from_env() -> int:
    """The floor in bytes this process was given (0: none)."""
    try:
        return max(0, int(os.environ.get(FLOOR_ENV) or 0))
    except ValueError:
        return 0


def free_bytes(directory: Path) -> int | None:
    """Bytes an unprivileged writer may still use on ``directory``'s file system."""
    try:
        status = os.statvfs(directory)
    except OSError:
        return None
    return status.f_bavail * status.f_frsize


class SpaceFloor:
    """Whether ``directory``'s file system has ``floor`` bytes free, read at most once per
    ``CHECK_EVERY``; a file system that cannot be read counts as having room."""

    def __init__(
        self, directory: Path, floor: int, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.directory = directory
        self.floor = floor
        self._monotonic = monotonic
        self._next = float("-inf")
        self._room = True
        self.free: int | None = None

    def room(self) -> bool:
        if self.floor <= 0:
            return True
        now = self._monotonic()
        if now < self._next:
            return self._room
        self._next = now + CHECK_EVERY
        self.free = free_bytes(self.directory)
        self._room = self.free is None or self.free >= self.floor
        return self._room
