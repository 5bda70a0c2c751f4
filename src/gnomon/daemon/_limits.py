"""What one run may use while it runs: its memory and its log lines.

The limits come from the run's deployment (``memory_limit``, ``max_log_lines``,
``max_log_bytes``, defaults from ``[daemon]``) and travel with the run to the pool: the pool
watches the memory of the run's process tree, the worker caps what it logs, and the pool's
relay of the worker's output caps what it prints (see ``_relay``).

The pool's supervisor thread looks at a limited run's memory every ``MEMORY_CHECK_INTERVAL``
(``due_memory_checks``, under the pool's lock), measures it outside the lock
(``above_limits``), and ends the runs above their limit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gnomon.daemon._containment import memory_over

if TYPE_CHECKING:
    from gnomon.daemon._containment import WorkerTree
    from gnomon.daemon._worker_process import Assignment, WorkerProcess
    from gnomon.deployments import Policies

# The pool looks at a limited run's memory at least this often (seconds).
MEMORY_CHECK_INTERVAL = 0.25
_MIB = 1 << 20


@dataclass(frozen=True, slots=True)
class RunLimits:
    """A run's limits: ``memory`` in bytes of its process tree's resident memory (None:
    unlimited), and the most lines and bytes of log it may write before it is truncated."""

    memory: int | None
    log_lines: int
    log_bytes: int

    @classmethod
    def of(cls, policies: Policies) -> RunLimits:
        """The limits a deployment's (or the daemon's default) policies set."""
        return cls(
            memory=None if policies.memory_limit is None else int(policies.memory_limit),
            log_lines=policies.max_log_lines,
            log_bytes=int(policies.max_log_bytes),
        )


def describe_size(size: int, binary: bool = False) -> str:
    """``size`` bytes for people: "312 MB", or "300 MiB" with ``binary``."""
    base = 1024 if binary else 1000
    units = ("KiB", "MiB", "GiB", "TiB") if binary else ("kB", "MB", "GB", "TB")
    if size < base:
        return f"{size} bytes"
    value = size / base
    for unit in units:
        if value < base or unit == units[-1]:
            break
        value /= base
    number = f"{value:.0f}" if value >= 10 else f"{value:.1f}".removesuffix(".0")
    return f"{number} {unit}"


def memory_exceeded(limit: int, used: int) -> str:
    """Why a run was ended for its memory, in the units the limit was written in."""
    binary = limit % _MIB == 0
    return f"memory limit {describe_size(limit, binary)} exceeded: {describe_size(used, binary)}"


# A run due for a look at its memory: its worker, the run, its tree, its limit in bytes.
MemoryCheck = tuple["WorkerProcess", "Assignment", "WorkerTree", int]


def due_memory_checks(
    workers: Iterable[WorkerProcess], now: float
) -> tuple[list[MemoryCheck], float]:
    """The runs of ``workers`` whose memory is due for a look at ``now`` (each given its
    next look), and when the next look after these is due (``math.inf``: none)."""
    due: list[MemoryCheck] = []
    next_at = math.inf
    for worker in workers:
        run, tree = worker.run, worker.tree
        if run is None or run.ending is not None or run.memory_check_at is None:
            continue
        limit = run.limits.memory if run.limits is not None else None
        if run.memory_check_at <= now and tree is not None and limit is not None:
            run.memory_check_at = now + MEMORY_CHECK_INTERVAL
            due.append((worker, run, tree, limit))
        next_at = min(next_at, run.memory_check_at)
    return due, next_at


def above_limits(due: list[MemoryCheck]) -> list[tuple[WorkerProcess, Assignment, str]]:
    """Measure the runs ``due``; those above their limit, each with the reason to end it."""
    above = []
    for worker, run, tree, limit in due:
        used = memory_over(tree, limit)
        if used is not None:
            above.append((worker, run, memory_exceeded(limit, used)))
    return above
