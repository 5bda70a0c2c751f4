"""gnomon's version, in a module of its own so the CLI can print it without importing the
authoring API."""

__version__ = "0.1.0"
