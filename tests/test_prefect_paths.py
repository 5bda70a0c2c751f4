"""Prefect 3's import paths gnomon provides behave as Prefect's documentation says:
``gnomon.context``, ``gnomon.runtime.deployment``, ``gnomon.logging.disable_run_logger``,
``gnomon.testing.utilities.prefect_test_harness``, ``gnomon.utilities.annotations`` and
``gnomon.schedules``. (``gnomon.concurrency.sync`` / ``.asyncio`` are in
test_prefect_concurrency.py.)"""

from __future__ import annotations

import json
import logging
import os
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from conftest import run_python, schedule_run
from gnomon import flow, task
from gnomon.context import FlowRunContext, TaskRunContext, get_run_context
from gnomon.exceptions import MissingContextError
from gnomon.logging import disable_run_logger, get_run_logger
from gnomon.schedules import Cron, Interval, RRule, Schedule
from gnomon.scheduling import ScheduleError
from gnomon.store import get_store


def test_get_run_context_outside_a_run_raises_missing_context_error() -> None:
    with pytest.raises(MissingContextError, match="No run context available"):
        get_run_context()
    assert FlowRunContext.get() is None
    assert TaskRunContext.get() is None


def test_run_contexts_show_the_flow_run_and_task_run_as_prefect_does() -> None:
    seen: dict[str, Any] = {}

    @task(tags=["etl"])
    def load(rows: int) -> None:
        context = get_run_context()
        assert isinstance(context, TaskRunContext)
        seen["task"] = context.task.name
        seen["task_run"] = context.task_run
        seen["task_parameters"] = context.parameters
        seen["flow_run_from_task"] = FlowRunContext.get().flow_run.id  # type: ignore[union-attr]

    @flow(flow_run_name="ingest-{region}")
    def ingest(region: str, limit: int = 10) -> None:
        context = get_run_context()
        assert isinstance(context, FlowRunContext)
        seen["flow"] = context.flow.name
        seen["flow_run"] = context.flow_run
        seen["parameters"] = context.parameters
        seen["task_context_in_flow"] = TaskRunContext.get()
        load(limit)

    ingest("eu", limit=5)

    [stored] = get_store().read_runs()
    [stored_task] = get_store().read_task_runs(stored.id)
    flow_run = seen["flow_run"]
    assert (flow_run.id, flow_run.name, flow_run.flow_name) == (stored.id, "ingest-eu", "ingest")
    assert flow_run.parameters == {"region": "eu", "limit": 5}
    assert seen["flow"] == "ingest"
    assert seen["parameters"] == {"region": "eu", "limit": 5}
    assert seen["task_context_in_flow"] is None
    task_run = seen["task_run"]
    assert (task_run.id, task_run.name, task_run.flow_run_id) == (
        stored_task.id,
        stored_task.name,
        stored.id,
    )
    assert task_run.tags == ["etl"]
    assert seen["task"] == "load"
    assert seen["task_parameters"] == {"rows": 5}
    assert seen["flow_run_from_task"] == stored.id


def test_a_subflow_called_in_a_task_is_the_run_context_there() -> None:
    @flow
    def child() -> str:
        return type(get_run_context()).__name__

    @task
    def calls_child() -> tuple[str, str]:
        return type(get_run_context()).__name__, child()

    @flow
    def parent() -> tuple[str, str]:
        return calls_child()

    assert parent() == ("TaskRunContext", "FlowRunContext")


FLOW_FILE = textwrap.dedent(
    """
    from gnomon import flow, task
    from gnomon.runtime import deployment

    @task
    def seen_in_task() -> list:
        return [deployment.name, deployment.parameters]

    @flow
    def report(region: str, days: int = 7) -> list:
        return [deployment.id, deployment.name, deployment.version, deployment.flow_run_id,
                deployment.parameters, seen_in_task()]
    """
)


def test_runtime_deployment_names_a_daemon_runs_deployment_and_its_parameters(
    tmp_path: Path, gnomon_home: Path
) -> None:
    (tmp_path / "flows.py").write_text(FLOW_FILE)
    entrypoint = f"{tmp_path / 'flows.py'}:report"
    run_id = schedule_run(
        get_store(), entrypoint, {"region": "eu"}, deployment_name="nightly-report"
    )

    result = run_python(
        "import json\nfrom gnomon.flows import execute_flow_run\n"
        f"print(json.dumps(execute_flow_run({run_id!r}).result()))\n",
        gnomon_home,
    )

    assert result.returncode == 0, result.stderr
    [dep_id, name, version, flow_run_id, parameters, in_task] = json.loads(
        result.stdout.strip().splitlines()[-1]
    )
    assert (dep_id, name, version, flow_run_id) == (
        "nightly-report",
        "nightly-report",
        None,
        run_id,
    )
    assert parameters["region"] == "eu"
    assert in_task == ["nightly-report", parameters]


def test_runtime_deployment_outside_a_deployment() -> None:
    from gnomon.runtime import deployment

    assert (deployment.id, deployment.name, deployment.parameters) == (None, None, {})

    @flow
    def direct(limit: int) -> list[Any]:
        return [deployment.id, deployment.name, deployment.parameters, deployment.flow_run_id]

    dep_id, name, parameters, flow_run_id = direct(3)
    assert (dep_id, name, parameters) == (None, None, {"limit": 3})  # Prefect: the run's
    assert flow_run_id == get_store().read_runs()[0].id


def test_disable_run_logger_lets_a_tasks_fn_log_outside_a_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    @task
    def greet(name: str) -> str:
        get_run_logger().info("hello %s", name)
        return name.upper()

    with pytest.raises(MissingContextError):
        greet.fn("ada")
    with disable_run_logger():
        assert greet.fn("ada") == "ADA"
    assert "hello ada" not in caplog.text
    with pytest.raises(MissingContextError):  # back as it was after the block
        greet.fn("ada")


def test_disable_run_logger_silences_run_logs_inside_a_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    @flow
    def chatty() -> None:
        get_run_logger().info("should not be seen")

    with caplog.at_level(logging.INFO), disable_run_logger():
        chatty()
    assert "should not be seen" not in caplog.text
    assert not logging.getLogger("gnomon.flow_runs").disabled


def test_prefect_test_harness_runs_flows_against_a_temporary_store(gnomon_home: Path) -> None:
    from gnomon.testing.utilities import prefect_test_harness

    @flow
    def my_flow() -> str:
        return "Done!"

    with prefect_test_harness():
        harness_home = os.environ["GNOMON_HOME"]
        assert harness_home != str(gnomon_home)
        assert my_flow() == "Done!"
        assert [run.flow_name for run in get_store().read_runs()] == ["my-flow"]
    assert os.environ["GNOMON_HOME"] == str(gnomon_home)
    assert not Path(harness_home).exists()
    assert get_store().read_runs() == []  # the runs went to the harness's store only


def test_utilities_annotations_are_the_wrappers_gnomon_exports() -> None:
    import gnomon
    from gnomon.utilities.annotations import allow_failure, quote, unmapped

    assert (quote, unmapped, allow_failure) == (gnomon.quote, gnomon.unmapped, gnomon.allow_failure)

    @task
    def add(x: int, y: list[int]) -> int:
        return x + sum(y)

    @flow
    def mapped() -> list[int]:
        return add.map([1, 2], unmapped([10, 20])).result()

    assert mapped() == [31, 32]


def test_cron_schedule_gives_gnomons_deployment_fields() -> None:
    schedule = Cron("0 8 * * 1", timezone="America/New_York")
    assert isinstance(schedule, Schedule)
    assert (schedule.cron, schedule.timezone, schedule.day_or) == (
        "0 8 * * 1",
        "America/New_York",
        True,
    )
    assert schedule.deployment_fields() == {"cron": "0 8 * * 1", "timezone": "America/New_York"}
    with pytest.raises(ValueError, match="fields"):
        Cron("every day")


def test_interval_schedule_gives_gnomons_deployment_fields() -> None:
    anchor = datetime(2024, 1, 1)
    assert Interval(60, anchor_date=anchor).interval == timedelta(seconds=60)
    fields = Interval(timedelta(hours=1), anchor_date=anchor, timezone="Europe/Paris")
    assert fields.deployment_fields() == {
        "interval": "1h",
        "anchor": anchor.replace(tzinfo=ZoneInfo("Europe/Paris")),
        "timezone": "Europe/Paris",
    }
    assert Interval(90).deployment_fields() == {"interval": "1m 30s", "timezone": "UTC"}
    aware = datetime(2024, 1, 1, tzinfo=UTC)
    assert Interval(5, anchor_date=aware).deployment_fields()["anchor"] == aware
    with pytest.raises(ValueError, match="positive"):
        Interval(0)


def test_rrules_and_a_schedules_own_parameters_are_deployed() -> None:
    schedule = RRule("RRULE:FREQ=MONTHLY;INTERVAL=1;BYDAY=2FR", timezone="America/Chicago")
    assert schedule.rrule == "RRULE:FREQ=MONTHLY;INTERVAL=1;BYDAY=2FR"
    assert schedule.deployment_fields() == {
        "rrule": "RRULE:FREQ=MONTHLY;INTERVAL=1;BYDAY=2FR",
        "timezone": "America/Chicago",
    }
    assert Cron("0 0 * * *", parameters={"x": 1}).deployment_fields() == {
        "cron": "0 0 * * *",
        "timezone": "UTC",
        "parameters": {"x": 1},
    }


def test_what_gnomons_scheduler_cannot_run_is_refused_when_deployed() -> None:
    with pytest.raises(ValueError, match="invalid rrule 'FREQ=SOMETIMES'"):
        RRule("FREQ=SOMETIMES")
    with pytest.raises(ScheduleError, match="day_or=False"):
        Cron("0 0 8-14 * 5", day_or=False).deployment_fields()
    with pytest.raises(ScheduleError, match="gnomon pause"):
        Cron("0 0 * * *", active=False).deployment_fields()
    with pytest.raises(ScheduleError, match="at least"):
        Interval(0.5).deployment_fields()
    with pytest.raises(
        ValueError, match=r"exactly one of interval, cron, rrule \(found: interval, cron\)"
    ):
        Schedule(cron="0 0 * * *", interval=timedelta(hours=1))
