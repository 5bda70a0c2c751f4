"""Prefect-compatible ``gnomon.runtime``: facts about the run the current code is part of.

``from gnomon.runtime import flow_run; flow_run.id`` works anywhere: outside a run the
attributes are None (or empty), as in Prefect. ``deployment`` names a daemon's run's
deployment.
"""

from gnomon._prefect_import import prefect_fallback
from gnomon.runtime import deployment, flow_run, task_run

__all__ = ["deployment", "flow_run", "task_run"]

__getattr__ = prefect_fallback(__name__)
