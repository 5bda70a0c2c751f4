"""Prefect's ``prefect.utilities.annotations``: ``quote``, ``unmapped`` and
``allow_failure``, the wrappers that change how ``.map`` and input resolution treat an
argument (the same classes ``gnomon`` exports)."""

from gnomon._prefect_import import prefect_fallback
from gnomon.flows import BaseAnnotation, allow_failure, quote, unmapped

__all__ = ["BaseAnnotation", "allow_failure", "quote", "unmapped"]

__getattr__ = prefect_fallback(__name__)
