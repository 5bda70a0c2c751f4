"""Instructions per task call, counted by valgrind's callgrind: a figure of the engine's
cost that the other programs on a shared machine do not change (wall times there vary by
half from one run to the next).

    python bench/engine_instructions.py [--tasks 500] [--workload sequential|map]

Runs bench/engine_workload.py under ``valgrind --tool=callgrind`` twice, with one task
and with --tasks more, each in a fresh GNOMON_HOME, and prints the difference per
task as one JSON line. Under valgrind the threads of a ``.map`` take turns, so the figure
is the CPU work per task without the cost of threads waiting on one another's locks: wall
time on a real machine can rise where this does not. Needs valgrind (on every machine
here); gnomon is imported from this tree's src/.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

TREE = Path(__file__).resolve().parent.parent
WORKLOAD = TREE / "bench" / "engine_workload.py"  # the same flows the wall-time figures run


def instructions(workload: str, tasks: int) -> int:
    """Instructions callgrind counted for the whole process running ``tasks`` tasks."""
    with tempfile.TemporaryDirectory() as home:
        out = Path(home) / "callgrind.out"
        env = {**os.environ, "GNOMON_HOME": home, "PYTHONPATH": str(TREE / "src")}
        done = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                sys.executable,
                str(WORKLOAD),
                "gnomon",
                workload,
                str(tasks),
            ],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise SystemExit(f"callgrind printed no total:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--workload", choices=["sequential", "map"], default="map")
    options = parser.parse_args()
    base = instructions(options.workload, 1)  # engine_workload.py divides by the count
    total = instructions(options.workload, options.tasks + 1)
    print(
        json.dumps(
            {
                "workload": options.workload,
                "tasks": options.tasks,
                "instructions_per_task": round((total - base) / options.tasks),
            }
        )
    )


if __name__ == "__main__":
    main()
