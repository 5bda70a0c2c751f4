"""Prefect-compatible ``gnomon.input``: the model of what a paused run waits for."""

from __future__ import annotations

from gnomon.flows import RunInput

__all__ = ["RunInput"]
