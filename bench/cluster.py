"""Several daemons on one PostgreSQL database (issue 19): fires per second and lateness
with 1, 2 and 3 daemons, and the CPU each run costs.

    GNOMON_BENCH_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test \\
        python bench/cluster.py [--deployments 200] [--seconds 30] [--workers 4] \\
        [--daemons 1,2,3] [--repeat 1]

Each configuration gets a fresh database and ``--daemons`` daemon processes (each with a
home of its own, as on its own host) on ``--deployments`` deployments firing every second
(a six-field cron), for ``--seconds`` seconds after all have joined. Lateness is the flow
body's start minus the nominal fire time (bench/daemon_harness.py's stamping flow). CPU
per run is the user and system time of every daemon and its workers over the window,
divided by the runs it covered: on this machine the daemons share its cores, so CPU per
run, not fires per second, predicts what several hosts would do. Prints a table of
medians, the machine line, and one JSON line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from daemon import percentile
from daemon_harness import GNOMON, Workspace, children

CLK_TCK = os.sysconf("SC_CLK_TCK")
JOIN_TIMEOUT = 120.0
SETTLE = 5.0  # seconds after joining before the window starts (the first catch-up)


def tree_cpu(pid: int) -> float:
    """CPU seconds of ``pid`` and every process below it, reaped children included."""
    total = 0.0
    for each in [pid, *children(pid)]:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(value) for value in fields[11:15]) / CLK_TCK
    return total


def members(url: str) -> int:
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return int(connection.execute(text("SELECT count(*) FROM daemons")).scalar_one())
    except Exception:
        return 0  # not migrated yet
    finally:
        engine.dispose()


def start_daemons(workspace: Workspace, config: Path, count: int) -> list[subprocess.Popen]:
    processes = []
    for index in range(count):
        home = workspace.root / f"home{index}"
        env = {key: value for key, value in os.environ.items() if not key.startswith("GNOMON_")}
        env.update(GNOMON_HOME=str(home), GNOMON_DATABASE_URL=str(workspace.database_url))
        output = (workspace.root / f"daemon{index}.log").open("ab")
        processes.append(
            subprocess.Popen(
                [sys.executable, str(GNOMON), "daemon", "--config", str(config)],
                stdout=output,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=workspace.root,
            )
        )
        deadline = time.monotonic() + JOIN_TIMEOUT
        assert workspace.database_url is not None
        while members(workspace.database_url) < index + 1:
            if time.monotonic() > deadline or processes[-1].poll() is not None:
                raise RuntimeError(f"daemon {index} did not join; see {output.name}")
            time.sleep(0.2)
    return processes


def measure(workspace: Workspace, daemons: int, deployments: int, seconds: float, workers: int):
    workspace.fresh_home()
    schedules = [(f"d{i}", "* * * * * *") for i in range(deployments)]
    config = workspace.write_config(schedules, workers)
    processes = start_daemons(workspace, config, daemons)
    try:
        time.sleep(SETTLE)
        begin = time.time()
        cpu_before = sum(tree_cpu(process.pid) for process in processes)
        time.sleep(seconds)
        cpu_after = sum(tree_cpu(process.pid) for process in processes)
        end = time.time()
        time.sleep(3)  # the window's last fires start
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
    runs = [run for run in workspace.runs() if begin <= run.nominal < end]
    started = [run for run in runs if run.bodies]
    lateness = [(min(run.bodies) - run.nominal) * 1000 for run in started]
    keys = [(run.deployment, run.nominal) for run in runs]
    expected = deployments * int(end - begin)
    return {
        "daemons": daemons,
        "offered_per_s": deployments,
        "started_per_s": round(len(started) / (end - begin), 1),
        "decided": len(runs),
        "expected_about": expected,
        "duplicated": len(keys) - len(set(keys)),
        "not_started": len(runs) - len(started),
        "lateness_p50_ms": round(percentile(lateness, 50), 1) if lateness else None,
        "lateness_p99_ms": round(percentile(lateness, 99), 1) if lateness else None,
        "cpu_ms_per_run": round((cpu_after - cpu_before) * 1000 / max(1, len(started)), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deployments", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--daemons", default="1,2,3")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    counts = [int(each) for each in args.daemons.split(",")]
    workspace = Workspace()
    if not workspace.database_url:
        raise SystemExit("set GNOMON_BENCH_POSTGRES_URL to a PostgreSQL server's URL")
    results: dict[int, list[dict[str, Any]]] = {count: [] for count in counts}
    try:
        for _ in range(args.repeat):
            for count in counts:  # alternated, so drift in the machine's load hits each
                result = measure(workspace, count, args.deployments, args.seconds, args.workers)
                print(json.dumps(result), file=sys.stderr)
                results[count].append(result)
    finally:
        workspace.cleanup()
    medians = {
        count: {
            key: statistics.median(sample[key] for sample in samples)
            if isinstance(samples[0][key], int | float)
            else samples[0][key]
            for key in samples[0]
        }
        for count, samples in results.items()
    }
    columns = list(next(iter(medians.values())))
    print(" | ".join(columns))
    for row in medians.values():
        print(" | ".join(str(row[column]) for column in columns))
    print(f"machine: {platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(json.dumps({"medians": medians, "args": vars(args)}))


if __name__ == "__main__":
    main()
