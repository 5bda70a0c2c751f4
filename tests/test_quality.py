"""The code base passes its linters and type checker, as CI requires."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import REPO


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, check=False
    )


def test_ruff_finds_no_problems() -> None:
    result = _run("ruff", "check", "src", "tests", "bench", "examples")
    assert result.returncode == 0, result.stdout + result.stderr


def test_code_is_ruff_formatted() -> None:
    result = _run("ruff", "format", "--check", "src", "tests", "bench", "examples")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_passes_on_the_package() -> None:
    result = _run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def _lint_imports(config: str | None = None) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` on the package's import graph, with pyproject's contracts or
    ``config``'s."""
    code = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports("
    code += f"config_filename={config!r}, no_cache=True))"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False
    )


def test_the_packages_keep_their_layers() -> None:
    # cli -> http -> control -> daemon -> deployments -> flows -> store -> scheduling
    result = _lint_imports()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_the_layers_contract_sees_the_real_imports(tmp_path) -> None:
    # The same check with two layers swapped must fail: flows import the store.
    config = tmp_path / "importlinter.ini"
    config.write_text(
        "[importlinter]\nroot_package = gnomon\n\n"
        "[importlinter:contract:swapped]\nname = swapped\ntype = layers\n"
        "layers =\n    gnomon.store\n    gnomon.flows\n"
    )
    result = _lint_imports(str(config))
    assert result.returncode != 0
    assert "gnomon.flows" in result.stdout
    assert "BROKEN" in result.stdout


def test_every_name_a_package_face_lists_resolves() -> None:
    # The faces import a name's module when it is first asked for: a typo in a face's table
    # would only fail when that name is first used.
    import importlib

    for package in (
        "gnomon",
        "gnomon.control",
        "gnomon.daemon",
        "gnomon.deployments",
        "gnomon.flows",
        "gnomon.http",
        "gnomon.scheduling",
        "gnomon.store",
    ):
        module = importlib.import_module(package)
        for name in module.__all__:
            assert getattr(module, name) is not None, f"{package}.{name}"


def _private_imports_across_packages(package: Path) -> set[tuple[str, str]]:
    """(module file, private module) for each import, under ``package`` (a ``gnomon``
    folder), of another subpackage's private module; the top-level modules (``gnomon/*.py``)
    are outside every subpackage."""
    import ast

    found = set()
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package)
        own = relative.parts[0] if len(relative.parts) > 1 else None
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                modules = [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            for module in modules:
                parts = module.split(".")
                if (
                    len(parts) > 2
                    and parts[0] == "gnomon"
                    and parts[1] != own
                    and not parts[1].startswith("_")
                    and parts[2].startswith("_")
                ):
                    found.add((relative.as_posix(), ".".join(parts[:3])))
    return found


def test_no_module_imports_another_packages_private_module() -> None:
    """Each subpackage's __init__.py is its face: it names what other packages may use."""
    found = _private_imports_across_packages(REPO / "src" / "gnomon")

    assert found == set(), "import these names from the package's face"


def test_the_private_import_check_sees_every_spelling(tmp_path: Path) -> None:
    cli = tmp_path / "cli"
    cli.mkdir()
    (cli / "_a.py").write_text(
        "from gnomon.store._db import sqlite_path\n"
        "from gnomon.store import _values, get_store\n"
        "import gnomon.flows._logging\n"
        "from gnomon.cli._common import Commands\n"  # its own package: allowed
    )
    (tmp_path / "tasks.py").write_text("from gnomon.flows._task import task\n")

    assert _private_imports_across_packages(tmp_path) == {
        ("cli/_a.py", "gnomon.store._db"),
        ("cli/_a.py", "gnomon.store._values"),
        ("cli/_a.py", "gnomon.flows._logging"),
        ("tasks.py", "gnomon.flows._task"),
    }


def test_no_state_is_spelled_as_a_bare_string_outside_its_enums() -> None:
    # A typo in a bare "TIMEDOUT" matched nothing and failed silently; the enums cannot.
    import ast

    from gnomon.states import StateName, StateType

    spellings = {member.value for member in StateType} | {member.value for member in StateName}
    stray = []
    for path in sorted((REPO / "src" / "gnomon").rglob("*.py")):
        if path.name == "states.py" and path.parent.name == "gnomon":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and node.value in spellings:
                stray.append(f"{path.relative_to(REPO)}:{node.lineno}: {node.value!r}")
    assert not stray, "use StateType or StateName:\n" + "\n".join(stray)


def test_the_compiled_queries_are_current() -> None:
    """``_compiled`` (what the command line's fast path and the store's hot writes run) is
    what its generator makes of the queries, the writes and the schema as they are; the
    generator is private to the store, and this is the check that it was run."""
    from gnomon.store._compile import COMMAND, TARGET, render

    assert render() == TARGET.read_text(), f"{TARGET.name} is out of date: run {COMMAND}"


def test_the_design_documents_module_map_names_every_module() -> None:
    design = (REPO / "docs" / "design.md").read_text()
    package = REPO / "src" / "gnomon"
    unnamed = [
        str(path.relative_to(package))
        for path in sorted(package.rglob("*.py"))
        if path.name not in ("__init__.py", "__main__.py")
        and "versions" not in path.parts  # migrations/versions: one file per revision
        and path.name not in design
    ]
    assert not unnamed, f"docs/design.md's module map does not name {unnamed}"


def test_the_row_classes_are_current() -> None:
    """``rows`` (the typed rows every read returns) is what the same generator makes of the
    schema as it is: a column added or changed is a field added or changed."""
    from gnomon.store._compile import COMMAND, ROWS_TARGET, render_rows

    assert render_rows() == ROWS_TARGET.read_text(), (
        f"{ROWS_TARGET.name} is out of date: run {COMMAND}"
    )
