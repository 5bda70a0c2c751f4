"""Parameters as Prefect 3 binds them: defaults applied and values validated before run
names, ``gnomon.runtime``, cache keys and hooks see them; a call that does not fit the
signature raises ``ParameterBindError`` in Prefect's words, called directly or run from the
store; and ``tags()`` reaching flow runs, task runs, ``gnomon.runtime`` and hooks.

The expected values are what Prefect 3.8.8 gives for the same programs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydantic
import pytest

from conftest import schedule_run
from gnomon import flow, runtime, tags, task
from gnomon.cache_policies import FLOW_PARAMETERS
from gnomon.exceptions import ParameterBindError
from gnomon.flows import execute_flow_run

pytestmark = pytest.mark.backends


class Config(pydantic.BaseModel):
    vendor: str
    batch: int = 10


# Run names


def test_flow_run_name_template_reads_a_model_built_from_a_dict(store):
    seen: list[Any] = []

    @flow(flow_run_name="ingest-{config.vendor}")
    def ingest(config: Config, limit: int = 7) -> int:
        seen.append((runtime.flow_run.name, runtime.flow_run.parameters))
        return config.batch

    assert ingest({"vendor": "acme"}, limit="9") == 10
    [run] = store.read_runs()
    assert run.name == "ingest-acme"
    assert seen == [("ingest-acme", {"config": Config(vendor="acme"), "limit": 9})]


def test_flow_run_name_template_fills_a_parameter_left_to_its_default(store):
    @flow(flow_run_name="report-{region}-{limit}")
    def report(region: str, limit: int = 3) -> None:
        pass

    report("eu")
    assert [run.name for run in store.read_runs()] == ["report-eu-3"]


def test_flow_run_name_callable_runs_inside_the_run_and_reads_runtime(store):
    def name() -> str:
        return f"{runtime.flow_run.flow_name}-{runtime.flow_run.parameters['limit']}"

    @flow(flow_run_name=name)
    def report(region: str, limit: int = 3) -> str:
        return str(runtime.flow_run.name)

    assert report("eu") == "report-3"
    assert [run.name for run in store.read_runs()] == ["report-3"]


def test_task_run_name_callable_gets_the_parameters_with_defaults_when_it_takes_them(store):
    def by_parameters(parameters: dict[str, Any]) -> str:
        return f"fetch-{parameters['page']}-of-{parameters['size']}"

    @task(task_run_name=by_parameters)
    def fetch(page: int, size: int = 50) -> str:
        return str(runtime.task_run.name)

    @task(task_run_name=lambda: f"plain-{runtime.task_run.parameters['size']}")
    def plain(size: int = 5) -> str:
        return str(runtime.task_run.name)

    @task(task_run_name="templated-{page}-{size}")
    def templated(page: int, size: int = 20) -> str:
        return str(runtime.task_run.name)

    @flow
    def crawl() -> list[str]:
        return [fetch(2), plain(), templated(1)]

    assert crawl() == ["fetch-2-of-50", "plain-5", "templated-1-20"]
    [run] = store.read_runs()
    names = [row.name for row in store.read_task_runs(run.id)]
    assert names == ["fetch-2-of-50", "plain-5", "templated-1-20"]


def test_a_run_name_callable_must_return_a_string(store):
    @flow(flow_run_name=lambda: 7)
    def numbered() -> None:
        pass

    with pytest.raises(TypeError, match="returned type int but a string is required"):
        numbered()
    [run] = store.read_runs()
    assert run.state_name == "Crashed"


# What the run sees


def test_runtime_parameters_have_the_defaults_and_the_validated_values(store):
    seen: dict[str, Any] = {}

    @task
    def load(path: str, retries: int = 2) -> None:
        seen["task"] = runtime.task_run.parameters

    @flow
    def pipeline(day: int, region: str = "eu") -> None:
        seen["flow"] = runtime.flow_run.parameters
        load("/tmp/x")

    pipeline("5")
    assert seen == {"flow": {"day": 5, "region": "eu"}, "task": {"path": "/tmp/x", "retries": 2}}
    [run] = store.read_runs()
    assert run.parameters == {"day": 5, "region": "eu"}


def test_hooks_see_the_stored_parameters_with_defaults(store):
    seen: list[Any] = []

    def remember(flow: Any, flow_run: Any, state: Any) -> None:
        seen.append((flow_run.name, flow_run.parameters))

    @flow(on_completion=[remember], flow_run_name="ingest-{config.vendor}")
    def ingest(config: Config, limit: int = 7) -> None:
        pass

    ingest({"vendor": "acme"})
    # JSON values, as Prefect's hooks get its stored run: a model as a dict.
    assert seen == [("ingest-acme", {"config": {"vendor": "acme", "batch": 10}, "limit": 7})]


def test_flow_parameters_cache_policy_keys_on_the_defaults_too(store):
    calls: list[int] = []

    @task(cache_policy=FLOW_PARAMETERS)
    def expensive() -> int:
        calls.append(1)
        return len(calls)

    @flow
    def report(region: str, limit: int = 3) -> int:
        return expensive()

    # An omitted default and the same value given are the same parameters.
    assert [report("eu"), report("eu", limit=3), report("eu", limit=4)] == [1, 1, 2]


# Calls that do not fit


def test_a_missing_argument_raises_parameter_bind_error_before_any_run(store):
    @flow
    def report(region, limit=3):  # type: ignore[no-untyped-def]
        pass

    with pytest.raises(ParameterBindError) as raised:
        report()
    assert str(raised.value) == (
        "Error binding parameters for function 'report': missing a required argument:"
        " 'region'.\nFunction 'report' has signature 'region, limit=3' but"
        " received args: () and kwargs: []."
    )
    assert isinstance(raised.value, TypeError)
    with pytest.raises(ParameterBindError, match="got an unexpected keyword argument 'nope'"):
        report("eu", nope=1)
    assert store.read_runs() == []


def test_a_task_call_that_does_not_fit_raises_parameter_bind_error(store):
    @task
    def fetch(page: int) -> None:
        pass

    @flow
    def crawl() -> None:
        fetch(1, 2)

    with pytest.raises(ParameterBindError, match="too many positional arguments"):
        crawl()
    [run] = store.read_runs()
    assert run.state_name == "Failed"
    assert store.read_task_runs(run.id) == []


# Stored runs

STORED_FLOW = """
from gnomon import flow, runtime, task

@task
def tag_list() -> list[str]:
    return list(runtime.task_run.tags)

@flow(flow_run_name="report-{region}-{limit}")
def report(region: str, limit: int = 3) -> dict:
    return {
        "parameters": runtime.flow_run.parameters,
        "tags": runtime.flow_run.tags,
        "task_tags": tag_list(),
    }
"""


def _stored_flow(tmp_path: Path) -> str:
    path = tmp_path / "stored_report.py"
    path.write_text(STORED_FLOW)
    return f"{path}:report"


def test_a_stored_run_gets_its_defaults_its_name_and_its_tags(tmp_path: Path, store) -> None:
    run_id = schedule_run(store, _stored_flow(tmp_path), {"region": "eu"}, tags=["nightly"])

    state = execute_flow_run(run_id)

    # The stored run's tags are the flow run's, not its tasks' (as in Prefect).
    assert state.result() == {
        "parameters": {"region": "eu", "limit": 3},
        "tags": ["nightly"],
        "task_tags": [],
    }
    run = store.read_flow_run(run_id)
    assert (run.name, run.parameters, run.tags) == (
        "report-eu-3",
        {"region": "eu", "limit": 3},
        ["nightly"],
    )


def test_a_stored_run_missing_an_argument_crashes_with_parameter_bind_error(
    tmp_path: Path, store
) -> None:
    run_id = schedule_run(store, _stored_flow(tmp_path), {"limit": 5})

    with pytest.raises(ParameterBindError, match="missing a required argument: 'region'"):
        execute_flow_run(run_id)
    run = store.read_flow_run(run_id)
    assert run.state_name == "Crashed"
    assert run.state_message is not None
    assert "missing a required argument: 'region'" in run.state_message


# Tags


def test_tags_reach_the_flow_run_its_tasks_runtime_and_hooks(store):
    seen: dict[str, Any] = {}

    def flow_hook(flow: Any, flow_run: Any, state: Any) -> None:
        seen["flow hook"] = sorted(flow_run.tags)

    def task_hook(task: Any, task_run: Any, state: Any) -> None:
        seen.setdefault("task hooks", []).append(sorted(task_run.tags))

    @task(tags=["own"], on_completion=[task_hook])
    def tagged() -> list[str]:
        return list(runtime.task_run.tags)

    @flow(on_completion=[flow_hook])
    def pipeline() -> list[Any]:
        seen["flow"] = runtime.flow_run.tags
        with tags("inner"):
            nested = tagged()
        return [nested, tagged.submit().result()]

    with tags("outer", "x"), tags("nightly") as current:  # nested blocks accumulate
        assert current == {"outer", "x", "nightly"}
        task_tags = pipeline()

    assert task_tags == [
        ["inner", "nightly", "outer", "own", "x"],
        ["nightly", "outer", "own", "x"],
    ]
    assert seen == {
        "flow": ["nightly", "outer", "x"],
        "flow hook": ["nightly", "outer", "x"],
        "task hooks": task_tags,
    }
    [run] = store.read_runs()
    assert run.tags == ["nightly", "outer", "x"]
    assert [row.tags for row in store.read_task_runs(run.id)] == task_tags


def test_a_subflow_gets_the_tags_of_the_blocks_around_its_call(store):
    @flow
    def child() -> list[str]:
        return list(runtime.flow_run.tags)

    @flow
    def parent() -> list[str]:
        with tags("child-only"):
            return child()

    with tags("everywhere"):
        assert parent() == ["child-only", "everywhere"]
    runs = {run.flow_name: run.tags for run in store.read_runs()}
    assert runs == {"parent": ["everywhere"], "child": ["child-only", "everywhere"]}


def test_tags_reach_runtime_in_a_process_pool_worker(store):
    from gnomon.task_runners import ProcessPoolTaskRunner

    @task(tags=["own"])
    def report_tags() -> tuple[list[str], list[str]]:
        return list(runtime.flow_run.tags), list(runtime.task_run.tags)

    @flow(task_runner=ProcessPoolTaskRunner(max_workers=1))
    def pipeline() -> tuple[list[str], list[str]]:
        return report_tags.submit().result()

    with tags("nightly"):
        assert pipeline() == (["nightly"], ["nightly", "own"])


def test_the_run_context_shows_the_tags_the_run_was_created_with(store):
    from gnomon.context import get_run_context

    @task(tags=["own"])
    def tagged() -> list[str]:
        return get_run_context().task_run.tags

    @flow
    def pipeline() -> tuple[list[str], list[str]]:
        with tags("later"):  # for the runs created inside, not the flow run itself
            return get_run_context().flow_run.tags, tagged()

    with tags("outer"):
        assert pipeline() == (["outer"], ["later", "outer", "own"])
