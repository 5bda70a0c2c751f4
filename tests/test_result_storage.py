"""Where results and cache records are stored, and the key they are signed with.

The storage is a directory (``GNOMON_HOME/results`` by default, or a shared mount) or an
fsspec URL; here a URL is ``memory://``, fsspec's in-process file system. Whatever it is, a
cached task is answered from it and a record signed with another key is never loaded.
Hosts sharing one storage across processes: test_result_storage_hosts.py.
"""

from __future__ import annotations

import base64
import os
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from gnomon import flow, task
from gnomon._settings import get_settings, reset_settings
from gnomon.cache_policies import INPUTS
from gnomon.deployments import load_config
from gnomon.exceptions import ConfigError, ResultStorageError
from gnomon.flows import _results, check_result_storage

KEY = bytes(range(32))
OTHER_KEY = bytes(range(100, 132))


def counting():
    calls: list[int] = []

    @task(cache_policy=INPUTS)
    def compute(x: int) -> str:
        calls.append(x)
        return f"value {x} from call {len(calls)}"

    @flow
    def pipeline(x: int) -> str:
        return compute(x, return_state=True).name

    return pipeline, calls


def use(monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    """Set GNOMON_* variables and forget the settings and result stores read before."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    reset_settings()
    _results._stores.clear()


@pytest.fixture
def memory_url() -> Iterator[str]:
    """A fresh place in fsspec's in-process file system, emptied afterwards."""
    import fsspec

    url = f"memory://gnomon-{uuid.uuid4().hex}/results"
    yield url
    fs = fsspec.filesystem("memory")
    if fs.exists(url):
        fs.rm(url, recursive=True)


def write_key(path: Path, text: str | bytes, mode: int = 0o600) -> Path:
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    path.chmod(mode)
    return path


# Settings: the [results] table, GNOMON_RESULTS_* variables.


def test_the_results_table_of_the_config_file_sets_storage_and_key_file(
    tmp_path, monkeypatch
) -> None:
    config = tmp_path / "gnomon.toml"
    config.write_text(
        textwrap.dedent(
            """
            [daemon]
            workers = 1

            [results]
            storage = "s3://bucket/results"  # shared by every host
            key_file = "/etc/gnomon/results.key"

            [[deployments]]
            name = "a"
            flow = "flows.py:a"
            """
        )
    )
    use(monkeypatch, GNOMON_CONFIG=str(config))

    results = get_settings().results
    assert results.storage == "s3://bucket/results"
    assert results.key_file == Path("/etc/gnomon/results.key")
    problems = [str(problem) for problem in load_config(config, check_flows=False).problems]
    assert not [problem for problem in problems if "results" in problem], problems


def test_environment_variables_override_the_results_table(tmp_path, monkeypatch) -> None:
    config = tmp_path / "gnomon.toml"
    config.write_text('[results]\nstorage = "/srv/from-config"\nkey_file = "/etc/k"\n')
    use(
        monkeypatch,
        GNOMON_CONFIG=str(config),
        GNOMON_RESULTS_STORAGE="memory://from-env",
        GNOMON_RESULTS_KEY_FILE="",  # empty: unset, so the file's value stands
    )

    results = get_settings().results
    assert (results.storage, results.key_file) == ("memory://from-env", Path("/etc/k"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[[deployments]]\nname = "a"\n\n[results]\nstorage = "/srv/r"\n', "/srv/r"),
        ('results.storage = "/srv/dotted"\n[[deployments]]\nname = "a"\n', "/srv/dotted"),
        # A "[results]" line inside a deployment's multi-line string is not the table: its
        # cut does not parse, and the whole file says there is none.
        ('[[deployments]]\nname = "a"\nnotes = """\n[results]\nstorage = "/x"\n"""\n', None),
        ('[[deployments]]\nname = "a"\nnotes = "[results] storage = 1"\n', None),
    ],
)
def test_the_results_table_is_found_wherever_the_config_puts_it(
    tmp_path, monkeypatch, text, expected
) -> None:
    config = tmp_path / "gnomon.toml"
    config.write_text(text)
    use(monkeypatch, GNOMON_CONFIG=str(config))

    assert get_settings().results.storage == expected


def test_a_relative_storage_path_is_made_absolute_as_home_is(tmp_path, monkeypatch) -> None:
    use(monkeypatch, GNOMON_RESULTS_STORAGE="shared/results")

    assert get_settings().results.storage == str(tmp_path / "shared" / "results")


def test_a_key_written_in_the_config_file_is_refused_naming_the_file(tmp_path, monkeypatch):
    config = tmp_path / "gnomon.toml"
    config.write_text(f'[results]\nkey = "{KEY.hex()}"\n')
    use(monkeypatch, GNOMON_CONFIG=str(config))

    with pytest.raises(ConfigError) as error:
        get_settings()

    assert str(config) in str(error.value)
    assert "never belongs in the config" in str(error.value)
    assert KEY.hex() not in str(error.value)


@pytest.mark.parametrize(
    ("table", "named"),
    [
        ('storage = ""', "results.storage = ''"),
        ('storage = "s3:/bucket://x"', "results.storage = 's3:/bucket://x'"),
        ('key_fil = "/etc/k"', "results.key_fil"),
    ],
)
def test_a_bad_results_setting_is_refused_naming_it(tmp_path, monkeypatch, table, named):
    config = tmp_path / "gnomon.toml"
    config.write_text(f"[results]\n{table}\n")
    use(monkeypatch, GNOMON_CONFIG=str(config))

    with pytest.raises(ConfigError, match="invalid settings") as error:
        get_settings()

    assert named in str(error.value)


def test_results_given_whole_in_the_environment_are_refused_saying_how(monkeypatch) -> None:
    use(monkeypatch, GNOMON_RESULTS="/srv/results")

    with pytest.raises(ConfigError, match="GNOMON_RESULTS_STORAGE"):
        get_settings()


def test_a_key_of_the_wrong_type_is_refused_without_showing_it(monkeypatch) -> None:
    use(monkeypatch, GNOMON_RESULTS=f'{{"key": ["{KEY.hex()}"], "storage": "/srv/r"}}')

    with pytest.raises(ConfigError, match=r"results\.key = '\*\*\*'") as error:
        get_settings()

    assert KEY.hex() not in str(error.value)


# The signing key.


@pytest.mark.parametrize(
    "text",
    [KEY.hex(), KEY.hex().upper() + "\n", base64.b64encode(KEY).decode(), KEY],
    ids=["hex", "hex-upper", "base64", "raw"],
)
def test_a_key_file_in_hex_base64_or_raw_bytes_signs_alike(tmp_path, monkeypatch, text):
    use(monkeypatch, GNOMON_RESULTS_KEY=KEY.hex())
    from_env = _results.get_result_store().signing_key()
    key_file = write_key(tmp_path / "results.key", text)
    monkeypatch.delenv("GNOMON_RESULTS_KEY")
    use(monkeypatch, GNOMON_RESULTS_KEY_FILE=str(key_file))

    from_file = _results.get_result_store().signing_key()

    assert from_file.secret == from_env.secret == KEY
    assert from_file.id == from_env.id
    assert str(key_file) in from_file.source


@pytest.mark.parametrize(
    ("content", "mode", "expected"),
    [
        (None, 0o600, "No such file or directory"),
        (KEY[:16].hex(), 0o600, "too short: 16 bytes, it needs at least 32"),
        ("not a key, just words", 0o600, "neither hex nor base64"),
        ("", 0o600, "holds no key"),
        (f"{KEY.hex()}\n# the old one:\n{KEY[:31].hex()}\n", 0o600, "line 3, is too short"),
        (KEY.hex(), 0o644, "readable by every user"),
        (KEY.hex(), 0o620, "writable by others"),
    ],
    ids=["missing", "short", "not-a-key", "empty", "short-second", "world-readable", "writable"],
)
def test_a_bad_key_file_stops_the_run_naming_the_setting_and_the_file(
    tmp_path, monkeypatch, content, mode, expected
):
    key_file = tmp_path / "results.key"
    if content is not None:
        write_key(key_file, content, mode)
    use(monkeypatch, GNOMON_RESULTS_KEY_FILE=str(key_file))
    pipeline, calls = counting()

    with pytest.raises(ResultStorageError) as error:
        pipeline(1)

    assert f"{key_file} (results.key_file)" in str(error.value)
    assert expected in str(error.value)
    assert calls == [], "the task did not run on a key it cannot sign with"
    with pytest.raises(ConfigError, match=r"\(results\.key_file\)"):
        check_result_storage()


def test_a_key_rotated_host_by_host_keeps_the_cache_shared_at_every_step(
    tmp_path, monkeypatch, memory_url
) -> None:
    """The rotation the key module gives: the new key below the old, then first, then
    alone. At each step host A moves first and caches a new input; host B, still at the
    step before, must find it. Only records signed with the old key alone are lost at
    the end, made again once."""
    old, new = KEY.hex(), OTHER_KEY.hex()
    steps = [f"{old}\n", f"{old}\n{new}\n", f"# new first\n{new}\n{old}\n", f"{new}\n"]
    pipeline, calls = counting()

    def on(host: str, step: int) -> None:
        key = write_key(tmp_path / f"{host}-{step}.key", steps[step])
        use(
            monkeypatch,
            GNOMON_HOME=str(tmp_path / host),
            GNOMON_RESULTS_STORAGE=memory_url,
            GNOMON_RESULTS_KEY_FILE=str(key),
        )

    on("a", 0)
    assert pipeline(0) == "Completed"
    found_by_b = []
    for step in range(1, len(steps)):
        on("a", step)
        assert pipeline(step) == "Completed"
        on("b", step - 1)
        found_by_b.append(pipeline(step))

    assert found_by_b == ["Cached"] * 3
    on("b", 3)
    assert [pipeline(0), pipeline(0)] == ["Completed", "Cached"], "signed by the old key only"
    assert calls == [0, 1, 2, 3, 0]


def test_a_bad_key_in_the_environment_is_named_but_never_shown(monkeypatch) -> None:
    secret = KEY[:20].hex()
    use(monkeypatch, GNOMON_RESULTS_KEY=secret)

    with pytest.raises(ConfigError) as error:
        check_result_storage()

    assert "GNOMON_RESULTS_KEY is too short: 20 bytes" in str(error.value)
    assert secret not in str(error.value)


def test_a_key_in_the_environment_and_a_key_file_together_are_refused(tmp_path, monkeypatch):
    key_file = write_key(tmp_path / "results.key", KEY.hex())
    use(monkeypatch, GNOMON_RESULTS_KEY=KEY.hex(), GNOMON_RESULTS_KEY_FILE=str(key_file))

    with pytest.raises(ConfigError, match=r"both GNOMON_RESULTS_KEY and results\.key_file"):
        check_result_storage()


def test_systemd_credential_is_the_key_when_none_is_configured(tmp_path, monkeypatch):
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    write_key(credentials / "gnomon-results-key", KEY.hex(), 0o400)
    use(monkeypatch, CREDENTIALS_DIRECTORY=str(credentials))

    assert _results.get_result_store().signing_key().secret == KEY


# A storage given as a URL: fsspec.


def test_a_cached_task_is_a_hit_from_a_url_storage_under_another_home(
    tmp_path, monkeypatch, memory_url
) -> None:
    use(monkeypatch, GNOMON_RESULTS_STORAGE=memory_url, GNOMON_RESULTS_KEY=KEY.hex())
    pipeline, calls = counting()
    assert pipeline(1) == "Completed"

    use(monkeypatch, GNOMON_HOME=str(tmp_path / "other-home"))
    assert pipeline(1) == "Cached"

    assert calls == [1]
    import fsspec

    assert len(fsspec.filesystem("memory").ls(memory_url)) == 1
    for home in (tmp_path / "gnomon-home", tmp_path / "other-home"):
        assert not (home / "results").exists(), "nothing was stored in a home"


def test_a_record_signed_with_another_key_is_never_loaded_from_a_url_storage(
    monkeypatch, memory_url
) -> None:
    use(monkeypatch, GNOMON_RESULTS_STORAGE=memory_url, GNOMON_RESULTS_KEY=KEY.hex())
    pipeline, calls = counting()
    pipeline(1)

    use(monkeypatch, GNOMON_RESULTS_KEY=base64.b64encode(OTHER_KEY).decode())
    assert pipeline(1) == "Completed", "a miss: the body ran again"
    assert pipeline(1) == "Cached", "its own record, signed with its key, is a hit"

    assert calls == [1, 1]


def test_the_reason_a_record_is_refused_names_both_keys(monkeypatch, memory_url) -> None:
    use(monkeypatch, GNOMON_RESULTS_STORAGE=memory_url, GNOMON_RESULTS_KEY=KEY.hex())
    from datetime import UTC, datetime

    _results.get_result_store().write("shared", 42, datetime.now(UTC), None)
    signer = _results.get_result_store().signing_key().id
    use(monkeypatch, GNOMON_RESULTS_KEY=OTHER_KEY.hex())
    mine = _results.get_result_store().signing_key().id

    with pytest.raises(ResultStorageError) as error:
        _results.get_result_store().read("shared")

    message = str(error.value)
    assert f"signed with another key (id {signer})" in message
    assert f"(id {mine}, from GNOMON_RESULTS_KEY)" in message
    assert memory_url in message


def test_a_flow_persisting_its_result_writes_it_to_the_url_storage(
    monkeypatch, memory_url, store
) -> None:
    use(monkeypatch, GNOMON_RESULTS_STORAGE=memory_url, GNOMON_RESULTS_KEY=KEY.hex())

    @flow(persist_result=True)
    def answer() -> int:
        return 42

    answer()

    [run] = store.read_runs()
    stored = _results.get_result_store().read(run.result_ref["key"])
    assert stored is not None
    assert stored.value == 42


def test_pruning_removes_a_runs_own_and_expired_records_from_a_url_storage(
    monkeypatch, memory_url
) -> None:
    from datetime import UTC, datetime, timedelta

    from gnomon.flows import prune_result_files
    from gnomon.store import ResultFile

    use(monkeypatch, GNOMON_RESULTS_STORAGE=memory_url, GNOMON_RESULTS_KEY=KEY.hex())
    results = _results.get_result_store()
    now = datetime(2030, 1, 1, tzinfo=UTC)
    written = now - timedelta(days=100)
    results.write("own-run-id", 1, written, None)
    results.write("expired", 2, written, now - timedelta(days=1))
    results.write("unexpired", 3, written, now + timedelta(days=1))
    files = [ResultFile(key, key == "own-run-id") for key in ("own-run-id", "expired", "unexpired")]

    removed = prune_result_files(files, written_before=now, now=now, dry_run=False)

    assert removed == 2
    assert [results.read(key) is None for key in ("own-run-id", "expired", "unexpired")] == [
        True,
        True,
        False,
    ]


# A storage that cannot be used.


def test_an_unknown_protocol_is_refused_naming_the_setting_and_the_value(monkeypatch):
    use(monkeypatch, GNOMON_RESULTS_STORAGE="nope://bucket/results")
    pipeline, calls = counting()

    with pytest.raises(ConfigError) as error:
        check_result_storage()
    with pytest.raises(ResultStorageError, match="unknown protocol 'nope'"):
        pipeline(1)

    assert "'nope://bucket/results' (results.storage" in str(error.value)
    assert "unknown protocol 'nope'; fsspec knows" in str(error.value)
    assert calls == []


def test_a_protocol_whose_package_is_missing_says_which_to_install(monkeypatch) -> None:
    pytest.importorskip("fsspec")
    try:
        import s3fs  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("s3fs is installed here: s3:// would open")
    use(monkeypatch, GNOMON_RESULTS_STORAGE="s3://bucket/results")

    with pytest.raises(ConfigError) as error:
        check_result_storage()

    assert "'s3://bucket/results' (results.storage" in str(error.value)
    assert "s3fs" in str(error.value)


def test_a_directory_that_cannot_be_written_is_refused_naming_the_setting(tmp_path, monkeypatch):
    # Root may write any directory; a path through a plain file cannot be made by anyone.
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    use(
        monkeypatch,
        GNOMON_RESULTS_STORAGE=str(blocker / "results"),
        GNOMON_RESULTS_KEY=KEY.hex(),
    )

    with pytest.raises(ConfigError) as error:
        check_result_storage()

    assert f"'{blocker / 'results'}' (results.storage" in str(error.value)
    assert "cannot write: Not a directory" in str(error.value)


def test_a_task_whose_storage_cannot_be_written_still_completes_and_says_why(
    tmp_path, monkeypatch, capfd
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    use(monkeypatch, GNOMON_RESULTS_STORAGE=f"file://{blocker}/results")
    pipeline, calls = counting()

    assert pipeline(1) == "Completed"
    assert pipeline(1) == "Completed"

    assert calls == [1, 1]
    assert "cannot write: Not a directory" in capfd.readouterr().err


def test_the_default_storage_is_checked_only_when_used(gnomon_home) -> None:
    assert check_result_storage() is None
    assert not (gnomon_home / "results").exists()


def test_a_configured_storage_is_checked_and_left_as_it_was(tmp_path, monkeypatch) -> None:
    shared = tmp_path / "shared"
    use(monkeypatch, GNOMON_RESULTS_STORAGE=f"file://{shared}", GNOMON_RESULTS_KEY=KEY.hex())

    description = check_result_storage()

    assert description is not None
    assert str(shared) in description
    assert os.listdir(shared) == []


@pytest.mark.parametrize("shared_key", [False, True])
def test_a_storage_set_without_a_shared_key_is_warned_about_at_the_check(
    tmp_path, monkeypatch, capfd, shared_key
) -> None:
    use(monkeypatch, GNOMON_RESULTS_STORAGE=str(tmp_path / "shared"))
    if shared_key:
        use(monkeypatch, GNOMON_RESULTS_KEY=KEY.hex())

    check_result_storage()

    warned = "signed with this host's own key" in capfd.readouterr().err
    assert warned is not shared_key


def test_a_password_in_a_storage_url_is_not_shown(monkeypatch) -> None:
    use(monkeypatch, GNOMON_RESULTS_STORAGE="nope://gnomon:hunter2@files.example/results")

    with pytest.raises(ConfigError) as error:
        check_result_storage()

    assert "'nope://gnomon:***@files.example/results' (results.storage" in str(error.value)
    assert "hunter2" not in str(error.value)


def test_pruning_on_a_storage_it_cannot_use_ends_in_one_line_naming_it(gnomon_home, store) -> None:
    from datetime import UTC, datetime, timedelta

    from test_cli_daemon import gnomon
    from test_prune import ended_run

    long_ago = datetime.now(UTC) - timedelta(days=100)
    kept = ended_run(store, long_ago, long_ago)

    result = gnomon(
        gnomon_home,
        "db",
        "prune",
        "--older-than",
        "90d",
        GNOMON_RESULTS_STORAGE="nope://bucket/results",
    )

    assert result.returncode == 1
    assert result.stderr.startswith("Error: result storage 'nope://bucket/results'")
    assert "Traceback" not in result.stderr
    assert [run.id for run in store.read_runs()] == [kept], "nothing pruned without its files"
