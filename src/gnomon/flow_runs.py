"""Prefect-compatible ``gnomon.flow_runs``: pause, suspend and resume flow runs."""

from __future__ import annotations

from gnomon.flows import pause_flow_run, resume_flow_run, suspend_flow_run

__all__ = ["pause_flow_run", "resume_flow_run", "suspend_flow_run"]
