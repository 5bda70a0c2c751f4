"""Prefect's import path ``prefect.variables``: ``Variable.get``, ``set``, ``unset`` and
their async forms (``aget``, ``aset``, ``aunset``), on gnomon's store."""

from gnomon._prefect_import import prefect_fallback
from gnomon.flows import MAX_VARIABLE_NAME_LENGTH, Variable

__all__ = ["MAX_VARIABLE_NAME_LENGTH", "Variable"]

__getattr__ = prefect_fallback(__name__)
