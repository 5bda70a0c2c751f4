"""Prefect's ``prefect.blocks``: of its blocks, gnomon has ``system.Secret`` (encrypted in
gnomon's store); settings other blocks would hold go in variables or the config. Any
other Prefect block name raises ``NotProvidedByGnomon`` naming those alternatives."""

from gnomon._prefect_import import prefect_fallback

__getattr__ = prefect_fallback(__name__)
