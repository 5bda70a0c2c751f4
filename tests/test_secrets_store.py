"""Secrets (Prefect's ``prefect.blocks.system.Secret``) kept encrypted in gnomon's store:
saving and loading as Prefect 3.8.8 does, values masked in reprs and in what a flow
stores, ciphertext only in the database, the key from a file or systemd's credentials
directory with a clear error for each way it can be missing or wrong, rotation, and
``gnomon secret`` (value from stdin, never argv) and the API's routes. (Masking by key
name is test_secrets.py's.)"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from conftest import logs_of, run_python
from gnomon import flow, get_run_logger
from gnomon._settings import reset_settings
from gnomon.blocks.system import Secret
from gnomon.exceptions import SecretsKeyError
from gnomon.store import AuditAction, Origin, Store, TokenAccess
from test_api import Api, api  # noqa: F401 (the live-server fixture)
from test_cli_daemon import GNOMON, gnomon, table

TOKEN = "sk-live-0123456789abcdef"


def use_key(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GNOMON_SECRETS_KEY_FILE", str(path))
    reset_settings()


@pytest.fixture
def key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gnomon_home: Path) -> Iterator[Path]:
    """A key file made by ``gnomon secret key-gen``, named by the setting."""
    path = tmp_path / "secrets.key"
    made = gnomon(gnomon_home, "secret", "key-gen", str(path))
    assert made.returncode == 0, made.stderr
    use_key(path, monkeypatch)
    yield path
    reset_settings()


def secret_cli(home: Path, *args: str, value: str | bytes = b"", **env: str) -> Any:
    """``gnomon secret ARGS`` with ``value`` on its stdin."""
    data = value.encode() if isinstance(value, str) else value
    return subprocess.run(
        [str(GNOMON), "secret", *args],
        input=data,
        capture_output=True,
        timeout=60,
        env={**os.environ, "GNOMON_HOME": str(home), **env},
        check=False,
    )


def stored_text(store: Store) -> str:
    """Every row of ``secrets`` and ``audit_log`` as the database holds it."""
    with store.engine.connect() as connection:
        rows = [
            *connection.execute(text("SELECT * FROM secrets")),
            *connection.execute(text("SELECT * FROM audit_log")),
        ]
    return "\n".join(repr(tuple(row)) for row in rows)


# Saving and loading, as Prefect does.


@pytest.mark.backends
@pytest.mark.parametrize(
    ("value", "got"),
    [
        (TOKEN, TOKEN),
        ({"user": "etl", "password": "hunter2-long"}, {"user": "etl", "password": "hunter2-long"}),
        ([1, "two"], [1, "two"]),
        (1234, 1234),
        ("123", 123),  # a string holding JSON is given decoded, as Prefect's get() does
    ],
)  # fmt: skip
def test_a_saved_secret_loads_with_its_value(key: Path, store: Store, value: Any, got: Any) -> None:
    assert Secret(value=value).save("crm-token") is None
    assert Secret.load("crm-token").get() == got


@pytest.mark.backends
def test_the_database_holds_ciphertext_only_never_the_value(key: Path, store: Store) -> None:
    Secret(value=TOKEN).save("crm-token")
    Secret(value={"password": "correct-horse-battery"}).save("warehouse")
    row = store.read_secret("crm-token")
    assert row is not None
    assert row.ciphertext.startswith("gAAAAA")  # a Fernet token
    everything = stored_text(store)
    assert "crm-token" in everything  # the rows are there
    for value in (TOKEN, "correct-horse-battery", "0123456789abcdef"):
        assert value not in everything
    assert key.read_text().strip() not in everything


def test_repr_str_and_dumps_mask_the_value(key: Path) -> None:
    secret = Secret(value=TOKEN)
    assert repr(secret) == str(secret) == "Secret(value=Secret('**********'))"
    assert secret.model_dump_json() == '{"value":"**********"}'
    assert TOKEN not in repr(Secret.model_validate({"value": TOKEN}))
    secret.save("crm-token")
    loaded = Secret.load("crm-token")
    assert TOKEN not in f"{loaded} {loaded!r} {loaded.model_dump()} {loaded.value}"


@pytest.mark.backends
def test_save_refuses_a_name_in_use_unless_overwrite(key: Path, store: Store) -> None:
    Secret(value="first-value").save("crm-token")
    with pytest.raises(ValueError) as refused:
        Secret(value="second-value").save("crm-token")
    assert "(crm-token) that is already in use" in str(refused.value)
    assert "overwrite=True" in str(refused.value)
    assert Secret.load("crm-token").get() == "first-value"
    Secret(value="second-value").save("crm-token", overwrite=True)
    loaded = Secret.load("crm-token")
    assert loaded.get() == "second-value"
    with pytest.raises(ValueError, match="already in use"):
        loaded.save()  # under the name it was loaded from
    loaded.save(overwrite=True)
    assert Secret.load("crm-token").get() == "second-value"
    with pytest.raises(ValueError, match="without a name"):
        Secret(value="x").save()


def test_loading_or_deleting_a_missing_secret_is_prefects_value_error(key: Path) -> None:
    message = "Unable to find block document named nope for block type secret"
    with pytest.raises(ValueError) as missing:
        Secret.load("nope")
    assert str(missing.value) == message
    Secret(value="x-value").save("gone")
    Secret.delete("gone")
    with pytest.raises(ValueError, match="Unable to find block document named gone"):
        Secret.delete("gone")
    with pytest.raises(ValueError, match="named Not_A_Name"):
        Secret.load("Not_A_Name")


def test_names_follow_prefects_block_name_rule(key: Path) -> None:
    for bad in ("Upper", "under_score", "", "x" * 256, "dot.ted"):
        with pytest.raises(ValueError) as refused:
            Secret(value="v").save(bad)
        assert str(refused.value).startswith(f"invalid secret name {repr(bad)[:40]}")
    with pytest.raises(ValueError):
        Secret(value=object())  # not a string or JSON


@pytest.mark.backends
def test_saves_and_deletes_are_audited_without_the_value(key: Path, store: Store) -> None:
    Secret(value=TOKEN).save("crm-token")
    Secret(value=TOKEN + "-2").save("crm-token", overwrite=True)
    assert [row.updated_by for row in store.read_secrets()] == [getpass.getuser()]
    Secret.delete("crm-token")
    entries = [(e.action, e.actor, e.origin, e.target, e.detail) for e in store.read_audit()]
    user = getpass.getuser()
    assert entries[::-1] == [
        (AuditAction.SECRET_SET, user, Origin.PYTHON, "crm-token", {"replaced": False}),
        (AuditAction.SECRET_SET, user, Origin.PYTHON, "crm-token", {"replaced": True}),
        (AuditAction.SECRET_RM, user, Origin.PYTHON, "crm-token", None),
    ]
    assert store.read_secrets() == []


def test_the_async_forms_and_dispatch_in_an_async_flow(key: Path) -> None:
    @flow
    async def rotate_token() -> Any:
        await Secret(value="async-value").save("crm-token")
        pending = Secret.load("crm-token")
        loaded = await pending
        await Secret.adelete("crm-token")
        return loaded.get()

    assert asyncio.run(rotate_token()) == "async-value"
    with pytest.raises(ValueError):
        Secret.load("crm-token")


# A loaded secret is masked in what a flow stores.


@pytest.mark.backends
def test_a_flow_logging_a_loaded_secret_stores_it_masked(key: Path, store: Store) -> None:
    Secret(value=TOKEN).save("crm-token")
    run_ids: list[str] = []

    @flow(log_prints=True)
    def call_crm() -> None:
        from gnomon.runtime import flow_run

        run_ids.append(str(flow_run.id))
        token = Secret.load("crm-token").get()
        get_run_logger().info("calling the CRM with %s", token)
        print(f"Authorization: Bearer {token}")
        raise RuntimeError(f"the CRM refused {token}")

    state = call_crm(return_state=True)
    assert state.is_failed()
    lines = [row.message for row in logs_of(store, run_ids[0])]
    assert "calling the CRM with ********" in lines
    assert "Authorization: Bearer ********" in lines
    run = store.read_flow_run(run_ids[0])
    assert run is not None
    stored = f"{lines} {run.state_message} {run.error_message} {run.error_traceback}"
    assert "the CRM refused ********" in stored
    assert TOKEN not in stored


def test_a_flow_in_a_fresh_process_masks_the_secret_it_loads(key: Path, gnomon_home: Path) -> None:
    Secret(value=TOKEN).save("crm-token")
    result = run_python(
        "from gnomon import flow, get_run_logger\n"
        "from gnomon.blocks.system import Secret\n"
        "from gnomon.store import get_store, LogQuery\n"
        "@flow\n"
        "def use():\n"
        "    get_run_logger().warning('token is ' + Secret.load('crm-token').get())\n"
        "use()\n"
        "rows = get_store().search_logs(LogQuery(), None, newest=False)\n"
        "print([row.message for row in rows if row.message.startswith('token is')])\n",
        gnomon_home,
        GNOMON_SECRETS_KEY_FILE=str(key),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "['token is ********']"
    assert TOKEN not in result.stdout + result.stderr


# The key: where it comes from, and each way it can be wrong.


def test_without_a_key_saving_and_loading_say_where_to_put_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    with pytest.raises(SecretsKeyError) as missing:
        Secret(value="v").save("crm-token")
    message = str(missing.value)
    assert message.startswith("no key for secrets: secrets_key_file is not set")
    assert "$CREDENTIALS_DIRECTORY" in message
    assert "LoadCredential=gnomon-secrets-key" in message
    assert "gnomon secret key-gen PATH" in message


def test_the_key_comes_from_systemds_credentials_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gnomon_home: Path
) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    reset_settings()
    with pytest.raises(SecretsKeyError) as missing:
        Secret(value="v").save("crm-token")
    expected = f"{credentials / 'gnomon-secrets-key'} ($CREDENTIALS_DIRECTORY/gnomon-secrets-key)"
    assert str(missing.value).startswith(f"cannot read the key for secrets {expected}")
    assert "No such file or directory" in str(missing.value)
    made = gnomon(gnomon_home, "secret", "key-gen", str(credentials / "gnomon-secrets-key"))
    assert made.returncode == 0, made.stderr
    Secret(value=TOKEN).save("crm-token")
    assert Secret.load("crm-token").get() == TOKEN


@pytest.mark.parametrize(
    ("content", "mode", "message"),
    [
        (None, 0o600, "cannot read the key for secrets {where}: No such file"),
        ("not a key\n", 0o600, "the key for secrets {where}, line 1, is not a key"),
        ("# only a comment\n\n", 0o600, "the key file for secrets {where} holds no key"),
        (b"\xff\xfe", 0o600, "cannot read the key for secrets {where}: not a key file"),
        ("KEY", 0o644, "the key for secrets {where} is readable by every user"),
        ("KEY", 0o622, "the key for secrets {where} is writable by others"),
        ("KEY", 0o620, "the key for secrets {where} is writable by others"),
    ],
)  # fmt: skip
def test_a_key_file_that_cannot_be_used_is_named_with_what_is_wrong(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    content: str | bytes | None,
    mode: int,
    message: str,
) -> None:
    from gnomon._vault import new_key

    path = tmp_path / "secrets.key"
    if content is not None:
        data = new_key() if content == "KEY" else content
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        path.chmod(mode)
    use_key(path, monkeypatch)
    with pytest.raises(SecretsKeyError) as refused:
        Secret(value="v").save("crm-token")
    where = f"{path} (secrets_key_file)"
    assert str(refused.value).startswith(message.format(where=where))


@pytest.mark.backends
def test_a_secret_sealed_with_another_key_is_named_in_the_error(
    key: Path, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gnomon._vault import write_key_file

    Secret(value=TOKEN).save("crm-token")
    other = tmp_path / "other.key"
    write_key_file(other)
    use_key(other, monkeypatch)
    with pytest.raises(SecretsKeyError) as refused:
        Secret.load("crm-token")
    assert str(refused.value).startswith(
        f'secret "crm-token" cannot be decrypted with the key(s) in {other} (secrets_key_file)'
    )


@pytest.mark.backends
def test_rotation_seals_every_secret_with_the_new_first_key(
    key: Path, store: Store, tmp_path: Path, gnomon_home: Path
) -> None:
    from gnomon._vault import new_key

    Secret(value=TOKEN).save("crm-token")
    Secret(value={"password": "pw-value-1"}).save("warehouse")
    before = {row.name: row for row in store.read_secrets()}
    old_key = key.read_text().strip()
    fresh = new_key()
    key.write_text(f"# rotated\n{fresh}\n{old_key}\n")
    rotated = gnomon(gnomon_home, "secret", "rotate", GNOMON_SECRETS_KEY_FILE=str(key))
    assert (rotated.returncode, rotated.stdout) == (
        0,
        "2 secret(s) encrypted again with the first key\n",
    ), rotated.stderr
    key.write_text(f"{fresh}\n")  # the old key is gone: every secret opens with the new one
    assert Secret.load("crm-token").get() == TOKEN
    assert Secret.load("warehouse").get() == {"password": "pw-value-1"}
    after = {row.name: row for row in store.read_secrets()}
    assert all(after[name].ciphertext != before[name].ciphertext for name in before)
    assert all(after[name].updated == before[name].updated for name in before)
    [entry] = [e for e in store.read_audit() if e.action == AuditAction.SECRET_ROTATE]
    assert (entry.origin, entry.detail) == (Origin.CLI, {"secrets": ["crm-token", "warehouse"]})


# The command line.


@pytest.mark.backends
def test_the_cli_reads_a_secret_from_stdin_or_a_file_and_never_prints_it(
    key: Path, store: Store, gnomon_home: Path, tmp_path: Path
) -> None:
    env = {"GNOMON_SECRETS_KEY_FILE": str(key)}
    created = secret_cli(gnomon_home, "set", "crm-token", value=TOKEN + "\n", **env)
    assert (created.returncode, created.stdout) == (0, b"secret crm-token created\n")
    assert Secret.load("crm-token").get() == TOKEN  # echo's newline dropped
    creds = tmp_path / "creds.json"
    creds.write_text('{"username": "etl", "password": "from-a-file"}')
    from_file = secret_cli(gnomon_home, "set", "warehouse", "--from-file", str(creds), **env)
    assert from_file.returncode == 0, from_file.stderr
    assert Secret.load("warehouse").get() == {"username": "etl", "password": "from-a-file"}
    taken = secret_cli(gnomon_home, "set", "crm-token", value="other", **env)
    assert taken.returncode == 1
    assert b'secret "crm-token" exists; to replace it, give --overwrite' in taken.stderr
    replaced = secret_cli(gnomon_home, "set", "crm-token", "--overwrite", value="new-token", **env)
    assert replaced.stdout == b"secret crm-token replaced\n"
    listed = gnomon(gnomon_home, "secret", "ls", **env)
    rows = table(listed.stdout)
    assert rows[0] == ["NAME", "UPDATED", "UPDATED_BY", "CREATED"]
    assert [(row[0], row[2]) for row in rows[1:]] == [
        ("crm-token", getpass.getuser()),
        ("warehouse", getpass.getuser()),
    ]
    as_json = json.loads(gnomon(gnomon_home, "secret", "ls", "--json").stdout)
    assert [sorted(view) for view in as_json] == [["created", "name", "updated", "updated_by"]] * 2
    for output in (listed.stdout, created.stdout, replaced.stdout):
        assert "new-token" not in str(output)
        assert TOKEN not in str(output)
    removed = gnomon(gnomon_home, "secret", "rm", "crm-token", **env)
    assert (removed.returncode, removed.stdout) == (0, "secret crm-token removed\n")
    again = gnomon(gnomon_home, "secret", "rm", "crm-token", **env)
    assert (again.returncode, again.stderr) == (2, 'Error: no secret named "crm-token"\n')


def test_the_cli_takes_no_value_on_the_command_line(key: Path, gnomon_home: Path) -> None:
    result = secret_cli(gnomon_home, "set", "crm-token", TOKEN, GNOMON_SECRETS_KEY_FILE=str(key))
    assert result.returncode == 2
    assert b"Got unexpected extra argument" in result.stderr
    assert gnomon(gnomon_home, "secret", "ls").stderr == "no secrets\n"


def test_the_cli_refuses_empty_oversized_and_non_utf8_values(key: Path, gnomon_home: Path) -> None:
    env = {"GNOMON_SECRETS_KEY_FILE": str(key)}
    cases = {
        b"\n": b'the value for secret "crm-token" is empty',
        b"\xff\xfe": b'the value for secret "crm-token" (stdin) is not UTF-8 text',
        b"x" * 70_000: b'the value for secret "crm-token" (stdin) is over 65536 bytes',
    }
    for data, message in cases.items():
        result = secret_cli(gnomon_home, "set", "crm-token", value=data, **env)
        assert result.returncode == 2, result.stderr
        assert message in result.stderr
    bad_name = secret_cli(gnomon_home, "set", "crm_token", value="v", **env)
    assert b"invalid secret name 'crm_token'" in bad_name.stderr
    # A bad name is said first, cut short: not the value's problem, nor 3,000 characters.
    long_name = secret_cli(gnomon_home, "set", "a" * 3000, value=b"x" * 70_000, **env)
    assert long_name.returncode == 2
    assert b"(3000 characters): use lowercase letters" in long_name.stderr
    assert len(long_name.stderr) < 300


def test_the_cli_without_a_key_says_where_it_looked_and_exits_2(
    gnomon_home: Path, tmp_path: Path
) -> None:
    env = {key: value for key, value in os.environ.items() if key != "CREDENTIALS_DIRECTORY"}
    result = subprocess.run(
        [str(GNOMON), "secret", "set", "crm-token"],
        input=b"value",
        capture_output=True,
        timeout=60,
        env={**env, "GNOMON_HOME": str(gnomon_home)},
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.startswith(b"Error: no key for secrets: secrets_key_file is not set")
    # An empty variable is unset too, not the working directory (Path("")).
    empty = secret_cli(gnomon_home, "set", "crm-token", value="v", GNOMON_SECRETS_KEY_FILE="")
    assert empty.returncode == 2
    assert empty.stderr.startswith(b"Error: no key for secrets: secrets_key_file is not set")
    missing = tmp_path / "nowhere.key"
    named = secret_cli(
        gnomon_home, "set", "crm-token", value="v", GNOMON_SECRETS_KEY_FILE=str(missing)
    )
    assert named.returncode == 2
    assert f"cannot read the key for secrets {missing} (secrets_key_file)".encode() in named.stderr


def test_key_gen_writes_a_private_key_file_and_never_replaces_one(
    gnomon_home: Path, tmp_path: Path
) -> None:
    path = tmp_path / "secrets.key"
    made = gnomon(gnomon_home, "secret", "key-gen", str(path))
    assert (made.returncode, made.stdout) == (0, f"wrote a new key to {path}\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = path.read_text()
    assert len(first.strip()) == 44
    again = gnomon(gnomon_home, "secret", "key-gen", str(path))
    assert again.returncode == 1
    assert "exists; not replacing a key" in again.stderr
    assert path.read_text() == first


# The API.


@pytest.mark.backends
def test_the_api_lists_names_and_sets_with_an_admin_token_never_returning_values(
    key: Path,
    api: Api,  # noqa: F811
) -> None:
    body = {"value": TOKEN}
    for access in (TokenAccess.READ, TokenAccess.OPERATE):
        with api.client(api.token_for(f"{access}-token", access)) as client:
            assert client.get("/api/v1/secrets").json() == []
            assert client.put("/api/v1/secrets/crm-token", json=body).status_code == 403
            assert client.delete("/api/v1/secrets/crm-token").status_code == 403
    with api.admin as admin:
        created = admin.put("/api/v1/secrets/crm-token", json=body)
        assert created.status_code == 201, created.text
        assert sorted(created.json()) == ["created", "name", "updated", "updated_by"]
        assert created.json()["updated_by"] == "admin"
        taken = admin.put("/api/v1/secrets/crm-token", json={"value": "x"})
        assert taken.status_code == 409
        replaced = admin.put(
            "/api/v1/secrets/crm-token", json={"value": {"token": TOKEN}, "overwrite": True}
        )
        assert replaced.status_code == 200
        listed = admin.get("/api/v1/secrets")
        assert [view["name"] for view in listed.json()] == ["crm-token"]
        assert admin.get("/api/v1/secrets/crm-token").status_code == 405  # no value is served
        for response in (created, taken, replaced, listed):
            assert TOKEN not in response.text
        assert Secret.load("crm-token").get() == {"token": TOKEN}
        assert admin.put("/api/v1/secrets/Bad_Name", json=body).status_code == 422
        assert admin.delete("/api/v1/secrets/crm-token").status_code == 204
        assert admin.delete("/api/v1/secrets/crm-token").status_code == 404
    assert TOKEN not in stored_text(api.store)


def test_the_api_without_a_key_answers_503_saying_so(
    api: Api,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    with api.admin as admin:
        response = admin.put("/api/v1/secrets/crm-token", json={"value": TOKEN})
    assert response.status_code == 503
    assert response.json()["error"].startswith("no key for secrets")
    assert api.store.read_secrets() == []


# A daemon's worker, with the key as systemd gives it.

SECRET_FLOWS = """
from gnomon import flow, get_run_logger
from gnomon.blocks.system import Secret


@flow
def call_crm() -> None:
    token = Secret.load("crm-token").get()
    print("printed", token)
    get_run_logger().info("logged %s", token)
    raise RuntimeError(f"the CRM refused {token}")
"""


@pytest.mark.slow
def test_a_daemons_worker_opens_a_secret_with_systemds_credential_and_stores_it_masked(
    tmp_path: Path,
    gnomon_home: Path,
    store: Store,
    daemons: list[Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from gnomon._vault import write_key_file
    from gnomon.control import Operations
    from gnomon.store import Actor, LogQuery
    from test_daemon import start_daemon, write_config

    credentials = tmp_path / "credentials"  # as LoadCredential=gnomon-secrets-key:... makes it
    credentials.mkdir(mode=0o700)
    write_key_file(credentials / "gnomon-secrets-key")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    reset_settings()
    Secret(value=TOKEN).save("crm-token")
    (tmp_path / "crm_flows.py").write_text(SECRET_FLOWS)
    deployment = (
        '[[deployments]]\nname = "crm"\nflow = "crm_flows.py:call_crm"\ncron = "0 0 1 1 *"\n'
    )
    config = write_config(tmp_path, deployment, daemon="workers = 1")
    Operations(store, Actor("test", "cli")).apply(config)  # registered before the daemon runs
    daemon = start_daemon(config, gnomon_home, CREDENTIALS_DIRECTORY=str(credentials))
    daemons.append(daemon)
    ran = gnomon(gnomon_home, "run", "crm", "--wait", GNOMON_CONFIG=str(config))
    daemon.terminate()
    stdout, stderr = daemon.communicate(timeout=60)
    assert ran.returncode == 1, (ran.stdout, ran.stderr, stderr)
    [run] = store.read_runs("crm")
    lines = [row.message for row in store.search_logs(LogQuery(), None, newest=False)]
    everything = {
        "cli": ran.stdout + ran.stderr,
        "logs": "\n".join(lines),
        "run": f"{run.state_message} {run.error_message} {run.error_traceback}",
        "daemon stdout": stdout,
        "daemon stderr": stderr,
        "log file": (gnomon_home / "logs" / "gnomon.jsonl").read_text(),
    }
    for where, written in everything.items():
        assert TOKEN not in written, where
    assert "logged ********" in lines
    assert "printed ********" in lines
    assert "the CRM refused ********" in everything["run"]


def test_a_secret_given_as_bytes_is_its_text(key: Path) -> None:
    Secret(value=b"token-from-a-file").save("from-bytes")
    assert Secret.load("from-bytes").get() == "token-from-a-file"


def test_a_refused_value_is_not_quoted_in_the_error(key: Path) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as refused:
        Secret(value={b"ghp_RefusedValue123"})
    assert "ghp_RefusedValue123" not in str(refused.value)
    with pytest.raises(ValidationError) as refused:
        Secret(value=b"\xffghp_NotUtf8Value")
    assert "NotUtf8Value" not in str(refused.value)
