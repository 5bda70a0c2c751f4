"""A package face whose names load their modules on first use (PEP 562), so that importing
the package costs nothing: ``gnomon``, ``gnomon.store``, ``gnomon.control`` and
``gnomon.http`` name what they offer in a map of name to module, and get their module
``__getattr__`` and ``__dir__`` from ``lazy_names``."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_names(
    package: str, where: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``package``'s ``__getattr__`` and ``__dir__``: a name of ``where`` is imported from
    its module when first asked for, then kept in the package (asked once); any other name
    is answered by ``gnomon._prefect_import.missing_name``."""
    namespace = vars(sys.modules[package])

    def get_attribute(name: str) -> Any:
        module = where.get(name)
        if module is None:  # a Prefect name it lacks says so and names the alternative
            from gnomon._prefect_import import missing_name

            return missing_name(package, name)
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def names() -> list[str]:
        return sorted({*namespace, *where})

    return get_attribute, names
