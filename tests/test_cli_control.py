"""The operator CLI without a daemon: validate, apply, pause and resume, manual runs, cancel,
retry, logs, concurrency limits, tokens, audit. The installed ``gnomon`` script runs in a
subprocess against a real SQLite store; the daemon-side effects are in test_cli_operate.py.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gnomon.store import Store
from test_cli_daemon import gnomon, table
from test_daemon import write_config

pytestmark = pytest.mark.backends

DEPLOYMENTS = """
[[deployments]]
name = "nightly-report"
flow = "flows.py:tick"
cron = "30 2 * * *"
timezone = "Europe/Paris"
tags = ["crm"]

[[deployments]]
name = "sync-crm"
flow = "flows.py:tick"
interval = "15m"
tags = ["crm"]
parameters = { label = "crm" }

[[deployments]]
name = "heartbeat"
flow = "flows.py:tick"
interval = "1m"
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path, DEPLOYMENTS)


@pytest.fixture
def applied(config: Path, gnomon_home: Path) -> Path:
    result = gnomon(gnomon_home, "deployments", "apply", "--config", str(config))
    assert result.returncode == 0, result.stderr
    return config


def run(home: Path, config: Path, *args: str):  # type: ignore[no-untyped-def]
    return gnomon(home, *args, GNOMON_CONFIG=str(config))


# validate and apply


def test_validate_lists_every_problem_with_file_field_and_value_and_exits_2(
    tmp_path: Path, gnomon_home: Path
) -> None:
    config = write_config(
        tmp_path,
        """
        [[deployments]]
        name = "bad-cron"
        flow = "flows.py:tick"
        cron = "61 * * * *"

        [[deployments]]
        name = "bad-flow"
        flow = "flows.py:nope"
        interval = "1m"

        [[deployments]]
        name = "fine"
        flow = "flows.py:tick"
        interval = "1m"
        """,
    )

    result = gnomon(gnomon_home, "deployments", "validate", str(config))

    assert result.returncode == 2
    assert 'deployment "bad-cron": cron "61 * * * *"' in result.stderr
    assert 'deployment "bad-flow"' in result.stderr
    assert "nope" in result.stderr
    assert "2 problem(s); 1 deployment(s) valid" in result.stderr


def test_validate_of_a_good_config_exits_0_and_registers_nothing(
    config: Path, gnomon_home: Path, store: Store
) -> None:
    result = gnomon(gnomon_home, "deployments", "validate", str(config))

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok: 3 deployment(s)")
    assert store.read_deployments() == []


def test_apply_registers_the_config_and_is_audited(
    config: Path, gnomon_home: Path, store: Store
) -> None:
    first = run(gnomon_home, config, "deployments", "apply")
    again = run(gnomon_home, config, "deployments", "apply")

    assert first.returncode == 0, first.stderr
    assert "applied: 3 added, 0 removed, 0 changed" in first.stdout
    assert "applied: 0 added, 0 removed, 0 changed" in again.stdout
    assert [row.name for row in store.read_deployments()] == [
        "heartbeat",
        "nightly-report",
        "sync-crm",
    ]
    entries = store.read_audit()
    assert [(entry.action, entry.origin) for entry in entries] == [("apply", "cli")] * 2
    assert entries[-1].detail["added"] == ["nightly-report", "sync-crm", "heartbeat"]


def test_apply_with_a_deployments_problem_keeps_its_stored_version_and_exits_1(
    applied: Path, gnomon_home: Path, store: Store
) -> None:
    text = applied.read_text().replace('interval = "1m"', 'interval = "soon"')
    applied.write_text(text.replace('cron = "30 2 * * *"', 'cron = "30 3 * * *"'))

    result = run(gnomon_home, applied, "deployments", "apply")

    assert result.returncode == 1
    assert 'deployment "heartbeat": interval "soon"' in result.stderr
    assert "kept last good version: heartbeat" in result.stdout
    assert store.read_deployment("heartbeat").schedule == "1m"
    assert store.read_deployment("heartbeat").active
    assert store.read_deployment("nightly-report").schedule == "30 3 * * *"


def test_apply_of_a_file_that_does_not_parse_changes_nothing_and_exits_2(
    applied: Path, gnomon_home: Path, store: Store
) -> None:
    applied.write_text(
        applied.read_text().replace('cron = "30 2 * * *"', 'cron = "30 3 * * *"\n[[')
    )

    result = run(gnomon_home, applied, "deployments", "apply")

    assert result.returncode == 2
    assert "invalid TOML" in result.stderr
    assert "nothing applied" in result.stderr
    assert store.read_deployment("nightly-report").schedule == "30 2 * * *"
    assert len(store.read_deployments()) == 3


# pause and resume


def test_pause_records_who_when_and_why_and_show_prints_it(
    applied: Path, gnomon_home: Path, store: Store
) -> None:
    before = datetime.now(UTC)
    result = run(gnomon_home, applied, "pause", "nightly-report", "--reason", "CRM outage INC-42")

    assert result.returncode == 0, result.stderr
    assert result.stdout == "paused nightly-report\n"
    row = store.read_deployment("nightly-report")
    assert (row.paused, row.paused_by, row.paused_reason) == (
        True,
        getpass.getuser(),
        "CRM outage INC-42",
    )
    assert row.paused_at >= before - timedelta(milliseconds=1)
    shown = json.loads(
        run(gnomon_home, applied, "deployments", "show", "nightly-report", "--json").stdout
    )
    assert (shown["paused"], shown["paused_reason"], shown["next_fires"]) == (
        True,
        "CRM outage INC-42",
        [],
    )
    entry = store.read_audit()[0]
    assert (entry.actor, entry.origin, entry.action, entry.target, entry.reason) == (
        getpass.getuser(),
        "cli",
        "pause",
        "nightly-report",
        "CRM outage INC-42",
    )


def test_pause_by_tag_and_resume_all(applied: Path, gnomon_home: Path, store: Store) -> None:
    paused = run(gnomon_home, applied, "pause", "--tag", "crm", "--json")
    resumed = run(gnomon_home, applied, "resume", "--all", "--json")

    assert json.loads(paused.stdout)["paused"] == ["nightly-report", "sync-crm"]
    assert json.loads(resumed.stdout) == {
        "resumed": ["nightly-report", "sync-crm"],
        "not_paused": ["heartbeat"],
    }
    assert not any(row.paused for row in store.read_deployments())
    assert [entry.action for entry in store.read_audit()].count("resume") == 2


def test_pausing_again_keeps_the_first_reason(
    applied: Path, gnomon_home: Path, store: Store
) -> None:
    run(gnomon_home, applied, "pause", "heartbeat", "--reason", "first")
    again = run(gnomon_home, applied, "pause", "heartbeat", "--reason", "second")

    assert again.stdout == "heartbeat was already paused\n"
    assert store.read_deployment("heartbeat").paused_reason == "first"


def test_an_unknown_name_exits_2_with_a_suggestion(applied: Path, gnomon_home: Path) -> None:
    result = run(gnomon_home, applied, "pause", "nightly-reprot")

    assert result.returncode == 2
    assert 'no deployment named "nightly-reprot"; did you mean "nightly-report"?' in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("name", ["../etc", "a/b", "x" * 101, "caf\u00e9", "a\u200bb", ".."])
def test_names_that_cannot_be_deployments_are_rejected(
    applied: Path, gnomon_home: Path, name: str
) -> None:
    result = run(gnomon_home, applied, "pause", name)

    assert result.returncode == 2
    assert "invalid deployment name" in result.stderr


def test_a_name_the_config_accepts_every_command_accepts(tmp_path: Path, gnomon_home: Path) -> None:
    # One rule (gnomon._names): dots inside a name are fine, dots alone are not.
    dotted = '\n[[deployments]]\nname = "report..v2"\nflow = "flows.py:tick"\ninterval = "1h"\n'
    config = write_config(tmp_path, DEPLOYMENTS + dotted)
    assert gnomon(gnomon_home, "deployments", "apply", "--config", str(config)).returncode == 0

    for command in (
        ["pause", "report..v2", "--reason", "release"],
        ["resume", "report..v2"],
        ["runs", "list", "--deployment", "report..v2"],
        ["logs", "--deployment", "report..v2"],
        ["deployments", "next", "report..v2"],
    ):
        result = run(gnomon_home, config, *command)
        assert result.returncode == 0, (command, result.stderr)
    for name in (".", "...", "../x"):
        assert "invalid deployment name" in run(gnomon_home, config, "pause", name).stderr


def test_pause_needs_exactly_one_way_of_naming_targets(applied: Path, gnomon_home: Path) -> None:
    neither = run(gnomon_home, applied, "pause")
    both = run(gnomon_home, applied, "pause", "heartbeat", "--all")

    assert neither.returncode == both.returncode == 2
    assert "exactly one" in neither.stderr


def test_pause_before_anything_was_registered_registers_the_config_first(
    config: Path, gnomon_home: Path, store: Store
) -> None:
    result = run(gnomon_home, config, "pause", "heartbeat")

    assert result.returncode == 0, result.stderr
    assert store.read_deployment("heartbeat").paused is True
    assert store.read_deployment("sync-crm").paused is False


# manual runs, cancel, retry, show


def test_run_with_the_daemon_down_queues_a_manual_run_with_parameters(
    applied: Path, gnomon_home: Path, store: Store
) -> None:
    result = run(gnomon_home, applied, "run", "sync-crm", "--param", "label=manual")

    assert result.returncode == 0, result.stderr
    assert "the run starts when one does" in result.stderr
    [row] = store.read_runs("sync-crm")
    assert (row.trigger, row.state_type, row.requested_by, row.force) == (
        "manual",
        "SCHEDULED",
        getpass.getuser(),
        False,
    )
    assert row.parameters == {"label": "manual"}
    assert result.stdout.startswith(f"run {row.id} of sync-crm requested")
    assert [entry.action for entry in store.read_audit()] == ["run", "apply"]


def test_a_malformed_param_exits_2(applied: Path, gnomon_home: Path) -> None:
    result = run(gnomon_home, applied, "run", "sync-crm", "--param", "no-equals-sign")

    assert result.returncode == 2
    assert "KEY=VALUE" in result.stderr


def test_cancel_of_a_waiting_run_cancels_it_at_once_and_again_exits_1(
    applied: Path, gnomon_home: Path, store: Store
) -> None:
    run(gnomon_home, applied, "run", "heartbeat")
    [row] = store.read_runs("heartbeat")

    cancelled = run(gnomon_home, applied, "runs", "cancel", row.id[:8], "--reason", "oops")
    again = run(gnomon_home, applied, "runs", "cancel", row.id)

    assert cancelled.returncode == 0, cancelled.stderr
    assert "it had not started" in cancelled.stdout
    stored = store.read_flow_run(row.id)
    assert (stored.state_name, stored.state_message) == (
        "Cancelled",
        f"cancelled by {getpass.getuser()}: oops",
    )
    assert again.returncode == 1
    assert "already finished (Cancelled)" in again.stderr


def test_retry_makes_a_new_run_of_a_finished_one_and_refuses_a_waiting_one(
    applied: Path, gnomon_home: Path, store: Store
) -> None:
    run(gnomon_home, applied, "run", "sync-crm", "--param", "label=again")
    [original] = store.read_runs("sync-crm")

    waiting = run(gnomon_home, applied, "runs", "retry", original.id)
    store.set_run_state(original.id, "FAILED", "Failed", "boom")
    retried = run(gnomon_home, applied, "runs", "retry", original.id)

    assert waiting.returncode == 1
    assert "only a finished run can be retried" in waiting.stderr
    assert retried.returncode == 0, retried.stderr
    newest = store.read_runs("sync-crm")[0]
    assert (newest.trigger, newest.retry_of, newest.parameters) == (
        "retry",
        original.id,
        {"label": "again"},
    )
    # The next generation of the same nominal time, not a run at the request's time.
    assert (newest.scheduled_for, newest.generation) == (original.scheduled_for, 2)
    assert "queued (generation 2 of " in retried.stdout


def test_runs_show_prints_the_timeline_and_an_unknown_id_exits_2(
    applied: Path, gnomon_home: Path, store: Store
) -> None:
    run(gnomon_home, applied, "run", "heartbeat")
    [row] = store.read_runs("heartbeat")
    store.set_run_state(row.id, "FAILED", "Failed", "it broke", error_type="ValueError")

    shown = json.loads(run(gnomon_home, applied, "runs", "show", row.id[:6], "--json").stdout)
    text = run(gnomon_home, applied, "runs", "show", row.id)
    unknown = run(gnomon_home, applied, "runs", "show", "0" * 32)

    assert [state["state"] for state in shown["timeline"]] == ["Scheduled", "Failed"]
    assert shown["parameters"] == {}
    assert "timeline:" in text.stdout
    assert "Failed  it broke" in text.stdout
    assert unknown.returncode == 2
    assert f'no run named "{"0" * 32}"' in unknown.stderr


# logs


def _log(store: Store, message: str, level: int, **row: object) -> None:
    store.add_log(
        {
            "flow_run_id": None,
            "timestamp": row.pop("timestamp", datetime.now(UTC)),
            "level": level,
            "logger": "test",
            "message": message,
            **row,
        }
    )


def test_logs_filter_by_deployment_level_since_and_count(
    applied: Path, gnomon_home: Path, store: Store
) -> None:
    old = datetime.now(UTC) - timedelta(hours=3)
    _log(store, "ancient", logging.ERROR, deployment_name="heartbeat", timestamp=old)
    _log(store, "fine", logging.INFO, deployment_name="heartbeat")
    _log(store, "broken", logging.ERROR, deployment_name="heartbeat")
    _log(store, "other", logging.ERROR, deployment_name="sync-crm")
    store.flush()

    def messages(*args: str) -> list[str]:
        result = run(gnomon_home, applied, "logs", "--json", *args)
        assert result.returncode == 0, result.stderr
        return [json.loads(line)["message"] for line in result.stdout.splitlines()]

    assert messages() == ["ancient", "fine", "broken", "other"]
    assert messages("--deployment", "heartbeat") == ["ancient", "fine", "broken"]
    assert messages("--deployment", "heartbeat", "--level", "error") == ["ancient", "broken"]
    assert messages("--since", "1h") == ["fine", "broken", "other"]
    assert messages("-n", "2") == ["broken", "other"]
    printed = run(gnomon_home, applied, "logs", "--level", "ERROR", "-n", "1").stdout
    assert printed.endswith(" ERROR   sync-crm other\n")


def test_logs_reject_an_unknown_level(applied: Path, gnomon_home: Path) -> None:
    result = run(gnomon_home, applied, "logs", "--level", "LOUD")

    assert result.returncode == 2
    assert "'LOUD': use one of DEBUG, INFO, WARNING, ERROR, CRITICAL" in result.stderr


# concurrency limits, tokens, audit, completion


def test_concurrency_limits_set_list_and_remove(
    applied: Path, gnomon_home: Path, store: Store
) -> None:
    assert run(gnomon_home, applied, "concurrency-limit", "set", "crm-api", "2").returncode == 0
    listed = run(gnomon_home, applied, "concurrency-limit", "ls", "--json")
    removed = run(gnomon_home, applied, "concurrency-limit", "rm", "crm-api")
    missing = run(gnomon_home, applied, "concurrency-limit", "rm", "crm-apy")

    assert json.loads(listed.stdout) == [{"tag": "crm-api", "limit": 2, "active": 0}]
    assert removed.returncode == 0, removed.stderr
    assert store.read_concurrency_limits() == {}
    assert missing.returncode == 2
    assert 'no concurrency limit named "crm-apy"' in missing.stderr
    actions = [entry.action for entry in store.read_audit()]
    assert actions[:2] == ["limit-rm", "limit-set"]


def test_global_concurrency_limits_set_list_and_remove_with_their_decay(
    applied: Path, gnomon_home: Path, store: Store
) -> None:
    slow = ("--slot-decay-per-second", "0.01")  # the slots taken below outlast the test
    made = run(gnomon_home, applied, "global-concurrency-limit", "set", "openai-api", "10", *slow)
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == "openai-api: at most 10 slots, 0.01 freed a second"
    assert run(gnomon_home, applied, "gcl", "set", "database", "5").returncode == 0
    assert run(gnomon_home, applied, "concurrency-limit", "set", "crm-api", "2").returncode == 0
    assert store.try_acquire_slots(["openai-api"], 3, "h:1:t", rate_limit=True)
    listed = run(gnomon_home, applied, "gcl", "ls", "--json")
    printed = run(gnomon_home, applied, "global-concurrency-limit", "ls")
    tags = run(gnomon_home, applied, "concurrency-limit", "ls", "--json")
    removed = run(gnomon_home, applied, "gcl", "rm", "database")
    missing = run(gnomon_home, applied, "gcl", "rm", "openai-apj")

    assert json.loads(listed.stdout) == [
        {"name": "database", "limit": 5, "active": 0, "slot_decay_per_second": 0.0},
        {"name": "openai-api", "limit": 10, "active": 3, "slot_decay_per_second": 0.01},
    ]
    assert table(printed.stdout) == [
        ["NAME", "LIMIT", "ACTIVE", "SLOT_DECAY_PER_SECOND"],
        ["database", "5", "0", "0.0"],
        ["openai-api", "10", "3", "0.01"],
    ]
    assert json.loads(tags.stdout) == [{"tag": "crm-api", "limit": 2, "active": 0}]
    assert removed.returncode == 0, removed.stderr
    assert store.read_concurrency_limits() == {"openai-api": 10, "tag:crm-api": 2}
    assert missing.returncode == 2
    assert 'no global concurrency limit named "openai-apj"; did you mean "openai-api"?' in (
        missing.stderr
    )
    audit = [(entry.action, entry.target, entry.detail) for entry in store.read_audit()]
    assert audit[:2] == [("limit-rm", "database", None), ("limit-set", "tag:crm-api", {"limit": 2})]
    assert ("limit-set", "openai-api", {"limit": 10, "slot_decay_per_second": 0.01}) in audit


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["set", "api", "5", "--slot-decay-per-second", "-1"], "'api': slot_decay_per_second is"),
        (["set", "api", "5", "--slot-decay-per-second", "nan"], "0 for no decay, not nan"),
        (["set", "api", "5", "--slot-decay-per-second", "1e-12"], "over 100 years to free"),
        (["set", "--", "api", "-1"], "a concurrency limit is from 0 to 1,000,000, not -1"),
        (["set", "api", "five"], "'five' is not a valid integer"),
        (["set", "tag:crm", "2"], "tag limits (tag:NAME) are `gnomon concurrency-limit`'s"),
        (["set", "bell\x07", "2"], "invalid global concurrency limit name"),
        (["rm", "tag:crm"], "tag limits (tag:NAME) are `gnomon concurrency-limit`'s"),
    ],
)
def test_bad_global_concurrency_limits_are_refused_naming_the_value(
    applied: Path, gnomon_home: Path, store: Store, args: list[str], named: str
) -> None:
    result = run(gnomon_home, applied, "gcl", *args)

    assert result.returncode == 2
    assert named in result.stderr
    assert "Traceback" not in result.stderr
    assert store.read_concurrency_limits() == {}


def test_tokens_are_shown_once_and_stored_hashed(
    applied: Path, gnomon_home: Path, store: Store
) -> None:
    created = run(gnomon_home, applied, "token", "create", "grafana", "--read-only")
    duplicate = run(gnomon_home, applied, "token", "create", "grafana")
    contradiction = run(
        gnomon_home, applied, "token", "create", "x", "--read-only", "--scope", "admin"
    )
    assert contradiction.returncode == 2
    assert "read-only contradicts scope 'admin'" in contradiction.stderr
    listed = run(gnomon_home, applied, "token", "ls", "--json")
    revoked = run(gnomon_home, applied, "token", "revoke", "grafana")

    token = created.stdout.strip()
    assert created.returncode == 0, created.stderr
    assert token.startswith("gnm_")
    assert len(token) > 40
    assert store.find_token(hashlib.sha256(token.encode()).hexdigest()) is None  # revoked
    assert duplicate.returncode == 1
    [entry] = json.loads(listed.stdout)
    assert (entry["name"], entry["scope"], entry["expires"]) == ("grafana", "read", None)
    assert token not in listed.stdout
    assert revoked.returncode == 0
    if store.engine.dialect.name == "sqlite":
        database = (gnomon_home / "gnomon.db").read_bytes()
    else:  # every column of every table, as text
        with store.engine.connect() as connection:
            database = "".join(
                str(row)
                for table in ("api_tokens", "audit_log")
                for row in connection.exec_driver_sql(f"SELECT * FROM {table}")
            ).encode()
    assert token.encode() not in database


def test_audit_lists_changes_newest_first(applied: Path, gnomon_home: Path) -> None:
    run(gnomon_home, applied, "pause", "heartbeat", "--reason", "noisy")
    run(gnomon_home, applied, "resume", "heartbeat")

    result = run(gnomon_home, applied, "audit")

    header, *rows = table(result.stdout)
    assert header == ["TIMESTAMP", "ACTOR", "ORIGIN", "ACTION", "TARGET", "REASON"]
    assert [row[1:] for row in rows[:2]] == [
        [getpass.getuser(), "cli", "resume", "heartbeat", "-"],
        [getpass.getuser(), "cli", "pause", "heartbeat", "noisy"],
    ]
    assert rows[2][3:5] == ["apply", str(applied)]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_prints_a_script_for_the_shell(gnomon_home: Path, shell: str) -> None:
    result = gnomon(gnomon_home, "completion", shell)

    assert result.returncode == 0, result.stderr
    assert "_GNOMON_COMPLETE" in result.stdout


def test_deployment_names_complete_in_the_shell(applied: Path, gnomon_home: Path) -> None:
    result = gnomon(
        gnomon_home,
        COMP_WORDS="gnomon pause s",
        COMP_CWORD="2",
        _GNOMON_COMPLETE="bash_complete",
        GNOMON_CONFIG=str(applied),
    )

    assert result.stdout.split() == ["plain,sync-crm"]


def test_secret_parameters_are_masked_in_show_and_runs_show(
    tmp_path: Path, gnomon_home: Path, store: Store
) -> None:
    config = write_config(
        tmp_path,
        """
        [[deployments]]
        name = "crm"
        flow = "secret_flow.py:crm"
        interval = "1h"
        parameters = { label = "visible", api_key = "sk-live-123" }
        """,
    )
    (tmp_path / "secret_flow.py").write_text(
        "from gnomon import flow\n\n\n@flow\n"
        "def crm(label: str, api_key: str, db_password: str = '') -> None: ...\n"
    )
    assert run(gnomon_home, config, "deployments", "apply").returncode == 0
    run(gnomon_home, config, "run", "crm", "--param", "db_password=hunter2")
    [row] = store.read_runs("crm")

    shown = run(gnomon_home, config, "deployments", "show", "crm")
    run_shown = run(gnomon_home, config, "runs", "show", row.id, "--json")

    assert "visible" in shown.stdout
    assert "sk-live-123" not in shown.stdout
    assert json.loads(run_shown.stdout)["parameters"] == {
        "label": "visible",
        "api_key": "********",
        "db_password": "********",
    }
