"""``@flow`` and ``@task`` on methods: instance, class and static methods bind as Python's
methods do, for direct calls, ``.submit``, ``.map`` and ``.with_options``; the bound
instance or class is a parameter the run sees (as in Prefect) but never stores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conftest import schedule_run
from gnomon import flow, runtime, task
from gnomon.deployments import request_problems
from gnomon.exceptions import ParameterBindError
from gnomon.flows import execute_flow_run

pytestmark = pytest.mark.backends


class Counter:
    def __init__(self, start: int) -> None:
        self.start = start

    @task
    def add(self, x: int) -> int:
        return self.start + x

    @task
    @classmethod
    def label(cls, x: int) -> str:
        return f"{cls.__name__}-{x}"

    @task
    @staticmethod
    def double(x: int) -> int:
        return 2 * x

    @flow
    def total(self, y: int = 2) -> dict[str, Any]:
        return {
            "call": self.add(y),
            "submit": self.add.submit(y).result(),
            "map": self.add.map([1, 2]).result(),
            "with_options": self.add.with_options(name="renamed")(5),
            "classmethod": [self.label(1), Counter.label(2)],
            "staticmethod": [self.double(3), Counter.double(4)],
            "parameters": sorted(runtime.flow_run.parameters),
        }

    @flow
    @classmethod
    def describe(cls, z: int) -> tuple[str, int]:
        return cls.__name__, z

    @flow
    @staticmethod
    def plain(z: int) -> int:
        return z


def test_an_instance_method_flow_binds_its_instance_for_every_kind_of_call(store) -> None:
    assert Counter(10).total() == {
        "call": 12,
        "submit": 12,
        "map": [11, 12],
        "with_options": 15,
        "classmethod": ["Counter-1", "Counter-2"],
        "staticmethod": [6, 8],
        "parameters": ["self", "y"],
    }
    [run] = store.read_runs()
    assert run.parameters == {"y": 2}  # the instance is not stored
    names = [row.name for row in store.read_task_runs(run.id)]
    assert names[:5] == ["add-0", "add-1", "add-2", "add-3", "renamed-4"]


def test_two_instances_keep_their_own_binding(store) -> None:
    first, second = Counter(1), Counter(100)
    bound_first, bound_second = first.total, second.total

    assert (bound_second(1)["call"], bound_first(1)["call"]) == (101, 2)
    assert Counter.total is Counter.__dict__["total"]  # read on the class, it stays unbound


def test_class_and_static_method_flows_called_on_the_class_or_an_instance(store) -> None:
    assert (Counter.describe(3), Counter(0).describe(4)) == (("Counter", 3), ("Counter", 4))
    assert (Counter.plain(5), Counter(0).plain(6)) == (5, 6)
    assert sorted(run.parameters["z"] for run in store.read_runs()) == [3, 4, 5, 6]


def test_return_state_and_bind_errors_work_on_methods(store) -> None:
    assert Counter(1).total(return_state=True).is_completed()
    with pytest.raises(ParameterBindError, match="got an unexpected keyword argument 'w'"):
        Counter(1).total(w=1)


def test_a_stored_run_of_a_classmethod_flow_binds_its_class(tmp_path: Path, store) -> None:
    module = tmp_path / "reports.py"
    module.write_text(
        "from gnomon import flow\n\n"
        "class Report:\n"
        "    @flow\n"
        "    @classmethod\n"
        "    def build(cls, day: str, pages: int = 2) -> str:\n"
        "        return f'{cls.__name__} {day} x{pages}'\n"
    )
    run_id = schedule_run(store, f"{module}:Report.build", {"day": "mon"})

    assert execute_flow_run(run_id).result() == "Report mon x2"
    assert store.read_flow_run(run_id).parameters == {"day": "mon", "pages": 2}


def test_a_classmethod_flows_schema_and_run_requests_leave_out_its_class() -> None:
    schema = Counter.describe.parameter_schema()

    assert list(schema["properties"]) == ["z"]
    assert schema["required"] == ["z"]
    assert request_problems(schema, {"z": 3}, {}) == []
