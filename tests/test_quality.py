"""The code base passes its linters and type checker, as CI requires."""

from __future__ import annotations

import subprocess
import sys

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
    # gnomon.control and gnomon.http import a name's module when it is first asked for.
    import importlib

    for package in ("gnomon.control", "gnomon.http"):
        module = importlib.import_module(package)
        for name in module.__all__:
            assert getattr(module, name) is not None, f"{package}.{name}"


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
