"""Prefect-compatible ``gnomon.runtime``: facts about the run the current code is part of.

``from gnomon.runtime import flow_run; flow_run.id`` works anywhere: outside a run the
attributes are None (or empty), as in Prefect.
"""

from gnomon.runtime import flow_run, task_run

__all__ = ["flow_run", "task_run"]
