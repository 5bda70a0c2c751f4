"""``gnomon.concurrency.sync`` and ``gnomon.concurrency.asyncio`` as Prefect's: ``strict=``
and ``rate_limit`` (whose slots free themselves after ``RATE_LIMIT_WINDOW``)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import pytest

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


@pytest.fixture
def rate_window(monkeypatch: pytest.MonkeyPatch) -> Callable[[float], None]:
    """Sets how long a rate limit's slots are held: the module's own constant (private),
    so that the test decides whether they free themselves before the next call, not the
    machine's speed."""
    from gnomon.flows import _concurrency

    return lambda seconds: monkeypatch.setattr(_concurrency, "RATE_LIMIT_WINDOW", seconds)


def test_rate_limit_takes_slots_the_caller_does_not_give_back(
    store, rate_window: Callable[[float], None]
) -> None:
    rate_window(600)
    set_concurrency_limit("api", 2)
    rate_limit("api")
    rate_limit("api")
    assert _held("api") == 2
    with pytest.raises(AcquireConcurrencySlotTimeoutError):
        rate_limit("api", timeout_seconds=0.05)


def test_rate_limit_slots_free_themselves_after_the_window(
    store, rate_window: Callable[[float], None]
) -> None:
    rate_window(0.05)
    set_concurrency_limit("api", 1)
    rate_limit("api")
    rate_limit("api", timeout_seconds=DEADLINE)  # waits for the first slot to decay
    _until(lambda: _held("api") == 0, "the rate limit's slots to decay")


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
    set_concurrency_limit("api", 1)

    async def main() -> tuple[int, int]:
        async with concurrency_asyncio.concurrency("gpu", occupy=1):
            inside = _held("gpu")
        await concurrency_asyncio.rate_limit("api")
        with pytest.raises(ConcurrencySlotAcquisitionError):
            async with concurrency_asyncio.concurrency("nowhere", strict=True):
                pass
        return inside, _held("api")

    assert asyncio.run(main()) == (1, 1)
    assert _held("gpu") == 0
