"""One engine benchmark workload, run in a fresh process by bench/engine.py.

Usage: python bench/engine_workload.py {gnomon|prefect} {sequential|map} N

Prints one JSON object: the workload's wall time, per-task time and the process's peak RSS.
The same code runs under gnomon and Prefect: only the import differs.
"""

from __future__ import annotations

import json
import resource
import sys
import time


def main() -> None:
    impl, workload, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if impl == "gnomon":
        from gnomon import flow, task
    elif impl == "prefect":
        from prefect import flow, task
    else:
        raise SystemExit(f"unknown implementation {impl!r}")

    @task
    def noop(i: int) -> int:
        return i

    @flow
    def sequential(n: int) -> int:
        for i in range(n):
            noop(i)
        return n

    @flow
    def mapped(n: int) -> int:
        return len(noop.map(range(n)).result())

    body = sequential if workload == "sequential" else mapped
    body(2)  # warm-up: store created, migrations applied, modules imported
    start = time.perf_counter()
    body(count)
    elapsed = time.perf_counter() - start
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "impl": impl,
                "workload": workload,
                "tasks": count,
                "seconds": elapsed,
                "ms_per_task": elapsed / count * 1000,
                "peak_rss_mb": peak_rss_mb,
            }
        )
    )


if __name__ == "__main__":
    main()
