"""Prefect-compatible ``gnomon.flow_runs``: pause, suspend and resume flow runs (each also
as an ``a``-prefixed coroutine function; the plain ones return an awaitable in async code,
as Prefect's do)."""

from __future__ import annotations

from gnomon._prefect_import import prefect_fallback
from gnomon.flows import (
    apause_flow_run,
    aresume_flow_run,
    asuspend_flow_run,
    pause_flow_run,
    resume_flow_run,
    suspend_flow_run,
)

__all__ = [
    "apause_flow_run",
    "aresume_flow_run",
    "asuspend_flow_run",
    "pause_flow_run",
    "resume_flow_run",
    "suspend_flow_run",
]

__getattr__ = prefect_fallback(__name__)
