"""Prefect's import path ``prefect.blocks.system``: ``Secret``, kept encrypted in gnomon's
store (``Secret(value=...).save(name)``, ``Secret.load(name).get()``)."""

from gnomon._prefect_import import prefect_fallback
from gnomon.flows import Secret

__all__ = ["Secret"]

__getattr__ = prefect_fallback(__name__)
