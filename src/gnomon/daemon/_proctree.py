"""Process trees as /proc shows them, and a worker's side of containing its runs.

A worker makes itself a child subreaper (``become_subreaper``), so that the orphans of the
processes a run starts (a double fork's grandchild) come back to it rather than to init,
and the whole tree hangs under it; as each run ends, it kills what is left of that tree
(``end_leftovers``). The daemon's side, ``_containment``, finds trees with ``descendants``
and measures them with ``resident`` and ``proportional``.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterable

log = logging.getLogger("gnomon.worker")

_PR_SET_CHILD_SUBREAPER = 36  # from <linux/prctl.h>
_PR_GET_CHILD_SUBREAPER = 37
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
# A tree walk that keeps finding new processes (a fork bomb) gives up after this many rounds.
MAX_KILL_ROUNDS = 64
# How long the worker waits for what it killed at a run's end to be gone.
LEFTOVER_WAIT = 5.0


def become_subreaper() -> bool:
    """Make this process a child subreaper: orphaned descendants are reparented to it.

    A worker calls it first thing (the attribute is not inherited across fork), so that
    everything a run starts stays in its tree. False where Linux's prctl is unavailable.
    """
    libc = _libc()
    if libc is None:
        return False
    return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)


def end_leftovers() -> list[int]:
    """Kill (SIGKILL) and reap every descendant of this process but Python's own helpers
    (``python_helpers``); returns the pids killed.

    The worker calls it as each run ends. The usual case, no child at all, costs one
    ``waitpid`` call. As a subreaper, the worker gets back the orphans of what it kills, so
    rounds repeat until nothing is left.
    """
    try:
        os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return []  # no child, so no descendant: a subreaper's orphans are its children
    spared = python_helpers()
    killed: list[int] = []
    deadline = time.monotonic() + LEFTOVER_WAIT
    for _ in range(MAX_KILL_ROUNDS):
        _reap()
        found = [pid for pid in descendants(os.getpid()) if pid not in spared and _alive(pid)]
        if not found:
            break
        if time.monotonic() > deadline:
            log.warning("processes %s left by a run did not end on SIGKILL", found)
            break
        for pid in found:
            signal_quietly(pid, signal.SIGKILL)
        killed.extend(pid for pid in found if pid not in killed)
        while any(_alive(pid) for pid in found) and time.monotonic() < deadline:
            _reap()
            time.sleep(0.005)
    _reap()
    return killed


def python_helpers() -> set[int]:
    """Pids of the helper processes Python's multiprocessing keeps for the whole process
    (its resource tracker, its fork server): they serve the worker, not one run."""
    pids: set[int] = set()
    tracker = sys.modules.get("multiprocessing.resource_tracker")
    forkserver = sys.modules.get("multiprocessing.forkserver")
    for module, owner, attribute in (
        (tracker, "_resource_tracker", "_pid"),
        (forkserver, "_forkserver", "_forkserver_pid"),
    ):
        pid = getattr(getattr(module, owner, None), attribute, None)
        if isinstance(pid, int):
            pids.add(pid)
    return pids


def _reap() -> None:
    """Reap this process's dead children."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


# Process trees, seen from /proc.


def children(pid: int) -> list[int]:
    """The pids of ``pid``'s children (from every thread's ``children`` file)."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children", "rb") as listing:
                found.extend(int(child) for child in listing.read().split())
        except (OSError, ValueError):
            continue
    return found


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``, parents before their children."""
    found: list[int] = []
    seen = {pid}
    pending = [pid]
    while pending:
        for child in children(pending.pop()):
            if child not in seen:
                seen.add(child)
                found.append(child)
                pending.append(child)
    return found


def resident(pids: Iterable[int]) -> int:
    """The summed resident set size of ``pids``, in bytes (gone processes count 0)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm", "rb") as statm:
                total += int(statm.read().split()[1]) * _PAGE_SIZE
        except (OSError, ValueError, IndexError):
            continue
    return total


def proportional(pids: Iterable[int]) -> int | None:
    """The summed proportional set size of ``pids``, in bytes: pages shared between them
    (a forked child's copy-on-write heap) count once in all, not once per process. None if
    the kernel does not tell (no ``smaps_rollup``, or not allowed to read it)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup", "rb") as rollup:
                for line in rollup:
                    if line.startswith(b"Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
        except FileNotFoundError:
            continue  # the process is gone
        except (OSError, ValueError, IndexError):
            return None
    return total


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rpartition(b")")[2].split()[0] != b"Z"
    except (OSError, IndexError):
        return False


def exists(pid: int) -> bool:
    """Whether a process ``pid`` exists (a zombie, or another user's, counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    return True


def signal_quietly(pid: int, signum: int) -> None:
    """Send ``signum`` to ``pid`` unless it is gone (or not ours to signal)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signum)


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def subreaper_problem() -> str | None:
    """Why workers cannot be subreapers with their trees found in /proc; None if they can."""
    libc = _libc()
    if libc is None:
        return "not Linux"
    value = ctypes.c_int(0)
    if libc.prctl(_PR_GET_CHILD_SUBREAPER, ctypes.byref(value), 0, 0, 0) != 0:
        return f"prctl failed ({os.strerror(ctypes.get_errno())})"
    if not os.path.exists(f"/proc/self/task/{threading.get_native_id()}/children"):
        return "/proc has no task children lists"
    return None
