"""Prefect's import path ``prefect.blocks.system``: ``Secret``, kept encrypted in gnomon's
store (``Secret(value=...).save(name)``, ``Secret.load(name).get()``)."""

from gnomon.flows import Secret

__all__ = ["Secret"]
