"""The dashboard's overview under the issue's load: 1,000 deployments firing every minute
(1.44 million finished runs in the last 24 h, written through flow_runs so the run_bins
triggers count them), six earlier days as run_bins rows alone (a week of runs would be 10
million), then the overview page served and drawn.

    python bench/overview.py sqlite:////tmp/overview.db
    python bench/overview.py postgresql+psycopg://postgres@127.0.0.1:5432/overview_bench

Prints how long writing the runs took (triggers included), the time of GET / for each
window (median of ``--rounds``, HTML and data, over loopback), and
Chromium's time from the response to the load event with the timeline drawn.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, text

from gnomon.store import Store
from gnomon.store._schema import RUN_BIN_SPANS, deployments, flow_runs, run_bins

CHUNK = 20_000


def fill(store: Store, count: int, hours: int, days: int, now: datetime) -> None:
    names = [f"deployment-{k:04d}" for k in range(count)]
    with store.engine.begin() as connection:
        connection.execute(
            insert(deployments),
            [
                {"name": n, "flow": "flows.py:f", "schedule_kind": "cron", "schedule": "* * * * *"}
                for n in names
            ],
        )
    start = (now - timedelta(hours=hours)).replace(second=0, microsecond=0)
    minutes = hours * 60
    rows = []
    began = time.perf_counter()
    for minute in range(minutes):
        at = start + timedelta(minutes=minute)
        for k, name in enumerate(names):
            state = ("COMPLETED", "Completed")
            if (minute + k) % 50 == 0:
                state = ("FAILED", "Failed")
            elif (minute + k) % 97 == 0:
                state = ("CANCELLED", "Missed")
            rows.append(
                {
                    "id": uuid.uuid4().hex,
                    "name": "r",
                    "flow_name": "f",
                    "deployment_name": name,
                    "scheduled_for": at,
                    "created": at,
                    "start_time": at,
                    "end_time": at + timedelta(seconds=2),
                    "state_type": state[0],
                    "state_name": state[1],
                }
            )
            if len(rows) >= CHUNK:
                _write(store, rows)
                rows = []
    _write(store, rows)
    took = time.perf_counter() - began
    print(f"wrote {minutes * count:,} runs (triggers counting them) in {took:.1f} s", flush=True)
    bins = []
    for span in RUN_BIN_SPANS:
        first = int(start.timestamp()) // span * span
        for step in range(1, (days - 1) * 86400 // span + 1):
            for name in names:
                key = {"span": span, "deployment_name": name, "bin_start": first - step * span}
                state = {"state_type": "COMPLETED", "state_name": "Completed"}
                bins.append({**key, **state, "runs": span // 60})
                if len(bins) >= CHUNK:
                    _write(store, bins, run_bins)
                    bins = []
    _write(store, bins, run_bins)
    if store.engine.dialect.name == "postgresql":
        # What autovacuum does after a bulk load, soon; without statistics the planner
        # guessed a few rows and read run_bins by its time index alone.
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.execute(text("VACUUM ANALYZE"))


def _write(store: Store, rows: list[dict], table=flow_runs) -> None:  # type: ignore[no-untyped-def]
    if rows:
        with store.engine.begin() as connection:
            connection.execute(insert(table), rows)


def serve_times(url: str, rounds: int) -> None:
    import httpx

    with httpx.Client(base_url=url, timeout=60) as client:
        for window in ("6h", "24h", "7d"):
            times = []
            for _ in range(rounds):
                began = time.perf_counter()
                response = client.get(f"/?window={window}")
                times.append(time.perf_counter() - began)
                assert response.status_code == 200, response.text[:500]
            size = len(response.content)
            median = statistics.median(times) * 1000
            print(f"GET /?window={window}: median {median:.0f} ms ({size / 1e6:.2f} MB HTML)")


def draw_times(url: str, rounds: int) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium")
        page = browser.new_page()
        for window in ("6h", "24h", "7d"):
            drawn = []
            for _ in range(rounds):
                page.goto(f"{url}/?window={window}", wait_until="load")
                drawn.append(
                    page.evaluate(
                        "(() => { const t = performance.getEntriesByType('navigation')[0];"
                        " return t.loadEventEnd - t.responseStart; })()"
                    )
                )
            print(f"Chromium, {window}: response to load {statistics.median(drawn):.0f} ms")
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--deployments", type=int, default=1000)
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--reuse", action="store_true", help="measure a store filled before")
    args = parser.parse_args()
    store = Store(args.url)
    if not args.reuse:
        fill(store, args.deployments, args.hours, args.days, datetime.now(UTC))
    from gnomon.http import create_app
    from gnomon.http._server import ApiServer

    # Over loopback without auth (a session would only add its lookup).
    server = ApiServer(create_app(store, nudge=lambda _what: None, auth=False), "127.0.0.1", 0)
    server.start()
    try:
        serve_times(server.url, args.rounds)
        draw_times(server.url, max(3, args.rounds // 3))
    finally:
        server.stop()
        store.close()


if __name__ == "__main__":
    main()
