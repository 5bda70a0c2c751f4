"""Prefect's ``prefect.utilities``: of its helpers, gnomon has ``annotations``."""

from gnomon._prefect_import import prefect_fallback

__getattr__ = prefect_fallback(__name__)
