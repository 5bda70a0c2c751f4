"""The table of Prefect's public names (gnomon._prefect_names, private: the table is what
this tests) is what gnomon does: a supported name is there, a name gnomon does not
provide raises NotProvidedByGnomon naming the alternative however it is reached, and
docs/prefect-compatibility.md shows the same table."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

import gnomon
from gnomon._prefect_import import PrefectNamesFinder, _resolve
from gnomon._prefect_names import PrefectName, Status, markdown_table, prefect_names
from gnomon.exceptions import ConfigError, GnomonError, NotProvidedByGnomon

REPO = Path(__file__).resolve().parent.parent

# Modules other parts of issue 17 are writing; their rows say supported already. The lead
# empties this when they are merged: the test below fails as soon as one resolves.
PENDING: set[str] = set()

ROWS = list(prefect_names().values())
PROVIDED = [row for row in ROWS if row.gnomon is not None]
NOT_PROVIDED = [row for row in ROWS if row.gnomon is None]


def _pending(location: str) -> bool:
    return any(location == name or location.startswith(f"{name}.") for name in PENDING)


def _gnomon_name(row: PrefectName) -> str:
    return "gnomon" + row.prefect.removeprefix("prefect")


def _is_real_module(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


def _is_package_or_absent(name: str) -> bool:
    module = sys.modules.get(name)
    if module is None:
        try:
            module = importlib.import_module(name)
        except ImportError:
            return True
    return hasattr(module, "__path__")


def test_status_follows_from_the_row() -> None:
    statuses = {row.prefect: row.status for row in ROWS}
    assert statuses["prefect.flow"] is Status.SUPPORTED
    assert statuses["prefect.task_runners.ThreadPoolTaskRunner"] is Status.DIFFERS
    assert statuses["prefect.get_client"] is Status.NOT_SUPPORTED
    assert all(row.note for row in NOT_PROVIDED), "a name not supported names its alternative"
    assert all(not row.note.count("{") for row in ROWS), "every {note} placeholder is filled"


@pytest.mark.parametrize(
    "row", [row for row in PROVIDED if not _pending(str(row.gnomon))], ids=lambda row: row.prefect
)
def test_every_provided_name_resolves_where_the_table_says(row: PrefectName) -> None:
    assert row.gnomon is not None
    _resolve(row.gnomon)


def test_pending_is_exactly_what_is_still_missing() -> None:
    """When a pending module lands, its name must leave PENDING (so its rows are tested)."""
    missing = set()
    for row in PROVIDED:
        assert row.gnomon is not None
        try:
            _resolve(row.gnomon)
        except (ImportError, AttributeError):
            missing.add(row.gnomon)
    assert {name for name in PENDING if any(m.startswith(name) for m in missing)} == PENDING
    assert all(_pending(name) for name in missing), sorted(m for m in missing if not _pending(m))


def _parent_pending(row: PrefectName) -> bool:
    return _pending(_gnomon_name(row).rpartition(".")[0])


@pytest.mark.parametrize("row", NOT_PROVIDED, ids=lambda row: row.prefect)
def test_a_name_not_provided_raises_naming_the_alternative(row: PrefectName) -> None:
    asked = _gnomon_name(row)
    module, _, name = asked.rpartition(".")
    if module in ("gnomon.Flow", "gnomon.Task"):  # a method: the class simply lacks it
        assert not hasattr(getattr(gnomon, module.rpartition(".")[2]), name)
        return
    if _is_real_module(asked):  # gnomon.utilities: its row covers the names under it
        module, name = asked, "a_helper_of_prefects"
        asked = f"{module}.{name}"
    with pytest.raises(NotProvidedByGnomon) as raised:
        exec(f"from {module} import {name}", {})
    if not _parent_pending(row):
        assert str(raised.value) == f"gnomon does not provide {row.prefect}: {row.note}"
    assert raised.value.name is not None
    assert raised.value.name == asked or asked.startswith(f"{raised.value.name}.")


def _importable_as_module(row: PrefectName) -> bool:
    """Whether ``import gnomon.x.y`` reaches gnomon for this row: its parent is a package
    or absent (an attribute of a plain module is Python's own error, in Prefect too)."""
    parent = _gnomon_name(row).rpartition(".")[0]
    return parent not in ("gnomon.Flow", "gnomon.Task") and _is_package_or_absent(parent)


@pytest.mark.parametrize(
    "row", [row for row in NOT_PROVIDED if _importable_as_module(row)], ids=lambda row: row.prefect
)
def test_importing_a_module_not_provided_raises_naming_the_alternative(row: PrefectName) -> None:
    asked = _gnomon_name(row)
    if _is_real_module(asked):
        asked = f"{asked}.a_module_of_prefects"  # gnomon.utilities: its row covers those
    with pytest.raises(NotProvidedByGnomon, match="gnomon does not provide prefect"):
        importlib.import_module(asked)


def test_a_name_kept_under_another_name_is_that_value() -> None:
    from gnomon.exceptions import ConfigurationError, PrefectException  # type: ignore[attr-defined]
    from gnomon.task_runners import ConcurrentTaskRunner  # type: ignore[attr-defined]
    from gnomon.utilities.annotations import Quote  # type: ignore[attr-defined]

    assert PrefectException is GnomonError
    assert ConfigurationError is ConfigError
    assert ConcurrentTaskRunner is gnomon.task_runners.ThreadPoolTaskRunner
    assert Quote is gnomon.quote


def test_prefects_deployments_names_do_not_hide_gnomons_own() -> None:
    from gnomon.deployments import Deployment, load_config

    assert Deployment.__module__ == "gnomon.deployments._models"
    assert callable(load_config)
    with pytest.raises(NotProvidedByGnomon, match="gnomon run NAME"):
        from gnomon.deployments import run_deployment  # type: ignore[attr-defined]  # noqa: F401


def test_names_that_are_not_prefects_keep_pythons_errors() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        gnomon.no_such_name  # type: ignore[attr-defined]  # noqa: B018
    with pytest.raises(ImportError) as raised:
        from gnomon.states import no_such_name  # type: ignore[attr-defined]  # noqa: F401
    assert not isinstance(raised.value, NotProvidedByGnomon)
    with pytest.raises(ModuleNotFoundError) as missing:
        importlib.import_module("gnomon.no_such_module")
    assert not isinstance(missing.value, NotProvidedByGnomon)
    assert not hasattr(gnomon.runtime.flow_run, "no_such_attribute")


def test_a_real_submodule_is_found_before_its_prefect_row() -> None:
    """``prefect.utilities`` is not supported, but gnomon.utilities.annotations is."""
    from gnomon.utilities import annotations

    assert annotations.unmapped is gnomon.unmapped


def test_the_finder_is_installed_once_and_last() -> None:
    importlib.reload(gnomon)
    assert sys.meta_path.count(PrefectNamesFinder) == 1
    assert sys.meta_path[-1] is PrefectNamesFinder


def test_the_docs_table_is_the_generated_one() -> None:
    doc = (REPO / "docs" / "prefect-compatibility.md").read_text()
    assert markdown_table() in doc, "run `python tools/prefect_names.py write`"
