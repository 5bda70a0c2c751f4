"""Engine benchmarks for issue 2's targets, each run in fresh processes; medians printed.

    python bench/engine.py [--repeat 5]

Measures, for gnomon: a flow of 10,000 sequential trivial tasks (ms per task, every state
persisted to SQLite), 1,000 tasks through .map on the thread runner (seconds), the peak RSS
of the 10,000-task flow, and `python -c "import gnomon"` wall time.

If GNOMON_BENCH_PREFECT_PYTHON names an interpreter with Prefect installed, the same
workloads run there too (against Prefect's default local server, with a throwaway
PREFECT_HOME) and the ratios are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORKLOAD = HERE / "engine_workload.py"


def run_workload(python: str, impl: str, workload: str, count: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as home:
        env = {
            **os.environ,
            "GNOMON_HOME": home,
            "GNOMON_LOG_FORMAT": "json",
            "PREFECT_HOME": home,
            "PREFECT_LOGGING_LEVEL": "WARNING",
        }
        out = subprocess.run(
            [python, str(WORKLOAD), impl, workload, str(count)],
            capture_output=True,
            text=True,
            env=env,
            check=True,
            cwd=home,
        )
    return json.loads(out.stdout.strip().splitlines()[-1])


def import_time(python: str, module: str) -> float:
    start = time.perf_counter()
    subprocess.run([python, "-c", f"import {module}"], check=True)
    return time.perf_counter() - start


def median_of(samples: list[dict[str, float]], key: str) -> float:
    return statistics.median(sample[key] for sample in samples)


def measure(python: str, impl: str, repeat: int) -> dict[str, float]:
    sequential = [run_workload(python, impl, "sequential", 10_000) for _ in range(repeat)]
    mapped = [run_workload(python, impl, "map", 1_000) for _ in range(repeat)]
    imports = [import_time(python, impl) for _ in range(max(repeat, 5))]
    return {
        "sequential_ms_per_task": median_of(sequential, "ms_per_task"),
        "sequential_peak_rss_mb": median_of(sequential, "peak_rss_mb"),
        "map_1000_seconds": median_of(mapped, "seconds"),
        "import_ms": statistics.median(imports) * 1000,
    }


TARGETS = {
    "sequential_ms_per_task": 0.2,
    "sequential_peak_rss_mb": 120,
    "map_1000_seconds": 0.5,
    "import_ms": 150,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per measurement (median)")
    parser.add_argument("--prefect-repeat", type=int, default=1)
    args = parser.parse_args()

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    results = {"gnomon": measure(sys.executable, "gnomon", args.repeat)}
    prefect_python = os.environ.get("GNOMON_BENCH_PREFECT_PYTHON")
    if prefect_python:
        results["prefect"] = measure(prefect_python, "prefect", args.prefect_repeat)

    header = f"{'measure':<26}{'target':>9}{'gnomon':>11}"
    if "prefect" in results:
        header += f"{'prefect':>11}{'ratio':>9}"
    print(header)
    for key, target in TARGETS.items():
        ours = results["gnomon"][key]
        line = f"{key:<26}{target:>9g}{ours:>11.3f}"
        if "prefect" in results:
            theirs = results["prefect"][key]
            line += f"{theirs:>11.3f}{theirs / ours:>8.1f}x"
        verdict = "ok" if ours <= target else "MISSED"
        print(f"{line}  {verdict}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
