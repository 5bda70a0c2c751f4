"""The authoring API and the run engine.

``flow`` and ``task`` (with their futures, task runners, cache policies and run context)
are what ``gnomon``, ``gnomon.tasks``, ``gnomon.futures`` and the other Prefect-compatible
modules re-export. The run engine (``execute_stored_run``, ``record_crashed``, the stored
state records), the run loggers and their holding and capping, and the concurrency limits are
what the daemon, the deployments and ``gnomon.concurrency`` use.

This is what other packages may use; the modules behind it are private. A name's module is
imported when the name is first asked for: a worker or ``gnomon pause`` loads only what it
uses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gnomon._lazy import lazy_names

if TYPE_CHECKING:
    from gnomon.flows._annotations import allow_failure, quote, unmapped
    from gnomon.flows._cache import (
        DEFAULT,
        FLOW_PARAMETERS,
        INPUTS,
        NO_CACHE,
        NONE,
        RUN_ID,
        TASK_SOURCE,
        CacheKeyFnPolicy,
        CachePolicy,
        CompoundCachePolicy,
        FlowParameters,
        Inputs,
        RunId,
        TaskSource,
        task_input_hash,
    )
    from gnomon.flows._concurrency import (
        concurrency,
        delete_concurrency_limit,
        delete_tag_concurrency_limit,
        read_concurrency_limits,
        set_concurrency_limit,
        set_tag_concurrency_limit,
    )
    from gnomon.flows._context import FlowRunContext, flow_run_var, tags, task_run_var
    from gnomon.flows._flow import Flow, flow
    from gnomon.flows._flow_engine import (
        execute_flow_run,
        execute_stored_run,
        load_flow,
        on_final_state_wait,
        record_crashed,
    )
    from gnomon.flows._futures import (
        DoneAndNotDoneFutures,
        PrefectFuture,
        PrefectFutureList,
        as_completed,
        wait,
    )
    from gnomon.flows._log_cap import cap_run_logs
    from gnomon.flows._log_hold import hold_background, wait_while_held
    from gnomon.flows._log_outputs import reopen_daemon_log
    from gnomon.flows._logging import (
        FLOW_RUN_LOGGER,
        STORED_LOGGERS,
        configure_daemon_logging,
        configure_logging,
        daemon_lines,
        get_run_logger,
        in_background,
        json_safe,
        record_extra,
        summarise_run_events,
    )
    from gnomon.flows._params import Problem, missing_names, unknown_names
    from gnomon.flows._pauses import (
        InvalidRunInput,
        apause_flow_run,
        aresume_flow_run,
        asuspend_flow_run,
        pause_flow_run,
        resume_flow_run,
        resume_run,
        suspend_flow_run,
    )
    from gnomon.flows._records import (
        error_fields,
        state_columns,
        state_error,
        state_row,
        stored_text,
    )
    from gnomon.flows._run_input import RunInput, input_problems
    from gnomon.flows._runners import ProcessPoolTaskRunner, TaskRunner, ThreadPoolTaskRunner
    from gnomon.flows._task import MAX_RETRY_DELAYS, Task, task

__all__ = [
    "DEFAULT",
    "FLOW_PARAMETERS",
    "FLOW_RUN_LOGGER",
    "INPUTS",
    "MAX_RETRY_DELAYS",
    "NONE",
    "NO_CACHE",
    "RUN_ID",
    "STORED_LOGGERS",
    "TASK_SOURCE",
    "CacheKeyFnPolicy",
    "CachePolicy",
    "CompoundCachePolicy",
    "DoneAndNotDoneFutures",
    "Flow",
    "FlowParameters",
    "FlowRunContext",
    "Inputs",
    "InvalidRunInput",
    "PrefectFuture",
    "PrefectFutureList",
    "Problem",
    "ProcessPoolTaskRunner",
    "RunId",
    "RunInput",
    "Task",
    "TaskRunner",
    "TaskSource",
    "ThreadPoolTaskRunner",
    "allow_failure",
    "apause_flow_run",
    "aresume_flow_run",
    "as_completed",
    "asuspend_flow_run",
    "cap_run_logs",
    "concurrency",
    "configure_daemon_logging",
    "configure_logging",
    "daemon_lines",
    "delete_concurrency_limit",
    "delete_tag_concurrency_limit",
    "error_fields",
    "execute_flow_run",
    "execute_stored_run",
    "flow",
    "flow_run_var",
    "get_run_logger",
    "hold_background",
    "in_background",
    "input_problems",
    "json_safe",
    "load_flow",
    "missing_names",
    "on_final_state_wait",
    "pause_flow_run",
    "quote",
    "read_concurrency_limits",
    "record_crashed",
    "record_extra",
    "reopen_daemon_log",
    "resume_flow_run",
    "resume_run",
    "set_concurrency_limit",
    "set_tag_concurrency_limit",
    "state_columns",
    "state_error",
    "state_row",
    "stored_text",
    "summarise_run_events",
    "suspend_flow_run",
    "tags",
    "task",
    "task_input_hash",
    "task_run_var",
    "unknown_names",
    "unmapped",
    "wait",
    "wait_while_held",
]

_WHERE = {
    "CacheKeyFnPolicy": "gnomon.flows._cache",
    "CachePolicy": "gnomon.flows._cache",
    "CompoundCachePolicy": "gnomon.flows._cache",
    "DEFAULT": "gnomon.flows._cache",
    "DoneAndNotDoneFutures": "gnomon.flows._futures",
    "FLOW_PARAMETERS": "gnomon.flows._cache",
    "FLOW_RUN_LOGGER": "gnomon.flows._logging",
    "Flow": "gnomon.flows._flow",
    "FlowParameters": "gnomon.flows._cache",
    "FlowRunContext": "gnomon.flows._context",
    "INPUTS": "gnomon.flows._cache",
    "Inputs": "gnomon.flows._cache",
    "InvalidRunInput": "gnomon.flows._pauses",
    "MAX_RETRY_DELAYS": "gnomon.flows._task",
    "NONE": "gnomon.flows._cache",
    "NO_CACHE": "gnomon.flows._cache",
    "PrefectFuture": "gnomon.flows._futures",
    "PrefectFutureList": "gnomon.flows._futures",
    "Problem": "gnomon.flows._params",
    "ProcessPoolTaskRunner": "gnomon.flows._runners",
    "RUN_ID": "gnomon.flows._cache",
    "RunId": "gnomon.flows._cache",
    "RunInput": "gnomon.flows._run_input",
    "STORED_LOGGERS": "gnomon.flows._logging",
    "TASK_SOURCE": "gnomon.flows._cache",
    "Task": "gnomon.flows._task",
    "TaskRunner": "gnomon.flows._runners",
    "TaskSource": "gnomon.flows._cache",
    "ThreadPoolTaskRunner": "gnomon.flows._runners",
    "allow_failure": "gnomon.flows._annotations",
    "apause_flow_run": "gnomon.flows._pauses",
    "aresume_flow_run": "gnomon.flows._pauses",
    "asuspend_flow_run": "gnomon.flows._pauses",
    "as_completed": "gnomon.flows._futures",
    "cap_run_logs": "gnomon.flows._log_cap",
    "concurrency": "gnomon.flows._concurrency",
    "configure_daemon_logging": "gnomon.flows._logging",
    "configure_logging": "gnomon.flows._logging",
    "daemon_lines": "gnomon.flows._logging",
    "delete_concurrency_limit": "gnomon.flows._concurrency",
    "delete_tag_concurrency_limit": "gnomon.flows._concurrency",
    "error_fields": "gnomon.flows._records",
    "execute_flow_run": "gnomon.flows._flow_engine",
    "execute_stored_run": "gnomon.flows._flow_engine",
    "flow": "gnomon.flows._flow",
    "flow_run_var": "gnomon.flows._context",
    "get_run_logger": "gnomon.flows._logging",
    "hold_background": "gnomon.flows._log_hold",
    "in_background": "gnomon.flows._logging",
    "input_problems": "gnomon.flows._run_input",
    "json_safe": "gnomon.flows._logging",
    "load_flow": "gnomon.flows._flow_engine",
    "missing_names": "gnomon.flows._params",
    "on_final_state_wait": "gnomon.flows._flow_engine",
    "pause_flow_run": "gnomon.flows._pauses",
    "quote": "gnomon.flows._annotations",
    "read_concurrency_limits": "gnomon.flows._concurrency",
    "record_crashed": "gnomon.flows._flow_engine",
    "record_extra": "gnomon.flows._logging",
    "reopen_daemon_log": "gnomon.flows._log_outputs",
    "resume_flow_run": "gnomon.flows._pauses",
    "resume_run": "gnomon.flows._pauses",
    "set_concurrency_limit": "gnomon.flows._concurrency",
    "set_tag_concurrency_limit": "gnomon.flows._concurrency",
    "state_columns": "gnomon.flows._records",
    "state_error": "gnomon.flows._records",
    "state_row": "gnomon.flows._records",
    "stored_text": "gnomon.flows._records",
    "summarise_run_events": "gnomon.flows._logging",
    "suspend_flow_run": "gnomon.flows._pauses",
    "tags": "gnomon.flows._context",
    "task": "gnomon.flows._task",
    "task_input_hash": "gnomon.flows._cache",
    "task_run_var": "gnomon.flows._context",
    "unknown_names": "gnomon.flows._params",
    "unmapped": "gnomon.flows._annotations",
    "wait": "gnomon.flows._futures",
    "wait_while_held": "gnomon.flows._log_hold",
}


__getattr__, __dir__ = lazy_names(__name__, _WHERE)
