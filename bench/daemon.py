"""Daemon benchmarks for issue 3's targets, each against a real `gnomon daemon` subprocess.

    python bench/daemon.py [--minutes 3] [--repeat 3] [--only fifty|thousand|tenk]

- fifty: 50 deployments firing every minute (`* * * * *`) for --minutes minutes; lateness
  of every fire, and fires missed or duplicated (body starts per deployment per minute).
  --fifty-period 15 fires every 15 seconds instead (--minutes fires), for quicker
  comparisons; the target is for every minute.
- thousand: 1,000 deployments due in the same second (a six-field cron naming one second a
  few seconds after start-up), with the default worker count and with 8 and 16 workers;
  lateness of that one fire, missed and duplicated.
- tenk: 10,000 registered deployments that fire months from now: seconds from process start
  to READY=1 on a NOTIFY_SOCKET we bind (fresh store, then a restart on it), idle RSS of the
  daemon and of its workers, and their idle CPU over --idle-seconds.

Lateness is flow body start minus nominal fire time: the generated flow's first statement
stamps time.time() (see bench/daemon_harness.py). The JSON also has the stages of a fire
(run row created, run claimed: its start_time) and, for thousand, the CPU time the daemon
and the workers spent per run. Every daemon gets a fresh GNOMON_HOME in a temporary
directory and is stopped with SIGTERM (SIGKILL after a timeout). Prints each repeat on
stderr, then a table of medians, the machine line, and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from daemon_harness import (
    DaemonProcess,
    Run,
    Workspace,
    children,
    cpu_seconds,
    deadline_passed,
    fire_counts,
    rss_mb,
)

READY_TIMEOUT = 120.0
DRAIN_TIMEOUT = 60.0  # after the last fire, how long its runs may take to start


class StartedTooLate(RuntimeError):
    """The daemon was not ready well before the fire time the config was written for."""


def percentile(values: list[float], pct: int) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]


def distribution(values: list[float], prefix: str) -> dict[str, float]:
    """Median, p99 and max of ``values`` (seconds) as milliseconds."""
    if not values:
        return {f"{prefix}_{stat}_ms": math.nan for stat in ("median", "p99", "max")}
    return {
        f"{prefix}_median_ms": statistics.median(values) * 1000,
        f"{prefix}_p99_ms": percentile(values, 99) * 1000,
        f"{prefix}_max_ms": max(values) * 1000,
    }


def fire_report(runs: list[Run], expected: set[tuple[str, float]]) -> dict[str, Any]:
    """Lateness of the expected fires, and how many were missed, duplicated or unexpected.

    Besides body lateness, the stages of a fire: the run row created (the daemon decided),
    the run claimed by a worker (its start_time), and the body started.
    """
    counts = fire_counts(runs)
    ours = [run for run in runs if (run.deployment, run.nominal) in expected and run.bodies]
    late = [min(run.bodies) - run.nominal for run in ours]
    created = [run.created - run.nominal for run in ours]
    claimed = [run.start_time - run.nominal for run in ours if run.start_time is not None]
    engine = [min(run.bodies) - run.start_time for run in ours if run.start_time is not None]
    return {
        "fires_expected": len(expected),
        "fires_started": sum(1 for key in expected if counts.get(key, 0) >= 1),
        "fires_missed": sum(1 for key in expected if counts.get(key, 0) == 0),
        "fires_duplicated": sum(1 for key in expected if counts.get(key, 0) > 1),
        "runs_unexpected": sum(1 for run in runs if (run.deployment, run.nominal) not in expected),
        **distribution(late, "lateness"),
        **distribution(created, "created"),
        **distribution(claimed, "start_time"),
        "body_after_start_time_median_ms": statistics.median(engine) * 1000 if engine else None,
    }


def sleep_until(moment: float) -> None:
    while (left := moment - time.time()) > 0:
        time.sleep(min(left, 1.0))


def wait_for_bodies(workspace: Workspace, expected: set[tuple[str, float]], timeout: float) -> None:
    """Poll the store until every expected fire has a body start, or ``timeout`` passes."""
    deadline = time.time() + timeout
    while not deadline_passed(deadline):
        counts = fire_counts(workspace.runs())
        if all(counts.get(key, 0) for key in expected):
            return
        time.sleep(0.5)


def fifty(workspace: Workspace, fires: int, workers: int | None, period: int = 60) -> dict:
    """50 deployments firing every ``period`` seconds (every minute by default) for
    ``fires`` fires each, counted after READY=1."""
    workspace.fresh_home()
    if period == 60:
        cron = "* * * * *"
    else:  # six fields, seconds last
        cron = "* * * * * " + ",".join(str(second) for second in range(0, 60, period))
    names = [f"every-minute-{i:02d}" for i in range(50)]
    config = workspace.write_config([(name, cron) for name in names], workers)
    with DaemonProcess(workspace, config) as daemon:
        ready_s = daemon.wait_ready(READY_TIMEOUT)
        assert daemon.ready_at is not None
        first = math.floor(daemon.ready_at / period) * period + period
        nominals = [first + period * k for k in range(fires)]
        expected = {(name, float(nominal)) for name in names for nominal in nominals}
        sleep_until(nominals[-1] + 1)
        wait_for_bodies(workspace, expected, DRAIN_TIMEOUT)
        time.sleep(1)  # a duplicate start would come right after the first
        workers_seen = len(children(daemon.pid))
    runs = [run for run in workspace.runs() if run.nominal > daemon.ready_at]
    return {"ready_s": ready_s, "workers": workers_seen, **fire_report(runs, expected)}


def same_second(workspace: Workspace, count: int, workers: int | None, lead: float) -> dict:
    """``count`` deployments whose one fire is the same second, ``lead`` s after launch."""
    workspace.fresh_home()
    moment = datetime.fromtimestamp(math.ceil(time.time() + lead), UTC)
    # Six fields, seconds last: fires once a year, at exactly that second.
    cron = f"{moment.minute} {moment.hour} {moment.day} {moment.month} * {moment.second}"
    names = [f"same-second-{i:04d}" for i in range(count)]
    config = workspace.write_config([(name, cron) for name in names], workers)
    nominal = moment.timestamp()
    expected = {(name, nominal) for name in names}
    with DaemonProcess(workspace, config) as daemon:
        ready_s = daemon.wait_ready(READY_TIMEOUT)
        assert daemon.ready_at is not None
        if daemon.ready_at > nominal - 0.5:
            raise StartedTooLate(f"the daemon was ready only {ready_s:.1f} s after launch")
        sleep_until(nominal - 0.3)
        workers_seen = children(daemon.pid)
        before = {pid: cpu_seconds(pid) for pid in (daemon.pid, *workers_seen)}
        deadline = nominal + DRAIN_TIMEOUT
        while workspace.stamp_count() < count and not deadline_passed(deadline):
            time.sleep(0.2)
        used = {pid: cpu_seconds(pid) - before[pid] for pid in before}
        time.sleep(1)  # a duplicate start would come right after the first
    return {
        "ready_s": ready_s,
        "workers": len(workers_seen),
        # CPU time spent while the fire was handled, per run: where the 2 cores went.
        "daemon_cpu_ms_per_run": used.pop(daemon.pid) * 1000 / count,
        "workers_cpu_ms_per_run": sum(used.values()) * 1000 / count,
        **fire_report(workspace.runs(), expected),
    }


def thousand(workspace: Workspace, workers: int | None) -> dict[str, Any]:
    # Start-up takes ~1 s, plus ~0.2 s per worker on 2 cores; a late start retries.
    lead = 3.0 + 0.3 * (workers or os.cpu_count() or 1)
    while True:
        try:
            return same_second(workspace, 1_000, workers, lead)
        except StartedTooLate:
            if lead >= 60:
                raise
            lead *= 2


def far_crons(count: int, distinct: bool) -> list[str]:
    """Yearly crons about six months ahead: one expression, or ``count`` different ones."""
    month = (datetime.now(UTC).month + 5) % 12 + 1
    if not distinct:
        return [f"0 3 1 {month} *"] * count
    return [f"{i % 60} {i // 60 % 24} {1 + i // 1440 % 28} {month} *" for i in range(count)]


def tenk(workspace: Workspace, idle_seconds: float, distinct: bool) -> dict[str, Any]:
    """10,000 deployments due in about six months: start-up time, idle RSS and CPU."""
    workspace.fresh_home()
    crons = far_crons(10_000, distinct)
    schedules = [(f"far-{i:05d}", cron) for i, cron in enumerate(crons)]
    config = workspace.write_config(schedules, None)
    with DaemonProcess(workspace, config) as daemon:
        cold_ready_s = daemon.wait_ready(READY_TIMEOUT)
        time.sleep(5)  # let start-up's after-effects (writer flush, first polls) pass
        workers = children(daemon.pid)
        pids = [daemon.pid, *workers]  # the daemon first
        rss = {pid: rss_mb(pid) for pid in pids}
        before = {pid: cpu_seconds(pid) for pid in pids}
        began = time.monotonic()
        time.sleep(idle_seconds)
        elapsed = time.monotonic() - began
        cpu = {pid: (cpu_seconds(pid) - before[pid]) / elapsed * 100 for pid in pids}
    with DaemonProcess(workspace, config) as daemon:
        warm_ready_s = daemon.wait_ready(READY_TIMEOUT)
    return {
        "ready_cold_s": cold_ready_s,
        "ready_restart_s": warm_ready_s,
        "workers": len(workers),
        "daemon_rss_mb": rss[pids[0]],
        "worker_rss_mb_max": max((rss[pid] for pid in workers), default=0.0),
        "total_rss_mb": sum(rss.values()),
        "daemon_cpu_pct": cpu[pids[0]],
        "worker_cpu_pct_max": max((cpu[pid] for pid in workers), default=0.0),
        "runs": len(workspace.runs()),
    }


def repeated(label: str, times: int, measure: Callable[..., dict[str, Any]], *args: Any) -> dict:
    """The median of ``times`` runs of ``measure(*args)``, each reported on stderr."""
    samples = []
    for attempt in range(1, times + 1):
        samples.append(measure(*args))
        print(f"{label} {attempt}/{times}: {json.dumps(samples[-1])}", file=sys.stderr)
    return median_result(samples)


def median_result(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Per key, the median of the samples' numbers (the first sample's value otherwise)."""
    merged: dict[str, Any] = {"repeats": len(samples)}
    for key, value in samples[0].items():
        numbers = [s[key] for s in samples if isinstance(s.get(key), int | float)]
        merged[key] = statistics.median(numbers) if len(numbers) == len(samples) else value
    return merged


# (scenario, key, target (at most; None: shown, not judged), unit)
ROWS = [
    ("fifty", "lateness_median_ms", None, "ms"),
    ("fifty", "lateness_p99_ms", 100, "ms"),
    ("fifty", "lateness_max_ms", None, "ms"),
    ("fifty", "fires_missed", 0, ""),
    ("fifty", "fires_duplicated", 0, ""),
    ("thousand", "lateness_median_ms", None, "ms"),
    ("thousand", "lateness_p99_ms", 2000, "ms"),
    ("thousand", "lateness_max_ms", None, "ms"),
    ("thousand", "fires_missed", 0, ""),
    ("thousand", "fires_duplicated", 0, ""),
    ("tenk", "ready_cold_s", 3, "s"),
    ("tenk", "ready_restart_s", 3, "s"),
    ("tenk", "daemon_rss_mb", 200, "MB"),
    ("tenk", "worker_rss_mb_max", 200, "MB"),
    ("tenk", "daemon_cpu_pct", 1, "%"),
    ("tenk", "worker_cpu_pct_max", 1, "%"),
]


def print_table(results: dict[str, dict[str, Any]]) -> None:
    print(f"{'measure':<44}{'target':>10}{'value':>12}")
    for scenario, result in results.items():
        base = scenario.split("/")[0]
        for row_scenario, key, target, unit in ROWS:
            if row_scenario != base or key not in result:
                continue
            value = result[key]
            shown = "-" if target is None else f"<= {target:g} {unit}" if target else "0"
            verdict = "" if target is None else ("ok" if value <= target else "MISSED")
            label = f"{scenario} {key}"
            print(f"{label:<44}{shown:>10}{value:>12.1f}  {verdict}")


def python_speed() -> float:
    """Seconds a million pure-Python additions take here (median of 5): how fast this
    machine runs Python at the moment, so that figures from different days can be compared
    (the same code has measured 2.5 times slower on one day than on another)."""
    times = []
    for _ in range(5):
        start, total = time.perf_counter(), 0
        for number in range(1_000_000):
            total += number
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=int, default=3, help="fires per deployment (fifty)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of thousand and tenk")
    parser.add_argument("--only", choices=["fifty", "thousand", "tenk"])
    parser.add_argument(
        "--workers",
        type=int,
        nargs="*",
        default=[0, 8, 16],
        help="worker counts for thousand (0: the default, the CPU count)",
    )
    parser.add_argument("--fifty-workers", type=int, default=0, help="0: the default")
    parser.add_argument(
        "--fifty-period",
        type=int,
        default=60,
        choices=[p for p in range(1, 61) if 60 % p == 0],
        help="seconds between fifty's fires (the target is for 60; 15 gives quicker runs)",
    )
    parser.add_argument("--idle-seconds", type=float, default=10.0, help="tenk CPU window")
    parser.add_argument(
        "--distinct",
        action="store_true",
        help="tenk: every deployment a different cron (default: all the same one)",
    )
    args = parser.parse_args()

    began, load_before = time.monotonic(), os.getloadavg()[0]
    speed = python_speed()
    workspace = Workspace()
    results: dict[str, dict[str, Any]] = {}
    try:
        if args.only in (None, "tenk"):
            label = "tenk/distinct" if args.distinct else "tenk"
            idle = args.idle_seconds
            results[label] = repeated(label, args.repeat, tenk, workspace, idle, args.distinct)
        if args.only in (None, "thousand"):
            for workers in args.workers:
                label = f"thousand/{workers or 'default'}w"
                results[label] = repeated(label, args.repeat, thousand, workspace, workers or None)
        if args.only in (None, "fifty"):
            workers = args.fifty_workers or None
            label = f"fifty/{workers or 'default'}w"
            period = args.fifty_period
            if period != 60:
                label += f"/every{period}s"
            results[label] = repeated(label, 1, fifty, workspace, args.minutes, workers, period)
    finally:
        workspace.cleanup()

    print_table(results)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, load average {load_before:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after; a million Python additions took {speed * 1000:.0f} ms "
        f"before; took {time.monotonic() - began:.0f} s"
    )
    print(json.dumps({**results, "machine": {"python_loop_1e6_ms": speed * 1000}}))


if __name__ == "__main__":
    main()
