"""How the daemon's loop is woken: a self-pipe that signals and threads write a byte to.

A signal handler runs in the main thread between two bytecodes of whatever that thread was
doing, so it must not take a lock the interrupted code may hold (``Event.set()`` takes the
lock ``Event.wait()`` holds: a burst of SIGUSR1 froze the loop that way), log, or do much
at all. Here the C-level handler writes the wake-up byte itself (``signal.set_wakeup_fd``)
and the Python-level one only sets a flag; the loop waits on the pipe with ``select``,
reads the flags, and does the work. Other threads (the pool's, the API's, the reload
thread) wake the loop the same way, with a non-blocking write that never waits.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
from collections.abc import Iterable
from types import FrameType


class Wakeup:
    """A self-pipe the loop waits on; ``wake()`` from any thread, signals wake it too."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._received: set[int] = set()
        self._previous_fd: int | None = None

    def catch(self, signums: Iterable[int]) -> None:
        """Catch ``signums`` (from the main thread): each only records its arrival and
        wakes the loop; ``take_signals`` tells which arrived."""
        for signum in signums:
            signal.signal(signum, self._on_signal)
        # A full pipe means the loop is woken already: dropping the byte loses nothing.
        self._previous_fd = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        # A set's add of a small int allocates nothing and takes no lock.
        self._received.add(signum)

    def take_signals(self) -> set[int]:
        """The signals that arrived since the last call."""
        received = set()
        while self._received:
            received.add(self._received.pop())
        return received

    def wake(self) -> None:
        """Wake the loop (from any thread); never blocks."""
        with contextlib.suppress(BlockingIOError):
            os.write(self._write, b"\0")

    def wait(self, timeout: float) -> None:
        """Sleep until woken or ``timeout`` seconds pass; clears the wake-ups."""
        with contextlib.suppress(InterruptedError):
            select.select([self._read], [], [], max(0.0, timeout))
        with contextlib.suppress(BlockingIOError):
            while os.read(self._read, 4096):
                pass

    def close(self) -> None:
        """Stop waking on signals (the handlers stay: a late SIGTERM only sets its flag)."""
        if self._previous_fd is not None:
            with contextlib.suppress(ValueError):
                signal.set_wakeup_fd(self._previous_fd)
            self._previous_fd = None
        for fd in (self._read, self._write):
            with contextlib.suppress(OSError):
                os.close(fd)
