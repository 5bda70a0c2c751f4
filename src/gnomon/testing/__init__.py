"""Prefect's ``prefect.testing``: ``gnomon.testing.utilities.prefect_test_harness``."""

from gnomon._prefect_import import prefect_fallback

__getattr__ = prefect_fallback(__name__)
