"""Tying a helper process's life to its parent's: the daemon's worker template and workers,
and the flow check process, must not outlive what started them.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
EXIT_ORPHANED = 70  # the parent died (EX_SOFTWARE): the process has nothing left to do


def die_with_parent(parent: int, signum: signal.Signals = signal.SIGTERM) -> None:
    """Get ``signum`` when the parent dies (Linux), and exit now if it is already gone.

    PR_SET_PDEATHSIG fires when the *thread* that started this process exits, not the whole
    process: callers start these processes from a thread that outlives them. On other
    systems only the check against ``parent`` is made.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(EXIT_ORPHANED)
