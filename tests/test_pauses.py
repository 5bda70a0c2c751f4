"""Pauses that end by themselves and pauses after failures, decided by the scheduler against
a real store with literal times: what fires, what does not, what is audited.

The daemon-level behaviour (real processes, the CLI, notifications) is in
test_pauses_daemon.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from conftest import create_run
from gnomon.daemon._recovery import recover
from gnomon.daemon._scheduler import Scheduler
from gnomon.deployments import load_config
from gnomon.store import Actor
from test_scheduler import SECOND, Workers, at, every_minute, make_scheduler, states

pytestmark = pytest.mark.backends

ALICE = Actor("alice", "cli")


def pause_until(store, scheduler: Scheduler, until: datetime, now: datetime) -> None:
    """``gnomon pause job --until UNTIL`` at ``now``, as the daemon's poll hands it over."""
    assert store.set_paused(["job"], True, ALICE, "freeze", now=now, until=until) == ["job"]
    scheduler.set_paused("job", True, now, until)


def tick_minutes(scheduler: Scheduler, minutes: range, late: timedelta = timedelta(0)) -> list:
    """Tick at each minute of ``minutes`` (``late`` after it); the decisions."""
    decisions = []
    for minute in minutes:
        decisions += scheduler.tick(at(minute) + late)
    return decisions


def daemon_entries(store) -> list[tuple[str, str | None]]:
    return [
        (entry.action, entry.reason)
        for entry in reversed(store.read_audit(limit=100))
        if entry.actor == "gnomon-daemon"
    ]


def restart(tmp_path: Path, store) -> Scheduler:
    """A new scheduler on the same store, as a daemon started again would make."""
    scheduler = Scheduler(store, Workers(), daemon_id="test-daemon-2")
    config = load_config(tmp_path / "gnomon.toml").config
    scheduler.set_deployments(config.deployments, store.read_schedule_states())
    return scheduler


# Pauses that end by themselves.


def test_a_pause_until_a_time_ends_then_by_itself_and_the_paused_fires_are_not_caught_up(
    tmp_path, store
) -> None:
    scheduler, _ = make_scheduler(tmp_path, store, every_minute(catchup="all"))
    scheduler.plan_fires(at(0))
    pause_until(store, scheduler, at(3), at(0) + 10 * SECOND)

    decisions = tick_minutes(scheduler, range(1, 6))

    actions = [(d.nominal, d.action) for d in decisions if d.deployment == "job"]
    assert actions == [
        (at(1), "paused"),
        (at(2), "paused"),
        (at(3), "resumed"),  # before the fire at the until time, which runs
        (at(3), "fired"),
        (at(4), "skipped"),  # the 12:03 run still holds its worker (overlap = skip)
        (at(5), "skipped"),
    ]
    assert states(store) == [("12:03", "Pending"), ("12:04", "Skipped"), ("12:05", "Skipped")]
    assert daemon_entries(store) == [("resume", "pause until 2027-03-01T12:03:00+00:00 ended")]
    row = store.read_deployment("job")
    assert (row.paused, row.paused_until, row.paused_by) == (False, None, None)
    assert scheduler.catch_up(at(5) + 30 * SECOND) == []  # nothing left to catch up


def test_the_loop_wakes_for_a_pause_s_end_before_the_next_fire(tmp_path, store) -> None:
    scheduler, _ = make_scheduler(tmp_path, store, every_minute())
    scheduler.plan_fires(at(0))
    pause_until(store, scheduler, at(0) + 20 * SECOND, at(0) + 10 * SECOND)

    assert scheduler.next_due() == at(0) + 20 * SECOND
    scheduler.tick(at(0) + 20 * SECOND)
    assert scheduler.next_due() == at(1)


def test_a_fire_of_the_paused_period_that_comes_due_after_the_pause_ended_is_still_paused(
    tmp_path, store
) -> None:
    # Paused until 12:02:30; the loop was busy from 12:01 to 12:02:40, so the 12:02 fire
    # comes due in the tick that ends the pause. It belongs to the paused period.
    scheduler, _ = make_scheduler(tmp_path, store, every_minute())
    scheduler.plan_fires(at(0))
    pause_until(store, scheduler, at(2) + 30 * SECOND, at(0) + 10 * SECOND)

    decisions = scheduler.tick(at(1)) + scheduler.tick(at(2) + 40 * SECOND)
    decisions += scheduler.tick(at(3))

    assert [(d.nominal, d.action) for d in decisions] == [
        (at(1), "paused"),
        (at(2) + 30 * SECOND, "resumed"),
        (at(2), "paused"),
        (at(3), "fired"),
    ]


def test_a_pause_that_ended_while_no_daemon_ran_ends_at_start_catching_up_only_what_came_after(
    tmp_path, store
) -> None:
    scheduler, _ = make_scheduler(tmp_path, store, every_minute(catchup="all"))
    scheduler.fire_many([("job", at(0))], at(0))
    scheduler.record_fire_times()
    store.set_paused(["job"], True, ALICE, "freeze", now=at(0) + SECOND, until=at(3))

    # The daemon stopped at 12:00:01 and starts again at 12:05:30.
    started = restart(tmp_path, store)
    decisions = started.catch_up(at(5) + 30 * SECOND)

    assert [(d.nominal, d.action) for d in decisions][:1] == [(at(3), "resumed")]
    # 12:01 and 12:02 were paused; from the pause's end on, the daemon was down.
    assert states(store) == [
        ("12:00", "Pending"),
        ("12:03", "Pending"),
        ("12:04", "Pending"),
        ("12:05", "Pending"),
    ]
    assert [row.trigger for row in store.read_runs(deployment="job")][:3] == ["catchup"] * 3
    assert daemon_entries(store) == [("resume", "pause until 2027-03-01T12:03:00+00:00 ended")]
    assert store.read_deployment("job").paused is False


def test_a_pause_that_ends_later_than_the_daemon_s_restart_stays_until_its_end(
    tmp_path, store
) -> None:
    make_scheduler(tmp_path, store, every_minute(catchup="all"))
    store.set_paused(["job"], True, ALICE, "freeze", now=at(0), until=at(10))

    started = restart(tmp_path, store)
    assert started.catch_up(at(5)) == []
    assert started.next_due() == at(10)
    assert store.read_deployment("job").paused is True


def test_a_resume_ends_a_pause_early_and_the_daemon_then_ends_nothing(tmp_path, store) -> None:
    scheduler, _ = make_scheduler(tmp_path, store, every_minute())
    scheduler.plan_fires(at(0))
    pause_until(store, scheduler, at(5), at(0) + 10 * SECOND)

    store.set_paused(["job"], False, ALICE, None, now=at(1) + 10 * SECOND)
    scheduler.set_paused("job", False, at(1) + 10 * SECOND)
    decisions = tick_minutes(scheduler, range(2, 6))

    assert "resumed" not in [d.action for d in decisions]
    assert daemon_entries(store) == []
    assert states(store)[0] == ("12:02", "Pending")


def test_a_pause_made_longer_meanwhile_is_not_ended_at_its_old_time(tmp_path, store) -> None:
    scheduler, _ = make_scheduler(tmp_path, store, every_minute())
    scheduler.plan_fires(at(0))
    pause_until(store, scheduler, at(2), at(0) + 10 * SECOND)
    # Another operator makes it longer; the daemon has not polled yet.
    store.set_paused(["job"], True, ALICE, "longer", now=at(1), until=at(4))

    decisions = tick_minutes(scheduler, range(1, 4))
    scheduler.set_paused("job", True, at(3), at(4))  # the poll brings the new end
    decisions += tick_minutes(scheduler, range(4, 5))

    assert [(d.nominal, d.action) for d in decisions] == [
        (at(1), "paused"),
        (at(2), "paused"),  # not ended: the store's pause is another one now
        (at(3), "paused"),
        (at(4), "resumed"),
        (at(4), "fired"),
    ]


# How pauses meet in the store.


@pytest.mark.parametrize(
    ("first", "second", "changed", "until"),
    [
        (None, at(5), False, None),  # until resumed is already longer
        (at(5), at(9), True, at(9)),  # later: made longer
        (at(5), at(3), False, at(5)),  # earlier: never shortened
        (at(5), at(5), False, at(5)),
        (at(5), None, True, None),  # a plain pause: until resumed
    ],
)
def test_pausing_a_paused_deployment_only_ever_makes_its_pause_longer(
    tmp_path, store, first, second, changed: bool, until
) -> None:
    make_scheduler(tmp_path, store, every_minute())
    store.set_paused(["job"], True, ALICE, "first", now=at(0), until=first)

    result = store.set_paused(["job"], True, Actor("bob", "cli"), "second", now=at(1), until=second)

    row = store.read_deployment("job")
    assert (result == ["job"], row.paused_until) == (changed, until)
    assert (row.paused_by, row.paused_reason, row.paused_at) == ("alice", "first", at(0))
    entries = [entry for entry in store.read_audit(limit=10) if entry.action == "pause"]
    assert len(entries) == (2 if changed else 1)
    if changed and until is not None:
        assert entries[0].detail == {"until": until.isoformat()}


def test_a_resume_clears_the_pause_s_end(tmp_path, store) -> None:
    make_scheduler(tmp_path, store, every_minute())
    store.set_paused(["job"], True, ALICE, "freeze", now=at(0), until=at(5))
    store.set_paused(["job"], False, ALICE, None, now=at(1))

    row = store.read_deployment("job")
    assert (row.paused, row.paused_until, row.fires_from) == (False, None, at(1))


# Pauses after failures.


def finish(store, scheduler: Scheduler, workers: Workers, run_id: str, state: str, now) -> list:
    """The run ends in ``state`` (its row first, as a worker commits it); the tick's
    decisions."""
    kind = {"Failed": "FAILED", "Crashed": "CRASHED", "TimedOut": "FAILED"}.get(state, state)
    store.set_run_state(run_id, kind.upper(), state, f"ended {state}")
    workers.running.remove(run_id)
    scheduler.run_finished(run_id, kind.upper())
    return scheduler.tick(now)


def fire_and_end(store, scheduler, workers, minute: int, state: str) -> list:
    """The fire at ``minute``, its run started and ended in ``state``."""
    [decision] = scheduler.fire_many([("job", at(minute))], at(minute))
    assert decision.action == "fired", decision
    scheduler.dispatch(at(minute))
    return finish(store, scheduler, workers, decision.flow_run_id, state, at(minute) + SECOND)


def test_n_failed_runs_in_a_row_pause_the_deployment_with_the_reason_and_an_audit_entry(
    tmp_path, store
) -> None:
    scheduler, workers = make_scheduler(tmp_path, store, every_minute(pause_after_failures=3))

    assert fire_and_end(store, scheduler, workers, 0, "Failed") == []
    assert fire_and_end(store, scheduler, workers, 1, "Crashed") == []
    [paused] = fire_and_end(store, scheduler, workers, 2, "TimedOut")

    reason = "paused after 3 consecutive failures; last: job@2027-03-01T12:02:00Z TimedOut"
    assert (paused.action, paused.reason, paused.state, paused.nominal) == (
        "auto_paused",
        reason,
        "TimedOut",
        at(2),
    )
    row = store.read_deployment("job")
    assert (row.paused, row.paused_by, row.paused_reason) == (True, "gnomon-daemon", reason)
    assert daemon_entries(store) == [("pause", reason)]
    [decision] = scheduler.fire_many([("job", at(3))], at(3))
    assert decision.action == "paused"


@pytest.mark.parametrize(
    ("ends", "paused"),
    [
        (["Failed", "Completed", "Failed", "Failed"], False),  # a completion starts it again
        (["Failed", "Cancelled", "Failed", "Failed"], True),  # a cancelled run is neither
        (["Failed", "Failed"], False),
    ],
)
def test_what_counts_towards_the_failures_in_a_row(
    tmp_path, store, ends: list[str], paused: bool
) -> None:
    scheduler, workers = make_scheduler(tmp_path, store, every_minute(pause_after_failures=3))
    for minute, state in enumerate(ends):
        if state == "Cancelled":
            [decision] = scheduler.fire_many([("job", at(minute))], at(minute))
            scheduler.dispatch(at(minute))
            store.set_run_state(decision.flow_run_id, "CANCELLED", "Cancelled", "by hand")
            workers.running.remove(decision.flow_run_id)
            scheduler.run_finished(decision.flow_run_id, "CANCELLED")
            scheduler.tick(at(minute) + SECOND)
            continue
        fire_and_end(store, scheduler, workers, minute, state)

    assert store.read_deployment("job").paused is paused


def test_deployment_retries_count_once_when_they_are_used_up(tmp_path, store) -> None:
    scheduler, workers = make_scheduler(
        tmp_path, store, every_minute(pause_after_failures=2, retries=1)
    )

    def fail_twice(minute: int) -> list:
        """A run that fails, is queued again (AwaitingRetry: no outcome yet), fails again."""
        [decision] = scheduler.fire_many([("job", at(minute))], at(minute))
        scheduler.dispatch(at(minute))
        run_id = decision.flow_run_id
        assert finish(store, scheduler, workers, run_id, "Failed", at(minute) + SECOND) == []
        scheduler.dispatch(at(minute) + SECOND)
        return finish(store, scheduler, workers, run_id, "Failed", at(minute) + 2 * SECOND)

    assert fail_twice(0) == []  # one failed run, whatever its attempts
    assert store.read_deployment("job").paused is False
    [paused] = fail_twice(1)
    assert paused.action == "auto_paused"


def test_a_resume_starts_the_count_again_and_the_count_outlives_a_restart(tmp_path, store) -> None:
    scheduler, workers = make_scheduler(tmp_path, store, every_minute(pause_after_failures=2))
    fire_and_end(store, scheduler, workers, 0, "Failed")
    assert fire_and_end(store, scheduler, workers, 1, "Failed")[0].action == "auto_paused"
    store.set_paused(["job"], False, ALICE, "fixed", now=at(2))
    scheduler.set_paused("job", False, at(2))

    # One failure since the resume: the two before it do not count.
    assert fire_and_end(store, scheduler, workers, 3, "Failed") == []
    assert store.read_deployment("job").paused is False

    # A new daemon finds the failure since the resume in the store.
    started = restart(tmp_path, store)
    [decision] = started.fire_many([("job", at(4))], at(4))
    started.dispatch(at(4))
    [paused] = finish(store, started, started.dispatcher, decision.flow_run_id, "Failed", at(5))
    assert paused.reason.startswith("paused after 2 consecutive failures; last: job@")
    assert [action for action, _ in daemon_entries(store)] == ["pause", "pause"]


def test_a_deployment_without_the_policy_never_pauses_itself(tmp_path, store) -> None:
    scheduler, workers = make_scheduler(tmp_path, store, every_minute())
    for minute in range(5):
        assert fire_and_end(store, scheduler, workers, minute, "Failed") == []
    assert store.read_deployment("job").paused is False


def test_a_pause_s_end_is_never_a_decision_about_a_stale_until(tmp_path, store) -> None:
    # The pause until 12:03 was resumed and paused again for good before the daemon polled.
    scheduler, _ = make_scheduler(tmp_path, store, every_minute())
    scheduler.plan_fires(at(0))
    pause_until(store, scheduler, at(3), at(0))
    store.set_paused(["job"], False, ALICE, None, now=at(1))
    store.set_paused(["job"], True, ALICE, "for good", now=at(1) + SECOND)

    decisions = tick_minutes(scheduler, range(3, 5))

    assert [d.action for d in decisions] == ["paused", "paused"]
    assert store.read_deployment("job").paused is True
    assert daemon_entries(store) == []


def test_a_pause_s_end_given_in_another_zone_is_the_same_instant_and_audited_in_utc(
    tmp_path, store
) -> None:
    scheduler, _ = make_scheduler(tmp_path, store, every_minute())
    scheduler.plan_fires(at(0))
    berlin = at(2).astimezone(ZoneInfo("Europe/Berlin"))  # 13:02 there
    pause_until(store, scheduler, berlin, at(0))

    decisions = tick_minutes(scheduler, range(1, 3))

    assert [(d.nominal, d.action) for d in decisions][1:] == [(at(2), "resumed"), (at(2), "fired")]
    assert daemon_entries(store) == [("resume", "pause until 2027-03-01T12:02:00+00:00 ended")]


def test_a_pause_ending_at_a_fraction_of_a_second_ends_as_stored(tmp_path, store) -> None:
    # The daemon ends the pause it read back from the store, matched to the microsecond.
    make_scheduler(tmp_path, store, every_minute())
    until = at(1) + timedelta(microseconds=123_456)
    store.set_paused(["job"], True, ALICE, "freeze", now=at(0), until=until)

    started = restart(tmp_path, store)
    [ended] = started.end_pauses(at(2))

    assert (ended.action, ended.nominal) == ("resumed", until)
    assert store.read_deployment("job").paused is False


# The dashboard's one field for a pause's end, as the CLI's and the API's inputs: a pause
# lasts at most ten years (3660 days) whether given as a duration or as a time.
@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("3661d", "pause for '3661d' is more than ten years (3660d)"),
        ("2037-03-08T12:00:01+00:00", "pause until '2037-03-08T12:00:01+00:00' is more than ten"),
        ("9999-12-31T23:59:59+00:00", "pause until '9999-12-31T23:59:59+00:00' is more than ten"),
        ("0", "pause for '0' must be positive"),
    ],
)
def test_a_pause_lasts_ten_years_at_most_however_its_end_is_given(text: str, problem: str) -> None:
    from gnomon.control import parse_pause_text
    from gnomon.exceptions import InvalidInput

    now = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)  # 3660 days later: 2037-03-08 12:00
    assert parse_pause_text("2037-03-08T12:00:00+00:00", now) == now + timedelta(days=3660)
    assert parse_pause_text("3660d", now) == now + timedelta(days=3660)
    with pytest.raises(InvalidInput) as refused:
        parse_pause_text(text, now)
    assert str(refused.value).startswith(problem)


@pytest.mark.parametrize(
    ("zone", "shown"),
    [
        ("Europe/Berlin", "9999-12-31 23:59:59 UTC (+00:00)"),  # the year 10000 there
        ("UTC", "9999-12-31 23:59:59 UTC (+00:00)"),
    ],
)
def test_a_time_the_local_zone_cannot_show_is_shown_in_utc(
    zone: str, shown: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    from gnomon.control import local_text

    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        assert local_text(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)) == shown
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.parametrize(
    ("manual", "paused"),
    [("Failed", False), ("Completed", True)],  # neither counts nor breaks the run of failures
)
def test_a_run_an_operator_asked_for_does_not_count_towards_the_failures_in_a_row(
    tmp_path, store, manual: str, paused: bool
) -> None:
    # Trying a deployment by hand does not pause its schedule, nor hide its failures.
    scheduler, workers = make_scheduler(tmp_path, store, every_minute(pause_after_failures=3))
    fire_and_end(store, scheduler, workers, 0, "Failed")
    create_run(
        store,
        {
            "id": "manual1",
            "name": "by-hand",
            "flow_name": "job",
            "deployment_name": "job",
            "scheduled_for": at(1),
            "created": at(1),
            "trigger": "manual",
            "state_type": manual.upper(),
            "state_name": manual,
        },
    )
    decisions = fire_and_end(store, scheduler, workers, 2, "Failed")  # 2 failed of the schedule
    if paused:
        decisions = fire_and_end(store, scheduler, workers, 3, "Failed")  # 3

    assert [d.action for d in decisions] == (["auto_paused"] if paused else [])
    assert store.read_deployment("job").paused is paused


def test_a_run_found_crashed_when_a_daemon_starts_counts_towards_the_failures(
    tmp_path, store
) -> None:
    scheduler, workers = make_scheduler(tmp_path, store, every_minute(pause_after_failures=2))
    fire_and_end(store, scheduler, workers, 0, "Failed")
    [decision] = scheduler.fire_many([("job", at(1))], at(1))
    scheduler.dispatch(at(1))
    store.set_run_state(decision.flow_run_id, "RUNNING", "Running", None)  # as its daemon dies

    started = restart(tmp_path, store)
    recover(store, started, "test-daemon-2", at(1) + SECOND)
    [paused] = started.tick(at(1) + 2 * SECOND)

    assert (paused.action, paused.state) == ("auto_paused", "Crashed")
    assert store.read_flow_run(decision.flow_run_id).state_name == "Crashed"
