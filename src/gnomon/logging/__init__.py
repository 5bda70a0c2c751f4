"""Prefect-compatible ``gnomon.logging``: ``get_run_logger``, ``get_logger`` and
``disable_run_logger``. Run loggers propagate to the root logger, as Prefect's do, so
pytest's ``caplog`` and handlers on the root logger see run logs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gnomon._prefect_import import prefect_fallback

if TYPE_CHECKING:
    import logging
    from contextlib import AbstractContextManager


def get_run_logger(**extra: Any) -> Any:
    """The current flow or task run's logger; its records also land in the run's stored logs."""
    from gnomon.flows import get_run_logger as _get_run_logger

    return _get_run_logger(**extra)


def get_logger(name: str | None = None) -> logging.Logger:
    """gnomon's logger, or its child ``name`` (Prefect's are under ``prefect.``)."""
    from gnomon.flows import get_logger as _get_logger

    return _get_logger(name)


def disable_run_logger() -> AbstractContextManager[None]:
    """A block in which the run loggers are disabled and ``get_run_logger()`` outside a run
    returns a disabled logger (for testing a task's ``.fn()``), as Prefect's."""
    from gnomon.flows import disable_run_logger as _disable_run_logger

    return _disable_run_logger()


__all__ = ["disable_run_logger", "get_logger", "get_run_logger"]

__getattr__ = prefect_fallback(__name__)
