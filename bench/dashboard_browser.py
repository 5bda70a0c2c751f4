"""What the dashboard's users wait for in the browser (issue 16's browser-side targets),
measured in Chromium against the real HTTP server on a real store:

- ``live-log``: from a log line's commit to the store until the run page shows it (the
  page follows the run's server-sent log stream). Target: 1 s.
- ``run-10k``: opening the page of a run with 10,000 task runs (10 % of them retried),
  from navigation to the page drawn (its load event, then one animation frame). Target:
  usable within 1 s.
- ``--page PATH`` (repeatable): the same navigation timing for any page of a store given
  with ``--store`` (for example bench/dashboard_data.py's), e.g. ``--page /``.

    python bench/dashboard_browser.py [--repeat 11] [--store sqlite:///PATH | URL] [--page /]

Without ``--store`` a new SQLite store in a temporary directory is seeded with what the
measurements need; with GNOMON_BENCH_POSTGRES_URL, a new database on that server instead.
Both ends run on this machine, so the browser's clock and this script's are one clock.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from server_databases import drop_database, new_database, server_url

CHROMIUM = "/usr/bin/chromium"
TASKS = 10_000


def seed_run(store: Any, tasks: int) -> str:
    """A running manual run with ``tasks`` task runs, each with its states; one in ten
    failed once and was retried."""
    from gnomon.states import StateType
    from gnomon.store._schema import flow_runs, run_states, task_runs

    run_id = uuid.uuid4().hex
    start = datetime.now(UTC) - timedelta(minutes=30)
    run = {
        "id": run_id,
        "name": "bench-run",
        "flow_name": "bench",
        "state_type": StateType.RUNNING,
        "state_name": "Running",
        "start_time": start,
        "created": start,
        "run_count": 1,
    }
    rows, states = [], []
    for n in range(tasks):
        task_id = uuid.uuid4().hex
        at = start + timedelta(milliseconds=150 * n)
        retried = n % 10 == 0
        rows.append(
            {
                "id": task_id,
                "flow_run_id": run_id,
                "task_key": f"step-{n % 50}",
                "name": f"step-{n % 50}-{n}",
                "state_type": StateType.COMPLETED,
                "state_name": "Completed",
                "run_count": 2 if retried else 1,
                "start_time": at,
                "end_time": at + timedelta(seconds=2 if retried else 1),
                "created": at,
            }
        )
        outcomes = [StateType.FAILED, StateType.COMPLETED] if retried else [StateType.COMPLETED]
        for attempt, outcome in enumerate(outcomes, start=1):
            for offset, state in ((0, StateType.RUNNING), (1, outcome)):
                states.append(
                    {
                        "flow_run_id": run_id,
                        "task_run_id": task_id,
                        "timestamp": at + timedelta(seconds=attempt - 1 + offset * 0.9),
                        "type": state,
                        "name": state.value.title(),
                        "attempt": attempt,
                    }
                )
    with store.engine.begin() as connection:
        connection.execute(flow_runs.insert(), [run])
        connection.execute(task_runs.insert(), rows)
        connection.execute(run_states.insert(), states)
    return run_id


def drawn(page: Any, url: str) -> float:
    """Seconds from navigating to ``url`` until the page is loaded and drawn."""
    began = time.perf_counter()
    page.goto(url, wait_until="load")
    page.evaluate("() => new Promise(done => requestAnimationFrame(() => done()))")
    return time.perf_counter() - began


def live_log_delays(page: Any, store: Any, run_id: str, repeat: int) -> list[float]:
    """Seconds from each log line's commit until the page shows it."""
    page.evaluate(
        """() => { window.seen = {};
          new MutationObserver(() => {
            for (const li of document.querySelectorAll('.logs li .message'))
              if (!(li.textContent in window.seen)) window.seen[li.textContent] = Date.now();
          }).observe(document.querySelector('.logs'), {childList: true, subtree: true}); }"""
    )
    delays = []
    for n in range(repeat):
        message = f"bench line {n} {uuid.uuid4().hex[:6]}"
        store.add_log(
            {
                "flow_run_id": run_id,
                "timestamp": datetime.now(UTC),
                "level": 20,
                "logger": "bench",
                "message": message,
            }
        )
        store.flush()
        committed = time.time() * 1000
        page.wait_for_function(f"() => {message!r} in window.seen", timeout=10_000)
        delays.append((page.evaluate(f"window.seen[{message!r}]") - committed) / 1000)
        time.sleep(0.3)  # lines apart, as a run writes them
    return delays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=11)
    parser.add_argument("--store", help="a store URL to measure --page on")
    parser.add_argument("--page", action="append", default=[], help="a path to time")
    options = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from gnomon.control import Operations
    from gnomon.http import ApiServer, create_app
    from gnomon.store import Store, TokenAccess
    from gnomon.store._values import Actor

    with tempfile.TemporaryDirectory() as scratch:
        server = server_url() if options.store is None else None
        url = options.store or (
            new_database(server, "gnomon_bench_browser")
            if server
            else f"sqlite:///{Path(scratch) / 'gnomon.db'}"
        )
        store = Store(url)
        token = Operations(store, Actor("bench", "cli")).create_token(
            f"bench-{uuid.uuid4().hex[:6]}", TokenAccess.READ
        )
        run_id = None if options.store else seed_run(store, TASKS)
        app = create_app(store, nudge=lambda _what: None)
        api = ApiServer(app, "127.0.0.1", 0)
        api.start()
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
                )
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(api.url + "/login")
                page.fill("#token", token)
                page.click("form.login button")
                page.wait_for_load_state()
                figures: dict[str, list[float]] = {}
                if run_id is not None:
                    page.goto(f"{api.url}/runs/{run_id}")
                    page.wait_for_selector("[data-log-stream]")
                    figures["live-log"] = live_log_delays(page, store, run_id, options.repeat)
                    figures["run-10k"] = [
                        drawn(page, f"{api.url}/runs/{run_id}") for _ in range(options.repeat)
                    ]
                for path in options.page:
                    figures[path] = [drawn(page, api.url + path) for _ in range(options.repeat)]
                browser.close()
        finally:
            api.stop()
            store.close()
            if server and options.store is None:
                drop_database(server, url)

    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {sys.version.split()[0]}, store {url.split(':')[0]}"
    )
    print(f"{'measure':<24}{'median ms':>10}{'p95 ms':>10}{'max ms':>10}")
    for name, values in figures.items():
        ordered = sorted(values)
        p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
        print(
            f"{name:<24}{statistics.median(values) * 1000:>10.0f}{p95 * 1000:>10.0f}"
            f"{ordered[-1] * 1000:>10.0f}"
        )


if __name__ == "__main__":
    main()
