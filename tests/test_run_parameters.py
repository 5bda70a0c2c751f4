"""A run request's parameters against a flow's stored parameter schema: the problems a user
reads, for the shapes of type hints flows use, without the flow being imported."""

from __future__ import annotations

from typing import Literal

import pytest

from gnomon import flow
from gnomon.deployments import request_problems


@flow
def etl(
    day: str,
    rows: list[int] | None = None,
    mode: Literal["full", "delta"] = "delta",
    limit: int | None = None,
    db_password: str = "",
    options: dict[str, str] | None = None,
) -> None: ...


SCHEMA = etl.parameter_schema()
CONFIGURED = {"day": "2026-11-23"}

CASES = [
    ({"rows": [1, 2], "mode": "full", "limit": None}, []),
    ({"rows": [1, "two"]}, [("parameters.rows.1", "two", "expected integer")]),
    ({"mode": "some"}, [("parameters.mode", "some", 'expected one of "full", "delta"')]),
    ({"limit": "5"}, [("parameters.limit", "5", "expected integer or null")]),
    ({"db_password": 987654321}, [("parameters.db_password", "********", "expected string")]),
    (
        {"options": {"api_key": 5}},
        [("parameters.options.api_key", "********", "expected string")],
    ),
    (
        {"dya": 1},
        [
            (
                "parameters.dya",
                1,
                "flow 'etl' has no parameter 'dya' "
                "(it takes: day, rows, mode, limit, db_password, options)",
            )
        ],
    ),
]


@pytest.mark.parametrize(("requested", "expected"), CASES)
def test_a_request_is_checked_against_the_json_types_of_the_flow_s_type_hints(
    requested: dict, expected: list
) -> None:
    assert request_problems(SCHEMA, requested, CONFIGURED) == expected


def test_a_required_parameter_may_come_from_the_deployment_or_the_request() -> None:
    missing = request_problems(SCHEMA, {"mode": "full"}, {})

    assert missing == [("parameters.day", None, "required by flow 'etl' and not given")]
    assert request_problems(SCHEMA, {"day": "today"}, {}) == []


def test_a_flow_that_does_not_validate_its_parameters_takes_any_value_of_its_names() -> None:
    @flow(validate_parameters=False)
    def loose(n: int) -> None: ...

    schema = loose.parameter_schema()

    assert request_problems(schema, {"n": "anything"}, {}) == []
    assert request_problems(schema, {"m": 1}, {"n": 1})[0][0] == "parameters.m"
