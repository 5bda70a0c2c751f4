"""``gnomon.concurrency.sync`` and ``gnomon.concurrency.asyncio`` as Prefect's: ``strict=``
and ``rate_limit``, whose slots free themselves at the limit's ``slot_decay_per_second``
(one every 1/decay seconds, in every process sharing the store, whether the process that
took them lives on or not).

Waits are checked by what cannot happen sooner (a slot decays no earlier than 1/decay after
it was taken) and by timeouts far from the decay, never by how long a wait took at most."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import subprocess
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from conftest import read_line, start_python, stop_python
from gnomon import flow
from gnomon.concurrency import asyncio as concurrency_asyncio
from gnomon.concurrency import read_concurrency_limits, set_concurrency_limit
from gnomon.concurrency.sync import concurrency, rate_limit
from gnomon.exceptions import AcquireConcurrencySlotTimeoutError, ConcurrencySlotAcquisitionError
from gnomon.store import get_store

pytestmark = pytest.mark.backends

DEADLINE = 20.0


def _until(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _held(name: str) -> int:
    return get_store().count_active_slots().get(name, 0)


def test_strict_concurrency_raises_when_no_named_limit_exists(store) -> None:
    with (
        pytest.raises(ConcurrencySlotAcquisitionError, match=r"\['nowhere'\] must be created"),
        concurrency("nowhere", strict=True),
    ):
        pass
    set_concurrency_limit("db", 1)
    with concurrency(["db", "nowhere"], strict=True):  # one exists: Prefect takes its slots
        assert _held("db") == 1
    assert _held("db") == 0


def test_concurrency_without_a_limit_warns_and_runs(
    store, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING), concurrency("nowhere"):
        pass
    assert "Concurrency limits ['nowhere'] do not exist - skipping acquisition." in caplog.text

    @flow
    def uses_missing_limit() -> None:
        with concurrency("also-nowhere"):
            pass

    uses_missing_limit()
    [run] = store.read_runs()
    assert any("['also-nowhere'] do not exist" in line.message for line in _logs(store, run.id))


def _logs(store, flow_run_id: str) -> list:
    from conftest import logs_of

    return logs_of(store, flow_run_id)


def test_concurrency_accepts_prefects_lease_arguments(store) -> None:
    set_concurrency_limit("db", 1)
    with concurrency("db", max_retries=3, lease_duration=60, strict=True, holder=None):
        assert _held("db") == 1


def _release_times(name: str) -> list[datetime]:
    """When each rate-limit slot of ``name`` frees itself, in order: the store's own rows
    (the schema's table, private), since the spacing is what the decay promises."""
    from gnomon.store._schema import concurrency_slots

    with get_store().reader.connect() as connection:
        return list(
            connection.execute(
                select(concurrency_slots.c.release_at)
                .where(concurrency_slots.c.limit_name == name)
                .order_by(concurrency_slots.c.release_at)
            ).scalars()
        )


def test_rate_limit_admits_a_burst_of_the_limit_then_waits_for_a_slot_to_decay(store) -> None:
    set_concurrency_limit("api", 2, slot_decay_per_second=0.05)  # a slot frees every 20 s
    rate_limit("api", timeout_seconds=DEADLINE)
    rate_limit("api", timeout_seconds=DEADLINE)
    assert _held("api") == 2
    with pytest.raises(AcquireConcurrencySlotTimeoutError, match=r"timed out after 0\.3"):
        rate_limit("api", timeout_seconds=0.3)
    assert _held("api") == 2


def test_rate_limit_slots_free_themselves_one_every_one_over_decay_seconds(store) -> None:
    set_concurrency_limit("api", 3, slot_decay_per_second=0.5)
    rate_limit("api", occupy=2)
    rate_limit("api")
    first, second, third = _release_times("api")
    # Each slot frees 2 s after the one before it, the first 2 s after it was taken.
    assert abs((second - first).total_seconds() - 2) < 0.001
    assert abs((third - second).total_seconds() - 2) < 0.001
    assert _held("api") == 3


def test_rate_limit_is_admitted_once_a_slot_has_decayed_not_before(store) -> None:
    set_concurrency_limit("api", 1, slot_decay_per_second=5)  # a slot every 0.2 s
    started = time.time()
    rate_limit("api")
    rate_limit("api", timeout_seconds=DEADLINE)
    rate_limit("api", timeout_seconds=DEADLINE)
    assert time.time() - started >= 2 * 0.2


def test_rate_limit_refuses_a_limit_without_decay_naming_it(store) -> None:
    set_concurrency_limit("db", 1)
    set_concurrency_limit("api", 5, slot_decay_per_second=1)
    with pytest.raises(
        ConcurrencySlotAcquisitionError,
        match=r"Only concurrency limits with slot decay can be used for rate limiting; "
        r"no decay on 'db'\. Set one, e\.g\. `gnomon global-concurrency-limit set db LIMIT "
        r"--slot-decay-per-second D`",
    ):
        rate_limit(["api", "db"])
    assert (_held("api"), _held("db")) == (0, 0)  # nothing taken on the decaying one either


def test_limits_take_a_decay_and_refuse_a_bad_one(store) -> None:
    set_concurrency_limit("api", 2, slot_decay_per_second=0.5)
    assert [(row.name, row.slot_limit, row.slot_decay_per_second) for row in _rows()] == [
        ("api", 2, 0.5)
    ]
    set_concurrency_limit("api", 3)  # setting a limit sets its decay: none given, none kept
    assert [(row.slot_limit, row.slot_decay_per_second) for row in _rows()] == [(3, 0.0)]
    for decay, problem in [
        (-1.0, "slot_decay_per_second is a finite number"),
        (float("nan"), "not nan"),
        (float("inf"), "not inf"),
        (1e-12, "would take over 100 years to free"),
    ]:
        with pytest.raises(ValueError, match=f"concurrency limit 'api': .*{problem}"):
            set_concurrency_limit("api", 3, slot_decay_per_second=decay)
    with pytest.raises(ValueError, match=r"a tag limit .* takes no slot_decay_per_second"):
        set_concurrency_limit("tag:etl", 1, slot_decay_per_second=1)
    assert [(row.slot_limit, row.slot_decay_per_second) for row in _rows()] == [(3, 0.0)]


def _rows() -> list:
    return get_store().read_limit_rows()


def test_concurrency_on_a_decaying_limit_holds_its_slots_until_the_block_ends(store) -> None:
    set_concurrency_limit("api", 1, slot_decay_per_second=100)  # a rate slot lasts 0.01 s
    with concurrency("api", timeout_seconds=DEADLINE):
        with pytest.raises(AcquireConcurrencySlotTimeoutError):
            rate_limit("api", timeout_seconds=0.3)  # the held slot does not decay
        assert _held("api") == 1
    assert _held("api") == 0
    rate_limit("api", timeout_seconds=DEADLINE)


def _next_line(process: subprocess.Popen[str]) -> str:
    """The process's next stdout line; fails with its stderr if it ends or stalls first."""
    line = read_line(process, DEADLINE)
    if not line:
        process.kill()
        pytest.fail(f"the subprocess wrote no line; stderr:\n{process.communicate()[1]}")
    return line.strip()


RATE_TAKER = """
import sys, time
from gnomon.concurrency import rate_limit

print(time.time(), flush=True)
rate_limit("api")
print("taken", flush=True)
sys.stdin.readline()
"""


def test_slots_of_a_killed_process_count_until_they_decay_then_free_the_limit(
    gnomon_home: Path, store
) -> None:
    set_concurrency_limit("api", 1, slot_decay_per_second=0.5)  # a slot lasts 2 s
    taker = start_python(RATE_TAKER, gnomon_home)
    try:
        before = float(_next_line(taker))
        assert _next_line(taker) == "taken"
        taker.send_signal(signal.SIGKILL)
        taker.wait(DEADLINE)
    finally:
        stop_python(taker)
    assert taker.returncode == -signal.SIGKILL

    # A dead holder's concurrency slots are reaped; its rate-limit slot is not: the rate
    # it used stays used, and the slot frees itself when it has decayed.
    assert store.reap_stale_slots() == 0
    assert len(_release_times("api")) == 1
    rate_limit("api", timeout_seconds=DEADLINE)
    assert time.time() >= before + 2


SHARED_TAKER = """
import json, sys, time
from gnomon.concurrency import rate_limit

sys.stdin.readline()
stamps = []
end = time.time() + 2.0
while time.time() < end:
    before = time.time()
    rate_limit("api", timeout_seconds=30)
    stamps.append((before, time.time()))
print(json.dumps(stamps), flush=True)
"""


@pytest.mark.slow
def test_processes_sharing_a_rate_limit_never_exceed_its_rate_together(
    gnomon_home: Path, store
) -> None:
    limit, decay = 2, 5.0
    set_concurrency_limit("api", limit, slot_decay_per_second=decay)
    takers = [start_python(SHARED_TAKER, gnomon_home) for _ in range(2)]
    try:
        outputs = [taker.communicate("go\n", timeout=60) for taker in takers]
    finally:
        for taker in takers:
            stop_python(taker)
    for taker, (_, stderr) in zip(takers, outputs, strict=True):
        assert taker.returncode == 0, stderr
    each = [json.loads(stdout) for stdout, _ in outputs]
    assert all(each), f"a process took no slot: {each}"
    stamps = sorted(stamp for stamps in each for stamp in stamps)
    # Each admission happened between its (before, after), so between any two times at
    # most the burst plus what decayed meanwhile was admitted (+1: stored times' rounding).
    # Shared, not per process: two processes limited apart would take about twice as many.
    assert len(stamps) <= limit + decay * (stamps[-1][1] - stamps[0][0]) + 1, stamps
    for first, (start, _) in enumerate(stamps):
        for _, end in stamps[first:]:
            inside = sum(start <= s and e <= end for s, e in stamps)
            assert inside <= limit + decay * (end - start) + 1, (start, end, stamps)


def test_rate_limit_strict_and_empty_names(store) -> None:
    with pytest.raises(ConcurrencySlotAcquisitionError, match="must be created"):
        rate_limit(["missing"], strict=True)
    rate_limit([])  # nothing to limit, as Prefect returns at once
    rate_limit("missing")
    assert read_concurrency_limits() == {}
    with pytest.raises(ValueError, match="occupy must be at least 1"):
        rate_limit("missing", occupy=0)


def test_asyncio_concurrency_and_rate_limit(store) -> None:
    set_concurrency_limit("gpu", 1)
    set_concurrency_limit("api", 1, slot_decay_per_second=0.01)

    async def main() -> tuple[int, int]:
        async with concurrency_asyncio.concurrency("gpu", occupy=1):
            inside = _held("gpu")
        await concurrency_asyncio.rate_limit("api")
        with pytest.raises(ConcurrencySlotAcquisitionError, match="slot decay"):
            await concurrency_asyncio.rate_limit("gpu")
        with pytest.raises(ConcurrencySlotAcquisitionError):
            async with concurrency_asyncio.concurrency("nowhere", strict=True):
                pass
        return inside, _held("api")

    assert asyncio.run(main()) == (1, 1)
    assert _held("gpu") == 0
