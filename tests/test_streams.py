"""Log streams (the API's ``/api/v1/logs/stream`` and the run page's) end when what allowed
them ends: a logout, a revoked token, the run being over; a reconnecting browser gets no
line twice; one token cannot hold streams without limit.

From an adversarial review: each of these reproduced before its fix (a stream opened with
a session went on delivering lines after logout and revocation, for as long as the client
stayed connected).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from gnomon.control import Operations
from gnomon.states import StateType
from gnomon.store import Actor, TokenAccess
from test_api import Api, add_log, api  # noqa: F401 (the fixture)
from test_dashboard_run import add_log as add_run_log
from test_dashboard_run import started_run

pytestmark = [pytest.mark.backends, pytest.mark.slow]

WAIT = 30.0


class Follower:
    """A stream read on a thread: its events (kind, data) as they arrive, and whether it
    has ended (the server closed it)."""

    def __init__(self, client: httpx.Client, path: str, **headers: str) -> None:
        self.events: list[tuple[str, str]] = []
        self.opened = threading.Event()
        self.ended = threading.Event()
        self.status = 0
        self._thread = threading.Thread(
            target=self._follow, args=(client, path, headers), daemon=True
        )
        self._thread.start()
        assert self.opened.wait(WAIT), "the stream did not open"

    def _follow(self, client: httpx.Client, path: str, headers: dict[str, str]) -> None:
        try:
            with client.stream("GET", path, headers=headers) as response:
                self.status = response.status_code
                kind = "message"
                for line in response.iter_lines():
                    self.opened.set()
                    if line.startswith("event: "):
                        kind = line.removeprefix("event: ")
                    elif line.startswith("data: "):
                        self.events.append((kind, line.removeprefix("data: ")))
                        kind = "message"
        finally:
            self.opened.set()
            self.ended.set()

    def messages(self) -> list[str]:
        return [data for kind, data in self.events if kind == "log"]


def session_client(api: Api, token: str) -> httpx.Client:  # noqa: F811
    """A client logged in to the dashboard with ``token`` (its session cookie set)."""
    client = httpx.Client(base_url=api.url, timeout=WAIT)
    login = client.post("/login", data={"token": token})
    assert login.status_code == 303
    return client


@contextmanager
def following(client: httpx.Client, path: str, **headers: str) -> Iterator[Follower]:
    try:
        yield Follower(client, path, **headers)
    finally:
        client.close()


def test_a_run_pages_stream_ends_at_logout_and_sends_nothing_after(api: Api) -> None:  # noqa: F811
    run_id = started_run(api)
    client = session_client(api, api.token_for("reader", TokenAccess.READ))
    with following(client, f"/runs/{run_id}/logs/stream") as stream:
        csrf = client.get(f"/runs/{run_id}").text.split('name="csrf" value="')[1].split('"')[0]
        assert client.post("/logout", data={"csrf": csrf}).status_code == 303
        add_run_log(api.store, run_id, "written after logout")
        assert stream.ended.wait(WAIT), "the stream outlived its session"
    assert ("end", "{}") in stream.events
    assert not any("written after logout" in message for message in stream.messages())


@pytest.mark.parametrize("through", ["dashboard", "api"])
def test_a_stream_ends_when_its_token_is_revoked(api: Api, through: str) -> None:  # noqa: F811
    run_id = started_run(api)
    token = api.token_for("temp", TokenAccess.READ)
    if through == "dashboard":
        client, path = session_client(api, token), f"/runs/{run_id}/logs/stream"
    else:
        client, path = api.client(token), f"/api/v1/logs/stream?run={run_id}"
    with following(client, path) as stream:
        Operations(api.store, Actor("test", "cli")).revoke_token("temp")
        add_run_log(api.store, run_id, "written after revocation")
        assert stream.ended.wait(WAIT), "the stream outlived its token"
    assert not any("written after revocation" in message for message in stream.messages())


def test_a_run_pages_stream_sends_the_last_lines_then_ends_when_the_run_is_over(
    api: Api,  # noqa: F811
) -> None:
    run_id = started_run(api)
    with following(session_client(api, api.token), f"/runs/{run_id}/logs/stream") as stream:
        add_run_log(api.store, run_id, "the last line")
        assert api.store.set_run_state(run_id, StateType.COMPLETED, "Completed")
        assert stream.ended.wait(WAIT), "the stream went on after the run was over"
    assert any("the last line" in message for message in stream.messages())
    assert stream.events[-1] == ("end", "{}")


def test_a_reconnecting_browser_gets_only_the_lines_after_the_last_it_saw(api: Api) -> None:  # noqa: F811
    run_id = started_run(api)
    for n in range(3):
        add_run_log(api.store, run_id, f"line {n}")
    lines = api.store.search_logs(_run_query(run_id), None, newest=False)
    seen = lines[1].id
    client = session_client(api, api.token)
    # The page's URL says after_id=0 (the page had no lines yet); the reconnect says more.
    with following(
        client, f"/runs/{run_id}/logs/stream?after_id=0", **{"Last-Event-ID": str(seen)}
    ) as stream:
        add_run_log(api.store, run_id, "line 3")
        assert api.store.set_run_state(run_id, StateType.COMPLETED, "Completed")
        assert stream.ended.wait(WAIT)
    shown = stream.messages()
    assert len(shown) == 2
    assert "line 2" in shown[0]
    assert "line 3" in shown[1]


def test_one_token_holds_a_bounded_number_of_streams(api: Api) -> None:  # noqa: F811
    # A private module: the limit (20) is lowered for the test, so it opens 3, not 21.
    from gnomon.http._streams import StreamSlots

    api.app.state.streams = StreamSlots(limit=2)
    run_id = started_run(api)
    path = f"/runs/{run_id}/logs/stream"
    clients = [session_client(api, api.token) for _ in range(3)]
    first, second = (Follower(client, path) for client in clients[:2])
    refused = clients[2].get(path)
    assert refused.status_code == 429
    assert "already follows 2 log streams" in refused.text
    assert api.store.set_run_state(run_id, StateType.COMPLETED, "Completed")
    assert first.ended.wait(WAIT)
    assert second.ended.wait(WAIT)
    again = Follower(clients[2], path)  # their slots were given back when they ended
    assert again.ended.wait(WAIT)
    assert again.status == 200
    for client in clients:
        client.close()


def _run_query(run_id: str) -> Any:
    from gnomon.store import LogQuery

    return LogQuery(None, run_id, None, None, 0)
