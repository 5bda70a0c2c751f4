"""The dashboard of a real daemon, in Chromium: a run started from the command line is
followed on its page while its worker runs it (state and log lines arriving without a
reload) to the end, and a failing run shows the traceback its worker raised.

Everything is real: the daemon subprocess with its worker processes, its store, its HTTP
server, the ``gnomon`` command, the browser.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from test_cli_daemon import gnomon
from test_daemon import start_daemon, write_config
from test_dashboard import browser, page  # noqa: F401 (fixtures)
from test_tls import api_url

pytestmark = [pytest.mark.slow]

FLOWS = textwrap.dedent(
    """
    import time
    from pathlib import Path
    from gnomon import flow, get_run_logger

    @flow
    def stepper(go: str = "never") -> str:
        logger = get_run_logger()
        logger.info("waiting for %s", go)
        while not Path(go).exists():
            time.sleep(0.05)
        logger.info("went on")
        return "done"

    @flow
    def breaker() -> None:
        get_run_logger().warning("about to fail")
        raise RuntimeError("boom from the worker")
    """
)

DEPLOYMENTS = """
[[deployments]]
name = "stepper"
flow = "flows.py:stepper"
cron = "0 0 1 1 *"

[[deployments]]
name = "breaker"
flow = "flows.py:breaker"
cron = "0 0 1 1 *"
"""


@pytest.fixture
def daemon_url(tmp_path: Path, gnomon_home: Path, daemons: list[Any]) -> str:
    config = write_config(tmp_path, DEPLOYMENTS, daemon='workers = 2\napi = "127.0.0.1:0"')
    (tmp_path / "flows.py").write_text(FLOWS)
    daemon = start_daemon(config, gnomon_home)
    daemons.append(daemon)
    return api_url(daemon)


def log_in(page: Any, url: str, home: Path, path: str) -> None:  # noqa: F811
    page.goto(url + path)
    page.fill("#token", (home / "api-token").read_text().strip())
    page.click("form.login button")
    page.wait_for_url(url + path)


def run_from_cli(home: Path, *args: str) -> str:
    started = gnomon(home, "run", *args)
    assert started.returncode == 0, started.stderr
    return next(word for word in started.stdout.split() if len(word) == 32)


def test_a_run_is_followed_live_on_its_page_to_the_end(
    daemon_url: str,
    gnomon_home: Path,
    tmp_path: Path,
    page: Any,  # noqa: F811
) -> None:
    go = tmp_path / "go"
    run_id = run_from_cli(gnomon_home, "stepper", "--param", f"go={go}")
    log_in(page, daemon_url, gnomon_home, f"/runs/{run_id}")
    page.evaluate("window.marker = 'same page'")
    page.locator(".logs li", has_text="waiting for").wait_for(timeout=30_000)
    page.locator("h1 .badge", has_text="Running").wait_for(timeout=30_000)

    go.touch()
    page.locator(".logs li", has_text="went on").wait_for(timeout=30_000)
    page.locator("h1 .badge", has_text="Completed").wait_for(timeout=30_000)
    assert page.evaluate("window.marker") == "same page"
    shown = gnomon(gnomon_home, "runs", "show", run_id)
    assert "Completed" in shown.stdout


def test_a_failing_run_shows_the_traceback_its_worker_raised(
    daemon_url: str,
    gnomon_home: Path,
    page: Any,  # noqa: F811
) -> None:
    run_id = run_from_cli(gnomon_home, "breaker")
    log_in(page, daemon_url, gnomon_home, f"/runs/{run_id}")
    page.locator("h1 .badge", has_text="Failed").wait_for(timeout=30_000)
    assert "RuntimeError: boom from the worker" in page.inner_text("pre.traceback")
    assert "about to fail" in page.inner_text(".logs")


def test_a_run_appears_on_the_runs_page_and_completes_there_without_reloading(
    daemon_url: str,
    gnomon_home: Path,
    tmp_path: Path,
    page: Any,  # noqa: F811
) -> None:
    log_in(page, daemon_url, gnomon_home, "/runs")
    page.evaluate("window.marker = 'same page'")
    go = tmp_path / "go"
    run_id = run_from_cli(gnomon_home, "stepper", "--param", f"go={go}")
    row = page.locator("tr", has=page.locator(f"a[href='/runs/{run_id}']"))
    row.locator(".badge", has_text="Running").wait_for(timeout=30_000)
    go.touch()
    row.locator(".badge", has_text="Completed").wait_for(timeout=30_000)
    assert page.evaluate("window.marker") == "same page"
