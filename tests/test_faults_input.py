"""Bad input gets a clear error, never a traceback, a 500 or a leak: the installed ``gnomon``
script in a subprocess, the HTTP API on a real uvicorn server, and a real daemon running
flows that raise, print and log a secret-named parameter's value.

The rules themselves (since, levels, parameters, state filters, intervals, masking) are
tested as pure functions in test_input_rules.py.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from conftest import create_run, logs_of
from gnomon import flow, get_run_logger
from gnomon.control import Operations
from gnomon.http._http import route_table
from gnomon.store import Actor, Store
from test_api import Api, api  # noqa: F401  (api: the live-server fixture)
from test_cli_control import DEPLOYMENTS
from test_cli_daemon import gnomon
from test_daemon import start_daemon, write_config
from test_daemon_control import _api_url
from test_notify import Receiver

SECRET = "987654321"
MASK = "********"


@pytest.fixture
def config(tmp_path: Path, store: Store) -> Path:
    """The deployments above, applied to the test's store (in-process: the commands under
    test are what runs in a subprocess)."""
    config = write_config(tmp_path, DEPLOYMENTS)
    Operations(store, Actor("test", "cli")).apply(config)
    return config


def usage_error(result: Any, *named: str) -> None:
    """A usage error: exit 2, one message naming ``named`` (option and value), no traceback."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    for text in named:
        assert text in result.stderr, (text, result.stderr)


# The CLI: numbers and dates that overflow, unknown names, bad parameters.


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["logs", "-n", "99999999999999999999"], ["'-n' / '--lines'", "99999999999999999999"]),
        (["logs", "--level", "99999999999999999999"], ["'--level'", "'99999999999999999999'"]),
        (["logs", "--since", "9999-12-31T23:59:59-23:59"], ["'--since'", "9999-12-31T23:59:59"]),
        (["runs", "list", "--since", "0001-01-01T00:00+05:00"], ["'--since'", "0001-01-01"]),
        (
            ["runs", "list", "--limit", "99999999999999999999"],
            ["'--limit'", "99999999999999999999"],
        ),
        (["audit", "--since", "9999-12-31T23:59:59-23:59"], ["'--since'", "9999-12-31T23:59:59"]),
        (["audit", "--limit", "9" * 20], ["'--limit'", "9" * 20]),
        (["cron", "* * * * *", "-n", "100000000"], ["'-n' / '--iterations'", "100000000"]),
        (["cron", "* * * * *", "--after", "0001-01-01T00:00+05:00"], ["'--after'", "0001-01-01"]),
        (["deployments", "next", "sync-crm", "-n", "100000000"], ["'-n'", "100000000"]),
        (["run", "sync-crm", "--wait", "--timeout", "nan"], ["'--timeout'", "'nan'"]),
        (["daemon", "stop", "--timeout", "inf"], ["'--timeout'", "'inf'"]),
        (["concurrency-limit", "set", "crm", "99999999999999999999"], ["99999999999999999999"]),
        (["gcl", "set", "api", "99999999999999999999"], ["99999999999999999999"]),
        (["gcl", "set", "api", "2", "--slot-decay-per-second", "1e999"], ["'api'", "not inf"]),
        (["runs", "list", "--state", "Bogus"], ["'--state'", "'Bogus'", "only:NAME", "TimedOut"]),
        (["pause", "--tag", "nosuchtag"], ['no deployment has the tag "nosuchtag"']),
        (["resume", "--tag", "crn"], ['the tag "crn"; did you mean "crm"?']),
    ],
)
def test_an_option_out_of_range_is_a_usage_error_naming_it(
    config: Path, gnomon_home: Path, args: list[str], named: list[str]
) -> None:
    result = gnomon(gnomon_home, *args, GNOMON_CONFIG=str(config))

    usage_error(result, *named)


@pytest.mark.parametrize(
    ("param", "named"),
    [
        ('label="\\ud800"', "parameter label: text must be valid Unicode"),
        ("label=NaN", "parameter label: numbers must be finite"),
        ('label={"a": Infinity}', "parameter label.a: numbers must be finite"),
        ("label=" + "[" * 40 + "]" * 40, "nested deeper than 32 levels"),
    ],
)
def test_a_run_with_parameters_that_are_not_standard_json_is_refused_and_not_queued(
    config: Path, gnomon_home: Path, store: Store, param: str, named: str
) -> None:
    result = gnomon(gnomon_home, "run", "sync-crm", "--param", param, GNOMON_CONFIG=str(config))

    usage_error(result, named)
    assert store.read_runs() == []


def test_undecodable_bytes_in_a_param_are_refused_and_not_queued(
    config: Path, gnomon_home: Path, store: Store
) -> None:
    # Python reads undecodable argv bytes as lone surrogates; SQLite and JSON take none.
    result = gnomon(
        gnomon_home, "run", "sync-crm", "--param", "label=caf\udce9", GNOMON_CONFIG=str(config)
    )

    usage_error(result, "parameter label: text must be valid Unicode")
    assert store.read_runs() == []


@pytest.mark.parametrize("args", [["runs", "list"], ["logs"], ["pause", "sync-crm"]])
def test_a_config_file_that_is_not_utf8_is_named_not_a_traceback(
    tmp_path: Path, gnomon_home: Path, args: list[str]
) -> None:
    config = tmp_path / "latin1.toml"
    config.write_bytes(b'home = "caf\xe9"\n')

    result = gnomon(gnomon_home, *args, GNOMON_CONFIG=str(config))

    usage_error(result, f"{config}: cannot read: 'utf-8' codec can't decode byte 0xe9")


def _seed_runs(store: Store) -> dict[str, str]:
    """One run in each of the states a failed filter must tell apart; their ids by state."""
    ids = {}
    now = datetime.now(UTC)
    states = [
        ("Completed", "COMPLETED"),
        ("Failed", "FAILED"),
        ("TimedOut", "FAILED"),
        ("Crashed", "CRASHED"),
        ("Cancelled", "CANCELLED"),
        ("Skipped", "CANCELLED"),
    ]
    for index, (name, state_type) in enumerate(states):
        ids[name] = uuid.uuid4().hex
        create_run(
            store,
            {
                "id": ids[name],
                "name": f"run-{name}",
                "flow_name": "tick",
                "parameters": {},
                "tags": [],
                "state_type": state_type,
                "state_name": name,
                "deployment_name": "sync-crm",
                "scheduled_for": now - timedelta(minutes=10 - index),
                "created": now - timedelta(minutes=10 - index),
                "updated": now,
            },
        )
    return ids


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("failed", {"Failed", "TimedOut", "Crashed"}),
        ("FAILED", {"Failed", "TimedOut", "Crashed"}),
        ("only:Failed", {"Failed"}),
        ("timedout", {"TimedOut"}),
        ("cancelled", {"Cancelled"}),
        ("Skipped", {"Skipped"}),
    ],
)
def test_runs_list_state_failed_is_the_family_and_only_name_is_one_state(
    config: Path, gnomon_home: Path, store: Store, state: str, expected: set[str]
) -> None:
    _seed_runs(store)

    result = gnomon(gnomon_home, "runs", "list", "--state", state, "--json")

    assert result.returncode == 0, result.stderr
    assert {run["state"] for run in json.loads(result.stdout)} == expected


def test_runs_list_help_documents_the_failed_family_and_only_name(gnomon_home: Path) -> None:
    shown = " ".join(gnomon(gnomon_home, "runs", "list", "--help").stdout.split())

    assert "'failed' for every failed run (Failed, TimedOut, Crashed)" in shown
    assert "only:NAME for exactly that name" in shown


# Intervals below a second.


@pytest.mark.slow
@pytest.mark.parametrize("interval", ["1ms", "500ms"])
def test_an_interval_below_a_second_is_refused_at_load_naming_the_minimum(
    tmp_path: Path, gnomon_home: Path, interval: str
) -> None:
    config = write_config(
        tmp_path, f'[[deployments]]\nname = "fast"\nflow = "flows.py:tick"\ninterval = "{interval}"'
    )

    validated = gnomon(gnomon_home, "deployments", "validate", str(config))
    daemon = start_daemon(config, gnomon_home)
    code = daemon.wait(timeout=60)
    _, daemon_errors = daemon.communicate()

    problem = f'gnomon.toml: deployment "fast": interval "{interval}": must be at least 1s'
    usage_error(validated, problem)
    assert code == 2
    assert problem in daemon_errors
    assert "Traceback" not in daemon_errors


# The HTTP API.


def _insert_raw(store: Store, sql: str, *values: Any) -> None:
    """Write a row as an older gnomon (or another program) could have: straight to SQLite."""
    with sqlite3.connect(store.url.removeprefix("sqlite:///")) as connection:
        connection.execute(sql, values)


def test_a_lone_surrogate_in_run_parameters_is_a_422_and_creates_no_run(api: Api) -> None:  # noqa: F811
    body = '{"parameters": {"day": "\\ud800"}}'  # JSON's escape: a valid document
    with api.admin as client:
        response = client.post(
            "/api/v1/deployments/nightly-report/runs",
            content=body,
            headers={"Content-Type": "application/json"},
        )
        listed = client.get("/api/v1/runs")

    assert response.status_code == 422, response.text
    assert response.json()["field"] == "parameters"
    assert "parameter day: text must be valid Unicode" in response.json()["error"]
    assert listed.json() == []
    assert "run" not in [entry.action for entry in api.store.read_audit()]
    assert api.nudges == []


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ('{"parameters": {"n": NaN}}', "numbers must be finite"),
        ('{"parameters": {"x": "' + "a" * 300_000 + '"}}', "at most 262,144"),
        ('{"parameters": {"x": ' + "[" * 40 + "]" * 40 + "}}", "nested deeper than 32"),
    ],
)
def test_run_parameters_beyond_the_rules_are_a_422_naming_them(
    api: Api,  # noqa: F811
    body: str,
    problem: str,
) -> None:
    with api.admin as client:
        response = client.post(
            "/api/v1/deployments/nightly-report/runs",
            content=body,
            headers={"Content-Type": "application/json"},
        )

    assert response.status_code == 422, response.text
    assert problem in response.json()["error"]
    assert api.store.read_runs() == []


def test_a_request_body_over_the_limit_is_a_413_declared_or_chunked(api: Api) -> None:  # noqa: F811
    big = b'{"reason": "' + b"a" * 1_100_000 + b'"}'

    def chunks() -> Iterator[bytes]:  # no Content-Length: the server must count
        for start in range(0, len(big), 65536):
            yield big[start : start + 65536]

    with api.admin as client:
        declared = client.post("/api/v1/deployments/nightly-report/pause", content=big)
        chunked = client.post("/api/v1/deployments/nightly-report/pause", content=chunks())
        fine = client.post("/api/v1/deployments/nightly-report/pause", json={"reason": "ok"})

    for response in (declared, chunked):
        assert response.status_code == 413, response.text
        assert response.json() == {"error": "the request body is larger than 1,000,000 bytes"}
    assert fine.status_code == 200
    assert [entry.reason for entry in api.store.read_audit() if entry.action == "pause"] == ["ok"]


@pytest.mark.parametrize(
    ("path", "field", "problem"),
    [
        ("/api/v1/runs?since=9999-12-31T23:59:59-23:59", "since", "outside the years 1 to 9999"),
        ("/api/v1/logs?since=9999-12-31T23:59:59-23:59", "since", "outside the years 1 to 9999"),
        ("/api/v1/audit?since=1000000d", "since", "reaches back before the year 1"),
        ("/api/v1/logs?level=99999999999999999999", "level", "a number from 0 to 1000"),
        ("/api/v1/runs?state=Bogus", "state", "only:NAME"),
        ("/api/v1/deployments/sync-crm/next?count=100000000", "count", "less than or equal"),
    ],
)
def test_query_values_out_of_range_are_a_422_naming_the_field(
    api: Api,  # noqa: F811
    path: str,
    field: str,
    problem: str,
) -> None:
    with api.admin as client:
        response = client.get(path)

    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert problem in response.json()["error"]


def test_the_api_state_filter_is_the_failed_family_or_one_name(api: Api) -> None:  # noqa: F811
    ids = _seed_runs(api.store)
    with api.admin as client:
        family = client.get("/api/v1/runs", params={"state": "failed"}).json()
        only = client.get("/api/v1/runs", params={"state": "only:Failed"}).json()

    assert {run["id"] for run in family} == {ids["Failed"], ids["TimedOut"], ids["Crashed"]}
    assert [run["id"] for run in only] == [ids["Failed"]]


def test_head_answers_every_get_route_with_the_gets_status_and_headers(
    api: Api,  # noqa: F811
) -> None:
    gets = [path for method, path in route_table(api.app) if method == "GET"]
    assert {"/api/v1/runs", "/api/v1/logs/stream"} <= set(gets)
    with api.admin as client, api.client() as anonymous:
        for path in gets:
            url = path.format(
                name="nightly-report",
                tag="crm",
                run_id="abcd1234",
                key_or_id="rows",
                backfill_id="1",
                window_id="1",
            )
            head = client.head(url)
            assert head.content == b"", path
            if path == "/api/v1/logs/stream":  # never ends as a GET: HEAD ends at once
                assert head.status_code == 200
                assert head.headers["content-type"].startswith("text/event-stream")
                continue
            get = client.get(url)
            assert head.status_code == get.status_code, path
            assert head.headers.get("content-length") == get.headers.get("content-length"), path
        assert anonymous.head("/healthz").status_code == 200
        assert anonymous.head("/api/v1/runs").status_code == 401


def test_stored_rows_with_a_lone_surrogate_or_a_refused_schedule_read_without_a_500(
    api: Api,  # noqa: F811
    gnomon_home: Path,
) -> None:
    run_id = uuid.uuid4().hex
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    _insert_raw(
        api.store,
        "INSERT INTO flow_runs (id, name, flow_name, parameters, tags, state_type, state_name,"
        " run_count, deployment_name, created, updated) VALUES (?, 'old', 'report',"
        " '{\"day\": \"\\ud800\", \"\\udcff\": 1}', '[]', 'COMPLETED', 'Completed', 1,"
        " 'nightly-report', ?, ?)",
        run_id,
        now,
        now,
    )
    _insert_raw(
        api.store,
        "INSERT INTO run_logs (flow_run_id, timestamp, level, logger, message, extra)"
        " VALUES (?, ?, 20, 'x', 'line', '{\"note\": \"\\udc80\"}')",
        run_id,
        now,
    )
    _insert_raw(api.store, "UPDATE deployments SET schedule = '500ms' WHERE name = 'sync-crm'")

    with api.admin as client:
        shown = client.get(f"/api/v1/runs/{run_id}")
        logs = client.get("/api/v1/logs", params={"run": run_id})
        listed = client.get("/api/v1/deployments")
    cli = gnomon(gnomon_home, "runs", "show", run_id, "--json")
    cli_list = gnomon(gnomon_home, "deployments", "list")

    assert shown.status_code == 200, shown.text
    assert shown.json()["parameters"] == {"day": "\ufffd", "\ufffd": 1}
    assert logs.status_code == 200
    assert logs.json()[0]["extra"] == {"note": "\ufffd"}
    assert listed.status_code == 200, listed.text
    assert {row["name"]: row["next_fire"] for row in listed.json()}["sync-crm"] is None
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["parameters"] == {"day": "\ufffd", "\ufffd": 1}
    assert cli_list.returncode == 0
    assert "Traceback" not in cli_list.stderr


@pytest.mark.slow
def test_no_invalid_request_the_schema_describes_gets_a_5xx(api: Api) -> None:  # noqa: F811
    """schemathesis' negative mode: requests that break the schema (wrong types, patterns,
    ranges, missing fields) must all be 4xx."""
    headers = {"Authorization": f"Bearer {api.token}"}
    schema = schemathesis.openapi.from_url(f"{api.url}/openapi.json", headers=headers)
    schema = schema.exclude(path="/api/v1/logs/stream")  # never ends; tested in test_api.py
    # An apply waits (up to its timeout) for a daemon's answer, and no daemon runs here:
    # test_faults_daemon.py applies through a real daemon.
    schema = schema.exclude(path="/api/v1/apply")
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(
            max_examples=20,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))
        def check(case: schemathesis.Case) -> None:
            response = case.call(base_url=api.url, headers=headers)
            assert response.status_code < 500, (case.method, case.formatted_path, response.text)

        try:
            check()
        except Unsatisfiable:  # an operation with nothing to break (no parameters, no body)
            continue


# A real daemon: a secret-named parameter never shows, and its API takes its body limit.

SECRET_FLOWS = """
from gnomon import flow, get_run_logger, task


@task
def connect(dsn: str) -> None:
    raise RuntimeError(f"cannot connect with {dsn}")


@flow
def login(password: int, mode: str = "raise") -> str:
    if mode == "print":
        print("the password is", password)
        get_run_logger().info("logged %s", password)
        return "printed"
    if mode == "task":
        connect(f"postgres://svc:{password}@db")
    raise ValueError(f"bad password {password}")
"""


def _store_text(database: Path) -> str:
    """Every value the store holds, but the runs' parameters (which the flow needs as given)."""
    texts = []
    with sqlite3.connect(database) as connection:
        tables = [
            row[0]
            for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
        for table in tables:
            if table.startswith("sqlite_"):
                continue
            cursor = connection.execute(f'SELECT * FROM "{table}"')  # the store's own table names
            columns = [column[0] for column in cursor.description or []]
            for row in cursor:
                texts += [
                    str(value)
                    for column, value in zip(columns, row, strict=True)
                    if not (table == "flow_runs" and column == "parameters")
                ]
    return "\n".join(texts)


@pytest.mark.slow
def test_a_secret_parameters_value_is_masked_everywhere_and_the_api_limits_bodies(
    tmp_path: Path, gnomon_home: Path, store: Store, daemons: list
) -> None:
    (tmp_path / "secret_flows.py").write_text(SECRET_FLOWS)
    receiver = Receiver()
    config = write_config(
        tmp_path,
        """
        [[deployments]]
        name = "secrets"
        flow = "secret_flows.py:login"
        cron = "0 0 1 1 *"
        parameters = { password = 42 }

        [[notify]]
        name = "ops"
        url_env = "OPS_WEBHOOK"
        events = ["failed"]
        """,
        daemon='workers = 1\napi = "127.0.0.1:0"\napi_max_body = "2KiB"',
    )
    daemon = start_daemon(config, gnomon_home, OPS_WEBHOOK=receiver.url("hook"))
    daemons.append(daemon)
    try:
        url = _api_url(daemon)
        env = {"GNOMON_CONFIG": str(config)}
        run = ("run", "secrets", "--wait", "--param")
        outputs = [
            gnomon(gnomon_home, *run, f"password={SECRET}", **env),
            gnomon(gnomon_home, *run, "password=notanint987", **env),
            gnomon(gnomon_home, *run, f"password={SECRET}", "--param", "mode=task", **env),
            gnomon(gnomon_home, *run, f"password={SECRET}", "--param", "mode=print", **env),
        ]
        # A value not of the flow's type is refused before a run is queued (exit 2).
        assert [result.returncode for result in outputs] == [1, 2, 1, 0]
        posts = receiver.wait_for(2)
        runs = {row.id: row for row in store.read_runs("secrets")}
        token = (gnomon_home / "api-token").read_text().strip()
        with httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as client:
            api_views = [client.get(f"/api/v1/runs/{run_id}").text for run_id in runs]
            api_views.append(client.get("/api/v1/logs", params={"limit": 1000}).text)
            too_big = client.post(
                "/api/v1/deployments/secrets/pause", json={"reason": "a" * 900, "x": "b" * 2500}
            )
            small = client.post("/api/v1/deployments/secrets/resume", json={"reason": "r" * 900})
        shown = [gnomon(gnomon_home, "runs", "show", run_id).stdout for run_id in runs]
        shown += [gnomon(gnomon_home, "runs", "show", run_id, "--json").stdout for run_id in runs]
        shown.append(gnomon(gnomon_home, "logs", "-n", "1000").stdout)
    finally:
        receiver.close()
    daemon.terminate()
    stdout, stderr = daemon.communicate(timeout=60)
    log_file = (gnomon_home / "logs" / "gnomon.jsonl").read_text()

    everything = {
        "cli": "\n".join(result.stdout + result.stderr for result in outputs),
        "store": _store_text(gnomon_home / "gnomon.db"),
        "daemon stdout": stdout,
        "daemon stderr": stderr,
        "log file": log_file,
        "api": "\n".join(api_views),
        "cli views": "\n".join(shown),
        "webhooks": json.dumps([post["json"] for post in posts]),
    }
    for where, text in everything.items():
        assert SECRET not in text, where
        assert "notanint987" not in text, where
    # The errors are there, with the value masked: the test sees what a user would.
    assert f"ValueError: bad password {MASK}" in outputs[0].stdout
    assert f'parameters.password "{MASK}": expected integer' in outputs[1].stderr
    assert len(runs) == 3
    assert f"cannot connect with postgres://svc:{MASK}@db" in outputs[2].stdout
    assert f"the password is {MASK}" in stdout
    for where in ("store", "log file", "api", "cli views", "webhooks"):
        assert f"bad password {MASK}" in everything[where], where
    assert f"logged {MASK}" in everything["store"]
    assert too_big.status_code == 413
    assert too_big.json() == {"error": "the request body is larger than 2,048 bytes"}
    assert small.status_code == 200, small.text


# Flows run in this process, into a real store.


def test_a_flow_whose_error_and_log_hold_lone_surrogates_is_still_recorded(store: Store) -> None:
    """SQLite refuses a lone surrogate: the run's whole batch of rows used to be dropped."""

    @flow
    def garbled() -> None:
        get_run_logger().info("bad \ud800 text")
        raise ValueError("oops \udcff")

    state = garbled(return_state=True)
    store.flush()

    [row] = store.read_runs()
    assert state.is_failed()
    assert (row.state_name, row.error_message) == ("Failed", "oops \ufffd")
    assert "ValueError: oops \ufffd" in row.error_traceback
    assert "bad \ufffd text" in [log.message for log in logs_of(store, flow_run_id=row.id)]


def test_a_flow_run_in_a_script_masks_its_secret_parameter_in_what_it_stores(
    store: Store,
) -> None:
    @flow
    def login(db_password: str, attempts: int = 1) -> None:
        get_run_logger().warning("trying %s", db_password)
        raise PermissionError(f"refused: {db_password!r}")

    login("s3cr3t-script-value", return_state=True)
    store.flush()

    [row] = store.read_runs()
    logs = [log.message for log in logs_of(store, flow_run_id=row.id)]
    assert row.error_message == f"refused: '{MASK}'"
    assert "s3cr3t-script-value" not in row.error_traceback + row.state_message
    assert f"trying {MASK}" in logs
    assert not [line for line in logs if "s3cr3t-script-value" in line]
