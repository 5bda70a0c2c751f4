"""Prefect-compatible ``gnomon.input``: the model of what a paused run waits for."""

from __future__ import annotations

from gnomon._prefect_import import prefect_fallback
from gnomon.flows import RunInput

__all__ = ["RunInput"]

__getattr__ = prefect_fallback(__name__)
