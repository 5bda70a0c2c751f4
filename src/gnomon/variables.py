"""Prefect's import path ``prefect.variables``: ``Variable.get``, ``set``, ``unset`` and
their async forms (``aget``, ``aset``, ``aunset``), on gnomon's store."""

from gnomon.flows import Variable

__all__ = ["Variable"]
