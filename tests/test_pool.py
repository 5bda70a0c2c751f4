"""The warm worker pool: real worker processes, real signals, a real SQLite store."""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import logs_of, schedule_run
from gnomon.daemon._pool import RunOutcome, WorkerPool, WorkerPoolError

DEADLINE = 30.0

FLOWS = textwrap.dedent(
    """
    import os
    import signal
    import time

    from gnomon import flow, get_run_logger

    # Each import appends the importing process's pid: proof of what was imported, when.
    with open(os.environ["POOL_IMPORTS"], "a") as imports:
        imports.write(f"{os.getpid()}\\n")

    @flow
    def hello(name: str = "world") -> int:
        print(f"printed by {name}")
        get_run_logger().info(f"logged by {name}")
        return os.getpid()

    @flow
    def frozen(path: str) -> None:
        import gc

        with open(path, "w") as out:
            out.write(str(gc.get_freeze_count()))

    @flow
    def exits(code: int) -> None:
        os._exit(code)

    @flow
    def killed() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    @flow
    def leaves(marker: str = "") -> None:
        import subprocess, threading

        subprocess.Popen(["sleep", "600"])

        def later() -> None:  # a thread the interpreter waits for at exit
            time.sleep(1)
            with open(marker, "w") as out:
                out.write("written")

        if marker:
            threading.Thread(target=later).start()

    @flow
    def waits(ignore_sigterm: bool = False, seconds: float = 60) -> None:
        if ignore_sigterm:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        get_run_logger().info("waiting")
        time.sleep(seconds)
    """
)


def until(predicate: Callable[[], Any], what: str, timeout: float = DEADLINE) -> Any:
    """Wait for ``predicate`` to hold, with a deadline."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)
    return value


class Sink:
    """Collects what the pool relays from its workers, parsed."""

    def __init__(self) -> None:
        self.lines: list[tuple[dict[str, Any], int]] = []
        self._changed = threading.Condition()

    def __call__(self, line: str, worker_pid: int) -> None:
        with self._changed:
            self.lines.append((json.loads(line), worker_pid))
            self._changed.notify_all()

    def wait_for(self, event: str) -> tuple[dict[str, Any], int]:
        """The first relayed line whose event contains ``event``."""

        def found() -> tuple[dict[str, Any], int] | None:
            return next((entry for entry in self.lines if event in entry[0]["event"]), None)

        with self._changed:
            entry = self._changed.wait_for(found, DEADLINE)
        assert entry is not None, f"no line with {event!r} in {self.lines}"
        return entry


class Harness:
    """A pool over the flows above, with its outcomes and relayed lines."""

    def __init__(self, tmp_path: Path, store: Any) -> None:
        self.flows = tmp_path / "pool_flows.py"
        self.flows.write_text(FLOWS)
        self.imports = tmp_path / "imports.txt"
        self.imports.touch()
        self.store = store
        self.outcomes: queue.Queue[RunOutcome] = queue.Queue()
        self.sink = Sink()
        self.pools: list[WorkerPool] = []

    def pool(self, size: int = 1, preload: list[str] | None = None, **options: Any) -> WorkerPool:
        options.setdefault("kill_grace", 2.0)
        pool = WorkerPool(
            size,
            [f"{self.flows}:{name}" for name in ("hello",)] if preload is None else preload,
            on_finished=self.outcomes.put,
            log_sink=self.sink,
            env={"POOL_IMPORTS": str(self.imports)},
            **options,
        )
        self.pools.append(pool)
        pool.start()
        return pool

    def schedule(
        self, function: str, parameters: dict[str, Any] | None = None, flows: Path | None = None
    ) -> str:
        """A Scheduled run of ``function`` from the flows file, committed as a scheduler does."""
        entrypoint = f"{flows or self.flows}:{function}"
        return schedule_run(self.store, entrypoint, parameters, name=f"pool-{function}")

    def run(self, pool: WorkerPool, function: str, **parameters: Any) -> RunOutcome:
        """Schedule a run, submit it to an idle worker and wait for its outcome."""
        run_id = self.schedule(function, parameters)
        until(pool.idle_count, "an idle worker")
        assert pool.submit(run_id)
        return self.outcome(run_id)

    def outcome(self, run_id: str) -> RunOutcome:
        outcome = self.outcomes.get(timeout=DEADLINE)
        assert outcome.flow_run_id == run_id
        return outcome

    def import_pids(self) -> list[int]:
        return [int(line) for line in self.imports.read_text().split()]


@pytest.fixture
def harness(tmp_path: Path, store: Any) -> Iterator[Harness]:
    harness = Harness(tmp_path, store)
    yield harness
    for pool in harness.pools:
        pool.stop(0)


def alive(pid: int) -> bool:
    """Whether ``pid`` is a process that has not been reaped (a zombie still counts)."""
    return Path(f"/proc/{pid}").exists()


def test_workers_are_forked_warm_from_a_template_that_imported_the_flows_once(
    harness: Harness,
) -> None:
    pool = harness.pool(size=2)
    workers = pool.pids()
    template = pool.template_pid()
    # Imported once, by the template, before any run was submitted; the workers have it.
    assert harness.import_pids() == [template]
    assert template not in workers
    assert (pool.idle_count(), pool.busy_count(), pool.size) == (2, 0, 2)

    outcome = harness.run(pool, "hello")

    assert (outcome.state_name, outcome.state_type) == ("Completed", "COMPLETED")
    assert outcome.worker_pid in workers
    assert (outcome.exit_code, outcome.signal, outcome.error_type) == (None, None, None)
    assert outcome.duration_ms >= 0
    assert outcome.ended_at >= outcome.started_at
    row = harness.store.read_flow_run(outcome.flow_run_id)  # committed before "done"
    assert (row.state_name, row.worker_pid) == ("Completed", outcome.worker_pid)
    assert harness.import_pids() == [template]  # the run used the module the template loaded


def test_a_warm_worker_has_frozen_its_imports_out_of_the_garbage_collectors_sight(
    harness: Harness, tmp_path: Path
) -> None:
    # Full collections walking them would stall whichever run is going (20 ms each).
    pool = harness.pool()
    count = tmp_path / "freeze-count"

    assert harness.run(pool, "frozen", path=str(count)).state_name == "Completed"

    assert int(count.read_text()) > 10_000  # gnomon, SQLAlchemy and pydantic, at least


def test_a_run_that_was_already_started_is_reported_not_runnable_and_left_alone(
    harness: Harness,
) -> None:
    pool = harness.pool()
    first = harness.run(pool, "hello")

    assert pool.submit(first.flow_run_id)
    again = harness.outcome(first.flow_run_id)

    assert again.error_type == "gnomon.exceptions.FlowRunNotRunnable"
    assert again.state_name == "Completed"
    assert harness.store.read_flow_run(first.flow_run_id).state_name == "Completed"


def test_prints_and_logs_of_a_run_reach_the_log_sink_and_prints_are_stored(
    harness: Harness,
) -> None:
    pool = harness.pool()
    outcome = harness.run(pool, "hello", name="ada")

    printed, printed_by = harness.sink.wait_for("printed by ada")
    logged, logged_by = harness.sink.wait_for("logged by ada")

    for line, pid in ((printed, printed_by), (logged, logged_by)):
        assert line["flow_run_id"] == outcome.flow_run_id
        assert line["worker_pid"] == pid == outcome.worker_pid
    assert printed["logger"] == "gnomon.worker.output"
    harness.store.flush()
    until(
        lambda: (
            "printed by ada" in [row.message for row in logs_of(harness.store, outcome.flow_run_id)]
        ),
        "the printed line stored with the run",
    )


def test_a_worker_exiting_mid_run_crashes_the_run_and_a_new_worker_takes_the_next(
    harness: Harness,
) -> None:
    pool = harness.pool()

    crashed = harness.run(pool, "exits", code=3)

    message = f"worker process {crashed.worker_pid} exited with code 3"
    assert (crashed.state_name, crashed.state_type) == ("Crashed", "CRASHED")
    assert (crashed.exit_code, crashed.signal, crashed.message) == (3, None, message)
    row = harness.store.read_flow_run(crashed.flow_run_id)
    assert (row.state_name, row.state_message, row.exit_code) == ("Crashed", message, 3)
    assert row.end_time is not None
    assert row.error_type == "gnomon.exceptions.CrashedRun"
    states = harness.store.read_states(flow_run_id=crashed.flow_run_id)
    # The claim committed Running with the run's start; the worker died before its end.
    assert [state.name for state in states] == ["Scheduled", "Running", "Crashed"]
    assert row.start_time is not None
    assert not alive(crashed.worker_pid)

    next_run = harness.run(pool, "hello")
    assert next_run.state_name == "Completed"
    assert next_run.worker_pid != crashed.worker_pid


def test_a_worker_killed_by_a_signal_crashes_the_run_naming_the_signal(harness: Harness) -> None:
    pool = harness.pool()

    crashed = harness.run(pool, "killed")

    assert (crashed.state_name, crashed.exit_code, crashed.signal) == ("Crashed", None, "SIGKILL")
    row = harness.store.read_flow_run(crashed.flow_run_id)
    assert row.state_message == (
        f"worker process {crashed.worker_pid} died with signal SIGKILL (9)"
    )
    assert (row.signal, row.exit_code) == ("SIGKILL", None)


def test_a_run_past_its_timeout_is_timed_out_even_if_it_ignores_sigterm(
    harness: Harness,
) -> None:
    pool = harness.pool(kill_grace=0.2)
    run_id = harness.schedule("waits", {"ignore_sigterm": True})

    assert pool.submit(run_id, timeout=0.5)
    outcome = harness.outcome(run_id)

    assert (outcome.state_name, outcome.state_type) == ("TimedOut", "FAILED")
    assert outcome.signal == "SIGKILL"  # SIGTERM was ignored; SIGKILL after the grace
    row = harness.store.read_flow_run(run_id)
    assert row.state_message == "Flow run exceeded timeout of 0.5 second(s)"
    assert row.error_type == "gnomon.exceptions.FlowRunTimeoutError"
    until(lambda: pool.idle_count() == 1, "a replacement worker")
    assert outcome.worker_pid not in pool.pids()


def test_cancel_ends_the_run_cancelled_with_the_reason(harness: Harness) -> None:
    pool = harness.pool()
    run_id = harness.schedule("waits")
    assert pool.submit(run_id)
    harness.sink.wait_for("waiting")

    assert pool.cancel(run_id, "cancelled by an operator")
    outcome = harness.outcome(run_id)

    assert (outcome.state_name, outcome.state_type) == ("Cancelled", "CANCELLED")
    assert outcome.signal == "SIGTERM"
    row = harness.store.read_flow_run(run_id)
    assert (row.state_name, row.state_message) == ("Cancelled", "cancelled by an operator")
    assert not pool.cancel(run_id, "again")
    assert not pool.cancel(uuid.uuid4().hex, "not a run of this pool")


def test_a_run_submitted_while_every_worker_is_busy_starts_as_one_finishes(
    harness: Harness,
) -> None:
    pool = harness.pool()
    busy = harness.schedule("waits", {"seconds": 0.5})
    assert pool.submit(busy)
    assert pool.capacity() == 1  # one held ahead per worker

    held = harness.schedule("hello")
    assert pool.submit(held)
    assert pool.capacity() == 0
    assert not pool.submit(harness.schedule("hello"))

    first, second = harness.outcome(busy), harness.outcome(held)
    assert first.state_name == second.state_name == "Completed"
    assert first.worker_pid == second.worker_pid
    assert second.start_time is not None
    assert first.end_time is not None
    assert second.start_time >= first.end_time
    assert pool.capacity() == 2


def test_cancelling_a_held_run_drops_it_and_leaves_the_running_one_alone(
    harness: Harness,
) -> None:
    pool = harness.pool()
    busy = harness.schedule("waits", {"seconds": 1.0})
    assert pool.submit(busy)
    harness.sink.wait_for("waiting")
    held = harness.schedule("hello")
    assert pool.submit(held)

    assert pool.cancel(held, "cancelled by an operator")

    dropped = harness.outcome(held)
    assert (dropped.state_name, dropped.worker_pid, dropped.signal) == ("Cancelled", None, None)
    row = harness.store.read_flow_run(held)
    assert (row.state_name, row.state_message) == ("Cancelled", "cancelled by an operator")
    assert row.start_time is None  # it never ran
    assert harness.outcome(busy).state_name == "Completed"
    assert not pool.cancel(held, "again")


def test_stop_leaves_held_runs_unstarted_for_the_next_daemon(harness: Harness) -> None:
    pool = harness.pool()
    busy = harness.schedule("waits", {"seconds": 0.3})
    assert pool.submit(busy)
    held = harness.schedule("hello")
    assert pool.submit(held)

    pool.stop(grace=DEADLINE)

    assert harness.outcome(busy).state_name == "Completed"
    assert harness.outcomes.empty()
    assert harness.store.read_flow_run(held).state_name == "Scheduled"


def test_a_worker_is_replaced_after_max_runs_per_worker(harness: Harness) -> None:
    pool = harness.pool(max_runs_per_worker=2)

    pids = [harness.run(pool, "hello").worker_pid for _ in range(3)]

    assert pids[0] == pids[1] != pids[2]
    assert harness.import_pids() == [pool.template_pid()]  # the new worker was forked warm
    until(lambda: not alive(pids[0]), "the retired worker to exit")


def test_a_retired_worker_stores_its_runs_last_rows_and_waits_for_their_threads(
    harness: Harness,
) -> None:
    # The warning about what a run left running is stored after its final state; the
    # daemon closes a retiring worker's stdin as soon as it hears the run is done.
    pool = harness.pool(max_runs_per_worker=1)

    for _ in range(6):
        run = harness.run(pool, "leaves").flow_run_id
        until(
            lambda run=run: any(
                "left 1 processes running" in row.message for row in logs_of(harness.store, run)
            ),
            "the warning about the leftover stored",
        )
    marker = harness.flows.with_name("marker")
    worker = harness.run(pool, "leaves", marker=str(marker)).worker_pid
    until(lambda: not alive(worker), "the retired worker to exit")
    assert marker.read_text() == "written"


def test_a_worker_above_max_memory_is_replaced_after_its_run(harness: Harness) -> None:
    pool = harness.pool(max_memory_per_worker=1)  # any worker is above one byte

    first, second = (harness.run(pool, "hello") for _ in range(2))

    assert first.state_name == second.state_name == "Completed"
    assert first.worker_pid != second.worker_pid


def test_stop_waits_for_a_run_that_finishes_within_the_grace(harness: Harness) -> None:
    pool = harness.pool()
    run_id = harness.schedule("waits", {"seconds": 0.5})
    assert pool.submit(run_id)
    harness.sink.wait_for("waiting")

    pool.stop(grace=DEADLINE)

    assert harness.outcome(run_id).state_name == "Completed"


def test_stop_cancels_runs_past_the_grace_and_leaves_no_worker_process(
    harness: Harness,
) -> None:
    pool = harness.pool(size=2)
    workers = pool.pids()
    run_id = harness.schedule("waits")
    assert pool.submit(run_id)
    harness.sink.wait_for("waiting")

    pool.stop(grace=0.2)

    outcome = harness.outcome(run_id)
    assert (outcome.state_name, outcome.signal) == ("Cancelled", "SIGTERM")
    assert harness.store.read_flow_run(run_id).state_message == (
        "daemon shut down before the run finished"
    )
    assert pool.pids() == []
    assert not [pid for pid in workers if alive(pid)]  # exited and reaped: no zombies
    assert not pool.submit(harness.schedule("hello"))


def test_a_flow_module_that_fails_to_import_does_not_stop_the_worker(
    harness: Harness, tmp_path: Path
) -> None:
    broken = tmp_path / "broken_flows.py"
    broken.write_text("raise ImportError('no such dependency')\n")
    pool = harness.pool(preload=[f"{broken}:nightly", f"{harness.flows}:hello"])
    warning, _ = harness.sink.wait_for("could not import flow")
    assert str(broken) in warning["event"]
    assert warning["level"] == "warning"

    bad = harness.schedule("nightly", flows=broken)
    assert pool.submit(bad)
    failed = harness.outcome(bad)
    good = harness.run(pool, "hello")

    assert (failed.state_name, failed.error_type) == ("Crashed", "ImportError")
    assert "no such dependency" in harness.store.read_flow_run(bad).state_message
    assert good.state_name == "Completed"
    assert good.worker_pid == failed.worker_pid


def test_recycle_replaces_the_workers_once_a_new_template_has_imported_the_flows(
    harness: Harness,
) -> None:
    pool = harness.pool()
    before = harness.run(pool, "hello", name="before")
    old_template = pool.template_pid()
    harness.flows.write_text(FLOWS.replace("printed by", "reprinted by"))

    pool.recycle([f"{harness.flows}:hello"])
    until(lambda: pool.template_pid() != old_template, "the new template")
    after = harness.run(pool, "hello", name="after")

    harness.sink.wait_for("reprinted by after")
    assert after.worker_pid != before.worker_pid
    assert harness.import_pids() == [old_template, pool.template_pid()]
    until(lambda: not alive(old_template), "the old template to exit with its last worker")


def test_a_recycle_whose_template_cannot_import_a_flow_keeps_the_workers_and_their_code(
    harness: Harness, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pool = harness.pool()
    worker = harness.run(pool, "hello").worker_pid
    broken = tmp_path / "broken_flows.py"
    broken.write_text("raise ImportError('no such dependency')\n")

    with caplog.at_level(logging.ERROR, logger="gnomon.daemon.pool"):
        pool.recycle([f"{broken}:nightly", f"{harness.flows}:hello"])
        until(lambda: "the reloaded flow code is not used" in caplog.text, "the failed reload")
    again = harness.run(pool, "hello")

    assert "no such dependency" in caplog.text
    assert again.worker_pid == worker
    assert pool.pids() == [worker]


def test_a_killed_template_is_replaced_and_its_workers_with_it(harness: Harness) -> None:
    pool = harness.pool()
    run_id = harness.schedule("waits")
    assert pool.submit(run_id)
    harness.sink.wait_for("waiting")
    template = pool.template_pid()
    assert template is not None

    os.kill(template, signal.SIGKILL)

    lost = harness.outcome(run_id)  # its worker ended with it
    assert lost.state_name == "Crashed"
    assert lost.message == (
        f"worker process {lost.worker_pid} ended; how is unknown (its worker template is gone)"
    )
    until(lambda: pool.template_pid() not in (None, template), "a new template")
    assert harness.run(pool, "hello").state_name == "Completed"


STARTS_AT_IMPORT = textwrap.dedent(
    """
    import os
    import subprocess
    import sys
    import time

    from gnomon import flow

    # Started by the template as it imports this module: in the template's process group.
    helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    with open(os.environ["POOL_HELPER"], "w") as out:
        out.write(str(helper.pid))

    @flow
    def sleeps() -> None:
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        with open(os.environ["POOL_HELPER"] + ".child", "w") as out:
            out.write(str(child.pid))
        time.sleep(600)
    """
)


@pytest.mark.parametrize("mechanism", ["subreaper", "none"])
def test_ending_a_workers_tree_never_reaches_its_template_or_what_the_template_started(
    harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mechanism: str
) -> None:
    from gnomon.deployments import ContainmentMode

    flows = tmp_path / "starts_at_import.py"
    flows.write_text(STARTS_AT_IMPORT)
    helper_file = tmp_path / "helper"
    monkeypatch.setenv("POOL_HELPER", str(helper_file))  # the workers' environment
    pool = harness.pool(preload=[f"{flows}:sleeps"], containment=ContainmentMode(mechanism))
    helper = int(helper_file.read_text())
    template = pool.template_pid()
    assert template is not None
    try:
        (worker,) = pool.pids()
        # Its own group from the moment the pool knew it: the tree the pool signals.
        assert os.getpgid(worker) == worker != os.getpgid(template)
        run_id = harness.schedule("sleeps", flows=flows)
        assert pool.submit(run_id, timeout=1)
        child = int(until(lambda: _read(Path(f"{helper_file}.child")), "the run's child"))

        assert harness.outcome(run_id).state_name == "TimedOut"

        until(lambda: not _running(child), "the run's child to end with its worker")
        assert _running(template)
        assert _running(helper)
        assert pool.template_pid() == template
    finally:
        os.kill(helper, signal.SIGKILL)


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie is not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def test_start_fails_at_once_when_workers_cannot_start(harness: Harness) -> None:
    pool = WorkerPool(
        2,
        [],
        on_finished=harness.outcomes.put,
        env={"GNOMON_LOG_LEVEL": "LOUD"},  # the workers' settings do not validate
    )
    began = time.monotonic()

    with pytest.raises(WorkerPoolError, match=r"a worker failed to start: .* exited with code 1"):
        pool.start(timeout=DEADLINE)

    assert time.monotonic() - began < DEADLINE / 2
    assert pool.pids() == []


DAEMON = textwrap.dedent(
    """
    import sys
    from gnomon.daemon._pool import WorkerPool

    pool = WorkerPool(1, [], on_finished=print, kill_grace=1)
    pool.start()
    assert pool.submit(sys.argv[1])
    print(pool.pids()[0], flush=True)
    sys.stdin.read()
    """
)


def test_workers_exit_when_the_daemon_is_killed(harness: Harness) -> None:
    run_id = harness.schedule("waits")
    with subprocess.Popen(
        [sys.executable, "-c", DAEMON, run_id],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "POOL_IMPORTS": str(harness.imports)},
    ) as daemon:
        assert daemon.stdout is not None
        worker = int(daemon.stdout.readline())
        until(
            lambda: harness.store.read_flow_run(run_id).state_name == "Running",
            "the run to start",
        )
        daemon.send_signal(signal.SIGKILL)
        daemon.wait(timeout=DEADLINE)

        until(lambda: not _running(worker), "the orphaned worker to exit")
    # Abandoned, not finished: a restarted daemon's recovery settles it.
    assert harness.store.read_flow_run(run_id).state_name == "Running"


def _running(pid: int) -> bool:
    """Whether ``pid`` runs (an exited orphan may stay a zombie if nothing reaps it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
