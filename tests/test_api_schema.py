"""Property-based tests of the live HTTP API: schemathesis generates requests from the
served OpenAPI schema (with an admin token) and checks that none gets a 5xx and every
response matches the schema; hypothesis sends random unauthenticated requests and checks
that none but ``GET /healthz``, the login page and the dashboard's static files gets a 2xx.
"""

from __future__ import annotations

import http.client
import string
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gnomon._settings import reset_settings
from gnomon._vault import write_key_file
from gnomon.http._http import route_table
from test_api import Api, api, concrete  # noqa: F401  (api: the live-server fixture)


@pytest.fixture(autouse=True)
def secrets_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A key for secrets, so that the secrets' routes seal what they are sent (without one
    they answer 503, which the checks below count as a server error)."""
    write_key_file(tmp_path / "secrets.key")
    monkeypatch.setenv("GNOMON_SECRETS_KEY_FILE", str(tmp_path / "secrets.key"))
    reset_settings()


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def test_no_request_the_schema_allows_gets_a_5xx_or_a_response_outside_it(
    api: Api,  # noqa: F811
) -> None:
    headers = {"Authorization": f"Bearer {api.token}"}
    schema = schemathesis.openapi.from_url(f"{api.url}/openapi.json", headers=headers)
    # The log stream never ends by itself; test_api.py follows it for real.
    schema = schema.exclude(path="/api/v1/logs/stream")
    # An apply waits (up to its timeout) for a daemon's answer, and no daemon runs here:
    # test_daemon_control applies through a real daemon.
    schema = schema.exclude(path="/api/v1/apply")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20

    # schemathesis's own pytest decorator does not run under pytest 9 (it sets a private
    # attribute pytest dropped), so each operation's strategy runs under hypothesis here.
    for operation in operations:

        @settings(
            max_examples=25,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )
        @given(case=operation.as_strategy())
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=api.url, headers=headers, checks=CHECKS)

        check()


SEGMENT = st.one_of(
    st.sampled_from(
        [
            *("api", "v1", "deployments", "runs", "logs", "stream", "tokens", "audit"),
            *("metrics", "healthz", "openapi.json", "pause", "nightly-report"),
            *("..", ".", "", "%2e%2e", "%00", "%2F"),
        ]
    ),
    st.text(string.ascii_letters + string.digits + "-._~%", min_size=1, max_size=12),
)


METHODS = st.sampled_from(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])


def random_requests(routes: list[tuple[str, str]]) -> st.SearchStrategy[tuple[str, str]]:
    """(method, path): the served routes themselves, then with another method, a segment
    added or a trailing slash, and made-up paths."""
    served = st.sampled_from(sorted({path for _, path in routes}))
    made_up = st.builds(
        lambda segments, trailing: "/" + "/".join(segments) + ("/" if trailing else ""),
        st.lists(SEGMENT, max_size=5),
        st.booleans(),
    )
    return st.one_of(
        st.sampled_from(routes),
        st.tuples(METHODS, served),
        st.tuples(METHODS, st.builds(lambda path, segment: f"{path}/{segment}", served, SEGMENT)),
        st.tuples(METHODS, st.builds(lambda path: path + "/", served)),
        st.tuples(METHODS, made_up),
    )


def test_no_path_or_method_gets_a_2xx_without_a_token_but_the_open_ones(
    api: Api,  # noqa: F811
) -> None:
    routes = [(method, concrete(path)) for method, path in route_table(api.app)]
    address = httpx.URL(api.url)
    # http.client sends the path exactly as written: no normalising of '..', '//' or '%2e'.
    connection = http.client.HTTPConnection(address.host, address.port, timeout=30)

    @settings(max_examples=200, deadline=None, database=None)
    @given(request=random_requests(routes))
    def check(request: tuple[str, str]) -> None:
        method, path = request
        connection.request(method, path)
        response = connection.getresponse()
        response.read()
        if 200 <= response.status < 300:  # open: the health check, the login page, the CSS
            assert method in ("GET", "HEAD"), (method, path)
            assert path in ("/healthz", "/login") or path.startswith("/static/"), path
        else:
            assert response.status < 500, (method, path)

    try:
        check()
    finally:
        connection.close()
