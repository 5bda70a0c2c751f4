"""The daemon's log hold: while runs wait for a worker, its background log threads (the
queued handlers' listeners, the worker output relays) hold back, so that rendering and
storing lines does not share two cores with the next runs' start.

A module of its own so that the threads that wait and the loop that says when need not
import the logging set-up.
"""

from __future__ import annotations

import threading
import time

# How long, in all, a thread holds back in one busy spell (see ``hold_background``).
MAX_HOLD = 1.0
_quiet = threading.Event()  # clear while runs wait for a worker
_quiet.set()
_held_since = threading.local()  # per thread: when it began holding in this busy spell


def hold_background(busy: bool) -> None:
    """Say whether runs are waiting for a worker. While they are, the background log
    threads (``in_background``, the worker output relays) wait, each for at most
    ``MAX_HOLD`` seconds in a busy spell: past that, a long backlog of runs would only
    delay the lines. The daemon's loop says so after every tick."""
    if busy:
        _quiet.clear()
    else:
        _quiet.set()


def wait_while_held() -> None:
    """Wait while runs wait for a worker (see ``hold_background``)."""
    if _quiet.is_set():
        _held_since.value = None
        return
    since = getattr(_held_since, "value", None)
    if since is None:
        since = _held_since.value = time.monotonic()
    # Blocks without polling: a dozen relays waking every few milliseconds would take the
    # GIL from the threads that start runs.
    _quiet.wait(max(0.0, since + MAX_HOLD - time.monotonic()))
