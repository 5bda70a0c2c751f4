"""The dashboard's screenshots in docs/screenshots/, taken from a real daemon running the
bundled examples (config.example.toml) for a while, in Chromium.

    python tools/screenshots.py [--seconds 75] [--out docs/screenshots]

The daemon runs on a copy of the example config in a temporary directory (its own home,
the API on a free port), one run of each deployment is asked for, one deployment is
paused with a reason, and each page is taken at 1280 px wide, plus the run page 400 px
wide in dark mode.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
GNOMON = [sys.executable, "-m", "gnomon.cli"]


def start_daemon(directory: Path) -> tuple[subprocess.Popen[str], str, dict[str, str]]:
    """The daemon on a copy of the example config in ``directory``; its API's URL."""
    shutil.copytree(REPO / "examples", directory / "examples")
    config = (REPO / "config.example.toml").read_text()
    config = re.sub(r'(?m)^api = ".*"$', 'api = "127.0.0.1:0"', config)
    config = re.sub(r'(?m)^home = ".*"$', 'home = "home"', config)
    (directory / "gnomon.toml").write_text(config)
    env = {**os.environ, "GNOMON_HOME": str(directory / "home"), "GNOMON_LOG_FORMAT": "json"}
    env["PYTHONPATH"] = str(REPO / "src")
    log = (directory / "daemon.log").open("w")
    daemon = subprocess.Popen(
        [*GNOMON, "daemon", "--config", str(directory / "gnomon.toml")],
        cwd=directory,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for line in (directory / "daemon.log").read_text().splitlines():
            event = json.loads(line) if line.startswith("{") else {}
            if event.get("api_url"):
                return daemon, str(event["api_url"]), env
        time.sleep(0.2)
    daemon.kill()
    raise SystemExit(f"the daemon did not start: {(directory / 'daemon.log').read_text()}")


def gnomon(env: dict[str, str], directory: Path, *args: str) -> str:
    done = subprocess.run(
        [*GNOMON, *args], env=env, cwd=directory, capture_output=True, text=True, check=True
    )
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=75)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    options = parser.parse_args()
    options.out.mkdir(parents=True, exist_ok=True)

    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        daemon, url, env = start_daemon(directory)
        try:
            for name in ("nightly-etl", "regional-report"):
                gnomon(env, directory, "run", name)
            time.sleep(options.seconds)
            gnomon(
                env, directory, "pause", "nightly-etl", "--reason", "INC-1042: warehouse upgrade"
            )
            runs = json.loads(gnomon(env, directory, "runs", "list", "--json", "--limit", "50"))
            shown = next(run for run in runs if run["deployment"] == "nightly-etl")
            token = (directory / "home" / "api-token").read_text().strip()
            pages = {
                "overview": "/",
                "deployments": "/deployments",
                "deployment": "/deployments/regional-report",
                "runs": "/runs",
                "run": f"/runs/{shown['id']}",
                "audit": "/audit",
            }
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
                )
                for width, scheme, names in ((1280, "light", pages), (400, "dark", ["run"])):
                    page = browser.new_page(
                        viewport={"width": width, "height": 900}, color_scheme=scheme
                    )
                    page.goto(url + "/login")
                    page.fill("#token", token)
                    page.click("form.login button")
                    page.wait_for_load_state()
                    for name in names:
                        page.goto(url + pages[name], wait_until="load")
                        suffix = "" if width == 1280 else f"-{width}-{scheme}"
                        target = options.out / f"{name}{suffix}.png"
                        page.screenshot(path=str(target), full_page=width != 1280)
                        print(target)
                browser.close()
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=60)


if __name__ == "__main__":
    main()
