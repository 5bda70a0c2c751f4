"""The listing of runs (``read_runs``) on SQLite and on PostgreSQL, through ``Store`` and the
command line's ``FastStore`` alike: its filters combine, its pages (each starting below the
previous page's last row, ``RunCursor``) join into the whole listing with no run twice and
none left out, runs created in the same instant included; and with a large table a page is
an index range, never a read of the whole table."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event

from gnomon.states import StateName, StateType, parse_state_filter
from gnomon.store import FastStore, RunCause, RunCursor, Store, open_fast

T0 = datetime(2026, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
STATES = [
    (StateType.COMPLETED, StateName.COMPLETED),
    (StateType.FAILED, StateName.FAILED),
    (StateType.FAILED, StateName.TIMED_OUT),
    (StateType.CRASHED, StateName.CRASHED),
    (StateType.RUNNING, StateName.RUNNING),
]
CAUSES = list(RunCause)


def new_run(index: int, created: datetime, **values: Any) -> dict[str, Any]:
    state_type, state_name = STATES[index % len(STATES)]
    return {
        "id": f"{(index * 7919) % 100_003:032x}",  # ids not in creation order
        "name": f"run-{index}",
        "flow_name": "f",
        "state_type": state_type,
        "state_name": state_name,
        "deployment_name": ("alpha", "beta")[index % 2],
        "scheduled_for": T0 + timedelta(minutes=index),
        "trigger": CAUSES[index % len(CAUSES)],
        "created": created,
        **values,
    }


# Four runs to an instant, so pages often end between runs created at the same time.
RUNS = [new_run(index, T0 + timedelta(seconds=index // 4)) for index in range(37)]


@pytest.fixture
def listed(store: Store) -> Store:
    assert store.create_runs(RUNS) == {run["id"] for run in RUNS}
    return store


@pytest.fixture(params=["store", "fast"])
def reader(request: pytest.FixtureRequest, listed: Store) -> Iterator[Store | FastStore]:
    """The store, or the command line's fast store on the same database."""
    if request.param == "store":
        yield listed
        return
    fast = open_fast(listed.url)
    assert fast is not None
    yield fast
    fast.close()


FILTERS: list[dict[str, Any]] = [
    {},
    {"deployment": "alpha"},
    {"state": parse_state_filter("failed")},
    {"trigger": {RunCause.MANUAL, RunCause.RETRY}},
    {"trigger": {RunCause.CATCHUP}, "deployment": "beta"},
    {"since": T0 + timedelta(seconds=2), "until": T0 + timedelta(seconds=7)},
    {"state": parse_state_filter("failed"), "trigger": {RunCause.SCHEDULE, RunCause.RETRY}},
    {"deployment": "alpha", "state": parse_state_filter("only:Failed"), "until": T0 + timedelta(9)},
]


def expected(filters: dict[str, Any]) -> list[str]:
    """The ids ``filters`` select, newest first, worked out here from the rows written."""
    state = filters.get("state")
    kept = [
        run
        for run in RUNS
        if filters.get("deployment") in (None, run["deployment_name"])
        and (state is None or state.matches(run["state_type"], run["state_name"]))
        and run["trigger"] in filters.get("trigger", CAUSES)
        and run["created"] >= filters.get("since", T0)
        and run["created"] < filters.get("until", T0 + timedelta(days=1))
    ]
    return [run["id"] for run in sorted(kept, key=lambda r: (r["created"], r["id"]), reverse=True)]


@pytest.mark.backends
@pytest.mark.parametrize("filters", FILTERS, ids=lambda filters: "-".join(filters) or "all")
def test_filters_combine_and_the_listing_is_newest_first_by_time_then_id(
    reader: Store | FastStore, filters: dict[str, Any]
) -> None:
    ids = [run.id for run in reader.read_runs(**filters, limit=1000)]
    assert ids == expected(filters)
    assert ids  # each filter selects something, so the pages below have something to join


@pytest.mark.backends
@pytest.mark.parametrize("filters", FILTERS, ids=lambda filters: "-".join(filters) or "all")
@pytest.mark.parametrize("size", [1, 3, 4, 50])
def test_pages_join_into_the_whole_listing_with_no_run_twice_or_missing(
    reader: Store | FastStore, filters: dict[str, Any], size: int
) -> None:
    whole = [run.id for run in reader.read_runs(**filters, limit=1000)]
    pages: list[list[str]] = []
    cursor: RunCursor | None = None
    for _ in range(len(RUNS) + 1):
        page = reader.read_runs(**filters, limit=size, before=cursor)
        if not page:
            break
        assert len(page) <= size
        pages.append([run.id for run in page])
        cursor = RunCursor(page[-1].created, page[-1].id)
    assert list(itertools.chain(*pages)) == whole
    assert len(pages) == -(-len(whole) // size)  # every page full but the last


@pytest.mark.backends
def test_a_cursor_and_until_together_start_below_the_lower_of_the_two(
    reader: Store | FastStore,
) -> None:
    until = T0 + timedelta(seconds=5)
    everything = expected({})
    for cursor_at in (everything[3], everything[-6]):
        row = next(run for run in RUNS if run["id"] == cursor_at)
        cursor = RunCursor(row["created"], row["id"])
        ids = [run.id for run in reader.read_runs(before=cursor, until=until, limit=1000)]
        below = everything[everything.index(cursor_at) + 1 :]
        assert ids == [i for i in below if i in expected({"until": until})]


# Query plans: with enough rows that the planners prefer an index where one serves.
LARGE = 30_000
PAGE_FILTERS: list[dict[str, Any]] = [
    {},
    {"deployment": "d7"},
    {"state": parse_state_filter("failed")},
    {"trigger": {RunCause.MANUAL}},
    {"since": T0},
    {"until": T0 + timedelta(hours=2)},
    {"before": RunCursor(T0 + timedelta(hours=1), "8" * 32)},
    {"deployment": "d7", "before": RunCursor(T0 + timedelta(hours=1), "8" * 32)},
    {"state": parse_state_filter("failed"), "trigger": {RunCause.RETRY}, "since": T0},
]


@pytest.fixture
def large(store: Store) -> Store:
    runs = [
        new_run(index, T0 + timedelta(seconds=index // 3), deployment_name=f"d{index % 500}")
        for index in range(LARGE)
    ]
    for start in range(0, LARGE, 5000):
        store.create_runs(runs[start : start + 5000])
    with store.engine.begin() as connection:
        connection.exec_driver_sql("ANALYZE")
    return store


def plan_of(store: Store, filters: dict[str, Any]) -> str:
    """The database's plan of the listing's statement for ``filters``, as one line."""
    executed: list[tuple[str, Any]] = []

    def keep(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        executed.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", keep)
    try:
        store.read_runs(**filters, limit=51)
    finally:
        event.remove(store.engine, "before_cursor_execute", keep)
    [(statement, parameters)] = [each for each in executed if "FROM flow_runs" in each[0]]
    explain = "EXPLAIN QUERY PLAN " if store.engine.dialect.name == "sqlite" else "EXPLAIN "
    with store.engine.connect() as connection:
        rows = connection.exec_driver_sql(explain + statement, parameters).fetchall()
    return " | ".join(str(row[-1]).strip() for row in rows)


@pytest.mark.backends
def test_a_page_of_runs_reads_an_index_not_the_whole_table(large: Store) -> None:
    """Pages stay fast however many runs are stored and however deep the page: every
    filter's plan reads an index (one table of 30,000 runs for them all: filling it is
    most of the test's time)."""
    wrong: dict[str, str] = {}
    for filters in PAGE_FILTERS:
        plan = plan_of(large, filters)
        if large.engine.dialect.name == "sqlite":
            # read in order: no sort of all the rows
            reads_index = "USING INDEX ix_flow_runs_" in plan and "TEMP B-TREE" not in plan
        else:
            index_scan = "Index Scan" in plan or "Bitmap Index Scan" in plan
            reads_index = index_scan and "Seq Scan" not in plan
        if not reads_index:
            wrong["-".join(filters) or "all"] = plan
    assert not wrong, wrong
