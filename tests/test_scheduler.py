"""Schedule decisions against a real store: fired, queued, skipped, missed, caught up.

Deployments come from real TOML through the real loader; the worker pool is replaced by a
recorder so that tests decide which runs are busy. Times are literal: the scheduler never
reads the clock.
"""

from __future__ import annotations

import sqlite3
import textwrap
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from faults import location
from gnomon.daemon._limits import RunLimits
from gnomon.daemon._runsetup import RunSetup
from gnomon.daemon._scheduler import Scheduler, fire_chunks
from gnomon.deployments import load_config, sync_deployments
from gnomon.store import Actor
from gnomon.store.rows import ScheduleState

pytestmark = pytest.mark.backends

T0 = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)


class Workers:
    """Stands in for the worker pool: a fixed number of workers, runs started by hand."""

    def __init__(self, size: int = 4) -> None:
        self.size = size
        self.running: list[str] = []
        self.cancelled: list[str] = []
        self.limits: dict[str, RunLimits | None] = {}

    def idle_count(self) -> int:
        return self.size - len(self.running)

    def capacity(self) -> int:
        return self.idle_count()

    def submit(
        self,
        flow_run_id: str,
        timeout: float | None = None,
        limits: RunLimits | None = None,
        setup: RunSetup | None = None,
    ) -> bool:
        if self.idle_count() <= 0:
            return False
        self.running.append(flow_run_id)
        self.limits[flow_run_id] = limits
        return True

    def cancel(self, flow_run_id: str, reason: str) -> bool:
        self.cancelled.append(flow_run_id)
        return flow_run_id in self.running

    def finish(
        self, scheduler: Scheduler, flow_run_id: str, now: datetime, state_type: str = "COMPLETED"
    ) -> None:
        self.running.remove(flow_run_id)
        scheduler.run_finished(flow_run_id, state_type)
        scheduler.tick(now)


def make_scheduler(
    tmp_path: Path, store, deployments_toml: str, workers: Workers | None = None
) -> tuple[Scheduler, Workers]:
    (tmp_path / "flows.py").write_text(
        "from gnomon import flow\n\n@flow\ndef job() -> None:\n    pass\n"
    )
    config = tmp_path / "gnomon.toml"
    config.write_text(textwrap.dedent(deployments_toml))
    result = load_config(config)
    assert result.ok, [str(problem) for problem in result.problems]
    sync_deployments(store, result.config.deployments, T0 - timedelta(hours=1))
    workers = workers or Workers()
    scheduler = Scheduler(store, workers, daemon_id="test-daemon")
    rows = store.read_schedule_states()
    scheduler.set_deployments(result.config.deployments, rows)
    return scheduler, workers


def every_minute(name: str = "job", **policies: object) -> str:
    extra = "\n".join(
        f"{key} = {value!r}" if not isinstance(value, str) else f'{key} = "{value}"'
        for key, value in policies.items()
    )
    return f"""
    [[deployments]]
    name = "{name}"
    flow = "flows.py:job"
    cron = "* * * * *"
    {extra}
    """


def states(store, deployment: str = "job") -> list[tuple[str, str | None]]:
    runs = store.read_runs(deployment=deployment, limit=1000)
    return sorted((row.scheduled_for.strftime("%H:%M"), row.state_name) for row in runs)


def at(minute: int) -> datetime:
    return T0 + timedelta(minutes=minute)


def test_a_fire_creates_one_pending_run_keyed_by_deployment_and_nominal_time(
    tmp_path, store
) -> None:
    scheduler, workers = make_scheduler(tmp_path, store, every_minute())

    [decision] = scheduler.fire_many([("job", at(0))], at(0))

    assert decision.action == "fired"
    run = store.read_flow_run(decision.flow_run_id)
    assert (run.deployment_name, run.scheduled_for, run.trigger) == (
        "job",
        at(0),
        "schedule",
    )
    assert workers.running == []  # not dispatched until the tick's dispatch step
    assert scheduler.dispatch(at(0)) == 1
    assert workers.running == [decision.flow_run_id]


def test_the_same_fire_twice_never_makes_a_second_run_even_after_a_restart(tmp_path, store) -> None:
    scheduler, _ = make_scheduler(tmp_path, store, every_minute())
    scheduler.fire_many([("job", at(0))], at(0))
    restarted, _ = make_scheduler(tmp_path, store, every_minute())

    [again] = restarted.fire_many([("job", at(0))], at(0))

    assert again.action == "duplicate"
    assert len(store.read_runs(deployment="job")) == 1


def test_overlap_skip_records_a_skipped_run_naming_the_one_still_going(tmp_path, store) -> None:
    scheduler, workers = make_scheduler(tmp_path, store, every_minute(overlap="skip"))
    scheduler.fire_many([("job", at(0))], at(0))
    scheduler.dispatch(at(0))

    [decision] = scheduler.fire_many([("job", at(1))], at(1))

    assert decision.action == "skipped"
    assert workers.running[0] in decision.reason
    assert states(store) == [("12:00", "Pending"), ("12:01", "Skipped")]


def test_overlap_queue_starts_the_next_run_only_when_the_previous_ends(tmp_path, store) -> None:
    scheduler, workers = make_scheduler(
        tmp_path, store, every_minute(overlap="queue", max_queued=1)
    )
    scheduler.fire_many([("job", at(0))], at(0))
    scheduler.dispatch(at(0))
    [queued] = scheduler.fire_many([("job", at(1))], at(1))
    [overflow] = scheduler.fire_many([("job", at(2))], at(2))
    scheduler.dispatch(at(2))

    assert (queued.action, overflow.action) == ("queued", "skipped")
    assert "max_queued = 1" in overflow.reason
    assert len(workers.running) == 1

    workers.finish(scheduler, workers.running[0], at(3))

    assert workers.running == [queued.flow_run_id]


def test_overlap_allow_runs_up_to_max_concurrent_at_once(tmp_path, store) -> None:
    scheduler, workers = make_scheduler(
        tmp_path, store, every_minute(overlap="allow", max_concurrent=2)
    )
    decisions = [scheduler.fire_many([("job", at(m))], at(m))[0] for m in range(3)]
    scheduler.dispatch(at(2))

    assert [d.action for d in decisions] == ["fired", "fired", "skipped"]
    assert len(workers.running) == 2


def test_overlap_cancel_previous_cancels_the_running_run(tmp_path, store) -> None:
    scheduler, workers = make_scheduler(tmp_path, store, every_minute(overlap="cancel_previous"))
    [first] = scheduler.fire_many([("job", at(0))], at(0))
    scheduler.dispatch(at(0))

    [second] = scheduler.fire_many([("job", at(1))], at(1))

    assert second.action == "fired"
    assert workers.cancelled == [first.flow_run_id]


def test_runs_wait_as_pending_and_start_in_nominal_order_when_workers_free_up(
    tmp_path, store
) -> None:
    toml = every_minute("a") + every_minute("b") + every_minute("c")
    scheduler, workers = make_scheduler(tmp_path, store, toml, Workers(size=1))
    scheduler.fire_many([("c", at(0)), ("a", at(2)), ("b", at(1))], at(2))
    scheduler.dispatch(at(2))
    order = [store.read_flow_run(workers.running[0]).deployment_name]

    for minute in (3, 4):
        workers.finish(scheduler, workers.running[0], at(minute))
        order.append(store.read_flow_run(workers.running[0]).deployment_name)

    assert order == ["c", "b", "a"]


def test_a_large_fire_starts_the_runs_the_workers_can_take_before_writing_the_rest(
    tmp_path, store
) -> None:
    class Counting(Workers):
        """Notes how many of the fire's runs were stored when each run was submitted."""

        def __init__(self, size: int) -> None:
            super().__init__(size)
            self.stored_at_submit: list[int] = []

        def submit(
            self,
            flow_run_id: str,
            timeout: float | None = None,
            limits: RunLimits | None = None,
            setup: RunSetup | None = None,
        ) -> bool:
            self.stored_at_submit.append(len(store.read_runs(limit=100)))
            return super().submit(flow_run_id, timeout, limits)

    names = [f"d{i}" for i in range(6)]
    toml = "".join(every_minute(name) for name in names)
    scheduler, workers = make_scheduler(tmp_path, store, toml, Counting(size=2))
    scheduler.plan_fires(at(0) - SECOND)

    decisions = scheduler.tick(at(0))

    assert [decision.action for decision in decisions] == ["fired"] * 6
    assert workers.stored_at_submit == [2, 2]  # the other four were written after
    assert len(store.read_runs(limit=100)) == 6
    assert scheduler.waiting_count() == 4


@pytest.mark.parametrize(
    ("count", "first", "sizes"),
    [
        (0, 4, []),
        (3, 4, [3]),
        (50, 4, [4, 8, 8, 8, 8, 8, 6]),
        (50, 0, [1, 8, 8, 8, 8, 8, 8, 1]),  # every worker busy: one, then the rest
        (1000, 4, [4, *[63] * 15, 51]),
    ],
)
def test_a_fire_is_written_first_what_the_workers_take_then_in_chunks(
    count: int, first: int, sizes: list[int]
) -> None:
    fires = [(f"d{i}", at(0)) for i in range(count)]

    chunks = list(fire_chunks(fires, first))

    assert [len(chunk) for chunk in chunks] == sizes
    assert [fire for chunk in chunks for fire in chunk] == fires


def test_a_fire_later_than_misfire_grace_is_recorded_missed(tmp_path, store) -> None:
    scheduler, workers = make_scheduler(tmp_path, store, every_minute(misfire_grace="30s"))

    [decision] = scheduler.fire_many([("job", at(0))], at(0) + timedelta(seconds=45))

    assert decision.action == "missed"
    assert "45000 ms late" in decision.reason
    assert states(store) == [("12:00", "Missed")]
    scheduler.dispatch(at(1))
    assert workers.running == []


def test_a_paused_deployment_does_not_fire_and_resuming_does_not_catch_up(tmp_path, store) -> None:
    scheduler, _ = make_scheduler(tmp_path, store, every_minute())
    scheduler.set_paused("job", True, at(0))

    [decision] = scheduler.fire_many([("job", at(0))], at(0))
    scheduler.set_paused("job", False, at(10))

    assert decision.action == "paused"
    assert scheduler.catch_up(at(10)) == []
    assert store.read_runs(deployment="job") == []


def test_a_deployment_that_never_fired_catches_up_the_fires_due_since_it_was_registered(
    tmp_path, store
) -> None:
    # The daemon registered it at T0 - 1 h and stopped before its first fire: the fires
    # due while no daemon ran are the catch-up policy's to decide, as for one that fired.
    scheduler, _ = make_scheduler(tmp_path, store, every_minute(catchup="latest"))

    scheduler.catch_up(at(0) + timedelta(seconds=30))

    decided = states(store)
    assert len(decided) == 60  # 11:01 .. 12:00, after the registration at 11:00
    assert decided[-1] == ("12:00", "Pending")
    assert {state for _, state in decided[:-1]} == {"Missed"}


def test_at_start_up_fires_due_since_the_sync_are_the_schedules_not_catch_up(
    tmp_path, store
) -> None:
    # The daemon synced at 12:03 and took until 12:03:30 to start its timer: 12:03 was not
    # missed while it was down, only late while it started.
    scheduler, workers = make_scheduler(tmp_path, store, every_minute(catchup="none"))
    [first] = scheduler.fire_many([("job", at(0))], at(0))
    scheduler.dispatch(at(0))
    store.set_run_state(first.flow_run_id, "COMPLETED", "Completed")
    workers.finish(scheduler, first.flow_run_id, at(0))

    scheduler.catch_up(at(3) + timedelta(seconds=30), up_since=at(3))

    runs = sorted(store.read_runs(deployment="job"), key=lambda row: row.scheduled_for)
    decided = [(row.scheduled_for, row.state_name, row.trigger) for row in runs]
    assert decided == [
        (at(0), "Completed", "schedule"),
        (at(1), "Missed", "catchup"),  # before the sync: catchup = "none" decides
        (at(2), "Missed", "catchup"),
        (at(3), "Pending", "schedule"),  # since the sync: late, within misfire_grace
    ]


def test_a_resume_made_while_no_daemon_ran_does_not_catch_up_the_paused_period(
    tmp_path, store
) -> None:
    from gnomon.store import Actor

    scheduler, _ = make_scheduler(tmp_path, store, every_minute(catchup="all"))
    scheduler.fire_many([("job", at(0))], at(0))
    scheduler.record_fire_times()
    store.set_paused(["job"], True, Actor("alice", "cli"), "incident", now=at(1))
    store.set_paused(["job"], False, Actor("alice", "cli"), None, now=at(5) + timedelta(seconds=1))

    restarted = Scheduler(store, Workers(), daemon_id="test-daemon")
    config = load_config(tmp_path / "gnomon.toml").config
    restarted.set_deployments(config.deployments, store.read_schedule_states())
    restarted.catch_up(at(7) + timedelta(seconds=30))

    assert states(store) == [
        ("12:00", "Pending"),
        ("12:06", "Pending"),
        ("12:07", "Pending"),
    ]


@pytest.mark.parametrize(
    ("catchup", "expected"),
    [
        ("latest", [("12:01", "Missed"), ("12:02", "Missed"), ("12:03", "Pending")]),
        ("all", [("12:01", "Pending"), ("12:02", "Pending"), ("12:03", "Pending")]),
        ("none", [("12:01", "Missed"), ("12:02", "Missed"), ("12:03", "Missed")]),
    ],
)
def test_catch_up_after_downtime_follows_the_policy_and_records_the_gap(
    tmp_path, store, catchup: str, expected: list[tuple[str, str]]
) -> None:
    scheduler, workers = make_scheduler(tmp_path, store, every_minute(catchup=catchup))
    [first] = scheduler.fire_many([("job", at(0))], at(0))
    scheduler.dispatch(at(0))
    store.set_run_state(first.flow_run_id, "COMPLETED", "Completed")
    workers.finish(scheduler, first.flow_run_id, at(0))

    scheduler.catch_up(at(3) + timedelta(seconds=30))

    assert states(store)[1:] == expected
    ran = [row for row in store.read_runs(deployment="job") if row.state_name == "Pending"]
    assert {row.trigger for row in ran} <= {"catchup"}


def test_catch_up_all_is_bounded_by_max_catchup(tmp_path, store) -> None:
    scheduler, workers = make_scheduler(tmp_path, store, every_minute(catchup="all", max_catchup=2))
    [first] = scheduler.fire_many([("job", at(0))], at(0))
    scheduler.dispatch(at(0))
    store.set_run_state(first.flow_run_id, "COMPLETED", "Completed")
    workers.finish(scheduler, first.flow_run_id, at(0))

    scheduler.catch_up(at(4))

    assert states(store)[1:] == [
        ("12:01", "Missed"),
        ("12:02", "Missed"),
        ("12:03", "Pending"),
        ("12:04", "Pending"),
    ]


def test_the_last_fire_is_persisted_with_each_decision(tmp_path, store) -> None:
    scheduler, _ = make_scheduler(tmp_path, store, every_minute())

    scheduler.fire_many([("job", at(5))], at(5))

    assert store.read_deployment("job").last_fire == at(5)


def test_a_fires_last_time_is_stored_once_its_runs_have_all_started(tmp_path, store) -> None:
    # Storing them holds the store's write lock, which the workers need to claim the
    # fire's first runs: it waits until no run of the fire waits for a worker.
    scheduler, workers = make_scheduler(
        tmp_path, store, every_minute("a") + every_minute("b"), Workers(size=1)
    )
    scheduler.plan_fires(at(0) - SECOND)
    scheduler.tick(at(0))

    assert [store.read_deployment(name).last_fire for name in "ab"] == [None, None]

    workers.finish(scheduler, workers.running[0], at(0) + timedelta(milliseconds=5))
    assert [store.read_deployment(name).last_fire for name in "ab"] == [None, None]

    workers.finish(scheduler, workers.running[0], at(0) + timedelta(milliseconds=9))
    assert [store.read_deployment(name).last_fire for name in "ab"] == [at(0)] * 2


def test_fire_times_still_unstored_are_stored_after_a_second_or_at_shutdown(
    tmp_path, store
) -> None:
    scheduler, _ = make_scheduler(tmp_path, store, every_minute(), Workers(size=0))
    scheduler.plan_fires(at(0) - SECOND)
    scheduler.tick(at(0))
    scheduler.tick(at(0) + timedelta(milliseconds=999))
    assert store.read_deployment("job").last_fire is None

    scheduler.tick(at(0) + timedelta(seconds=1))
    assert store.read_deployment("job").last_fire == at(0)

    scheduler.tick(at(1))  # the timer planned the next fire after the last
    scheduler.record_fire_times()  # what the daemon does at shutdown
    assert store.read_deployment("job").last_fire == at(1)


def test_a_failed_run_is_queued_again_while_the_deployments_retries_last(tmp_path, store) -> None:
    scheduler, workers = make_scheduler(tmp_path, store, every_minute(retries=1))
    [decision] = scheduler.fire_many([("job", at(0))], at(0))
    scheduler.dispatch(at(0))
    store.set_run_state(decision.flow_run_id, "FAILED", "Failed", "boom")

    workers.finish(scheduler, decision.flow_run_id, at(1), state_type="FAILED")

    assert workers.running == [decision.flow_run_id]  # the same run, dispatched again
    names = [row.name for row in store.read_states(flow_run_id=decision.flow_run_id)]
    assert names[-1] == "AwaitingRetry"
    assert store.count_deployment_retries(decision.flow_run_id) == 1

    store.set_run_state(decision.flow_run_id, "CRASHED", "Crashed", "worker died")
    workers.finish(scheduler, decision.flow_run_id, at(2), state_type="CRASHED")

    assert workers.running == []  # retries used up
    assert store.read_flow_run(decision.flow_run_id).state_name == "Crashed"
    assert len(store.read_runs(deployment="job")) == 1


def test_a_completed_run_is_not_retried(tmp_path, store) -> None:
    scheduler, workers = make_scheduler(tmp_path, store, every_minute(retries=3))
    [decision] = scheduler.fire_many([("job", at(0))], at(0))
    scheduler.dispatch(at(0))

    workers.finish(scheduler, decision.flow_run_id, at(1))

    assert workers.running == []
    assert store.count_deployment_retries(decision.flow_run_id) == 0


def test_a_finished_run_is_summarised_from_its_dispatch_without_a_store_read(
    tmp_path, store
) -> None:
    from gnomon.daemon._pool import RunOutcome
    from gnomon.daemon._summary import run_summary

    scheduler, _ = make_scheduler(tmp_path, store, every_minute(jitter="30s"))
    [decision] = scheduler.fire_many([("job", at(0))], at(0))
    scheduler.dispatch(at(0))
    assert decision.flow_run_id is not None
    slot = scheduler.deployment("job")
    assert slot is not None
    started = at(0) + slot.offset + timedelta(milliseconds=1500)
    outcome = RunOutcome(
        flow_run_id=decision.flow_run_id,
        state_name="Crashed",
        state_type="CRASHED",
        worker_pid=4242,
        exit_code=None,
        signal="SIGKILL",
        started_at=started,
        ended_at=started + timedelta(seconds=2),
        duration_ms=2000,
        error_type="gnomon.exceptions.CrashedRun",
        start_time=started,
    )

    dispatched = scheduler.run_finished(decision.flow_run_id, "CRASHED")
    summary = run_summary(outcome, dispatched)

    assert scheduler.run_finished(decision.flow_run_id, "CRASHED") is None  # reported once
    assert (summary.deployment, summary.flow, summary.scheduled_for) == ("job", "job", at(0))
    assert (summary.expected_start, summary.lateness_ms) == (at(0) + slot.offset, 1500)
    assert summary.as_dict()["started_at"] == started.isoformat()
    assert (summary.state, summary.signal, summary.attempt) == ("Crashed", "SIGKILL", None)


def test_the_timer_fires_each_planned_time_when_due_and_plans_the_next(tmp_path, store) -> None:
    scheduler, _ = make_scheduler(tmp_path, store, every_minute())
    scheduler.plan_fires(at(0) + SECOND)

    assert scheduler.next_due() == at(1)
    assert scheduler.tick(at(1) - timedelta(microseconds=1)) == []
    [decision] = scheduler.tick(at(1))
    assert (decision.nominal, decision.action) == (at(1), "fired")
    assert scheduler.next_due() == at(2)
    assert scheduler.tick(at(1) + SECOND) == []  # one fire per nominal time
    scheduler.record_fire_times()

    assert store.read_deployment("job").last_fire == at(1)


def test_a_fire_is_due_at_its_nominal_time_plus_the_deployments_jitter(tmp_path, store) -> None:
    scheduler, _ = make_scheduler(tmp_path, store, every_minute(jitter="30s"))
    slot = scheduler.deployment("job")
    assert slot is not None
    assert slot.offset > timedelta(0)
    scheduler.plan_fires(at(0))  # the 12:00 fire is not due yet: it is planned

    assert scheduler.next_due() == at(0) + slot.offset
    scheduler.plan_fires(at(0) + slot.offset + SECOND)  # planned already: it stays
    assert scheduler.next_due() == at(0) + slot.offset
    [decision] = scheduler.tick(at(0) + slot.offset)
    assert decision.nominal == at(0)
    assert scheduler.next_due() == at(1) + slot.offset
    assert scheduler.tick(at(1)) == []
    [decision] = scheduler.tick(at(1) + slot.offset)
    assert decision.nominal == at(1)


def test_every_deployment_due_at_one_moment_is_decided_in_one_tick(tmp_path, store) -> None:
    names = [f"d{i:03}" for i in range(200)]
    scheduler, _ = make_scheduler(
        tmp_path, store, "".join(every_minute(name) for name in names), Workers(size=8)
    )
    scheduler.plan_fires(at(0) + SECOND)

    decisions = scheduler.tick(at(1))

    assert sorted(decision.deployment for decision in decisions) == names
    assert {decision.nominal for decision in decisions} == {at(1)}
    assert scheduler.next_due() == at(2)


def reload(tmp_path: Path, store, scheduler: Scheduler, old: str, new: str, now: datetime) -> None:
    """Edit the config and apply it as the daemon's reload does."""
    config = tmp_path / "gnomon.toml"
    config.write_text(config.read_text().replace(old, new))
    result = load_config(config)
    assert result.ok, [str(problem) for problem in result.problems]
    sync_deployments(store, result.config.deployments, now)
    scheduler.set_deployments(result.config.deployments, store.read_schedule_states())
    scheduler.plan_fires(now)


def test_a_reload_keeps_a_due_fire_of_an_unchanged_schedule(tmp_path, store) -> None:
    # The reload is applied in the loop's pass just before its tick: a fire that fell due
    # since the last tick must still be decided, jitter or not.
    scheduler, _ = make_scheduler(
        tmp_path, store, every_minute("a", jitter="30s") + every_minute("b", jitter="30s")
    )
    slot = scheduler.deployment("a")
    assert slot is not None
    scheduler.plan_fires(at(0) + slot.offset + SECOND)
    now = at(1) + slot.offset + timedelta(milliseconds=3)

    reload(tmp_path, store, scheduler, 'name = "b"', 'name = "c"', now)

    assert [(d.deployment, d.nominal) for d in scheduler.tick(now)] == [("a", at(1))]


def test_a_reload_that_changes_a_schedule_drops_its_planned_fire_for_the_new_ones(
    tmp_path, store
) -> None:
    scheduler, _ = make_scheduler(tmp_path, store, every_minute())
    scheduler.plan_fires(at(0) + SECOND)
    assert len(scheduler.tick(at(1))) == 1
    assert scheduler.next_due() == at(2)

    reload(tmp_path, store, scheduler, '"* * * * *"', '"*/5 * * * *"', at(1) + SECOND)

    assert scheduler.next_due() == at(5)
    assert scheduler.tick(at(2)) == []
    assert [d.nominal for d in scheduler.tick(at(5))] == [at(5)]


def test_a_deployment_removed_by_a_reload_fires_no_more(tmp_path, store) -> None:
    scheduler, _ = make_scheduler(tmp_path, store, every_minute("a") + every_minute("b"))
    scheduler.plan_fires(at(0) + SECOND)

    reload(tmp_path, store, scheduler, 'name = "b"', 'name = "c"', at(0) + 2 * SECOND)

    assert sorted(d.deployment for d in scheduler.tick(at(1))) == ["a", "c"]


def test_after_a_catch_up_the_timer_goes_on_from_now_not_through_the_gap(tmp_path, store) -> None:
    every_second = every_minute("busy").replace('"* * * * *"', '"* * * * * *"')
    scheduler, _ = make_scheduler(tmp_path, store, every_second + every_minute("quiet"))
    store.set_paused(["quiet"], True, Actor("ops", "cli"), "incident")
    scheduler.set_paused("quiet", True, at(0))
    scheduler.plan_fires(at(0))

    # A gap of an hour: the loop catches it up, then restarts the timer.
    later = at(60) + timedelta(milliseconds=500)
    caught_up = scheduler.catch_up(later, "in a gap in the ticks", at(0))
    scheduler.restart_fires(later)

    assert {d.deployment for d in caught_up} == {"busy"}
    assert scheduler.next_due() == at(60) + SECOND
    decisions = []
    while (due := scheduler.next_due()) is not None and due <= at(61):
        decisions += scheduler.tick(at(61))  # one fire per deployment and tick
    assert [d.nominal for d in decisions if d.deployment == "busy"] == [
        at(60) + n * SECOND for n in range(1, 61)
    ]
    assert [(d.nominal, d.action) for d in decisions if d.deployment == "quiet"] == [
        (at(61), "paused")
    ]


def test_a_fire_the_catch_up_decided_is_not_fired_again_by_the_timer(tmp_path, store) -> None:
    scheduler, _ = make_scheduler(tmp_path, store, every_minute(catchup="all"))
    scheduler.plan_fires(at(0) - SECOND)
    scheduler.tick(at(0))
    assert scheduler.next_due() == at(1)

    caught_up = scheduler.catch_up(at(3), "while the store failed", at(0))
    assert [d.nominal for d in caught_up] == [at(1), at(2), at(3)]

    assert scheduler.tick(at(3)) == []
    assert scheduler.next_due() == at(4)


@pytest.mark.sqlite_only
def test_a_tick_whose_store_fails_still_plans_the_next_fire(tmp_path, store) -> None:
    from gnomon.store import bound_write_waits

    scheduler, _ = make_scheduler(tmp_path, store, every_minute())
    scheduler.plan_fires(at(0) + SECOND)
    holder = sqlite3.connect(location(store), isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another program holds the database
    bound_write_waits(threading.get_ident())  # as in the daemon's loop
    try:
        with pytest.raises(Exception, match="locked"):
            scheduler.tick(at(1))
    finally:
        bound_write_waits(None)
        holder.execute("ROLLBACK")
        holder.close()

    assert scheduler.next_due() == at(2)


def test_the_schedule_state_read_at_start_and_reload_covers_active_deployments_only(
    tmp_path, store
) -> None:
    from gnomon.store import Actor

    make_scheduler(tmp_path, store, every_minute("a") + every_minute("b"))
    store.set_paused(["a"], True, Actor("ops", "cli"), "incident")
    config = tmp_path / "gnomon.toml"
    config.write_text(textwrap.dedent(every_minute("a")))
    sync_deployments(store, load_config(config).config.deployments, at(2))

    states = store.read_schedule_states()

    assert set(states) == {"a"}  # b left the config
    assert states["a"] == ScheduleState(
        name="a",
        anchor=None,
        paused=True,
        paused_until=None,
        last_fire=None,
        fires_from=T0 - timedelta(hours=1),  # make_scheduler's sync
    )


def test_one_fire_of_many_deployments_creates_runs_for_exactly_the_new_unpaused_ones(
    tmp_path, store
) -> None:
    names = ["a", "b", "c", "d"]
    scheduler, _ = make_scheduler(tmp_path, store, "".join(every_minute(n) for n in names))
    [first] = scheduler.fire_many([("b", at(0))], at(0))
    store.set_paused(["c"], True, Actor("operator", "cli"), None)  # as `gnomon pause c`

    decisions = scheduler.fire_many([(name, at(0)) for name in names], at(0))

    actions = {decision.deployment: decision.action for decision in decisions}
    assert actions == {"a": "fired", "b": "duplicate", "c": "paused", "d": "fired"}
    runs = {run.deployment_name: run.id for run in store.read_runs()}
    assert sorted(runs) == ["a", "b", "d"]
    assert runs["b"] == first.flow_run_id
    fired = {d.deployment: d.flow_run_id for d in decisions if d.action == "fired"}
    for name, run_id in fired.items():
        assert runs[name] == run_id
        history = store.read_states(run_id)
        assert [state.name for state in history] == ["Pending"]


def test_a_deployments_memory_limit_and_log_cap_travel_with_its_runs_to_the_workers(
    tmp_path: Path, store
) -> None:
    daemon = '\n[daemon]\nmemory_limit = "300MB"\nmax_log_lines = 500\n'
    big = every_minute("big", memory_limit="1GiB", max_log_bytes="2MB")
    scheduler, workers = make_scheduler(tmp_path, store, daemon + big + every_minute("small"))

    scheduler.fire_many([("big", at(1)), ("small", at(1))], at(1))
    scheduler.dispatch(at(1))

    by_deployment = {
        row.deployment_name: workers.limits[row.id] for row in store.read_runs(limit=10)
    }
    assert by_deployment == {
        "big": RunLimits(memory=2**30, log_lines=500, log_bytes=2_000_000),
        "small": RunLimits(memory=300_000_000, log_lines=500, log_bytes=10_000_000),
    }
