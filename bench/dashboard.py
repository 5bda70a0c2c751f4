"""Server-side time of the dashboard's pages and of the API routes they read, for issue 16's
target (each page's HTML and data within 300 ms, median, over the store that
``bench/dashboard_data.py`` builds), on SQLite and PostgreSQL.

    python bench/dashboard.py --store sqlite:/work/benchdata/dashboard.sqlite
    python bench/dashboard.py --store postgresql+psycopg://postgres@127.0.0.1:5432/gnomon_bench_dash
    [--repeat 11] [--tree NAME=SRC ...] [--only SUBSTRING ...]

For each tree (``--tree NAME=SRC``, repeatable; without it the tree that runs this
script), a server process runs that tree's code (``PYTHONPATH=SRC``): the real app,
``gnomon.http.create_app`` over a ``Store`` of the given database with authentication on,
served by ``ApiServer`` on 127.0.0.1, port 0. It creates an admin token of its own (revoked
when it stops; both are audit entries in the store). This process is the client: it logs
in with ``POST /login`` as a browser does, then requests every GET route of each tree's
route table (event streams, static files and metrics aside) with the path parameters
filled in: a busy deployment's name, a typical finished run, and the "big run" (the
newest finished run of ``BIG_DEPLOYMENT``, with 10,000 task runs in a full-size store);
plus the query variants the pages and the CLI ask for. ``/api/`` paths carry the bearer
token, the others the session cookie, or the token if the tree answers the cookie with
401 (a path that is not the dashboard's); redirects are not followed (a redirect
is measured as one). Time is the wall time of the whole request as this client sees it
(connection kept alive, on the same machine): the server's time plus loopback. One
unmeasured request per route first (warm caches, as a dashboard in use has), then
``--repeat`` rounds, every route and tree in each round (interleaved, so load spikes hit
all). Prints median, p95 and max per route and tree, and marks medians over 300 ms.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TARGET_MS = 300
# Files from disk; the daemon's counters (not the store's, and this server has no daemon).
# Event streams (a log follower) are found by their content type and left out too.
# Not measured: static files, metrics, and one artifact or variable (the generated store has
# none: their listings are measured).
SKIPPED = {
    "/static",
    "/metrics",
    "/api/v1/artifacts/{key_or_id}",
    "/api/v1/variables/{name}",
    # The generated store has no backfill to show.
    "/api/v1/backfills/{backfill_id}",
    "/backfills/{backfill_id}",
}


@dataclass
class Server:
    """A tree's server process, its address, its token and its route table."""

    tree: str
    process: subprocess.Popen[str]
    url: str
    token: str
    routes: list[str]


def serve(url: str) -> None:
    """The server process: the app over ``url``'s store until stdin closes."""
    from gnomon.control import Operations
    from gnomon.http import ApiServer, create_app
    from gnomon.http._http import route_table  # the deny-by-default test's walk, reused
    from gnomon.store import Actor, Store

    store = Store(url)
    operations = Operations(store, Actor("bench", "cli"))
    name = f"bench-dashboard-{os.getpid()}"
    token = operations.create_token(name)
    app = create_app(store, nudge=lambda _what: None)
    server = ApiServer(app, "127.0.0.1", 0)
    server.start()
    try:
        routes = [path for method, path in route_table(app) if method == "GET"]
        print(json.dumps({"url": server.url, "token": token, "routes": routes}), flush=True)
        sys.stdin.read()
    finally:
        server.stop()
        operations.revoke_token(name)
        store.close()


def start(tree: str, source: str | None, url: str) -> Server:
    env = {**os.environ, "GNOMON_LOG_FORMAT": "json"}
    if source:
        env["PYTHONPATH"] = str(Path(source).resolve())
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve", url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        raise SystemExit(f"the server of tree {tree} did not start (see its output above)")
    answer = json.loads(line)
    return Server(tree, process, answer["url"], answer["token"], answer["routes"])


def log_in(client: Any, server: Server) -> str:
    """A session cookie, from the login form as a browser posts it."""
    response = client.post(
        server.url + "/login", data={"token": server.token, "next": "/deployments"}
    )
    cookie = response.cookies.get("gnomon_session")
    if response.status_code != 303 or not cookie:
        raise SystemExit(f"login refused on {server.tree}: {response.status_code}")
    return str(cookie)


@dataclass
class Subjects:
    """What the path parameters are filled with."""

    deployment: str
    run: str
    big_run: str


def find_subjects(client: Any, server: Server) -> Subjects:
    """A busy deployment, a typical finished run and the run with the most task runs, read
    through the API as a client would."""
    from dashboard_rows import BIG_DEPLOYMENT

    headers = {"Authorization": f"Bearer {server.token}"}
    runs = client.get(
        server.url + "/api/v1/runs", params={"state": "only:Completed", "limit": 1}, headers=headers
    ).json()
    big = client.get(
        server.url + "/api/v1/runs",
        params={"deployment": BIG_DEPLOYMENT, "state": "only:Completed", "limit": 1},
        headers=headers,
    ).json()
    if not runs or not big:
        raise SystemExit("the store has no finished runs: build it with bench/dashboard_data.py")
    return Subjects(runs[0]["deployment"], runs[0]["id"], big[0]["id"])


def requests_of(routes: list[str], subjects: Subjects) -> dict[str, str]:
    """Each GET route as a request (label: path and query), its parameters filled in."""
    chosen: dict[str, str] = {}
    for route in routes:
        if route in SKIPPED:
            continue
        if "{run_id}" in route:
            chosen[route] = route.format(run_id=subjects.run)
            chosen[route + " (big run)"] = route.format(run_id=subjects.big_run)
        else:
            chosen[route] = route.format(name=subjects.deployment)
    extra = {
        "/deployments?q=crm&tag=etl": "/deployments?q=crm&tag=etl",
        "/api/v1/runs?deployment=D&state=failed": (
            f"/api/v1/runs?deployment={subjects.deployment}&state=failed"
        ),
        "/api/v1/logs?run=RUN (big run)": f"/api/v1/logs?run={subjects.big_run}",
        "/api/v1/logs?deployment=D&level=ERROR": (
            f"/api/v1/logs?deployment={subjects.deployment}&level=ERROR"
        ),
    }
    for label, path in extra.items():
        route = label.split("?")[0]
        if route in routes:
            chosen[label] = path
    return chosen


def p95(values: list[float]) -> float:
    """The nearest-rank 95th percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def measure(servers: list[Server], repeat: int, only: list[str]) -> None:
    import httpx

    clients = {server.tree: httpx.Client(timeout=300) for server in servers}
    cookies = {server.tree: log_in(clients[server.tree], server) for server in servers}
    subjects = find_subjects(clients[servers[0].tree], servers[0])
    print(f"deployment {subjects.deployment}, run {subjects.run}, big run {subjects.big_run}")
    plan = {
        server.tree: {
            label: path
            for label, path in requests_of(server.routes, subjects).items()
            if not only or any(part in label for part in only)
        }
        for server in servers
    }
    labels = list(dict.fromkeys(label for each in plan.values() for label in each))
    samples: dict[tuple[str, str], list[float]] = {}
    outcome: dict[tuple[str, str], tuple[int, int]] = {}

    bearer: set[tuple[str, str]] = set()  # dashboard paths take the cookie, others a token

    def one(server: Server, label: str) -> float | None:
        """The request's time; None for an event stream (it never ends: not a page)."""
        path = plan[server.tree][label]
        for _ in range(2):
            if (label, server.tree) in bearer or path.startswith("/api/"):
                headers = {"Authorization": f"Bearer {server.token}"}
            else:
                headers = {"Cookie": f"gnomon_session={cookies[server.tree]}"}
            began = time.perf_counter()
            with clients[server.tree].stream("GET", server.url + path, headers=headers) as response:
                if response.headers.get("content-type", "").startswith("text/event-stream"):
                    return None
                body = response.read()
            elapsed = time.perf_counter() - began
            if response.status_code != 401 or (label, server.tree) in bearer:
                break
            bearer.add((label, server.tree))  # not a dashboard path: the token it is
        outcome[label, server.tree] = (response.status_code, len(body))
        return elapsed

    for round_ in range(repeat + 1):
        for label in labels:
            for server in servers:
                if label not in plan[server.tree]:
                    continue
                elapsed = one(server, label)
                if elapsed is None:
                    print(f"not measured, an event stream: {label} ({server.tree})")
                    del plan[server.tree][label]
                elif round_:  # the first round warms the caches
                    samples.setdefault((label, server.tree), []).append(elapsed)
    for client in clients.values():
        client.close()
    report(samples, outcome, repeat)


def report(
    samples: dict[tuple[str, str], list[float]],
    outcome: dict[tuple[str, str], tuple[int, int]],
    repeat: int,
) -> None:
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load "
        f"{os.getloadavg()[0]:.2f}; python {platform.python_version()}; {repeat} repeats; "
        "wall time of each request from a client on the same machine"
    )
    columns = ("status", "bytes", "median", "p95", "max")
    widths = (6, 9, 8, 8, 8)
    heads = " ".join(f"{name:>{width}}" for name, width in zip(columns, widths, strict=True))
    tree_width = max(10, *(len(tree) for _, tree in samples))
    print(f"{'request':<48} {'tree':<{tree_width}} {heads}")
    for (label, tree), values in samples.items():
        status, size = outcome[label, tree]
        median = statistics.median(values) * 1000
        mark = "  over" if median > TARGET_MS else ""
        print(
            f"{label:<48} {tree:<{tree_width}} {status:>6} {size:>9} {median:>6.0f}ms "
            f"{p95(values) * 1000:>6.0f}ms {max(values) * 1000:>6.0f}ms{mark}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", help="sqlite:PATH or a postgresql+psycopg:// URL")
    parser.add_argument("--repeat", type=int, default=11)
    parser.add_argument("--tree", action="append", default=[], metavar="NAME=SRC")
    parser.add_argument("--only", action="append", default=[], metavar="SUBSTRING")
    parser.add_argument("--serve", metavar="URL", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.serve:
        serve(options.serve)
        return
    if not options.store:
        parser.error("--store is required")
    from dashboard_data import store_url

    url = store_url(options.store)
    trees = [spec.partition("=")[::2] for spec in options.tree] or [("this", None)]
    servers = [start(name, source, url) for name, source in trees]
    try:
        measure(servers, options.repeat, options.only)
    finally:
        for server in servers:
            assert server.process.stdin is not None
            server.process.stdin.close()
            server.process.wait(timeout=60)


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    main()
