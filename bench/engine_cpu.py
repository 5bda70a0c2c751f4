"""CPU and wall time of 1,000 tasks through ``.map``, three rounds in one process.

    GNOMON_HOME=$(mktemp -d) python bench/engine_cpu.py [--tasks 1000] [--rounds 3]

Prints one JSON line: a [cpu seconds, wall seconds] pair per round. CPU is the process's
user and system time over all its threads (getrusage), which a loaded machine changes
less than the wall time; compare trees by alternating processes in one loop, e.g.

    for i in 1 2 3 4 5 6; do for tree in $OLD $NEW; do
      GNOMON_HOME=$(mktemp -d) PYTHONPATH=$tree/src python bench/engine_cpu.py; done; done

and take the medians per tree.
"""

from __future__ import annotations

import argparse
import json
import resource
import time


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()

    from gnomon import flow, task

    @task
    def noop(i: int) -> int:
        return i

    @flow
    def mapped(n: int) -> int:
        return len(noop.map(range(n)).result())

    mapped(2)  # warm-up: store created, modules imported
    rounds = []
    for _ in range(options.rounds):
        cpu, wall = _cpu(), time.perf_counter()
        mapped(options.tasks)
        rounds.append([round(_cpu() - cpu, 4), round(time.perf_counter() - wall, 4)])
    print(json.dumps({"tasks": options.tasks, "cpu_wall": rounds}))


if __name__ == "__main__":
    main()
