"""What one scheduled run costs in CPU, counted in instructions so that a noisy machine
does not blur it.

    python bench/run_cost.py [--runs 250] [--fires 10] [--cpu]

Two paths a daemon's burst repeats per run, each in one process against a fresh SQLite
store, after a warm-up:

- **worker**: what a worker does for one run of a trivial stored flow (claim, run, final
  state committed), set up as the daemon sets up its workers (logging, the engine's start
  and end lines left to the daemon's summary, the flow preloaded, the heap frozen).
- **fire**: the daemon creating a fire's runs, 48 deployments' in chunks of 8 (as
  ``Scheduler.tick`` writes them), per run created.

By default each path runs under ``valgrind --tool=callgrind`` with instrumentation switched
on for the measured runs only: the instruction count per run is the same from one run to
the next (to 0.1% here), whatever else the machine is doing, so two trees can be compared
with one run each (``PYTHONPATH=<tree>/src``). ``--cpu`` measures CPU time instead (no
valgrind needed; noisy on a shared machine).

With GNOMON_BENCH_POSTGRES_URL (``postgresql+psycopg://...``) each path runs against a
database of its own on that server instead; ``--cpu`` also reports the CPU time the
server's backends spent per run, and ``--round-trips`` the round trips a run makes to the
server (answers awaited: libpq's ReadyForQuery messages, from a protocol trace, in a run of
its own since tracing costs CPU).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from server_databases import drop_database, new_database, server_url

FLOW = "from gnomon import flow\n\n\n@flow\ndef stamp() -> int:\n    return 1\n"
FIRE_SIZE, CHUNK = 48, 8


def _instrument(on: bool) -> None:
    if os.environ.get("GNOMON_BENCH_CALLGRIND"):
        state = "on" if on else "off"
        subprocess.run(
            ["callgrind_control", "-i", state, str(os.getpid())],
            stdout=subprocess.DEVNULL,
            check=True,
        )
    if _server["traced"] is not None:
        _server_measure(on, trace=bool(os.environ.get("GNOMON_BENCH_TRACE")))


# On a server database: the protocol trace of the store's connections and its backends'
# CPU, from when the measured runs start to when they end.
_server: dict[str, Any] = {"traced": None, "trace": None, "cpu": 0.0, "ready": 0}


def _trace_server() -> None:
    """Trace every connection the store's engine opens (see ``_server_measure``)."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    _server["traced"] = []

    @event.listens_for(Engine, "connect")
    def traced(dbapi: Any, _record: Any) -> None:
        _server["traced"].append(dbapi)
        if _server["trace"] is not None:
            _start_trace(dbapi)


def _start_trace(dbapi: Any) -> None:
    from psycopg import pq

    dbapi.pgconn.trace(_server["trace"].fileno())
    dbapi.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)


def _server_measure(on: bool, trace: bool) -> None:
    live = [dbapi for dbapi in _server["traced"] if not dbapi.closed]
    if on:
        if trace:
            # Open from the measured runs' start to their end, across two calls.
            _server["trace"] = tempfile.TemporaryFile("w+")  # noqa: SIM115
            for dbapi in live:
                _start_trace(dbapi)
        _server["cpu"] = -_backends_cpu()
        return
    _server["cpu"] += _backends_cpu()
    if trace:
        for dbapi in live:
            dbapi.pgconn.untrace()
        with _server.pop("trace") as file:
            _server["trace"] = None
            file.seek(0)
            _server["ready"] = sum("\tReadyForQuery\t" in line for line in file)


def _backends_cpu() -> float:
    """CPU seconds the server's backends for this database have used (they run on this
    machine: their /proc entries)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(os.environ["GNOMON_DATABASE_URL"], poolclass=NullPool)
    try:
        with engine.connect() as connection:
            pids = connection.execute(
                text(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                    " AND pid <> pg_backend_pid()"
                )
            ).scalars()
            ticks = 0
            for pid in pids:
                with contextlib.suppress(OSError):
                    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
                    ticks += int(fields[11]) + int(fields[12])  # utime, stime
    finally:
        engine.dispose()
    return ticks / os.sysconf("SC_CLK_TCK")


def _run_row(index: int, scheduled_for: datetime, entrypoint: str) -> dict[str, Any]:
    return {
        "id": uuid.uuid4().hex,
        "name": f"bench-{index}",
        "flow_name": "stamp",
        "entrypoint": entrypoint,
        "parameters": {},
        "tags": [],
        "state_type": "PENDING",
        "state_name": "Pending",
        "state_message": None,
        "run_count": 0,
        "deployment_name": f"bench-{index}",
        "scheduled_for": scheduled_for,
        "expected_start_time": scheduled_for,
        "trigger": "schedule",
        "daemon_id": "bench",
        "created": scheduled_for,
        "updated": scheduled_for,
    }


def measure_worker(runs: int, home: Path) -> int:
    """Execute ``runs`` stored runs the way a worker does; returns how many were measured."""
    from gnomon.daemon import _worker
    from gnomon.flows._logging import configure_logging, summarise_run_events
    from gnomon.store import get_store

    flow_file = home / "bench_flow.py"
    flow_file.write_text(FLOW)
    configure_logging()
    summarise_run_events()
    store = get_store()
    start = datetime(2027, 1, 1, tzinfo=UTC)
    entrypoint = f"{flow_file}:stamp"
    rows = [_run_row(i, start, entrypoint) for i in range(runs)]
    created, _ = store.create_runs_unless_paused(rows)
    assert len(created) == runs
    _worker._preload([entrypoint])
    _worker.freeze_heap()
    os.dup2(os.open(os.devnull, os.O_WRONLY), 2)  # the worker's output goes to the daemon
    # The daemon sends each run with its deployment's log cap (here the default one).
    cap = {"log_lines": 10_000, "log_bytes": 10_000_000}
    warm = runs // 5
    for row in rows[:warm]:
        _worker._execute(row["id"], {"run": row["id"], **cap})
    _instrument(True)
    for row in rows[warm:]:
        _worker._execute(row["id"], {"run": row["id"], **cap})
    _instrument(False)
    return runs - warm


def measure_fire(fires: int) -> int:
    """Create ``fires`` fires of FIRE_SIZE runs in chunks; returns the runs measured."""
    from gnomon.store import get_store

    store = get_store()
    start = datetime(2027, 1, 1, tzinfo=UTC)

    def fire(number: int) -> None:
        at = start + timedelta(minutes=number)
        rows = [_run_row(i, at, "/bench_flow.py:stamp") for i in range(FIRE_SIZE)]
        for first in range(0, FIRE_SIZE, CHUNK):
            created, _ = store.create_runs_unless_paused(rows[first : first + CHUNK])
            assert len(created) == len(rows[first : first + CHUNK])

    warm = 3
    for number in range(warm):
        fire(number)
    _instrument(True)
    for number in range(warm, warm + fires):
        fire(number)
    _instrument(False)
    return fires * FIRE_SIZE


def measure(path: str, count: int) -> dict[str, float]:
    """Run one path in this process (a child of ``main``); its figures."""
    home = Path(os.environ["GNOMON_HOME"])
    if os.environ.get("GNOMON_DATABASE_URL"):
        _trace_server()
    cpu, wall = time.process_time(), time.perf_counter()
    measured = measure_worker(count, home) if path == "worker" else measure_fire(count)
    figures = {
        "measured": measured,
        "cpu_ms": 1000 * (time.process_time() - cpu),
        "wall_ms": 1000 * (time.perf_counter() - wall),
    }
    if _server["traced"] is not None:
        figures["server_cpu_ms"] = 1000 * _server["cpu"]
        if os.environ.get("GNOMON_BENCH_TRACE"):
            figures["round_trips"] = _server["ready"]
    return figures


def run_path(path: str, count: int, instructions: bool, trace: bool = False) -> dict[str, float]:
    """Measure one path in a fresh process (under callgrind if ``instructions``; with a
    protocol trace of its server connections if ``trace``)."""
    with tempfile.TemporaryDirectory() as home, _database() as database:
        env = {**os.environ, "GNOMON_HOME": home}
        if database is not None:
            env["GNOMON_DATABASE_URL"] = database
        if trace:
            env["GNOMON_BENCH_TRACE"] = "1"
            instructions = False
        command = [sys.executable, __file__, "--child", path, "--count", str(count)]
        out_file = Path(home) / "callgrind.out"
        if instructions:
            env["GNOMON_BENCH_CALLGRIND"] = "1"
            command = [
                "valgrind",
                "--tool=callgrind",
                "--instr-atstart=no",
                f"--callgrind-out-file={out_file}",
                *command,
            ]
        result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            sys.exit(f"{path}: exit {result.returncode}\n{result.stderr[-3000:]}")
        figures: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
        measured = figures["measured"]
        if trace:
            return {"round_trips_per_run": figures["round_trips"] / measured}
        per_run = {}
        if instructions:
            annotated = subprocess.run(
                ["callgrind_annotate", str(out_file)], capture_output=True, text=True, check=True
            ).stdout
            match = re.search(r"^([\d,]+) .*PROGRAM TOTALS", annotated, re.MULTILINE)
            assert match is not None, annotated[:2000]
            return {"instructions_per_run": int(match.group(1).replace(",", "")) / measured}
        per_run["cpu_ms_per_run"] = figures["cpu_ms"] / measured
        if "server_cpu_ms" in figures:
            per_run["server_cpu_ms_per_run"] = figures["server_cpu_ms"] / measured
        return per_run


@contextlib.contextmanager
def _database() -> Any:
    """The URL of a new database on the benchmark's server, dropped after; None without one."""
    server = server_url()
    if server is None:
        yield None
        return
    database = new_database(server, f"gnomon_bench_cost_{os.getpid()}")
    try:
        yield database
    finally:
        drop_database(server, database)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=250, help="worker: runs (a fifth warm up)")
    parser.add_argument("--fires", type=int, default=10, help="fire: fires measured")
    parser.add_argument("--cpu", action="store_true", help="CPU time instead of instructions")
    parser.add_argument(
        "--round-trips", action="store_true", help="on a server: also count round trips"
    )
    parser.add_argument("--child", choices=["worker", "fire"], help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.count)))
        return
    instructions = not args.cpu
    if instructions and shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed: use --cpu, or install valgrind")
    results = {
        "worker": run_path("worker", args.runs, instructions),
        "fire": run_path("fire", args.fires, instructions),
    }
    if args.round_trips and server_url():
        results["worker"].update(run_path("worker", args.runs, instructions, trace=True))
        results["fire"].update(run_path("fire", args.fires, instructions, trace=True))
    for path, figures in results.items():
        for name, value in figures.items():
            print(f"{path:8} {name:22} {value:14,.3f}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
