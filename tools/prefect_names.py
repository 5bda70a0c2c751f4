"""Keep the table of Prefect's public names (src/gnomon/_prefect_names.py) and its copy in
docs/prefect-compatibility.md in step with each other and with Prefect.

    python tools/prefect_names.py write
        rewrite the doc's generated table from gnomon._prefect_names (a test fails
        while they differ)

    /path/to/prefect-venv/bin/python tools/prefect_names.py missing
        with Prefect installed: the public names of Prefect's user-facing modules
        that have no row (none of their own, nor a module row above them); each
        needs a row with its status

    /path/to/prefect-venv/bin/python tools/prefect_names.py extra
        with Prefect installed: the rows naming something it does not have
"""

from __future__ import annotations

import importlib
import inspect
import sys
import typing
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from gnomon._prefect_names import (  # noqa: E402
    DOC_BEGIN,
    DOC_END,
    markdown_table,
    nearest,
    prefect_names,
)

DOC = REPO / "docs" / "prefect-compatibility.md"

# The modules walked for names: prefect/__init__.py and the API reference's modules that
# flow code imports from. Others are covered by a module row (prefect.client, ...).
MODULES = (
    "prefect",
    "prefect.flows",
    "prefect.tasks",
    "prefect.states",
    "prefect.futures",
    "prefect.context",
    "prefect.runtime.flow_run",
    "prefect.runtime.task_run",
    "prefect.runtime.deployment",
    "prefect.logging",
    "prefect.testing.utilities",
    "prefect.utilities.annotations",
    "prefect.concurrency.sync",
    "prefect.concurrency.asyncio",
    "prefect.schedules",
    "prefect.artifacts",
    "prefect.variables",
    "prefect.blocks.system",
    "prefect.transactions",
    "prefect.flow_runs",
    "prefect.deployments",
    "prefect.cache_policies",
    "prefect.task_runners",
    "prefect.exceptions",
    "prefect.results",
    "prefect.serializers",
    "prefect.events",
    "prefect.automations",
    "prefect.settings",
    "prefect.client.orchestration",
)


def public_names(module_name: str) -> list[str]:
    """A module's ``__all__``, or the public names it defines; never type variables."""
    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", None)
    if names is None:
        names = [
            name
            for name, value in vars(module).items()
            if not inspect.ismodule(value) and getattr(value, "__module__", None) == module_name
        ]
    return sorted(
        name
        for name in set(names)
        if not name.startswith("_")
        and name != "TYPE_CHECKING"
        and not isinstance(getattr(module, name, None), typing.TypeVar | typing.ParamSpec)
    )


def missing() -> int:
    absent = [
        f"{module}.{name}"
        for module in MODULES
        for name in public_names(module)
        if nearest(f"{module}.{name}") is None
    ]
    print("\n".join(absent) or "every public name has a row")
    return 1 if absent else 0


def _prefect_value(name: str) -> object:
    """What a dotted Prefect name is: its longest importable module, then attributes."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        try:
            value: object = importlib.import_module(".".join(parts[:end]))
            break
        except ImportError:
            continue
    for attribute in parts[end:]:
        value = getattr(value, attribute)
    return value


def extra() -> int:
    """Rows naming what the installed Prefect does not have (a module that needs an
    optional dependency, such as prefect.testing.fixtures on pytest, is listed too)."""
    absent = []
    for name in prefect_names():
        try:
            _prefect_value(name)
        except (ImportError, AttributeError) as error:
            absent.append(f"{name}: {error}")
    print("\n".join(absent) or "every row names something Prefect has")
    return 1 if absent else 0


def write() -> int:
    text = DOC.read_text()
    start, end = text.index(DOC_BEGIN), text.index(DOC_END) + len(DOC_END)
    DOC.write_text(text[:start] + markdown_table() + text[end:])
    return 0


if __name__ == "__main__":
    commands = {"extra": extra, "missing": missing, "write": write}
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    sys.exit(commands[sys.argv[1]]())
