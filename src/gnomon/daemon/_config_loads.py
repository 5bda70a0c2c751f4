"""Loading the config for a reload on a thread of its own, so the loop keeps firing.

A reload's flow check imports the flows in a child process and may take up to
``flow_check_timeout`` per flow module (a module that loops forever at import takes exactly
that long). The loop must not wait for it: SIGHUP starts a load here, the loop goes on
ticking, and it applies the result once the load is done.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gnomon.deployments import LoadResult

log = logging.getLogger("gnomon.daemon")


class ConfigLoads:
    """Config loads for reloads, one at a time; ``done`` is called as each one ends."""

    def __init__(self, path: Path | None, done: Callable[[], None]) -> None:
        self._path = path
        self._done = done
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._again = False
        self._result: LoadResult | None = None

    def request(self) -> None:
        """Load the config now; during a load, once more after it (the file may have
        changed since it was read), however many requests came meanwhile."""
        with self._lock:
            if self._thread is not None:
                self._again = True
                return
            self._thread = threading.Thread(target=self._run, name="gnomon-reload", daemon=True)
            self._thread.start()

    def take(self) -> LoadResult | None:
        """The newest load's result, once; None if none ended since the last call."""
        with self._lock:
            result, self._result = self._result, None
        return result

    def _run(self) -> None:
        from gnomon.deployments import load_config

        while True:
            try:
                result: LoadResult | None = load_config(self._path)
            except Exception:  # e.g. no process could be started for the flow check
                log.exception("could not load the config for a reload; nothing changed")
                result = None
            with self._lock:
                if result is not None:
                    self._result = result
                again, self._again = self._again, False
                if not again:
                    self._thread = None
            self._done()
            if not again:
                return
