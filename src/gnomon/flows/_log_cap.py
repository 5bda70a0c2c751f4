"""A cap on what one run logs: past its lines or bytes, one "log truncated" warning, then
nothing more of that run's records, in the store or on the console.

A daemon's worker sets the cap as each run starts (the limits come from the run's
deployment, see ``daemon/_limits.py``) and lifts it as the run ends; it runs one run at a
time, so the count is the run's, its subflows included. Outside a daemon nothing is capped,
and nothing is installed: the filter goes on the run loggers at the first ``cap_run_logs``.
"""

from __future__ import annotations

import itertools
import logging
import threading

from gnomon.flows._logging import FLOW_RUN_LOGGER, STORED_LOGGERS

TRUNCATED_FIELD = "log_truncated"  # set on the truncation record (and so in its fields)


class RunLogCap(logging.Filter):
    """A filter on the run loggers counting a run's records against its cap.

    Below the cap a record costs a counter step, an addition and two comparisons. The
    record that would pass the cap is replaced by the one truncation warning; later ones
    are dropped before any handler formats them.
    """

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._lines: int | None = None
        self._bytes = 0
        self._line_count = itertools.count(1)  # next() is atomic: no line past the cap
        self._byte_count = 0  # may miss a little when threads race: bytes are approximate
        self._truncated = False

    def begin(self, lines: int | None, size: int | None) -> None:
        """Count from zero against ``lines`` records and ``size`` bytes of messages; with
        ``lines`` None, let everything through."""
        with self._lock:
            self._lines, self._bytes = lines, size if size is not None else 1 << 62
            self._line_count = itertools.count(1)
            self._byte_count = 0
            self._truncated = False

    def filter(self, record: logging.LogRecord) -> bool:
        if self._lines is None:
            return True
        if self._truncated:
            return False
        line = next(self._line_count)
        self._byte_count += _message_size(record)
        if line <= self._lines and self._byte_count <= self._bytes:
            return True
        with self._lock:  # records come from the run's threads: one truncation line
            if self._truncated:
                return False
            self._truncated = True
            reached = (
                f"{self._lines} lines (max_log_lines)"
                if line > self._lines
                else f"{self._bytes} bytes (max_log_bytes)"
            )
        logger = logging.getLogger(FLOW_RUN_LOGGER)
        truncation = logger.makeRecord(
            FLOW_RUN_LOGGER,
            logging.WARNING,
            record.pathname,
            record.lineno,
            f"log truncated: the run reached {reached}; the rest of what it logs is dropped",
            (),
            None,
            extra={TRUNCATED_FIELD: True},
        )
        logger.callHandlers(truncation)  # past the filters: this one would drop it
        return False


def _message_size(record: logging.LogRecord) -> int:
    """The length in bytes of the record's message (for structlog events, their text)."""
    message = record.msg
    if isinstance(message, dict):
        text = str(message.get("event", ""))
    elif record.args:
        try:
            text = record.getMessage()
        except Exception:  # the handler reports the bad format; count what there is
            text = str(message)
    else:
        text = str(message)
    return len(text) if text.isascii() else len(text.encode("utf-8", "replace"))


_cap: RunLogCap | None = None
_install_lock = threading.Lock()


def cap_run_logs(lines: int | None, size: int | None) -> None:
    """Cap the records this process's run logs from now on at ``lines`` records and
    ``size`` bytes of messages; ``None, None`` lifts the cap. Call it at each run's start."""
    global _cap
    if _cap is None:
        if lines is None:
            return
        with _install_lock:
            if _cap is None:
                cap = RunLogCap()
                for name in STORED_LOGGERS:
                    logging.getLogger(name).addFilter(cap)
                _cap = cap
    _cap.begin(lines, size)
