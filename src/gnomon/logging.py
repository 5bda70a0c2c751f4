"""Prefect-compatible ``gnomon.logging``."""

from __future__ import annotations

from typing import Any


def get_run_logger(**extra: Any) -> Any:
    """The current flow or task run's logger; its records also land in the run's stored logs."""
    from gnomon.flows import get_run_logger as _get_run_logger

    return _get_run_logger(**extra)


__all__ = ["get_run_logger"]
