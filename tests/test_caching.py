"""Task caching: when a call is answered from the cache instead of running its body.

As in Prefect 3, calls are cached only when results are persisted: an explicit cache policy
or ``cache_key_fn`` turns persistence on, the implicit default does not.
"""

from __future__ import annotations

import pickle
import textwrap
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from conftest import run_python
from gnomon import flow, task
from gnomon.cache_policies import (
    DEFAULT,
    FLOW_PARAMETERS,
    INPUTS,
    NONE,
    TASK_SOURCE,
)
from gnomon.tasks import task_input_hash

pytestmark = pytest.mark.backends


def counting(body: Callable[..., Any] | None = None) -> tuple[Callable[..., Any], list[Any]]:
    """A task body that records each call's arguments (and returns them by default)."""
    calls: list[Any] = []

    def compute(x: int, debug: bool = False) -> Any:
        calls.append((x, debug))
        return body(x) if body else f"value {x} from call {len(calls)}"

    return compute, calls


def in_flow(fn: Callable[[], Any]) -> Callable[[], Any]:
    """A callable that runs ``fn`` inside a new flow run each time and returns what it returns.

    The value is handed back directly, not as the flow's return value, so that a returned
    state does not become the flow run's state.
    """

    def run() -> Any:
        returned: list[Any] = []

        @flow
        def wrapper() -> None:
            returned.append(fn())

        wrapper()
        return returned[0]

    return run


def test_same_inputs_within_a_run_are_answered_from_the_cache(store):
    compute, calls = counting()
    cached = task(cache_policy=INPUTS)(compute)

    @flow
    def pipeline() -> list[Any]:
        first = cached(1, return_state=True)
        second = cached(1, return_state=True)
        other = cached(2, return_state=True)
        return [first.name, second.name, other.name, second.result()]

    assert pipeline() == ["Completed", "Cached", "Completed", "value 1 from call 1"]
    assert calls == [(1, False), (2, False)]


def test_inputs_policy_caches_across_flow_runs():
    compute, calls = counting()
    cached = task(cache_policy=INPUTS)(compute)
    run = in_flow(lambda: cached(5, return_state=True))

    first, second = run(), run()
    assert (first.name, second.name) == ("Completed", "Cached")
    assert second.result() == "value 5 from call 1"
    assert calls == [(5, False)]


def test_cache_hit_is_recorded_in_the_store_with_its_cache_key(store):
    compute, _ = counting()
    cached = task(cache_policy=INPUTS)(compute)

    @flow
    def pipeline() -> None:
        cached(3)
        cached(3)

    pipeline()
    [run] = store.read_runs()
    miss, hit = store.read_task_runs(run.id)
    assert (miss.state_name, miss.state_type) == ("Completed", "COMPLETED")
    assert (hit.state_name, hit.state_type) == ("Cached", "COMPLETED")
    assert hit.cache_key
    assert hit.cache_key == miss.cache_key
    assert [row.name for row in store.read_states(task_run_id=hit.id)] == [
        "Pending",
        "Cached",
    ]


def test_cache_is_shared_between_processes_using_the_same_home(gnomon_home, tmp_path):
    """A second process with the same GNOMON_HOME gets Cached and does not run the body."""
    ledger = tmp_path / "ledger.txt"
    code = textwrap.dedent(
        f"""
        from gnomon import flow, task
        from gnomon.cache_policies import INPUTS

        @task(cache_policy=INPUTS)
        def expensive(x):
            with open({str(ledger)!r}, "a") as handle:
                handle.write(f"ran with {{x}}\\n")
            return x * 10

        @flow
        def pipeline():
            state = expensive(4, return_state=True)
            return [state.name, state.result()]

        print(pipeline())
        """
    )
    first = run_python(code, gnomon_home)
    assert first.returncode == 0, first.stderr
    second = run_python(code, gnomon_home)
    assert second.returncode == 0, second.stderr

    assert first.stdout.strip() == "['Completed', 40]"
    assert second.stdout.strip() == "['Cached', 40]"
    assert ledger.read_text() == "ran with 4\n"


def test_expired_cache_entry_runs_the_body_again(clock):
    compute, calls = counting()
    cached = task(cache_policy=INPUTS, cache_expiration=timedelta(minutes=10))(compute)
    run = in_flow(lambda: cached(1, return_state=True).name)

    assert run() == "Completed"
    clock.advance(9 * 60)
    assert run() == "Cached"
    clock.advance(2 * 60)
    assert run() == "Completed"
    assert len(calls) == 2


def test_refresh_cache_reruns_the_body_and_rewrites_the_entry():
    compute, _ = counting()
    cached = task(cache_policy=INPUTS)(compute)
    refreshing = cached.with_options(refresh_cache=True)

    first = in_flow(lambda: cached(1, return_state=True))()
    refreshed = in_flow(lambda: refreshing(1, return_state=True))()
    after = in_flow(lambda: cached(1, return_state=True))()

    assert first.result() == "value 1 from call 1"
    assert refreshed.name == "Completed"
    assert refreshed.result() == "value 1 from call 2"
    assert after.name == "Cached"
    assert after.result() == "value 1 from call 2", "the refresh rewrote the entry"


def test_cache_key_fn_decides_which_calls_share_a_result():
    compute, calls = counting()
    by_parity = task(cache_key_fn=lambda context, parameters: f"parity-{parameters['x'] % 2}")(
        compute
    )
    results = in_flow(lambda: [by_parity(1), by_parity(3), by_parity(2), by_parity(4)])()

    assert results == [
        "value 1 from call 1",
        "value 1 from call 1",
        "value 2 from call 2",
        "value 2 from call 2",
    ]
    assert [x for x, _ in calls] == [1, 2]


def test_cache_key_fn_returning_none_does_not_cache():
    compute, calls = counting()
    never = task(cache_key_fn=lambda context, parameters: None)(compute)
    in_flow(lambda: [never(1), never(1)])()
    assert len(calls) == 2


@pytest.mark.parametrize(
    "key",
    [
        "static cache key",
        "reports/2024/q1",
        "../escape",
        "..",
        "ключ 🔑 ünïcode",
        "long " * 2000,
    ],
    ids=["spaces", "slashes", "parent-path", "dots", "unicode", "very-long"],
)
def test_any_string_a_cache_key_fn_returns_is_a_cache_key(key, gnomon_home, store):
    compute, calls = counting()
    keyed = task(cache_key_fn=lambda context, parameters: key)(compute)

    first = in_flow(lambda: keyed(1, return_state=True))()
    second = in_flow(lambda: keyed(2, return_state=True))()

    assert (first.name, second.name) == ("Completed", "Cached")
    assert second.result() == "value 1 from call 1"
    assert len(calls) == 1
    stored = store.read_task_runs(store.read_runs()[0].id)[0]
    assert stored.cache_key == key, "the store keeps the key as the function gave it"
    results = gnomon_home / "results"
    files = {path.relative_to(gnomon_home) for path in gnomon_home.rglob("*") if path.is_file()}
    assert all(path.parent == Path("results") or path.parent == Path(".") for path in files), (
        f"a record left the results directory: {sorted(files)}"
    )
    assert len([path for path in results.iterdir() if path.name.startswith("~")]) == 1


def test_different_keys_never_share_a_record_and_equal_keys_always_do():
    compute, _ = counting()
    keyed = task(cache_key_fn=lambda context, parameters: f"key {parameters['x'] % 2} / shared")(
        compute
    )
    results = in_flow(lambda: [keyed(1), keyed(2), keyed(3), keyed(4)])()

    assert results == [
        "value 1 from call 1",
        "value 2 from call 2",
        "value 1 from call 1",
        "value 2 from call 2",
    ]


def test_a_record_under_another_keys_file_name_is_not_served(gnomon_home):
    """The file names of such keys are digests; a record moved to another key's name (or a
    digest collision) is a miss, since each record holds its own key."""
    import hashlib

    compute, calls = counting()
    keyed = task(cache_key_fn=lambda context, parameters: f"key {parameters['x']}")(compute)
    in_flow(lambda: keyed(1))()
    results = gnomon_home / "results"

    def name(key: str) -> str:  # the store's naming rule, restated to move a file
        return "~" + hashlib.sha256(key.encode()).hexdigest()

    (results / name("key 1")).rename(results / name("key 2"))
    assert in_flow(lambda: keyed(2, return_state=True))().name == "Completed"
    assert [x for x, _ in calls] == [1, 2]


def test_cache_key_fn_returning_an_empty_string_does_not_cache():
    compute, calls = counting()
    never = task(cache_key_fn=lambda context, parameters: "")(compute)
    in_flow(lambda: [never(1), never(1)])()
    assert len(calls) == 2


def test_task_input_hash_caches_calls_with_equal_arguments():
    compute, calls = counting()
    hashed = task(cache_key_fn=task_input_hash)(compute)

    states = in_flow(
        lambda: (
            [hashed(7, return_state=True).name for _ in range(2)]
            + [hashed(8, return_state=True).name]
        )
    )()
    second_run = in_flow(lambda: hashed(7, return_state=True).name)()

    assert states == ["Completed", "Cached", "Completed"]
    assert second_run == "Cached"
    assert [x for x, _ in calls] == [7, 8]


def test_task_input_hash_is_not_shared_between_different_tasks():
    first_body, first_calls = counting()
    second_body, second_calls = counting()
    first = task(cache_key_fn=task_input_hash, name="first")(first_body)

    def other(x: int, debug: bool = False) -> Any:
        return second_body(x, debug)

    second = task(cache_key_fn=task_input_hash)(other)
    in_flow(lambda: [first(1), second(1)])()
    assert len(first_calls) == len(second_calls) == 1


def test_default_policy_caches_within_a_run_but_not_across_runs():
    """DEFAULT includes RUN_ID: a new flow run starts with an empty cache."""
    compute, calls = counting()
    cached = task(cache_policy=DEFAULT)(compute)
    run = in_flow(lambda: [cached(1, return_state=True).name for _ in range(2)])

    assert run() == ["Completed", "Cached"]
    assert run() == ["Completed", "Cached"]
    assert len(calls) == 2


def test_excluding_an_argument_from_inputs_ignores_it():
    compute, calls = counting()
    cached = task(cache_policy=INPUTS - "debug")(compute)

    names = in_flow(
        lambda: [
            cached(1, debug=False, return_state=True).name,
            cached(1, debug=True, return_state=True).name,
            cached(2, debug=True, return_state=True).name,
        ]
    )()
    assert names == ["Completed", "Cached", "Completed"]
    assert calls == [(1, False), (2, True)]


def test_composed_policy_needs_every_part_to_match():
    compute, calls = counting()
    cached = task(cache_policy=INPUTS + FLOW_PARAMETERS)(compute)

    @flow
    def pipeline(region: str) -> str:
        return cached(1, return_state=True).name

    assert pipeline("eu") == "Completed"
    assert pipeline("eu") == "Cached"
    assert pipeline("us") == "Completed", "a different flow parameter misses the cache"
    assert len(calls) == 2


def test_task_source_in_a_composed_policy_keeps_different_tasks_apart():
    """INPUTS alone keys only on the arguments, so two tasks share entries, as in Prefect;
    adding TASK_SOURCE keys on the code too."""
    first_body, first_calls = counting()
    second_body, second_calls = counting(lambda x: f"other code for {x}")

    def other(x: int, debug: bool = False) -> Any:  # the same inputs, defaults included
        return second_body(x)

    inputs_only = [task(cache_policy=INPUTS)(fn) for fn in (first_body, other)]
    assert in_flow(lambda: [t(1) for t in inputs_only])() == ["value 1 from call 1"] * 2
    assert (len(first_calls), len(second_calls)) == (1, 0)

    with_source = [task(cache_policy=TASK_SOURCE + INPUTS)(fn) for fn in (first_body, other)]
    assert in_flow(lambda: [t(2) for t in with_source])() == [
        "value 2 from call 2",
        "other code for 2",
    ]
    assert (len(first_calls), len(second_calls)) == (2, 1)


def test_none_policy_never_caches(store):
    compute, calls = counting()
    uncached = task(cache_policy=NONE, persist_result=True)(compute)
    names = in_flow(lambda: [uncached(1, return_state=True).name for _ in range(3)])()
    assert names == ["Completed"] * 3
    assert len(calls) == 3
    [run] = store.read_runs()
    assert all(row.cache_key is None for row in store.read_task_runs(run.id))


def test_implicit_default_policy_does_not_cache(gnomon_home):
    compute, calls = counting()
    plain = task(compute)
    names = in_flow(lambda: [plain(1, return_state=True).name for _ in range(3)])()
    assert names == ["Completed"] * 3
    assert len(calls) == 3
    results = gnomon_home / "results"
    assert not results.exists() or not [p for p in results.iterdir() if p.name != ".key"]


def test_persist_result_false_turns_caching_off():
    compute, calls = counting()
    uncached = task(cache_policy=INPUTS, persist_result=False)(compute)
    names = in_flow(lambda: [uncached(1, return_state=True).name for _ in range(2)])()
    assert names == ["Completed", "Completed"]
    assert len(calls) == 2


def test_persist_result_true_with_the_implicit_default_caches_within_a_run():
    compute, calls = counting()
    persisted = task(persist_result=True)(compute)
    names = in_flow(lambda: [persisted(1, return_state=True).name for _ in range(2)])()
    assert names == ["Completed", "Cached"]
    assert len(calls) == 1


def result_file(gnomon_home: Path, store: Any) -> Path:
    """The result file of the last flow run's first task run."""
    run = store.read_runs()[0]
    first = store.read_task_runs(run.id)[0]
    return gnomon_home / "results" / first.result_ref["key"]


def test_tampered_result_file_is_not_loaded_and_the_task_reruns(gnomon_home, store):
    compute, calls = counting()
    cached = task(cache_policy=INPUTS)(compute)
    run = in_flow(lambda: cached(1, return_state=True))

    assert run().name == "Completed"
    path = result_file(gnomon_home, store)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01  # one bit inside the pickled value
    path.write_bytes(bytes(data))

    rerun = run()
    assert rerun.name == "Completed"
    assert rerun.result() == "value 1 from call 2"
    assert run().name == "Cached", "the rerun wrote a good entry again"
    assert len(calls) == 2


class _Trap:
    """Unpickling this creates the marker file: it proves a file was loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("framing", ["raw pickle", "forged header and signature"])
def test_planted_pickle_in_the_results_directory_is_never_loaded(gnomon_home, tmp_path, framing):
    marker = tmp_path / "unpickled.marker"
    payload = pickle.dumps(_Trap(marker))
    if framing != "raw pickle":
        header = b'{"created": "2030-01-01T00:00:00+00:00", "expiration": null}'
        payload = b"GNOMON-RESULT-1\n" + b"\x00" * 32 + header + b"\n" + payload
    results = gnomon_home / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "planted-key").write_bytes(payload)

    compute, calls = counting()
    keyed = task(cache_key_fn=lambda context, parameters: "planted-key")(compute)
    state = in_flow(lambda: keyed(1, return_state=True))()

    assert not marker.exists(), "the planted pickle was loaded"
    assert state.name == "Completed"
    assert len(calls) == 1
