"""Syncing deployments into a real SQLite store: added, changed, removed and re-added; pause
flags and interval anchors that survive re-syncs and restarts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import StatementError

from gnomon.deployments import Deployment, sync_deployments
from gnomon.store import Actor, Store

pytestmark = pytest.mark.backends

T0 = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
T1 = T0 + timedelta(hours=1)
T2 = T0 + timedelta(hours=2)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return tmp_path / "gnomon.toml"


def make(source: Path, name: str = "job", **fields: Any) -> Deployment:
    """A deployment as the loader would build it from ``source`` (flows are not imported)."""
    if "cron" not in fields:
        fields.setdefault("interval", "1m")
    return Deployment.model_validate(
        {"name": name, "flow": "flows.py:job", "source_file": source, **fields}
    )


def pause_of(row: dict[str, Any]) -> tuple[Any, ...]:
    """paused, paused_by, paused_at, paused_reason."""
    return (row.paused, row.paused_by, row.paused_at, row.paused_reason)


def names(store: Store, active_only: bool = True) -> list[str]:
    return [row.name for row in store.read_deployments(active_only=active_only)]


def test_a_first_sync_registers_each_deployment_with_its_definition(store, source) -> None:
    result = sync_deployments(
        store,
        [
            make(source, "every", parameters={"n": 2}, tags=["etl"], description="d"),
            make(source, "nightly", cron="30 2 * * *", timezone="Europe/Berlin", retries=3),
        ],
        T0,
    )

    assert (result.added, result.changed, result.removed, result.unchanged) == (
        ["every", "nightly"],
        [],
        [],
        [],
    )
    every, nightly = store.read_deployments()
    assert every.flow == f"{source.parent}/flows.py:job"
    assert (every.schedule_kind, every.schedule, every.timezone) == (
        "interval",
        "1m",
        "UTC",
    )
    assert (every.parameters, every.tags, every.description) == ({"n": 2}, ["etl"], "d")
    assert every.anchor == T0  # an interval counts from its first registration
    assert (every.registered_at, every.updated, every.source_file) == (T0, T0, str(source))
    assert (every.active, every.paused, every.last_fire, every.fires_from) == (
        True,
        False,
        None,
        T0,
    )
    assert (nightly.schedule_kind, nightly.schedule, nightly.timezone) == (
        "cron",
        "30 2 * * *",
        "Europe/Berlin",
    )
    assert nightly.anchor is None
    assert nightly.policies["retries"] == 3
    assert nightly.policies == make(source, cron="30 2 * * *", retries=3).policies()


def test_syncing_the_same_config_again_changes_nothing(store, source) -> None:
    deployments = [make(source, "a"), make(source, "b", cron="0 * * * *")]
    sync_deployments(store, deployments, T0)

    result = sync_deployments(store, deployments, T1)

    assert (result.added, result.changed, result.removed, result.unchanged) == (
        [],
        [],
        [],
        ["a", "b"],
    )
    assert [row.updated for row in store.read_deployments()] == [T0, T0]


@pytest.mark.parametrize(
    "change",
    [
        {"flow": "other.py:job"},
        {"cron": "*/5 * * * *"},
        {"timezone": "Asia/Tokyo"},
        {"parameters": {"n": 3}},
        {"tags": ["new"]},
        {"overlap": "queue"},
        {"timeout": "10m"},
        {"description": "now described"},
    ],
)
def test_a_changed_definition_is_updated_keeping_registration_and_last_fire(
    store, source, change: dict[str, Any]
) -> None:
    sync_deployments(store, [make(source, cron="0 * * * *")], T0)
    store.record_fire_times_many([("job", T0)])

    result = sync_deployments(store, [make(source, **{"cron": "0 * * * *", **change})], T1)

    assert result.changed == ["job"]
    row = store.read_deployment("job")
    assert (row.registered_at, row.updated, row.last_fire) == (T0, T1, T0)
    expected = make(source, **{"cron": "0 * * * *", **change})
    assert (row.flow, row.schedule, row.timezone) == (
        expected.flow,
        expected.schedule,
        expected.timezone,
    )
    assert (row.parameters, row.tags, row.policies, row.description) == (
        expected.parameters,
        list(expected.tags),
        expected.policies(),
        expected.description,
    )


def test_the_schedule_decides_fires_from_registration_a_return_or_a_resume(store, source) -> None:
    # Catch-up starts at the later of the last fire and fires_from: a deployment that never
    # fired catches up from its registration, and neither the time it was out of the config
    # nor a pause is caught up.
    sync_deployments(store, [make(source, "a"), make(source, "b"), make(source, "c")], T0)
    assert [store.read_deployment(name).fires_from for name in "abc"] == [T0] * 3

    sync_deployments(store, [make(source, "a", cron="30 * * * *"), make(source, "c")], T1)
    assert store.read_deployment("a").fires_from == T0  # a schedule change keeps it

    store.set_paused(["c"], True, Actor("alice", "cli"), "incident", now=T1)
    store.set_paused(["c"], False, Actor("alice", "cli"), None, now=T2)
    sync_deployments(store, [make(source, "a"), make(source, "b"), make(source, "c")], T2)

    assert [store.read_deployment(name).fires_from for name in "abc"] == [T0, T2, T2]


def test_a_deployment_gone_from_the_config_is_deactivated_and_its_row_stays(store, source) -> None:
    sync_deployments(store, [make(source, "a"), make(source, "b")], T0)
    store.record_fire_times_many([("b", T0)])

    result = sync_deployments(store, [make(source, "a")], T1)
    again = sync_deployments(store, [make(source, "a")], T2)

    assert result.removed == ["b"]
    assert again.removed == []  # removed once, not at every sync
    assert names(store) == ["a"]
    assert names(store, active_only=False) == ["a", "b"]
    removed = store.read_deployment("b")
    assert (removed.active, removed.last_fire) == (False, T0)


def test_a_re_added_deployment_is_reactivated_with_its_original_anchor(store, source) -> None:
    sync_deployments(store, [make(source, "a")], T0)
    sync_deployments(store, [], T1)

    result = sync_deployments(store, [make(source, "a", interval="5m")], T2)

    assert result.added == ["a"]
    row = store.read_deployment("a")
    assert (row.active, row.anchor, row.registered_at, row.schedule) == (
        True,
        T0,
        T0,
        "5m",
    )


def test_keep_leaves_absent_deployments_as_they_are(store, source) -> None:
    sync_deployments(store, [make(source, "a"), make(source, "b")], T0)

    result = sync_deployments(store, [make(source, "a")], T1, keep={"b"})

    assert result.removed == []
    assert names(store) == ["a", "b"]


def test_the_interval_anchor_survives_re_syncs_restarts_and_interval_changes(store, source) -> None:
    sync_deployments(store, [make(source, interval="7m")], T0)
    restarted = Store(store.url)
    try:
        sync_deployments(restarted, [make(source, interval="7m")], T1)
        result = sync_deployments(restarted, [make(source, interval="10m")], T2)
        row = restarted.read_deployment("job")
    finally:
        restarted.close()

    assert result.changed == ["job"]
    assert (row.anchor, row.schedule) == (T0, "10m")
    trigger = make(source, interval="10m").timing(row.anchor)
    assert trigger.next_fire(T2) == T0 + 13 * timedelta(minutes=10)


def test_an_anchor_in_the_file_is_stored_and_stays_when_the_file_drops_it(store, source) -> None:
    pinned = datetime(2027, 1, 1, 9, 0, tzinfo=UTC)
    sync_deployments(store, [make(source, anchor=pinned)], T0)
    assert store.read_deployment("job").anchor == pinned

    moved = sync_deployments(store, [make(source, anchor=pinned + timedelta(seconds=30))], T1)
    dropped = sync_deployments(store, [make(source)], T2)

    assert (moved.changed, dropped.unchanged) == (["job"], ["job"])
    assert store.read_deployment("job").anchor == pinned + timedelta(seconds=30)


def test_a_cron_deployment_turned_interval_is_anchored_when_it_changed(store, source) -> None:
    sync_deployments(store, [make(source, cron="0 * * * *")], T0)

    sync_deployments(store, [make(source, interval="15m")], T1)

    row = store.read_deployment("job")
    assert (row.schedule_kind, row.anchor) == ("interval", T1)


def test_a_pause_survives_a_re_sync_and_a_restart_when_the_file_is_silent(store, source) -> None:
    sync_deployments(store, [make(source)], T0)
    assert store.set_paused(["job"], True, Actor("alice", "cli"), "maintenance", now=T1)

    result = sync_deployments(store, [make(source)], T2)
    restarted = Store(store.url)
    try:
        sync_deployments(restarted, [make(source)], T2 + timedelta(hours=1))
        row = restarted.read_deployment("job")
    finally:
        restarted.close()

    assert result.unchanged == ["job"]
    assert pause_of(row) == (True, "alice", T1, "maintenance")


@pytest.mark.parametrize(
    ("stated", "outcome", "expected"),
    [
        (False, "changed", (False, None, None, None)),  # the file resumes it
        (True, "unchanged", (True, "alice", T1, "maintenance")),  # paused already: who and why stay
        (None, "unchanged", (True, "alice", T1, "maintenance")),  # silent: the store's pause stands
    ],
)
def test_a_pause_made_in_the_store_meets_what_the_file_states(
    store, source, stated: bool | None, outcome: str, expected: tuple[Any, ...]
) -> None:
    sync_deployments(store, [make(source)], T0)
    store.set_paused(["job"], True, Actor("alice", "cli"), "maintenance", now=T1)

    result = sync_deployments(store, [make(source, paused=stated)], T2)

    assert getattr(result, outcome) == ["job"]
    assert pause_of(store.read_deployment("job")) == expected


def test_a_deployment_registered_with_paused_true_starts_paused_and_says_so(store, source) -> None:
    added = sync_deployments(store, [make(source, paused=True)], T0)

    row = store.read_deployment("job")
    assert added.added == ["job"]
    assert pause_of(row) == (True, f"config file {source}", T0, f"paused = true in {source}")
    assert row.config_paused is True


ALICE = Actor("alice", "cli")
DAEMON = Actor("gnomon-daemon", "daemon")


# Each step: what the file states at a sync (None: silent), or an operator's (or the
# daemon's) pause or resume between syncs; then whether the deployment is paused. The file's
# value is applied only when it differs from the value it had at the last sync.
@pytest.mark.parametrize(
    ("steps", "paused"),
    [
        # The case of the issue: a file that keeps saying false leaves an operator's pause.
        ([("file", False), ("pause", ALICE), ("file", False), ("file", False)], True),
        # ... and a pause the daemon made (after failures, or one that ends by itself).
        ([("file", False), ("pause", DAEMON), ("file", False)], True),
        # A file that keeps saying true leaves an operator's resume.
        ([("file", True), ("resume", ALICE), ("file", True)], False),
        # Edited to true, then to false: each edit applies.
        ([("file", False), ("file", True)], True),
        ([("file", False), ("pause", ALICE), ("file", True), ("file", False)], False),
        ([("file", True), ("resume", ALICE), ("file", False), ("file", True)], True),
        # Silent, then stating it: a change of the file.
        ([("file", None), ("pause", ALICE), ("file", False)], False),
        # Stating it, silent (no change: the store's pause stands), stating it again.
        ([("file", True), ("resume", ALICE), ("file", None), ("file", None)], False),
        ([("file", True), ("resume", ALICE), ("file", None), ("file", True)], True),
    ],
)
def test_the_file_s_paused_applies_only_when_it_changes_in_the_file(
    store, source, steps: list[tuple[str, Any]], paused: bool
) -> None:
    now = T0
    for kind, value in steps:
        now += timedelta(minutes=1)
        if kind == "file":
            sync_deployments(store, [make(source, paused=value)], now)
        else:
            store.set_paused(["job"], kind == "pause", value, "by hand", now=now)

    assert store.read_deployment("job").paused is paused


def test_a_sync_reports_a_change_only_when_the_file_s_new_value_changes_the_pause(
    store, source
) -> None:
    sync_deployments(store, [make(source, paused=False)], T0)
    store.set_paused(["job"], True, ALICE, "incident", now=T1)

    kept = sync_deployments(store, [make(source, paused=False)], T2)
    # Edited to true while an operator has it paused: kept, the operator's pause stays.
    agreed = sync_deployments(store, [make(source, paused=True)], T2 + timedelta(minutes=1))
    resumed = sync_deployments(store, [make(source, paused=False)], T2 + timedelta(minutes=2))

    assert (kept.unchanged, agreed.unchanged, resumed.changed) == (["job"], ["job"], ["job"])
    assert resumed.fields == {"job": ["paused"]}  # the pause, not the definition
    row = store.read_deployment("job")
    assert (row.paused, row.config_paused, row.fires_from) == (
        False,
        False,
        T2 + timedelta(minutes=2),
    )


def test_paused_true_stated_anew_during_a_pause_that_ends_by_itself_makes_it_last(
    store, source
) -> None:
    from gnomon.deployments import compare

    sync_deployments(store, [make(source, paused=False)], T0)
    until = T2 + timedelta(hours=5)
    store.set_paused(["job"], True, ALICE, "op", now=T1, until=until)
    [before] = compare([make(source, paused=True)], (), store.read_deployments())

    edited = sync_deployments(store, [make(source, paused=True)], T2)
    again = sync_deployments(store, [make(source, paused=True)], T2 + timedelta(minutes=1))

    assert before.changed == ("paused",)
    assert (edited.changed, edited.fields) == (["job"], {"job": ["paused"]})
    assert again.unchanged == ["job"]
    row = store.read_deployment("job")
    assert pause_of(row) == (True, f"config file {source}", T2, f"paused = true in {source}")
    assert (row.paused_until, row.config_paused) == (None, True)


def test_stating_the_pause_the_deployment_has_is_bookkeeping_not_a_change(store, source) -> None:
    sync_deployments(store, [make(source), make(source, name="other")], T0)  # silent: NULL
    store.set_paused(["job"], True, ALICE, "incident", now=T1)

    stated = sync_deployments(
        store, [make(source, paused=True), make(source, name="other", paused=False)], T2
    )

    assert (stated.changed, stated.fields) == ([], {})
    assert stated.unchanged == ["job", "other"]
    job, other = store.read_deployment("job"), store.read_deployment("other")
    assert (pause_of(job), job.config_paused) == ((True, "alice", T1, "incident"), True)
    assert (other.paused, other.config_paused) == (False, False)


def test_the_file_and_the_store_differ_on_paused_only_when_a_reload_would_change_it(
    store, source
) -> None:
    from gnomon.deployments import compare

    sync_deployments(store, [make(source, paused=False)], T0)
    store.set_paused(["job"], True, ALICE, "incident", now=T1)

    def drift(stated: bool | None) -> tuple[str, ...]:
        [compared] = compare([make(source, paused=stated)], (), store.read_deployments())
        return compared.changed

    assert (drift(False), drift(None), drift(True)) == ((), (), ())
    store.set_paused(["job"], False, ALICE, None, now=T2)
    assert drift(True) == ("paused",)


def test_pausing_an_unknown_deployment_reports_it(store) -> None:
    assert store.set_paused(["nope"], True, Actor("alice", "cli"), None, now=T0) == []
    assert store.read_deployment("nope") is None


def test_fire_times_are_recorded_per_deployment(store, source) -> None:
    sync_deployments(store, [make(source, "a"), make(source, "b")], T0)

    store.record_fire_times_many([("a", T1)])

    rows = {row.name: row for row in store.read_deployments()}
    assert (rows["a"].last_fire, rows["b"].last_fire) == (T1, None)


def test_a_sync_that_fails_writes_nothing(store, source) -> None:
    sync_deployments(store, [make(source, "a")], T0)
    unstorable = make(source, "c", parameters={"x": object()})  # not JSON

    # SQLite's driver binds text SQLAlchemy encoded; psycopg encodes JSON itself.
    with pytest.raises((StatementError, TypeError), match="not JSON serializable"):
        sync_deployments(store, [make(source, "b"), unstorable], T1)

    assert names(store) == ["a"]  # neither b's insert nor a's removal was committed


SCHEMA = {"title": "job", "type": "object", "properties": {"n": {"type": "integer"}}}


def test_a_flow_s_parameter_schema_is_stored_and_kept_when_the_load_did_not_check_it(
    store, source
) -> None:
    schemas = {make(source).flow: SCHEMA}
    first = sync_deployments(store, [make(source)], T0, schemas=schemas)
    unchecked = sync_deployments(store, [make(source)], T1)  # e.g. a reload whose check failed

    assert first.added == ["job"]
    assert unchecked.unchanged == ["job"]
    assert store.read_deployment("job").parameter_schema == SCHEMA


def test_a_new_schema_is_no_change_of_the_deployment_and_a_new_flow_drops_the_old_schema(
    store, source
) -> None:
    sync_deployments(store, [make(source)], T0)
    filled = sync_deployments(store, [make(source)], T1, schemas={make(source).flow: SCHEMA})
    assert filled.unchanged == ["job"]  # the schema is the flow's, not the file's
    assert store.read_deployment("job").parameter_schema == SCHEMA

    moved = make(source).model_copy(update={"flow": "other.py:job"})
    changed = sync_deployments(store, [moved], T2)

    assert changed.changed == ["job"]
    assert store.read_deployment("job").parameter_schema is None  # not the old flow's


SERVED = "serve:/srv/jobs/serve_me.py"


def test_syncing_one_source_never_deactivates_another_sources_deployments(store, source) -> None:
    sync_deployments(store, [make(source, "from-file")], T0)
    sync_deployments(store, [make(None, "from-script")], T0, source=SERVED)

    config = sync_deployments(store, [], T1)  # the file's deployment removed
    served = sync_deployments(store, [], T2, source=SERVED)  # the script stopped

    assert (config.removed, served.removed) == (["from-file"], ["from-script"])
    sync_deployments(store, [make(None, "from-script")], T2, source=SERVED)
    assert sync_deployments(store, [make(source, "from-file")], T2).removed == []
    rows = {row.name: row for row in store.read_deployments()}
    assert {name: row.source for name, row in rows.items()} == {
        "from-file": "config",
        "from-script": SERVED,
    }


def test_a_name_another_source_has_active_is_refused_naming_both(store, source) -> None:
    sync_deployments(store, [make(source, "shared", cron="0 1 * * *")], T0)

    result = sync_deployments(store, [make(None, "shared", cron="0 2 * * *")], T1, source=SERVED)

    assert result.refused == {"shared": "config"}
    (message,) = result.refusals(SERVED)
    assert "/srv/jobs/serve_me.py" in message
    assert "the config file" in message
    row = store.read_deployment("shared")
    assert (row.schedule, row.source) == ("0 1 * * *", "config")


def test_a_name_another_source_gave_up_is_taken_over(store, source) -> None:
    sync_deployments(store, [make(None, "moved")], T0, source=SERVED)
    sync_deployments(store, [], T1, source=SERVED)  # the script stopped serving it

    result = sync_deployments(store, [make(source, "moved", cron="0 3 * * *")], T2)

    assert (result.added, result.refused) == (["moved"], {})
    row = store.read_deployment("moved")
    assert (row.active, row.source, row.schedule) == (True, "config", "0 3 * * *")


OTHER_SCRIPT = "serve:/srv/jobs/other.py"


def test_without_the_store_lock_a_scripts_active_name_is_refused_naming_release(
    store, source
) -> None:
    """Not holding the lock, a sync cannot know whether the script still serves it."""
    sync_deployments(store, [make(None, "shared")], T0, source=SERVED)

    result = sync_deployments(store, [make(source, "shared", cron="0 3 * * *")], T1)

    assert result.refused == {"shared": SERVED}
    (message,) = result.refusals("config")
    assert "gnomon deployments release shared" in message
    assert store.read_deployment("shared").source == SERVED


@pytest.mark.parametrize("taker", ["config", OTHER_SCRIPT])
def test_the_lock_holder_takes_over_a_name_a_killed_script_left_active(
    store, source, taker: str
) -> None:
    sync_deployments(store, [make(None, "shared")], T0, source=SERVED)  # then SIGKILLed

    result = sync_deployments(
        store, [make(source, "shared", cron="0 3 * * *")], T2, source=taker, lock_held=True
    )

    assert (result.added, result.refused, result.taken_over) == (["shared"], {}, {"shared": SERVED})
    row = store.read_deployment("shared")
    assert (row.active, row.source, row.schedule) == (True, taker, "0 3 * * *")
    assert row.fires_from == T2  # the killed script's downtime is not the taker's to catch up


def test_the_lock_holder_script_is_still_refused_the_config_files_names(store, source) -> None:
    sync_deployments(store, [make(source, "nightly")], T0)  # the config daemon is not running

    result = sync_deployments(store, [make(None, "nightly")], T1, source=SERVED, lock_held=True)

    assert (result.refused, result.taken_over) == ({"nightly": "config"}, {})
    (message,) = result.refusals(SERVED)
    assert "remove it from the config file and run `gnomon deployments apply`" in message
    assert store.read_deployment("nightly").source == "config"


def test_a_script_serving_again_after_a_kill_keeps_its_own_deployments(store, source) -> None:
    sync_deployments(store, [make(None, "mine")], T0, source=SERVED)  # then SIGKILLed

    again = sync_deployments(store, [make(None, "mine")], T2, source=SERVED, lock_held=True)

    assert (again.unchanged, again.taken_over) == (["mine"], {})
    assert store.read_deployment("mine").fires_from == T0  # its downtime is caught up


def test_releasing_retires_only_that_name_of_that_script(store, source) -> None:
    from gnomon.deployments import release_deployment

    sync_deployments(store, [make(None, "a"), make(None, "b")], T0, source=SERVED)
    sync_deployments(store, [make(source, "c")], T0)

    assert not release_deployment(store, "c", SERVED, T1)  # the config file's
    assert release_deployment(store, "a", SERVED, T1)
    assert not release_deployment(store, "a", SERVED, T2)  # already retired

    assert names(store) == ["b", "c"]
    assert store.read_deployment("a").updated == T1
