"""What one run may use while it runs: its memory and its log lines.

The limits come from the run's deployment (``memory_limit``, ``max_log_lines``,
``max_log_bytes``, defaults from ``[daemon]``) and travel with the run to the pool: the pool
watches the memory of the run's process tree, the worker caps what it logs, and the pool's
relay of the worker's output caps what it prints (see ``_relay``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
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
