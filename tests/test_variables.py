"""Variables (Prefect's ``prefect.variables.Variable``): the Python API outside and inside
flows (sync and async, as Prefect 3.8.8 dispatches them), with its overwrite, name and value
rules; every change audited; ``gnomon variable`` in a real subprocess, the API's routes on a
live server and the dashboard's page; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import getpass
import inspect
import json
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import run_python
from gnomon import flow, task
from gnomon.store import AuditAction, Origin, Store, TokenAccess
from gnomon.variables import Variable
from test_api import Api, api  # noqa: F401 (the live-server fixture)
from test_cli_daemon import gnomon, table

pytestmark = pytest.mark.backends


def audit(store: Store) -> list[tuple[str, str, str, str | None, Any]]:
    """The audit log oldest first: action, actor, origin, target, detail."""
    entries = reversed(store.read_audit(None, 100))
    return [(e.action, e.actor, e.origin, e.target, e.detail) for e in entries]


# The Python API outside a run.


def test_get_of_a_missing_variable_gives_the_default(store: Store) -> None:
    assert Variable.get("missing") is None
    assert Variable.get("missing", default=3) == 3
    assert Variable.get("Not A Name", default="d") == "d"  # Prefect looks it up, finds none


@pytest.mark.parametrize(
    "value", ["text", 42, 1.5, True, None, [1, "a", None], {"a": {"b": [1, 2.5]}}]
)
def test_each_kind_of_json_value_is_stored_and_read_back(store: Store, value: Any) -> None:
    created = Variable.set("kept", value)
    assert (created.name, created.value, created.tags) == ("kept", value, [])
    assert Variable.get("kept", default="not this") == value  # a stored None is None
    assert Variable[type(value)].get("kept") == value  # type: ignore[misc]


def test_a_tuple_is_stored_as_a_list_as_prefect_stores_it(store: Store) -> None:
    assert Variable.set("pair", (1, 2)).value == [1, 2]
    assert Variable.get("pair") == [1, 2]


def test_set_refuses_a_name_in_use_unless_overwrite_which_replaces_value_and_tags(
    store: Store,
) -> None:
    Variable.set("batch-size", 100, tags=["etl"])
    message = "Variable 'batch-size' already exists. Use `overwrite=True` to update it."
    with pytest.raises(ValueError) as refused:
        Variable.set("batch-size", 200)
    assert str(refused.value) == message
    assert Variable.get("batch-size") == 100
    replaced = Variable.set("batch-size", 200, overwrite=True)
    assert (replaced.value, replaced.tags) == (200, [])  # tags are replaced too, as in Prefect
    row = store.read_variable("batch-size")
    assert row is not None
    assert (row.value, row.tags) == (200, [])
    assert row.updated > row.created
    assert len([entry for entry in audit(store) if entry[0] == AuditAction.VARIABLE_SET]) == 2


def test_names_follow_prefects_rule_and_a_bad_one_is_named_in_the_error(store: Store) -> None:
    good = ["a", "snake_case", "kebab-case", "0-9_x", "x" * 255]
    for name in good:
        Variable.set(name, 1)
    for bad in ["", "Upper", "with space", "dot.ted", "slash/x", "x" * 256, "caf\u00e9"]:
        with pytest.raises(ValueError) as refused:
            Variable.set(bad, 1)
        assert str(refused.value).startswith(f"invalid variable name {repr(bad)[:40]}")
        assert 'lowercase letters, digits, "-" and "_"' in str(refused.value)
    assert [row.name for row in store.read_variables()] == sorted(good)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (float("nan"), "it cannot be written as JSON (Out of range float values"),
        ({"ratio": float("inf")}, "it cannot be written as JSON"),
        ({1: "a"}, "a JSON object's keys are strings"),
        ({"s": {1, 2}}, "it cannot be written as JSON"),
        (b"bytes", "a bytes value is not JSON"),
        ("\ud800", "it cannot be written as JSON"),
        ("x" * 4999, "it is 5,001 characters as JSON, and a variable's value is at most 5,000"),
    ],
)
def test_a_value_that_is_not_json_or_too_long_is_refused_naming_the_variable(
    store: Store, value: Any, reason: str
) -> None:
    with pytest.raises(ValueError) as refused:
        Variable.set("bad-value", value)
    assert str(refused.value).startswith(f'invalid value for variable "bad-value": {reason}')
    assert store.read_variable("bad-value") is None
    assert audit(store) == []


def test_the_longest_value_is_5000_characters_of_json(store: Store) -> None:
    Variable.set("longest", "x" * 4998)  # with its quotes
    assert Variable.get("longest") == "x" * 4998


def test_unset_says_whether_there_was_a_variable(store: Store) -> None:
    Variable.set("temp", "x")
    assert Variable.unset("temp") is True
    assert Variable.unset("temp") is False
    assert Variable.unset("Not A Name") is False
    assert Variable.get("temp") is None


def test_creating_one_name_at_once_from_many_threads_lets_exactly_one_win(
    store: Store,
) -> None:
    start = threading.Barrier(6)
    outcomes: list[int | str] = []

    def create(number: int) -> None:
        start.wait()
        try:
            Variable.set("race", number)
            outcomes.append(number)
        except ValueError as error:
            outcomes.append(str(error))

    threads = [threading.Thread(target=create, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [outcome for outcome in outcomes if isinstance(outcome, int)]
    assert len(winners) == 1
    assert Variable.get("race") == winners[0]
    assert sum(1 for entry in audit(store) if entry[0] == AuditAction.VARIABLE_SET) == 1


# In runs, and the audit's actor.


def test_changes_are_audited_with_the_os_user_outside_a_run_and_the_run_inside_one(
    store: Store,
) -> None:
    from gnomon.runtime import flow_run

    Variable.set("region", "eu")

    @flow
    def move() -> str:
        Variable.set("region", "us", overwrite=True)
        Variable.unset("region")
        return str(flow_run.id)

    run_id = move()
    assert audit(store) == [
        (AuditAction.VARIABLE_SET, getpass.getuser(), Origin.PYTHON, "region",
         {"value": "eu", "tags": [], "replaced": False}),
        (AuditAction.VARIABLE_SET, f"run {run_id}", Origin.PYTHON, "region",
         {"value": "us", "tags": [], "replaced": True}),
        (AuditAction.VARIABLE_RM, f"run {run_id}", Origin.PYTHON, "region", {"value": "us"}),
    ]  # fmt: skip


def test_a_sync_flow_and_its_tasks_get_values_directly(store: Store) -> None:
    Variable.set("recipients", ["ops@example.com"])

    @task
    def count() -> int:
        return len(Variable.get("recipients", default=[]))

    @flow
    def report() -> tuple[Any, int]:
        return Variable.get("recipients"), count()

    assert report() == (["ops@example.com"], 1)


def test_in_an_async_flow_get_returns_an_awaitable_and_the_async_forms_work(
    store: Store,
) -> None:
    Variable.set("greeting", "hello")

    @task
    def sync_task() -> Any:
        return Variable.get("greeting")  # a sync task in an async flow: the value itself

    @flow
    async def greet() -> tuple[Any, ...]:
        pending = Variable.get("greeting")
        assert inspect.isawaitable(pending)
        await Variable.aset("count", 1)
        counted = await Variable.aget("count")
        removed = await Variable.aunset("count")
        return await pending, counted, removed, sync_task(), Variable.get("count", _sync=True)

    assert asyncio.run(greet()) == ("hello", 1, True, "hello", None)


def test_outside_a_run_under_a_running_event_loop_get_is_awaitable_as_in_prefect(
    store: Store,
) -> None:
    Variable.set("mode", "fast")

    async def main() -> Any:
        pending = Variable.get("mode")
        assert inspect.isawaitable(pending)
        return await pending

    assert asyncio.run(main()) == "fast"
    assert Variable.get.aio is not None  # type: ignore[attr-defined]


def test_a_flow_in_another_process_reads_what_the_cli_set(gnomon_home: Path) -> None:
    assert gnomon(gnomon_home, "variable", "set", "limits", '{"rows": 7}', "--json-value")
    result = run_python(
        "from gnomon import flow\n"
        "from gnomon.variables import Variable\n"
        "@flow\n"
        "def read():\n"
        "    return Variable.get('limits')['rows']\n"
        "print(read())\n",
        gnomon_home,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "7"


# The command line.


def test_the_cli_sets_gets_lists_and_removes_variables_audited_as_the_os_user(
    gnomon_home: Path, store: Store
) -> None:
    url = "https://crm.example.com/api"
    created = gnomon(gnomon_home, "variable", "set", "crm-endpoint", url)
    assert (created.returncode, created.stdout) == (0, "variable crm-endpoint created\n")
    made = gnomon(
        gnomon_home, "variable", "set", "batch-size", "500", "--json-value", "--tag", "etl"
    )
    assert made.returncode == 0, made.stderr
    assert gnomon(gnomon_home, "variable", "get", "crm-endpoint").stdout == url + "\n"
    assert gnomon(gnomon_home, "variable", "get", "batch-size").stdout == "500\n"
    shown = json.loads(gnomon(gnomon_home, "variable", "get", "batch-size", "--json").stdout)
    assert (shown["name"], shown["value"], shown["tags"]) == ("batch-size", 500, ["etl"])
    listed = table(gnomon(gnomon_home, "variable", "ls").stdout)
    assert [row[:3] for row in listed] == [
        ["NAME", "VALUE", "TAGS"],
        ["batch-size", "500", "etl"],
        ["crm-endpoint", url, "-"],
    ]
    taken = gnomon(gnomon_home, "variable", "set", "batch-size", "600", "--json-value")
    assert taken.returncode == 1
    assert 'variable "batch-size" exists' in taken.stderr
    assert "--overwrite" in taken.stderr
    replaced = gnomon(
        gnomon_home, "variable", "set", "batch-size", "600", "--json-value", "--overwrite"
    )
    assert replaced.stdout == "variable batch-size replaced\n"
    assert Variable.get("batch-size") == 600
    removed = gnomon(gnomon_home, "variable", "rm", "crm-endpoint")
    assert (removed.returncode, removed.stdout) == (0, "variable crm-endpoint removed\n")
    assert [row.origin for row in store.read_audit(None, 10)] == [Origin.CLI] * 4
    assert {row.actor for row in store.read_audit(None, 10)} == {getpass.getuser()}


def test_the_cli_names_the_variable_in_each_refusal_with_exit_code_2(gnomon_home: Path) -> None:
    gnomon(gnomon_home, "variable", "set", "batch-size", "1")
    cases = {
        ("get", "batch-sise"): 'no variable named "batch-sise"; did you mean "batch-size"?',
        ("rm", "gone"): 'no variable named "gone"',
        ("set", "Bad Name", "1"): "invalid variable name 'Bad Name'",
        ("set", "broken", "{", "--json-value"): 'the value for variable "broken" is not JSON',
        ("set", "huge", "x" * 5001): 'invalid value for variable "huge": it is 5,003 characters',
        # Long names and values are cut short in the message, saying how long they were.
        ("get", "a" * 250): f'no variable named "{"a" * 79}…" (250 characters)',
        ("rm", "a" * 3000): "…' (3000 characters): use lowercase letters",
        ("set", "long", "{" * 3000, "--json-value"): "…' (3000 characters)",
    }
    for args, message in cases.items():
        result = gnomon(gnomon_home, "variable", *args)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
        assert len(result.stderr) < 300, args
    empty = gnomon(gnomon_home, "variable", "ls")
    assert empty.stdout.splitlines()[1].startswith("batch-size")


# The API.


def test_the_api_reads_with_a_read_token_and_changes_only_with_an_admin_one(
    api: Api,  # noqa: F811
) -> None:
    body = {"value": {"rows": 7}, "tags": ["etl"]}
    for access in (TokenAccess.READ, TokenAccess.OPERATE):
        with api.client(api.token_for(f"{access}-token", access)) as client:
            assert client.get("/api/v1/variables").json() == []
            refused = client.put("/api/v1/variables/limits", json=body)
            assert refused.status_code == 403
            assert refused.json()["error"].endswith("this needs admin")
            assert client.delete("/api/v1/variables/limits").status_code == 403
    with api.admin as admin:
        created = admin.put("/api/v1/variables/limits", json=body)
        assert created.status_code == 201, created.text
        view = created.json()
        assert (view["name"], view["value"], view["tags"]) == ("limits", {"rows": 7}, ["etl"])
        taken = admin.put("/api/v1/variables/limits", json={"value": 8})
        assert taken.status_code == 409
        assert taken.json()["error"].startswith('variable "limits" exists')
        replaced = admin.put("/api/v1/variables/limits", json={"value": None, "overwrite": True})
        assert (replaced.status_code, replaced.json()["value"]) == (200, None)
        assert admin.get("/api/v1/variables/limits").json()["value"] is None
        assert [v["name"] for v in admin.get("/api/v1/variables").json()] == ["limits"]
        assert admin.delete("/api/v1/variables/limits").status_code == 204
        missing = admin.delete("/api/v1/variables/limits")
        assert (missing.status_code, missing.json()["error"]) == (404, 'no variable named "limits"')
        assert admin.get("/api/v1/variables/limits").status_code == 404
    actions = [(e.action, e.actor, e.origin) for e in reversed(api.store.read_audit(None, 10))]
    assert actions[-3:] == [
        (AuditAction.VARIABLE_SET, "admin", Origin.API),
        (AuditAction.VARIABLE_SET, "admin", Origin.API),
        (AuditAction.VARIABLE_RM, "admin", Origin.API),
    ]


def test_the_api_answers_bad_names_and_values_with_422_naming_them(
    api: Api,  # noqa: F811
) -> None:
    with api.admin as admin:
        bad_name = admin.put("/api/v1/variables/Bad.Name", json={"value": 1})
        assert bad_name.status_code == 422
        assert bad_name.json()["field"] == "name"
        too_long = admin.put("/api/v1/variables/big", json={"value": "x" * 5001})
        assert too_long.status_code == 422
        assert too_long.json()["error"].startswith('invalid value for variable "big"')
        unknown = admin.put("/api/v1/variables/big", json={"value": 1, "overwrit": True})
        assert unknown.status_code == 422
        assert "overwrit" in unknown.text
    assert api.store.read_variables() == []


def test_the_variables_page_lists_values_escaped_with_links_to_their_audit(
    api: Api,  # noqa: F811
) -> None:
    Variable.set("banner", "<b>maintenance</b>", tags=["ui"])
    with httpx.Client(base_url=api.url, timeout=30, follow_redirects=True) as browser:
        login = browser.post("/login", data={"token": api.token, "next": "/variables"})
        assert login.status_code == 200, login.text
        html = browser.get("/variables").text
        assert 'id="variable-banner"' in html
        assert "&lt;b&gt;maintenance&lt;/b&gt;" in html
        assert "<b>maintenance" not in html
        assert 'href="/audit?target=banner"' in html
        assert '<a href="/variables" aria-current="page">Variables</a>' in html
        audit_page = browser.get("/audit?target=banner").text
        assert 'href="/variables#variable-banner"' in audit_page
