"""Record what real Prefect prints for each harness program, into ``expected/``.

    python tests/prefect_compat/record.py                 # build a Prefect venv, record all
    python tests/prefect_compat/record.py --python /path/to/venv/bin/python hooks tags

Without ``--python`` it builds a separate virtual environment with the pinned Prefect
(``--venv``, default ``.prefect-reference`` at the repository root, reused when it already
holds that version), so gnomon's own environment never contains Prefect. Each program runs
in a directory of its own with ``PREFECT_HOME`` there (Prefect starts a temporary local
server for each), several at once. The expected files are only ever written by this script.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prefect_compat.harness import EXPECTED, PROGRAMS, program_names, run_program

REPO = Path(__file__).resolve().parents[2]
PREFECT_VERSION = "3.8.8"
# Prefect 3.8.8 installs here only with these two pinned beside it: newer FastAPI and
# SQLAlchemy 2.1 break its temporary server.
REQUIREMENTS = [f"prefect=={PREFECT_VERSION}", "fastapi==0.139.0", "sqlalchemy<2.1"]


def reference_python(venv: Path) -> str:
    """The interpreter of a venv holding the pinned Prefect, built there if it does not."""
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    if installed_version(str(python)) != PREFECT_VERSION:
        subprocess.run([str(python), "-m", "pip", "install", "-q", *REQUIREMENTS], check=True)
    return str(python)


def installed_version(python: str) -> str | None:
    """The Prefect version ``python`` imports, or None when it has none."""
    probe = subprocess.run(
        [python, "-c", "import importlib.metadata as m; print(m.version('prefect'))"],
        capture_output=True,
        text=True,
        check=False,
    )
    return probe.stdout.strip() if probe.returncode == 0 else None


def record(python: str, name: str) -> str:
    """Run one program with Prefect, write its expected file, and say how it went."""
    with tempfile.TemporaryDirectory(prefix=f"prefect-{name}-") as scratch:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("PREFECT_", "GNOMON_")) and key != "PYTHONPATH"
        }
        # A loaded machine can take longer than the default 20 s to start the server.
        env.update(
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="600",
        )
        source = (PROGRAMS / f"{name}.py").read_text()
        outcome = run_program(python, name, source, Path(scratch), env, "PREFECT_HOME")
    (EXPECTED / f"{name}.txt").write_text(outcome.transcript)
    status = "exited non-zero" if "[exit status" in outcome.transcript else "ok"
    tail = "".join(outcome.stderr.splitlines(keepends=True)[-5:]) if status != "ok" else ""
    return f"{name}: {status}\n{tail}".rstrip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("programs", nargs="*", help="program names (default: all)")
    parser.add_argument("--python", help="an interpreter that already has Prefect 3.8.8")
    parser.add_argument("--venv", type=Path, default=REPO / ".prefect-reference")
    parser.add_argument("--jobs", type=int, default=4, help="programs run at once")
    arguments = parser.parse_args()
    python = arguments.python or reference_python(arguments.venv)
    version = installed_version(python)
    if version != PREFECT_VERSION:
        parser.error(f"--python {python} has Prefect {version}, not {PREFECT_VERSION}")
    names = arguments.programs or program_names()
    unknown = sorted(set(names) - set(program_names()))
    if unknown:
        parser.error(f"no such program: {', '.join(unknown)}")
    EXPECTED.mkdir(exist_ok=True)
    with ThreadPoolExecutor(arguments.jobs) as pool:
        for line in pool.map(lambda name: record(python, name), names):
            print(line, flush=True)


if __name__ == "__main__":
    main()
