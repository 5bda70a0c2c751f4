"""What the daemon spends per run of a burst, counted in instructions, thread by thread.

    python bench/daemon_cost.py [--deployments 48] [--fires 2] [--period 30]

A real ``gnomon daemon`` runs under ``valgrind --tool=callgrind --separate-threads=yes``
(its workers run natively) with ``--deployments`` deployments of a trivial flow firing
together every ``--period`` seconds. After one fire to warm up, instrumentation is switched
on shortly before each measured fire and off once the fire's runs have all ended and the
daemon has written its log lines for them. The figure is the daemon's instructions per
run, in all and per thread: the same from one run of this script to the next to within a
percent or two, whatever else the machine is doing, so two trees can be compared with one
run each (``PYTHONPATH=<tree>/src``). bench/run_cost.py counts the worker's side.

Under valgrind the daemon is some fifty times slower than natively, so its threads
interleave differently (a run's output, for one, is relayed in fewer reads): the count is
for comparing changes, not a timing.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from daemon_harness import DaemonProcess, Workspace

READY_TIMEOUT = 600.0  # start-up under valgrind takes a minute or more
BURST_TIMEOUT = 300.0
SETTLE = 3.0  # seconds after a fire's last summary line: the store's log rows follow


def _instrument(pid: int, on: bool) -> None:
    subprocess.run(
        ["callgrind_control", "-i", "on" if on else "off", str(pid)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
    )


def _summary_lines(log_file: Path) -> int:
    if not log_file.exists():
        return 0
    with log_file.open("rb") as lines:
        return sum(1 for line in lines if b'"event_kind": "run_summary"' in line)


def _wait_for(count: Callable[[], int], at_least: int, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while count() < at_least:
        if time.time() > deadline:
            sys.exit(f"timed out waiting for {what}")
        time.sleep(0.2)


def _thread_totals(out_file: Path) -> dict[str, int]:
    """Instructions per valgrind thread number, from the per-thread output files."""
    totals = {}
    for path in sorted(out_file.parent.glob(out_file.name + "-*")):
        annotated = subprocess.run(
            ["callgrind_annotate", str(path)], capture_output=True, text=True, check=True
        ).stdout
        match = re.search(r"^([\d,]+) .*PROGRAM TOTALS", annotated, re.MULTILINE)
        thread = re.search(r"-(\d+)$", path.name)
        if match is not None and thread is not None:
            totals[thread.group(1)] = int(match.group(1).replace(",", ""))
    return totals


def measure(deployments: int, fires: int, period: int) -> dict[str, object]:
    workspace = Workspace()
    try:
        workspace.fresh_home()
        cron = "* * * * * " + ",".join(str(second) for second in range(0, 60, period))
        names = [f"burst-{i:02d}" for i in range(deployments)]
        config = workspace.write_config([(name, cron) for name in names], None)
        out_file = workspace.root / "callgrind.out"
        wrapper = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            "--separate-threads=yes",
            f"--callgrind-out-file={out_file}",
        ]
        log_file = workspace.home / "logs" / "gnomon.jsonl"
        with DaemonProcess(workspace, config, wrapper) as daemon:
            daemon.wait_ready(READY_TIMEOUT)
            assert daemon.ready_at is not None
            first = math.floor(daemon.ready_at / period) * period + period
            for fire in range(fires + 1):
                nominal = first + fire * period
                if fire > 0:
                    while time.time() < nominal - 2:
                        time.sleep(0.1)
                    _instrument(daemon.pid, True)
                done = deployments * (fire + 1)
                _wait_for(workspace.stamp_count, done, BURST_TIMEOUT, "the runs")
                _wait_for(lambda: _summary_lines(log_file), done, BURST_TIMEOUT, "the lines")
                time.sleep(SETTLE)
                if fire > 0:
                    _instrument(daemon.pid, False)
            daemon.stop(timeout=BURST_TIMEOUT)
        threads = _thread_totals(out_file)
    finally:
        workspace.cleanup()
    runs = deployments * fires
    return {
        "runs": runs,
        "instructions_per_run": sum(threads.values()) / runs,
        "per_thread": {thread: count / runs for thread, count in threads.items() if count},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deployments", type=int, default=48)
    parser.add_argument("--fires", type=int, default=2, help="fires measured, after one")
    parser.add_argument("--period", type=int, default=30, help="seconds between fires")
    args = parser.parse_args()
    if 60 % args.period:
        sys.exit("--period must divide 60")
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed")
    result = measure(args.deployments, args.fires, args.period)
    print(f"daemon instructions per run: {result['instructions_per_run']:,.0f}")
    for thread, count in result["per_thread"].items():  # type: ignore[attr-defined]
        print(f"  thread {thread:>3}: {count:12,.0f}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
