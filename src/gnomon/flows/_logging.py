"""Logging: structlog over stdlib, run loggers, ``log_prints`` and the store log handler.

One handler on the ``gnomon`` logger renders stdlib records and structlog events alike to
stderr (JSON lines, or structlog's console renderer on a terminal); another, on the run and
engine loggers, copies records emitted inside a run into the store's ``run_logs``. structlog
and the settings are imported only when logging is configured, so importing this module stays
cheap enough for ``gnomon/__init__`` to re-export ``get_run_logger``.
"""

from __future__ import annotations

import builtins
import io
import json
import logging
import logging.handlers
import os
import sys
import threading
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gnomon._secrets import mask, mask_known_fields, unmasked
from gnomon.exceptions import MissingContextError
from gnomon.flows._context import FlowRunContext, TaskRunContext, flow_run_var, task_run_var
from gnomon.flows._log_hold import wait_while_held
from gnomon.flows._log_outputs import DaemonStdout, LogFile, daemon_lines
from gnomon.flows._records import stored_text

if TYPE_CHECKING:
    import structlog
    from structlog.typing import EventDict, Processor

    from gnomon.store.rows import NewLog

ROOT_LOGGER = "gnomon"
FLOW_RUN_LOGGER = "gnomon.flow_runs"
TASK_RUN_LOGGER = "gnomon.task_runs"
ENGINE_LOGGER = "gnomon.engine"
DISABLED_LOGGER = "gnomon.disabled"  # what get_run_logger returns under disable_run_logger
STORED_LOGGERS = (FLOW_RUN_LOGGER, TASK_RUN_LOGGER, ENGINE_LOGGER)

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_KEYS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
_JSON_SCALARS = (str, int, float, bool, type(None))

_lock = threading.Lock()
_configured = False
_installed: list[tuple[logging.Logger, logging.Handler]] = []
_engine_logger: structlog.stdlib.BoundLogger | None = None


def _current_runs() -> tuple[FlowRunContext | None, TaskRunContext | None]:
    """The flow run and task run the calling code belongs to.

    A subflow called inside a task runs with the task's context still set; the flow run
    entered last wins then, so the subflow's records are not attributed to the task.
    """
    flow = flow_run_var.get()
    task = task_run_var.get()
    if task is not None:
        if flow is None:
            flow = task.flow_run
        elif task.flow_run is not None and task.flow_run.flow_run_id != flow.flow_run_id:
            task = None
    return flow, task


def _add_run_context(_logger: object, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: add the current run's ids and names; explicit keys win."""
    flow, task = _current_runs()
    if flow is not None:
        event_dict.setdefault("flow_run_id", flow.flow_run_id)
        event_dict.setdefault("flow_run_name", flow.flow_run_name)
        event_dict.setdefault("flow", flow.flow.name)
        if task is None:
            event_dict.setdefault("attempt", flow.attempt)
    if task is not None:
        event_dict.setdefault("task_run_id", task.task_run_id)
        event_dict.setdefault("task", task.task_run_name)
        event_dict.setdefault("attempt", task.attempt)
    return event_dict


def record_extra(record: logging.LogRecord) -> dict[str, Any]:
    """What a stdlib record was given with ``extra=``."""
    return {key: value for key, value in vars(record).items() if key not in _RECORD_KEYS}


def _add_record_extra(_logger: object, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor for stdlib records (needs ``_record``): add their ``extra=``."""
    event_dict.update(record_extra(event_dict["_record"]))
    return event_dict


def json_safe(value: Any) -> Any:
    """``value`` if JSON can hold it, else its ``repr``: a log line's fields must store."""
    if isinstance(value, _JSON_SCALARS):
        return value
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


# The deployment whose run this process executes: a daemon worker runs one run at a time and
# sets it, so `gnomon logs --deployment` finds the run's lines with one indexed lookup.
_deployment_name: str | None = None


def set_log_deployment(name: str | None) -> None:
    """Tag the run log lines this process stores from now on with deployment ``name``."""
    global _deployment_name
    _deployment_name = name


def run_deployment_name() -> str | None:
    """The deployment whose stored run this process executes (None for a flow called
    directly): what ``gnomon.runtime.deployment`` reads."""
    return _deployment_name


def _store_sink() -> Callable[[NewLog], None]:
    """Where stored log rows go: the process's batched store writer."""
    from gnomon.store import get_store

    return get_store().add_log


class _StoreHandler(logging.Handler):
    """Copies records emitted inside a run into the store, secrets masked (its own rows: it
    has no MaskSecrets filter); never raises into the caller."""

    def __init__(self, level: int) -> None:
        super().__init__(level)
        self._failure_reported = False

    def emit(self, record: logging.LogRecord) -> None:
        try:
            row = self._row(record)
            if row is not None:
                _store_sink()(row)
        except Exception:
            if not self._failure_reported:
                self._failure_reported = True
                logging.getLogger(ROOT_LOGGER).error(
                    "Could not store a run log record; further failures are not reported",
                    exc_info=True,
                )

    def _row(self, record: logging.LogRecord) -> NewLog | None:
        fields: EventDict
        if isinstance(record.msg, dict) and "_logger" in vars(record):  # a structlog event
            fields = dict(record.msg)  # its run context was added when it was logged
            message = str(fields.pop("event", ""))
            exc_info = fields.pop("exc_info", None) or record.exc_info
        else:
            fields = _add_run_context(None, "", record_extra(record))
            # Masked here, as the fields are below: this handler has no MaskSecrets filter.
            message = str(record.msg) % mask(record.args) if record.args else str(record.msg)
            exc_info = record.exc_info
        flow_run_id, task_run_id = fields.get("flow_run_id"), fields.get("task_run_id")
        if flow_run_id is None and task_run_id is None:
            return None  # not emitted inside a run (a task called outside a flow is one)
        if exc_info:  # stored with its traceback, as Prefect does
            import structlog

            formatted = structlog.processors.format_exc_info(None, "", {"exc_info": exc_info})
            if "exception" in formatted:
                message = f"{message}\n{formatted['exception']}"
        return {
            "flow_run_id": flow_run_id,
            "task_run_id": task_run_id,
            "timestamp": datetime.fromtimestamp(record.created, UTC),
            "level": record.levelno,
            "logger": record.name,
            "message": stored_text(message),
            "extra": mask_known_fields(
                mask({key: json_safe(value) for key, value in fields.items()})
            ),
            "deployment_name": _deployment_name,
        }


class _StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is at emit time (pytest and daemons replace it),
    unless a handler on the root logger prints the record to the console already."""

    def emit(self, record: logging.LogRecord) -> None:
        if _printed_by_root(record):
            return
        try:
            stream = unmasked(sys.stderr)  # the line is masked field by field already
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:
            self.handleError(record)


def _printed_by_root(record: logging.LogRecord) -> bool:
    """Whether a root handler writes ``record`` to stdout or stderr: gnomon's records
    propagate to the root logger, as Prefect's do (for ``caplog`` and the user's own
    forwarding), and a line a ``logging.basicConfig()`` handler prints is not printed twice.
    A root handler writing elsewhere (a file, pytest's capture) leaves gnomon's line be."""
    if not logging.getLogger(ROOT_LOGGER).propagate:
        return False
    consoles = {id(stream) for stream in (sys.stderr, sys.stdout, sys.__stderr__, sys.__stdout__)}
    return any(
        isinstance(handler, logging.StreamHandler)
        and id(handler.stream) in consoles
        and record.levelno >= handler.level
        for handler in logging.getLogger().handlers
    )


def _renders_json(log_format: str, stream: Any) -> bool:
    """Whether output to ``stream`` is JSON lines: ``log_format`` says so, or, with "auto",
    the stream is not a terminal."""
    return log_format == "json" or (log_format == "auto" and not stream.isatty())


def _console_renderer(stream: Any) -> structlog.dev.ConsoleRenderer:
    """structlog's text renderer, in colour on a terminal unless ``NO_COLOR`` is set."""
    import structlog

    colors = stream.isatty() and not os.environ.get("NO_COLOR")
    return structlog.dev.ConsoleRenderer(colors=colors)


def _formatter(log_format: str, stream: Any = None) -> logging.Formatter:
    """Renders stdlib records and structlog events alike, with the run context of either."""
    import structlog

    stream = sys.stderr if stream is None else stream
    renderers: list[Any]
    if _renders_json(log_format, stream):
        renderers = [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    else:
        renderers = [_console_renderer(stream)]
    from gnomon._secrets import mask_known_processor, mask_processor

    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[_add_record_extra, _add_run_context],
        processors=[
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            _record_timestamp,
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            mask_processor,  # structlog events carry their fields in the message dict
            mask_known_processor,  # and a run's secret values may be in any text
            *renderers,
        ],
    )


def _record_timestamp(_logger: Any, _method: str, event_dict: EventDict) -> EventDict:
    """When the record was made (ISO 8601 UTC, ``...Z``), not when it is rendered: the
    daemon renders its lines in a background thread, a little later."""
    record = event_dict.get("_record")
    created = record.created if record is not None else datetime.now(UTC).timestamp()
    stamp = datetime.fromtimestamp(created, UTC).isoformat()
    event_dict["timestamp"] = stamp.replace("+00:00", "Z")
    return event_dict


def _install(name: str, handler: logging.Handler, level: int) -> logging.Logger:
    from gnomon._secrets import MaskSecrets

    # Every handler gnomon installs masks secret-named fields (passwords, tokens, ...), once
    # even when installed on several loggers. A queue's outputs do it themselves, in their
    # thread; the store handler masks what it stores as it builds the row (a filter would
    # look at every attribute of every record: 4% of a trivial run's instructions).
    masked = any(isinstance(each, MaskSecrets) for each in handler.filters)
    if not isinstance(handler, QueuedHandler | _StoreHandler) and not masked:
        handler.addFilter(MaskSecrets())
    logger = logging.getLogger(name)
    logger.setLevel(level)
    logger.addHandler(handler)
    _installed.append((logger, handler))
    return logger


def _unconfigure() -> None:
    """Remove what ``configure_logging`` installed, leaving the loggers as Python made them."""
    global _configured
    for logger, handler in _installed:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
        if isinstance(handler, QueuedHandler):
            handler.stop()
    _installed.clear()
    _configured = False


def configure_logging(force: bool = False) -> None:
    """Install gnomon's handlers on the ``gnomon`` logger tree, once per process.

    The root logger and the user's own loggers are left alone. gnomon's records propagate
    to the root logger, as Prefect's do, so pytest's ``caplog`` and any forwarding set up
    there see run logs; the stderr handler leaves a record to a root handler that prints it
    to the console (``_printed_by_root``), so no line is printed twice. ``force`` re-reads
    the settings and replaces the handlers installed before.
    """
    global _configured
    if _configured and not force:
        return
    from gnomon._settings import get_settings

    with _lock:
        if _configured and not force:
            return
        _unconfigure()
        settings = get_settings()
        level = logging.getLevelNamesMapping()[settings.log_level]
        stderr = _StderrHandler(level)
        stderr.setFormatter(_formatter(settings.log_format))
        _install(ROOT_LOGGER, stderr, level)
        # Run logs are stored from INFO whatever the stderr threshold; DEBUG only on demand.
        stored_level = min(level, logging.INFO)
        store = _StoreHandler(stored_level)
        for name in STORED_LOGGERS:
            _install(name, store, stored_level)
        _configured = True


# Set in a daemon's workers (see ``summarise_run_events``).
_run_events_summarised = False


def summarise_run_events() -> None:
    """Leave out, in this process, the engine's INFO lines at the start and end of a flow
    run that is not a subflow.

    A daemon's worker calls it: the daemon's fire decision and run summary lines, stored with
    each run it dispatches, say when the run began and how it ended (and more). Making,
    masking and storing the engine's two lines cost a trivial run a quarter of its worker's
    CPU time. A subflow has no such summary, so its lines stay.
    """
    global _run_events_summarised
    _run_events_summarised = True


def log_run_event(event: str, message: str, *, subflow: bool, **fields: Any) -> None:
    """Log one of the engine's INFO lines at a flow run's start (``event="begin"``) or
    successful end (``"end"``), unless this process summarises them elsewhere."""
    if subflow or not _run_events_summarised:
        engine_logger().info(message, run_event=event, **fields)


def configure_daemon_logging(log_file: Path | None, max_bytes: int = 0, keep: int = 1) -> None:
    """Send gnomon's log records, and the workers' lines (``daemon_lines``), to stdout
    (journald takes it) and, if given, ``log_file`` (see ``_log_outputs``).

    Both get JSON lines unless stdout is a terminal (then text, in colour, with
    ``log_format=auto``). The file is rotated past ``max_bytes`` (0: never), keeping
    ``keep`` older files, and reopened when logrotate moves it or on ``reopen_daemon_log``.
    """
    from gnomon._settings import get_settings

    configure_logging(force=True)
    with _lock:
        for logger, handler in list(_installed):
            if isinstance(handler, _StderrHandler):
                logger.removeHandler(handler)
                _installed.remove((logger, handler))
        settings = get_settings()
        level = logging.getLevelNamesMapping()[settings.log_level]
        stdout_json = _renders_json(settings.log_format, sys.stdout)
        render = None if stdout_json else _render_event(_console_renderer(sys.stdout))
        stdout = DaemonStdout(sys.stdout, level, render)
        stdout.setFormatter(_formatter(settings.log_format, sys.stdout))
        daemon_lines.stdout, daemon_lines.file = stdout, None
        outputs: list[logging.Handler] = []
        if log_file is None or not stdout_json:
            outputs.append(stdout)
        if log_file is not None:  # created private, its directory too (gnomon._files)
            to_file = LogFile(
                log_file, max_bytes, keep, echo=stdout if stdout_json else None, notice=stdout
            )
            to_file.setLevel(level)
            to_file.setFormatter(_formatter("json"))
            outputs.append(to_file)
            daemon_lines.file = to_file
        _install(ROOT_LOGGER, in_background(*outputs), level)


def _render_event(renderer: Any) -> Callable[[dict[str, Any]], str]:
    """A worker's JSON line (parsed) rendered by ``renderer``, as the daemon's records are."""

    def render(event: dict[str, Any]) -> str:
        return str(renderer(None, str(event.get("level", "info")), event))

    return render


class _HeldListener(logging.handlers.QueueListener):
    def dequeue(self, block: bool) -> Any:
        record = super().dequeue(block)
        if record is not None:  # None is the stdlib's sentinel for "stop"
            wait_while_held()
        return record


class QueuedHandler(logging.handlers.QueueHandler):
    """Hands records to a thread that runs the real handlers (see ``in_background``)."""

    def __init__(self, *handlers: logging.Handler) -> None:
        import queue

        records: queue.SimpleQueue[logging.LogRecord | None] = queue.SimpleQueue()
        super().__init__(records)
        self.listener = _HeldListener(records, *handlers, respect_handler_level=True)
        self.listener.start()
        self._running = True
        self._stopping = threading.Lock()

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        # The listener is in this process: the record goes as it is. (The stdlib flattens
        # it for pickling, which would drop exc_info and structlog's event dict.)
        return record

    def stop(self) -> None:
        """Write what is queued, then end the thread; stopping twice does nothing."""
        with self._stopping:
            running, self._running = self._running, False
        if running:
            self.listener.stop()


def in_background(*handlers: logging.Handler) -> QueuedHandler:
    """A handler that queues records for ``handlers``, which run in a thread of their own.

    The daemon's threads log per fire and per run (decisions, summaries); rendering and
    writing those lines in the thread that decides or dispatches would delay the next run's
    start by as much. Each of ``handlers`` masks secrets and applies its own level. What is
    queued is written at exit (``atexit``) or on ``stop()``; a SIGKILL loses it.
    """
    import atexit

    from gnomon._secrets import MaskSecrets

    for handler in handlers:
        handler.addFilter(MaskSecrets())
    queued = QueuedHandler(*handlers)
    atexit.register(queued.stop)
    return queued


def engine_logger() -> structlog.stdlib.BoundLogger:
    """The structlog logger the engine reports run events on (``gnomon.engine``).

    Inside a run its events are also stored in the run's logs, as Prefect stores
    "Finished in state Completed()".
    """
    global _engine_logger
    configure_logging()
    if _engine_logger is None:
        import structlog

        # Its own processors rather than structlog.configure(): that global is the user's.
        processors: list[Processor] = [
            structlog.stdlib.filter_by_level,
            structlog.stdlib.PositionalArgumentsFormatter(),
            _add_run_context,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ]
        logger = logging.getLogger(ENGINE_LOGGER)
        _engine_logger = structlog.stdlib.BoundLogger(logger, processors, context={})
    return _engine_logger


class RunLogger(logging.LoggerAdapter[logging.Logger]):
    """A stdlib adapter adding its ``extra`` to records, merged with a call's own ``extra=``.

    The run context is not bound here: it is read from the contextvars when a record is emitted.
    """

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        if self.extra:
            kwargs["extra"] = {**self.extra, **(kwargs.get("extra") or {})}
        return msg, kwargs


def get_run_logger(**extra: Any) -> RunLogger:
    """A logger for the current flow or task run; its records are also stored with the run.

    Raises ``MissingContextError`` outside a run: there is no run to attach the logs to.
    """
    flow, task = _current_runs()
    if task is not None:
        name = TASK_RUN_LOGGER
    elif flow is not None:
        name = FLOW_RUN_LOGGER
    elif _run_loggers_disabled():  # a task's .fn() tested under disable_run_logger()
        logger = logging.getLogger(DISABLED_LOGGER)
        logger.disabled = True
        return RunLogger(logger, extra)
    else:
        raise MissingContextError(
            "get_run_logger() was called outside a flow or task run, so there is no run to "
            "attach the logs to; use logging.getLogger(__name__) in code that runs outside runs"
        )
    configure_logging()
    return RunLogger(logging.getLogger(name), extra)


def _run_loggers_disabled() -> bool:
    return all(logging.getLogger(name).disabled for name in (FLOW_RUN_LOGGER, TASK_RUN_LOGGER))


@contextmanager
def disable_run_logger() -> Iterator[None]:
    """Disable the flow and task run loggers in the block, as Prefect's does: their records
    are dropped, and ``get_run_logger()`` outside a run returns a disabled logger instead of
    raising, so a task's ``.fn()`` that logs can be called in a unit test."""
    loggers = [logging.getLogger(name) for name in (FLOW_RUN_LOGGER, TASK_RUN_LOGGER)]
    before = [logger.disabled for logger in loggers]
    for logger in loggers:
        logger.disabled = True
    try:
        yield
    finally:
        for logger, disabled in zip(loggers, before, strict=True):
            logger.disabled = disabled


def get_logger(name: str | None = None) -> logging.Logger:
    """gnomon's logger, or its child ``name``: Prefect's ``get_logger`` under ``gnomon.``."""
    return logging.getLogger(ROOT_LOGGER if name is None else f"{ROOT_LOGGER}.{name}")


_original_print: Callable[..., None] = builtins.print  # what the redirect falls back to


def _redirected_print(*args: Any, **kwargs: Any) -> None:
    """``print`` that logs to the run logger inside a run with ``log_prints``, as Prefect does."""
    flow, task = _current_runs()
    run = task if task is not None else flow
    file = kwargs.get("file")
    if run is None or not run.log_prints or file not in (None, sys.stdout, sys.stderr):
        _original_print(*args, **kwargs)
        return
    buffer = io.StringIO()
    _original_print(*args, **{**kwargs, "file": buffer})  # sep and end exactly as print does
    get_run_logger().info(buffer.getvalue().rstrip("\n"))


def install_print_redirect() -> None:
    """Replace ``builtins.print`` with the ``log_prints`` redirect; calling again is a no-op.

    Outside a run, or in a run without ``log_prints``, the replacement calls the original
    ``print`` unchanged.
    """
    global _original_print
    with _lock:
        if builtins.print is not _redirected_print:
            _original_print = builtins.print
            builtins.print = _redirected_print
