"""The scheduling daemon: loads deployments, fires runs on time into a warm worker pool,
and persists every decision. ``run_daemon`` runs it in the foreground.

Imports are lazy: worker processes import ``gnomon.daemon._worker`` and should not pay for
the scheduler and the config models they never use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gnomon.daemon._main import run_daemon
    from gnomon.daemon._service import Daemon

__all__ = ["Daemon", "run_daemon"]


def __getattr__(name: str) -> Any:
    if name == "Daemon":
        from gnomon.daemon._service import Daemon

        return Daemon
    if name == "run_daemon":
        from gnomon.daemon._main import run_daemon

        return run_daemon
    raise AttributeError(f"module 'gnomon.daemon' has no attribute {name!r}")
