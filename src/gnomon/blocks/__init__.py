"""Prefect's ``prefect.blocks``: of its blocks, gnomon has ``system.Secret`` (encrypted in
gnomon's store); configuration other blocks would hold goes in variables or the config."""
