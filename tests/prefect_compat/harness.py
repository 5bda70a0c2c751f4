"""The Prefect compatibility harness: run a program, normalise what it printed.

Each program in ``programs/`` is written as a Prefect 3 user writes one, from Prefect's
documentation, and prints what such a user sees (return values, state names, exception
types and messages, captured log messages). ``record.py`` runs it with real Prefect and
stores the result in ``expected/``; ``tests/test_prefect_harness.py`` runs it with its
imports switched to gnomon and compares. Both sides go through this module, so the two
outputs are shaped by the same rules, stated here once.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROGRAMS = HERE / "programs"
EXPECTED = HERE / "expected"

#: How long one program may run. Prefect starts a temporary API server for each one,
#: which takes tens of seconds on a loaded machine.
PROGRAM_TIMEOUT = 600

# What a user's migration does: in import statements, and only there, the module name
# ``prefect`` becomes ``gnomon`` (``from prefect.runtime import flow_run`` ->
# ``from gnomon.runtime import flow_run``). Names that merely contain the word, such as
# ``prefect_test_harness``, stay as they are: ``\b`` does not match before ``_``. The
# programs never write ``import prefect`` and then ``prefect.x``, so no other line names
# the package.
_IMPORT_LINE = re.compile(r"^(\s*(?:from|import)\s+)prefect\b", re.MULTILINE)

# Values that differ from run to run, and what each becomes. Anything not listed here is
# compared as printed. Default run names chosen at random ("crimson-wolf", "add-2cc") are
# not listed: no regular expression tells them from ordinary words, so the programs print
# only run names they set themselves.
NORMALISATIONS: tuple[tuple[str, re.Pattern[str], str], ...] = (
    (
        "UUIDs (run, task run, artifact ids)",
        re.compile(
            r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"
        ),
        "<uuid>",
    ),
    (
        "datetime reprs",
        re.compile(r"\b(?:DateTime|datetime\.datetime|datetime)\([^()]*\)"),
        "<datetime>",
    ),
    (
        "ISO 8601 timestamps",
        re.compile(r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?"),
        "<timestamp>",
    ),
    (
        "measured durations: two or more decimals before a unit of seconds",
        re.compile(r"\b\d+\.\d{2,} ?(?:seconds|second|secs|sec|ms|s)\b"),
        "<duration>",
    ),
    ("memory addresses in reprs", re.compile(r"\b0x[0-9a-fA-F]{4,}\b"), "0x<address>"),
)


def switch_imports(source: str) -> str:
    """The program as a user migrating to gnomon rewrites it (see ``_IMPORT_LINE``)."""
    return _IMPORT_LINE.sub(r"\1gnomon", source)


def normalise(text: str, paths: Mapping[str, str]) -> str:
    """``text`` with this run's own paths (longest first) and ``NORMALISATIONS`` replaced."""
    for path in sorted(paths, key=len, reverse=True):
        text = text.replace(path, paths[path])
    for _, pattern, replacement in NORMALISATIONS:
        text = pattern.sub(replacement, text)
    return text


@dataclass(frozen=True)
class Outcome:
    """What a program run left: its normalised transcript, and stderr to explain a failure."""

    transcript: str
    stderr: str


def run_program(
    python: str, name: str, source: str, scratch: Path, env: Mapping[str, str], home_variable: str
) -> Outcome:
    """Run program ``name`` (its ``source`` as given) and return its normalised stdout.

    The program is written to a directory of its own under ``scratch`` (so no sibling file
    can shadow a module it imports) and run there, with ``env`` and the environment variable
    ``home_variable`` naming a fresh state directory beside it. A non-zero exit status is
    part of the transcript (a last line ``[exit status N]``), so an exception escaping the
    program is compared like any printed line.
    """
    workdir, home = scratch / "work", scratch / "home"
    workdir.mkdir(parents=True)
    program = workdir / f"{name}.py"
    program.write_text(source)
    completed = subprocess.run(
        [python, str(program)],
        cwd=workdir,
        env={**env, home_variable: str(home)},
        capture_output=True,
        text=True,
        timeout=PROGRAM_TIMEOUT,
        check=False,
    )
    stdout = completed.stdout
    if stdout and not stdout.endswith("\n"):
        stdout += "\n"
    if completed.returncode:
        stdout += f"[exit status {completed.returncode}]\n"
    paths = {str(home): "<home>", str(workdir): "<workdir>", str(scratch): "<scratch>"}
    return Outcome(normalise(stdout, paths), completed.stderr)


def program_names() -> list[str]:
    """Every program's name (its file name without ``.py``), sorted."""
    return sorted(path.stem for path in PROGRAMS.glob("*.py"))
