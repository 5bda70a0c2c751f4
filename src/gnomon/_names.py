"""The one rule for the names operators choose: deployments, tags, API tokens and
notification targets.

A name is 1 to 100 ASCII letters, digits, ``-``, ``_`` or ``.``, and not dots alone (``.``
and ``..`` name directories in URLs and paths). The config, the command line and the HTTP
API all check names here, so a name one of them accepts, every other accepts too. Importing
this module imports nothing else: the command line's fast path checks names.
"""

from __future__ import annotations

import re

# For JSON Schema and OpenAPI, which cannot say "not dots alone"; ``is_name`` says it.
NAME_PATTERN = r"^[A-Za-z0-9._-]{1,100}$"
NAME_RULE = "1 to 100 letters, digits, '-', '_' or '.', not only dots"

_NAME = re.compile(NAME_PATTERN)


def is_name(value: object) -> bool:
    """Whether ``value`` is a valid name (see the module's docstring)."""
    return isinstance(value, str) and bool(_NAME.match(value)) and value.strip(".") != ""
