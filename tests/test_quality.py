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
