"""Prefect-style programs give, with gnomon, what real Prefect 3.8.8 gave.

Each program in ``tests/prefect_compat/programs`` runs in a subprocess of its own, after
the import rewrite a user migrating does (``prefect_compat.harness.switch_imports``), with
a fresh ``GNOMON_HOME``; its normalised output must equal the file that
``tests/prefect_compat/record.py`` recorded from Prefect. Prefect is never imported here.
The programs of this module run side by side (as many at once as the machine has cores),
started together before the first comparison.
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from prefect_compat.harness import (
    EXPECTED,
    PROGRAMS,
    Outcome,
    normalise,
    program_names,
    run_program,
    switch_imports,
)

REPO = Path(__file__).resolve().parent.parent

# The programs whose output differs from Prefect's today, each with why. Strict: the test
# fails as soon as one of them matches, so that it is taken off this list.
NOT_YET: dict[str, str] = {}


def _params() -> list[object]:
    return [
        pytest.param(name, marks=pytest.mark.xfail(reason=NOT_YET[name], strict=True))
        if name in NOT_YET
        else name
        for name in program_names()
    ]


def _run_with_gnomon(name: str, scratch: Path) -> Outcome:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("GNOMON_", "PREFECT_"))
    }
    env["PYTHONPATH"] = str(REPO / "src")
    # gnomon's secrets need a key, which an operator's config names (Prefect's need none).
    key = scratch / f"{name}.key"
    key.parent.mkdir(parents=True, exist_ok=True)
    key.write_bytes(Fernet.generate_key())
    key.chmod(0o600)
    env["GNOMON_SECRETS_KEY_FILE"] = str(key)
    source = switch_imports((PROGRAMS / f"{name}.py").read_text())
    return run_program(sys.executable, name, source, scratch / name, env, "GNOMON_HOME")


@pytest.fixture(scope="module")
def outcomes(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Future[Outcome]]]:
    """Every selected program of this module, started at once in a pool of subprocesses."""
    selected = {
        item.callspec.params["name"]
        for item in request.session.items
        if item.module is request.module and hasattr(item, "callspec")
    }
    scratch = tmp_path_factory.mktemp("prefect-harness")
    with ThreadPoolExecutor(max(2, os.cpu_count() or 1)) as pool:
        yield {name: pool.submit(_run_with_gnomon, name, scratch) for name in sorted(selected)}


@pytest.mark.parametrize("name", _params())
def test_program_prints_what_prefect_printed(
    name: str, outcomes: dict[str, Future[Outcome]]
) -> None:
    expected = (EXPECTED / f"{name}.txt").read_text()
    outcome = outcomes[name].result()
    if outcome.transcript != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                outcome.transcript.splitlines(keepends=True),
                f"prefect 3.8.8: {name}",
                f"gnomon: {name}",
            )
        )
        stderr = outcome.stderr[-3000:]
        pytest.fail(f"{name} printed otherwise than Prefect:\n{diff}\nits stderr ends:\n{stderr}")


def test_every_program_has_a_recording_and_every_listed_program_exists() -> None:
    recorded = sorted(path.stem for path in EXPECTED.glob("*.txt"))
    assert recorded == program_names()
    assert set(NOT_YET) <= set(program_names())


def test_only_import_statements_switch_to_gnomon() -> None:
    source = (
        "from prefect import flow\n"
        "    from prefect.runtime import flow_run\n"
        "import prefect.context\n"
        "from prefect.testing.utilities import prefect_test_harness\n"
        "print('prefect stays in strings')\n"
        "from prefectlike import x\n"
    )
    assert switch_imports(source) == (
        "from gnomon import flow\n"
        "    from gnomon.runtime import flow_run\n"
        "import gnomon.context\n"
        "from gnomon.testing.utilities import prefect_test_harness\n"
        "print('prefect stays in strings')\n"
        "from prefectlike import x\n"
    )


def test_normalisation_replaces_run_specific_values_only() -> None:
    text = (
        "id 0b8a3e1c-5f2d-4c1e-9a7b-3d2e1f0a9b8c at 2026-12-07T02:52:39.123456+00:00\n"
        "took 0.1234s, <object at 0x7f3a2b1c4d50>, from /tmp/run-1/home/x\n"
        "retry in 2 seconds, timeout 0.5 seconds, 42 tasks\n"
    )
    assert normalise(text, {"/tmp/run-1/home": "<home>"}) == (
        "id <uuid> at <timestamp>\n"
        "took <duration>, <object at 0x<address>>, from <home>/x\n"
        "retry in 2 seconds, timeout 0.5 seconds, 42 tasks\n"
    )
