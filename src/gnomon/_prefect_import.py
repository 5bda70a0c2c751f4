"""What a Prefect name gnomon does not define does, read from ``gnomon._prefect_names``.

Two ways in, one rule. ``from gnomon.x import y`` (and ``gnomon.x.y``) asks module ``x``'s
``__getattr__``, which every Prefect-compatible module gets from ``missing_name``;
``import gnomon.x.y`` of a module gnomon has no file for asks ``PrefectNamesFinder``, last on
``sys.meta_path``, after every real module was looked for. Either way a Prefect name that is
not supported raises ``NotProvidedByGnomon`` naming the alternative, a name gnomon keeps
elsewhere (``prefect.exceptions.PrefectException`` is ``GnomonError``) is that value, and
anything else is Python's usual AttributeError or ModuleNotFoundError.

The table is read only on these paths, never when gnomon is imported.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gnomon.exceptions import NotProvidedByGnomon

_MISSING_HERE = "it is listed as supported but is missing here"


def _not_provided(asked: str, prefect: str, note: str) -> NotProvidedByGnomon:
    # Imported here: gnomon.exceptions itself answers Prefect names through this module.
    from gnomon.exceptions import NotProvidedByGnomon

    return NotProvidedByGnomon(asked, f"gnomon does not provide {prefect}: {note}")


def _resolve(location: str) -> Any:
    """The module or attribute a dotted ``location`` names (``gnomon.states.Completed``)."""
    module_name, attributes = location, list[str]()
    while True:
        try:
            value: Any = importlib.import_module(module_name)
            break
        except ModuleNotFoundError:
            module_name, _, attribute = module_name.rpartition(".")
            if not module_name:
                raise
            attributes.insert(0, attribute)
    for attribute in attributes:
        value = getattr(value, attribute)
    return value


def missing_name(package: str, name: str) -> Any:
    """What ``package.name`` is when ``package`` does not define ``name``: its submodule, the
    value the table points at, or ``NotProvidedByGnomon``; AttributeError for a name that is
    not Prefect's.

    A submodule comes first: ``from gnomon.blocks import system`` asks ``hasattr`` before
    importing ``gnomon.blocks.system``, and must find it rather than the row of
    ``prefect.blocks``."""
    from gnomon._prefect_names import nearest, prefect_name

    asked = f"{package}.{name}"
    if name.startswith("__"):
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    if hasattr(sys.modules.get(package), "__path__"):
        try:
            return importlib.import_module(asked)
        except ModuleNotFoundError as error:
            if error.name != asked:
                raise
    row = nearest(prefect_name(asked))
    if row is None or (row.gnomon is not None and row.prefect != prefect_name(asked)):
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    if row.gnomon is None:
        raise _not_provided(asked, row.prefect, row.note)
    if row.gnomon == asked:  # listed as gnomon's own, but this installation lacks it
        raise _not_provided(asked, row.prefect, _MISSING_HERE)
    return _resolve(row.gnomon)


def prefect_fallback(package: str) -> Callable[[str], Any]:
    """A module ``__getattr__`` answering for Prefect names the module does not define."""

    def get_attribute(name: str) -> Any:
        return missing_name(package, name)

    return get_attribute


class PrefectNamesFinder:
    """Last on ``sys.meta_path``: a ``gnomon.*`` module no file provides whose Prefect name
    (or a module above it) is not supported raises ``NotProvidedByGnomon`` naming the
    alternative, rather than a bare ModuleNotFoundError."""

    @classmethod
    def find_spec(
        cls, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if not fullname.startswith("gnomon."):
            return None
        from gnomon._prefect_names import nearest, prefect_name, provided_below

        prefect = prefect_name(fullname)
        row = nearest(prefect)
        if row is not None and row.prefect == prefect:
            if row.gnomon is None:
                raise _not_provided(fullname, row.prefect, row.note)
            return None  # provided: an attribute (gnomon.Flow), or a module not written yet
        if provided_below(prefect):  # gnomon.flow_runs, for gnomon.flow_runs.pause_flow_run
            raise _not_provided(fullname, prefect, _MISSING_HERE)
        if row is None or row.gnomon is not None:
            return None
        raise _not_provided(fullname, row.prefect, row.note)


def install_finder() -> None:
    """Put ``PrefectNamesFinder`` last on ``sys.meta_path`` (once)."""
    # Moved to the end if there: a finder another package appended since (six's, which
    # python-dateutil imports) must not come after it.
    if PrefectNamesFinder in sys.meta_path:
        sys.meta_path.remove(PrefectNamesFinder)
    sys.meta_path.append(PrefectNamesFinder)
