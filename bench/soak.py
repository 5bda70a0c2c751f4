"""A soak of the daemon under the faults of real operations, for N minutes.

A real daemon runs deployments every second (some failing, some slow, some printing, some
spawning children) while, every few seconds, one fault strikes at random:

- ``kill``: SIGKILL of the daemon, restarted after 1-5 s (as systemd's Restart= would);
- ``stop``: SIGSTOP of the daemon for 1-10 s, then SIGCONT;
- ``cli``: four shells of pause/resume/run/cancel against it for 5 s;
- ``usr1``: a SIGUSR1 every millisecond for 5 s;
- ``lock``: another program holding the database's write lock for 3-40 s;
- ``disk``: its file system filled up for 5-15 s (only with a tmpfs of its own: root);
- ``reload``: a config with a TOML error, SIGHUP, then the good config back and SIGHUP;
- ``worker``: SIGKILL of a random worker.

At the end the daemon is stopped and the store checked: every fire time outside a pause has
one row, no run has two final states, nothing is left Running or Pending, and the file
passes integrity_check. It prints the faults survived and the outcome of each check;
exits 1 if an invariant fails.

    .venv/bin/python bench/soak.py --minutes 30
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from faults import (  # noqa: E402  (the tests' own checks, one rule)
    assert_every_fire_once,
    assert_nothing_left_running,
    assert_one_final_state_per_run,
    integrity,
)

GNOMON = Path(sys.executable).with_name("gnomon")

FLOWS = """
import os, random, subprocess, sys, time
from gnomon import flow, get_run_logger

@flow
def tick() -> int:
    return 1

@flow
def flaky() -> None:
    if random.random() < 0.3:
        raise RuntimeError("the API is down")

@flow
def slow(seconds: float = 3.0) -> None:
    time.sleep(seconds)

@flow
def chatty(lines: int = 200) -> None:
    logger = get_run_logger()
    for i in range(lines):
        logger.info("line %d of a chatty run", i)
        print("printed", i)

@flow
def spawner() -> None:
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    time.sleep(0.5)
"""

STEADY = ["t0", "t1", "t2", "t3", "flaky", "slow", "chatty", "spawner"]
PAUSED = ["p0", "p1"]  # the deployments the CLI pauses and resumes


def config(good: bool = True) -> str:
    lines = [
        "[daemon]",
        "workers = 2",
        'api = "off"',
        'shutdown_grace = "5s"',
        'kill_grace = "2s"',
        "max_log_lines = 1000",
        "",
    ]
    flows = {"flaky": "flaky", "slow": "slow", "chatty": "chatty", "spawner": "spawner"}
    for name in STEADY + PAUSED:
        lines += [
            "[[deployments]]",
            f'name = "{name}"',
            f'flow = "flows.py:{flows.get(name, "tick")}"',
            'interval = "1s"',
            'timeout = "2s"' if name == "slow" else "",
            "",
        ]
    text = "\n".join(lines)
    return text if good else text + "\n[[deployments]\n"


class Soak:
    def __init__(self, root: Path, home: Path, tmpfs: Path | None) -> None:
        self.root = root
        self.home = home
        self.tmpfs = tmpfs
        self.config = root / "gnomon.toml"
        self.database = home / "gnomon.db"
        self.env = {**os.environ, "GNOMON_HOME": str(home), "GNOMON_LOG_FORMAT": "json"}
        self.daemon: subprocess.Popen[bytes] | None = None
        self.faults: Counter[str] = Counter()
        self.restarts = 0
        self.output = (root / "daemon.out").open("ab")

    def start(self) -> None:
        self.daemon = subprocess.Popen(
            [str(GNOMON), "daemon", "--config", str(self.config)],
            cwd=self.root,
            env=self.env,
            stdout=self.output,
            stderr=self.output,
        )

    def ensure_running(self) -> None:
        """Restart a daemon that died, as systemd would (it may refuse while the disk is
        full: then the next check tries again)."""
        assert self.daemon is not None
        if self.daemon.poll() is not None:
            self.restarts += 1
            self.start()

    def cli(self, *args: str) -> None:
        subprocess.run(
            [str(GNOMON), *args], env=self.env, capture_output=True, timeout=120, check=False
        )

    # The faults.

    def kill(self) -> None:
        assert self.daemon is not None
        self.daemon.kill()
        self.daemon.wait()
        time.sleep(random.uniform(1, 5))
        self.restarts += 1
        self.start()

    def stop(self) -> None:
        assert self.daemon is not None
        self.daemon.send_signal(signal.SIGSTOP)
        time.sleep(random.uniform(1, 10))
        self.daemon.send_signal(signal.SIGCONT)

    def cli_flood(self) -> None:
        deadline = time.monotonic() + 5

        def shell(name: str) -> None:
            while time.monotonic() < deadline:
                self.cli("pause", name)
                self.cli("resume", name)
                self.cli("run", name)

        threads = [threading.Thread(target=shell, args=(name,)) for name in PAUSED * 2]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def usr1(self) -> None:
        assert self.daemon is not None
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.daemon.pid, signal.SIGUSR1)
            time.sleep(0.001)

    def lock(self) -> None:
        connection = sqlite3.connect(self.database, isolation_level=None, timeout=60)
        try:
            connection.execute("BEGIN IMMEDIATE")
            time.sleep(random.uniform(3, 40))
            connection.execute("ROLLBACK")
        finally:
            connection.close()

    def disk(self) -> None:
        assert self.tmpfs is not None
        filler = self.tmpfs / "filler"
        with filler.open("wb") as stream, contextlib.suppress(OSError):
            while True:
                stream.write(b"\0" * (1 << 20))
                stream.flush()
        time.sleep(random.uniform(5, 15))
        filler.unlink()

    def reload(self) -> None:
        self.config.write_text(config(good=False))
        self.cli("daemon", "reload")
        time.sleep(1)
        self.config.write_text(config())
        self.cli("daemon", "reload")

    def worker(self) -> None:
        assert self.daemon is not None
        children = Path(f"/proc/{self.daemon.pid}/task/{self.daemon.pid}/children")
        with contextlib.suppress(OSError):
            pids = [int(pid) for pid in children.read_text().split()]
            if pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(random.choice(pids), signal.SIGKILL)

    def run(self, minutes: float) -> None:
        faults: dict[str, Callable[[], None]] = {
            "kill": self.kill,
            "stop": self.stop,
            "cli": self.cli_flood,
            "usr1": self.usr1,
            "lock": self.lock,
            "reload": self.reload,
            "worker": self.worker,
        }
        if self.tmpfs is not None:
            faults["disk"] = self.disk
        deadline = time.monotonic() + minutes * 60
        while time.monotonic() < deadline:
            time.sleep(random.uniform(2, 8))
            self.ensure_running()
            name = random.choice(sorted(faults))
            print(f"{time.strftime('%H:%M:%S')} {name}", flush=True)
            faults[name]()
            self.faults[name] += 1
        time.sleep(10)  # the last fault's aftermath settles
        self.ensure_running()
        time.sleep(5)
        assert self.daemon is not None
        self.daemon.send_signal(signal.SIGTERM)
        self.daemon.wait(timeout=120)


def pause_spans(database: Path) -> dict[str, list[tuple[datetime, datetime]]]:
    """The spans each deployment was paused, from the audit log; a resume takes effect at
    the daemon's next poll (within ~2 s on a loaded machine)."""
    with contextlib.closing(sqlite3.connect(database)) as connection:
        rows = connection.execute(
            "SELECT timestamp, action, target FROM audit_log"
            " WHERE action IN ('pause', 'resume') ORDER BY id"
        ).fetchall()
    spans: dict[str, list[tuple[datetime, datetime]]] = {}
    started: dict[str, datetime] = {}
    for stamp, action, target in rows:
        when = datetime.fromisoformat(stamp)
        if action == "pause":
            started.setdefault(target, when)
        elif target in started:
            spans.setdefault(target, []).append((started.pop(target), when + timedelta(seconds=5)))
    return spans


def check(database: Path) -> dict[str, str]:
    results: dict[str, str] = {}
    spans = pause_spans(database)
    checks: list[tuple[str, Callable[[], object]]] = [
        ("integrity_check", lambda: _check(integrity(database) == "ok")),
        ("no second final state", lambda: assert_one_final_state_per_run(database)),
        ("nothing left running", lambda: assert_nothing_left_running(database)),
    ]
    for name in STEADY + PAUSED:
        checks.append(
            (
                f"every fire once: {name}",
                lambda name=name: assert_every_fire_once(
                    database, name, timedelta(seconds=1), spans.get(name, [])
                ),
            )
        )
    for label, test in checks:
        try:
            value = test()
        except AssertionError as error:
            results[label] = f"FAILED: {error}"
        else:
            results[label] = "ok" + (f" ({value} fire times)" if isinstance(value, int) else "")
    return results


def _check(holds: bool) -> None:
    assert holds


def mount_tmpfs(root: Path) -> Path | None:
    mount = root / "tmpfs"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    return mount if done.returncode == 0 else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    random.seed(seed)
    root = Path(tempfile.mkdtemp(prefix="gnomon-soak-"))
    tmpfs = mount_tmpfs(root)
    home = (tmpfs or root) / "home"
    (root / "flows.py").write_text(FLOWS)
    (root / "gnomon.toml").write_text(config())
    soak = Soak(root, home, tmpfs)
    started = time.monotonic()
    print(f"soak: {args.minutes} min, seed {seed}, in {root}, disk faults: {tmpfs is not None}")
    try:
        soak.start()
        soak.run(args.minutes)
        results = check(soak.database)
        with contextlib.closing(sqlite3.connect(soak.database)) as connection:
            states = dict(
                connection.execute(
                    "SELECT state_name, count(*) FROM flow_runs GROUP BY state_name"
                ).fetchall()
            )
    finally:
        if soak.daemon is not None and soak.daemon.poll() is None:
            soak.daemon.kill()
        if tmpfs is not None and not args.keep:
            subprocess.run(["umount", "-l", str(tmpfs)], check=False)
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    report = {
        "minutes": round((time.monotonic() - started) / 60, 1),
        "seed": seed,
        "faults": dict(sorted(soak.faults.items())),
        "daemon restarts": soak.restarts,
        "runs by state": dict(sorted(states.items())),
        "checks": results,
    }
    print(json.dumps(report, indent=2))
    return 0 if all(value.startswith("ok") for value in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
