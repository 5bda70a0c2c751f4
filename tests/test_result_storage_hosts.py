"""Hosts sharing one PostgreSQL database and one result storage share their cache.

Each "host" is a separate process with a GNOMON_HOME of its own (nothing on a local disk is
shared), the same database and the same storage: a directory, as an NFS mount would be, given
as a path or a file:// URL, and set from the environment or from a config file's
``[results]`` table, as a daemon's would be.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from conftest import run_python
from test_daemon import completed, start_daemon, wait_for, write_config

pytestmark = [pytest.mark.backends, pytest.mark.postgresql_only]

KEY = bytes(range(32)).hex()
OTHER_KEY = bytes(range(7, 39)).hex()


def host_code(ledger: Path, marker: Path) -> str:
    """A flow with one cached task; the task's value, once unpickled, touches ``marker``
    (proof that a record was loaded) and each run of its body adds a line to ``ledger``."""
    return textwrap.dedent(
        f"""
        import json, os
        from pathlib import Path
        from gnomon import flow, task
        from gnomon.cache_policies import INPUTS

        class Loaded:
            def __reduce__(self):
                return (Path.touch, (Path({str(marker)!r}),))

        @task(cache_policy=INPUTS)
        def expensive(x):
            with open({str(ledger)!r}, "a") as handle:
                handle.write(f"{{os.environ['GNOMON_HOME']}}\\n")
            return Loaded()

        @flow
        def pipeline():
            return expensive(4, return_state=True).name

        print(json.dumps(pipeline()))
        """
    )


def key_file(tmp_path: Path, name: str, key: str) -> Path:
    path = tmp_path / name
    path.write_text(key + "\n")
    path.chmod(0o600)
    return path


def config_with_results(tmp_path: Path, storage: str, key: Path) -> Path:
    config = tmp_path / "host-b.toml"
    config.write_text(f'[results]\nstorage = "{storage}"\nkey_file = "{key}"\n')
    return config


@pytest.mark.parametrize("form", ["path", "file-url"])
def test_a_task_cached_on_one_host_is_a_hit_on_another(tmp_path, store, form) -> None:
    shared = tmp_path / "shared-results"
    storage = str(shared) if form == "path" else f"file://{shared}"
    key = key_file(tmp_path, "results.key", KEY)
    ledger, marker = tmp_path / "ledger", tmp_path / "loaded"
    code = host_code(ledger, marker)
    home_a, home_b = tmp_path / "host-a", tmp_path / "host-b"

    first = run_python(
        code, home_a, GNOMON_RESULTS_STORAGE=storage, GNOMON_RESULTS_KEY_FILE=str(key)
    )
    assert first.returncode == 0, first.stderr
    assert not marker.exists()
    second = run_python(
        code, home_b, GNOMON_CONFIG=str(config_with_results(tmp_path, storage, key))
    )
    assert second.returncode == 0, second.stderr

    assert (json.loads(first.stdout), json.loads(second.stdout)) == ("Completed", "Cached")
    assert ledger.read_text() == f"{home_a}\n", "the body ran once, on host A"
    assert marker.exists(), "host B loaded host A's record"
    assert sorted(row.state_name for row in store.read_runs()) == ["Completed", "Completed"]
    assert [path.name for path in shared.iterdir() if not path.name.startswith(".")]
    for home in (home_a, home_b):
        assert not (home / "results").exists(), f"nothing was stored in {home}"


def test_a_host_with_another_key_never_loads_the_record_and_says_the_keys_differ(
    tmp_path, store
) -> None:
    shared = tmp_path / "shared-results"
    ledger, marker = tmp_path / "ledger", tmp_path / "loaded"
    code = host_code(ledger, marker)
    home_a, home_b = tmp_path / "host-a", tmp_path / "host-b"
    a_env = {"GNOMON_RESULTS_STORAGE": str(shared), "GNOMON_RESULTS_KEY": KEY}
    b_env = {"GNOMON_RESULTS_STORAGE": str(shared), "GNOMON_RESULTS_KEY": OTHER_KEY}

    first = run_python(code, home_a, **a_env)
    second = run_python(code, home_b, **b_env)

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout) == "Completed", "a miss: host B ran the body itself"
    assert not marker.exists(), "host B unpickled a record signed with another key"
    assert ledger.read_text() == f"{home_a}\n{home_b}\n"
    warnings = [json.loads(line) for line in second.stderr.splitlines() if "ignored" in line]
    [warning] = [line for line in warnings if line["event"] == "cache record ignored"]
    assert "signed with another key" in warning["reason"]
    assert "from GNOMON_RESULTS_KEY" in warning["reason"]
    assert warning["flow_run_id"], "the warning is in the run's logs"
    # The proof that the marker works: host B's own record, loaded again, touches it.
    third = run_python(code, tmp_path / "host-b2", **b_env)
    assert json.loads(third.stdout) == "Cached"
    assert marker.exists()


def test_the_daemon_reads_the_results_table_of_its_config_for_its_runs(
    tmp_path, gnomon_home, store, daemons
) -> None:
    shared = tmp_path / "shared-results"
    key = key_file(tmp_path, "results.key", KEY)
    ledger, marker = tmp_path / "ledger", tmp_path / "loaded"
    (tmp_path / "cached.py").write_text(host_code(ledger, marker).rpartition("print(")[0])
    config = write_config(
        tmp_path,
        f"""
        [results]
        storage = "{shared}"
        key_file = "{key}"

        [[deployments]]
        name = "cached"
        flow = "cached.py:pipeline"
        interval = "1s"
        """,
    )
    daemon = start_daemon(config, gnomon_home)
    daemons.append(daemon)
    wait_for(completed(store, "cached", 2), what="the daemon's first two runs")
    daemon.terminate()
    daemon.communicate(timeout=30)

    no_config = tmp_path / "host-b.toml"  # not ./gnomon.toml, the daemon's: another host's
    no_config.write_text("")
    other = run_python(
        host_code(ledger, marker),
        tmp_path / "host-b",
        GNOMON_CONFIG=str(no_config),
        GNOMON_RESULTS_STORAGE=str(shared),
        GNOMON_RESULTS_KEY=KEY,
    )

    assert other.returncode == 0, other.stderr
    assert json.loads(other.stdout) == "Cached"
    assert ledger.read_text() == f"{gnomon_home}\n", "the body ran once, in the first run"
    assert not (gnomon_home / "results").exists()


def test_the_daemon_refuses_to_start_on_a_storage_it_cannot_use(
    tmp_path, gnomon_home, daemons
) -> None:
    config = write_config(tmp_path, '[results]\nstorage = "nope://bucket/results"\n')
    daemon = start_daemon(config, gnomon_home)
    daemons.append(daemon)
    _, err = daemon.communicate(timeout=60)

    assert daemon.returncode == 2
    assert "'nope://bucket/results' (results.storage" in err
    assert "unknown protocol 'nope'" in err
