"""Failure notifications: [[notify]] targets in the config (URL from the environment or a
file, problems named), and webhook deliveries to a real HTTP receiver on loopback: payload,
Slack text, retries with backoff, giving up, filters, and a publish that never blocks."""

from __future__ import annotations

import json
import logging
import socket
import textwrap
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO
from gnomon.daemon._notify import (
    Notification,
    Notifier,
    auto_paused_event,
    events_for_summary,
    missed_event,
)
from gnomon.deployments import NotifyEvent, NotifyTarget, load_config
from test_metrics import summary

DEADLINE = 10.0  # seconds any wait below may take before the test fails
RUN_ID = "3f2a1b2c" * 4


class Receiver:
    """A webhook receiver on loopback recording every POST; it can answer given statuses
    before 200 (per path) and hold requests open until released."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.statuses: dict[str, list[int]] = {}
        self.holding = threading.Event()
        self.released = threading.Event()
        self._changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver._changed:
                    receiver.requests.append(
                        {"path": self.path, "headers": dict(self.headers), "json": json.loads(body)}
                    )
                    receiver._changed.notify_all()
                    answers = receiver.statuses.get(self.path.lstrip("/"), [])
                    status = answers.pop(0) if answers else 200
                if receiver.holding.is_set():
                    receiver.released.wait(DEADLINE)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/{path}"

    def posts(self, path: str) -> list[dict[str, Any]]:
        with self._changed:
            return [request["json"] for request in self.requests if request["path"] == f"/{path}"]

    def wait_for(self, count: int) -> list[dict[str, Any]]:
        """The first ``count`` requests, once they have arrived."""
        with self._changed:
            arrived = self._changed.wait_for(lambda: len(self.requests) >= count, DEADLINE)
            assert arrived, f"{len(self.requests)} requests arrived, expected {count}"
            return self.requests[:count]

    def close(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


class Records(logging.Handler):
    """The notifier's log records, with a way to wait for one."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._changed = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self._changed:
            self.records.append(record)
            self._changed.notify_all()

    def kinds(self) -> list[str]:
        with self._changed:
            return [getattr(record, "event_kind", "") for record in self.records]

    def wait_for(self, match: Callable[[logging.LogRecord], bool]) -> logging.LogRecord:
        with self._changed:
            found = self._changed.wait_for(
                lambda: next((r for r in self.records if match(r)), None), DEADLINE
            )
            assert found is not None, [r.getMessage() for r in self.records]
            return found


@pytest.fixture
def records() -> Iterator[Records]:
    logger = logging.getLogger("gnomon.daemon.notify")
    handler = Records()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.fixture
def target(monkeypatch: pytest.MonkeyPatch) -> Callable[..., NotifyTarget]:
    """A target whose URL comes from an environment variable, as in a config."""

    def make(name: str, url: str, **fields: Any) -> NotifyTarget:
        variable = f"HOOK_{name.upper().replace('-', '_')}"
        monkeypatch.setenv(variable, url)
        return NotifyTarget(name=name, url_env=variable, **fields).resolved()

    return make


def failed(deployment: str = "nightly-report", **fields: Any) -> Notification:
    fields = {"run_id": RUN_ID, "error_type": "ValueError", "error_message": "boom", **fields}
    [event] = events_for_summary(summary(deployment, "Failed", **fields), "COMPLETED")
    return event


def notifier(*targets: NotifyTarget, **options: Any) -> Notifier:
    return Notifier(targets, public_url="https://gnomon.example.com/", backoff=0.01, **options)


def test_a_failed_run_is_posted_as_json_with_a_dashboard_link_and_slack_text(
    receiver: Receiver, records: Records, target: Callable[..., NotifyTarget]
) -> None:
    sender = notifier(target("ops", receiver.url("ops")))
    sender.publish(failed(tags=["reports"]))
    [request] = receiver.wait_for(1)
    assert sender.close()
    assert request["headers"]["Content-Type"] == "application/json"
    link = f"https://gnomon.example.com/runs/{RUN_ID}"
    assert request["json"] == {
        "event": "failed",
        "run_id": RUN_ID,
        "deployment": "nightly-report",
        "flow": "etl",
        "state": "Failed",
        "scheduled_for": "2024-05-01T02:30:00+00:00",
        "error": {"type": "ValueError", "message": "boom"},
        "url": link,
        "text": f":red_circle: nightly-report failed: ValueError: boom (<{link}|run 3f2a1b2c>)",
        "tags": ["reports"],
        "attempt": 1,
        "duration_ms": 1500,
        "exit_code": None,
        "signal": None,
    }
    delivered = records.wait_for(lambda r: r.event_kind == "notify_delivered")
    assert (delivered.notify_target, delivered.flow_run_id) == ("ops", RUN_ID)


@pytest.mark.parametrize(
    ("state", "previous", "fields", "expected"),
    [
        ("Failed", None, {"error_type": "KeyError"}, ["failed"]),
        ("TimedOut", "COMPLETED", {}, ["timed_out"]),
        ("Crashed", "COMPLETED", {"signal": "SIGKILL"}, ["crashed"]),
        ("Completed", "FAILED", {}, ["recovered"]),
        ("Completed", "CRASHED", {}, ["recovered"]),
        ("Completed", "COMPLETED", {}, []),
        ("Completed", None, {}, []),  # the first run of a deployment
        ("Completed", "CANCELLED", {}, []),  # cancelled, skipped or missed: not a failure
        ("Cancelled", "FAILED", {}, []),
        ("Retried", "COMPLETED", {"state_type": "FAILED"}, ["failed"]),  # by state type
    ],
)
def test_which_finished_runs_are_events(
    state: str, previous: str | None, fields: dict[str, Any], expected: list[str]
) -> None:
    events = events_for_summary(summary("etl", state, **fields), previous)
    assert [event.event.value for event in events] == expected


def test_slack_text_says_why_a_run_crashed_timed_out_or_recovered() -> None:
    base = "http://127.0.0.1:8787"
    crashed = events_for_summary(summary("etl", "Crashed", run_id=RUN_ID, signal="SIGKILL"), None)
    timed_out = events_for_summary(
        summary("etl", "TimedOut", run_id=RUN_ID, error_message="Flow run exceeded\n15 s"), None
    )
    recovered = events_for_summary(summary("etl", "Completed", run_id=RUN_ID), "FAILED")
    link = f"(<{base}/runs/{RUN_ID}|run 3f2a1b2c>)"
    assert crashed[0].text(base) == f":boom: etl crashed: worker killed by SIGKILL {link}"
    assert timed_out[0].text(base) == f":hourglass: etl timed out: Flow run exceeded 15 s {link}"
    assert recovered[0].text(base) == f":large_green_circle: etl recovered: Completed {link}"


def test_slack_text_escapes_what_slack_would_read_as_markup() -> None:
    event = failed(error_message="expected <tag> & got </tag>")
    assert "expected &lt;tag&gt; &amp; got &lt;/tag&gt; (<" in event.text("http://h")


def test_a_missed_fire_links_to_its_run_or_else_to_the_deployment() -> None:
    nominal = datetime(2024, 5, 1, 2, 30, tzinfo=UTC)
    with_run = missed_event("etl", nominal, ["nightly"], run_id=RUN_ID, reason="90000 ms late")
    without_run = missed_event("etl", nominal)
    payload = with_run.payload("https://g.example")
    assert (payload["event"], payload["state"], payload["tags"]) == (
        "missed",
        "Missed",
        ["nightly"],
    )
    assert payload["text"] == (
        ":warning: etl missed its 2024-05-01T02:30:00+00:00 fire: 90000 ms late "
        f"(<https://g.example/runs/{RUN_ID}|run 3f2a1b2c>)"
    )
    assert without_run.payload("https://g.example")["url"] == "https://g.example/deployments/etl"


def test_a_deployment_that_paused_itself_says_why_and_links_to_its_last_failed_run() -> None:
    nominal = datetime(2024, 5, 1, 2, 30, tzinfo=UTC)
    reason = "paused after 3 consecutive failures; last: etl@2024-05-01T02:30:00Z Crashed"
    event = auto_paused_event(
        "etl", reason, ["nightly"], run_id=RUN_ID, state="Crashed", scheduled_for=nominal
    )
    payload = event.payload("https://g.example")
    assert (payload["event"], payload["state"], payload["run_id"], payload["tags"]) == (
        "auto_paused",
        "Crashed",
        RUN_ID,
        ["nightly"],
    )
    assert payload["text"] == (
        f":double_vertical_bar: etl paused itself: {reason} "
        f"(<https://g.example/runs/{RUN_ID}|run 3f2a1b2c>)"
    )
    assert payload["error"] == {"type": None, "message": reason}
    # Every target is told by default.
    assert NotifyEvent.AUTO_PAUSED in NotifyTarget(name="ops", url_env="X").events


def test_parameters_in_a_payload_are_masked() -> None:
    event = failed(parameters={"region": "emea", "db_password": "hunter2"})
    assert event.payload("http://h")["parameters"] == {"region": "emea", "db_password": "********"}


@pytest.mark.parametrize("statuses", [[500, 503], [429, 502]])
def test_server_errors_and_rate_limits_are_retried_with_backoff_until_delivered(
    receiver: Receiver,
    records: Records,
    target: Callable[..., NotifyTarget],
    statuses: list[int],
) -> None:
    receiver.statuses["ops"] = list(statuses)
    sender = notifier(target("ops", receiver.url("ops")))
    sender.publish(failed())
    records.wait_for(lambda r: r.event_kind == "notify_delivered")
    assert sender.close()
    posts = receiver.posts("ops")
    assert len(posts) == 3
    assert posts[0] == posts[1] == posts[2]
    retries = [r for r in records.records if r.event_kind == "notify_retry"]
    assert [(r.attempt, r.status, r.retry_in_s) for r in retries] == [
        (1, statuses[0], 0.01),
        (2, statuses[1], 0.02),
    ]


def test_delivery_gives_up_after_max_attempts_and_says_so(
    receiver: Receiver, records: Records, target: Callable[..., NotifyTarget]
) -> None:
    receiver.statuses["ops"] = [500] * 10
    sender = notifier(target("ops", receiver.url("ops"), max_attempts=3))
    sender.publish(failed())
    gave_up = records.wait_for(lambda r: r.event_kind == "notify_failed")
    assert sender.close()
    assert len(receiver.posts("ops")) == 3
    assert gave_up.levelno == logging.ERROR
    assert gave_up.getMessage() == (
        "notification to ops not delivered after 3 attempts: HTTP 500 Internal Server Error"
    )


def test_a_client_error_is_not_retried(
    receiver: Receiver, records: Records, target: Callable[..., NotifyTarget]
) -> None:
    receiver.statuses["ops"] = [404, 404]
    sender = notifier(target("ops", receiver.url("ops")))
    sender.publish(failed())
    rejected = records.wait_for(lambda r: r.event_kind == "notify_failed")
    assert sender.close()
    assert len(receiver.posts("ops")) == 1
    assert rejected.getMessage() == "notification rejected by ops, not retried: HTTP 404 Not Found"


def test_a_refused_connection_is_retried_and_the_url_never_logged(
    records: Records, target: Callable[..., NotifyTarget]
) -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/hook-secret-path"
    sender = notifier(target("ops", url, max_attempts=2))
    sender.publish(failed())
    gave_up = records.wait_for(lambda r: r.event_kind == "notify_failed")
    assert sender.close()
    assert "after 2 attempts" in gave_up.getMessage()
    assert "refused" in gave_up.getMessage().lower()
    assert records.kinds() == ["notify_retry", "notify_failed"]
    assert not any("hook-secret-path" in str(vars(r)) for r in records.records)


def test_targets_get_only_the_events_deployments_and_tags_they_ask_for(
    receiver: Receiver, target: Callable[..., NotifyTarget]
) -> None:
    sender = notifier(
        target("all", receiver.url("all")),
        target("etl-only", receiver.url("etl-only"), deployments=("etl",)),
        target("prod", receiver.url("prod"), tags=("prod",)),
        target("prod-etl", receiver.url("prod-etl"), deployments=("etl",), tags=("prod",)),
        target("missed", receiver.url("missed"), events=(NotifyEvent.MISSED,)),
    )
    sender.publish(failed("etl", run_id="1" * 32))
    sender.publish(failed("report", run_id="2" * 32, tags=["prod", "eu"]))
    sender.publish(failed("etl", run_id="3" * 32, tags=["prod"]))
    sender.publish(missed_event("report", "2024-05-01T02:30:00+00:00", run_id="4" * 32))
    assert sender.close()

    def runs(path: str) -> list[str]:
        return [post["run_id"][0] for post in receiver.posts(path)]

    assert runs("all") == ["1", "2", "3", "4"]  # in the order published
    assert runs("etl-only") == ["1", "3"]
    assert runs("prod") == ["2", "3"]
    assert runs("prod-etl") == ["3"]
    assert runs("missed") == ["4"]


def test_publish_never_blocks_on_a_hanging_webhook_and_drops_what_overflows(
    receiver: Receiver, records: Records, target: Callable[..., NotifyTarget]
) -> None:
    receiver.holding.set()
    sender = notifier(target("ops", receiver.url("ops"), timeout=DEADLINE), queue_size=2)
    sender.publish(failed(run_id="0" * 32))
    receiver.wait_for(1)  # the first delivery is now hanging in the receiver
    for digit in "12345":
        sender.publish(failed(run_id=digit * 32))
    dropped = [r for r in records.records if r.event_kind == "notify_dropped"]
    assert [r.flow_run_id[0] for r in dropped] == ["3", "4", "5"]
    assert dropped[0].getMessage() == (
        "notification dropped: nightly-report failed to ops: its queue is full"
    )
    assert not sender.close(timeout=0)  # still hanging: shutdown does not wait for it
    receiver.released.set()
    # What was queued behind the hanging delivery is given up on, and says so.
    records.wait_for(lambda r: r.event_kind == "notify_failed" and r.flow_run_id[0] == "2")
    failed_runs = [r.flow_run_id[0] for r in records.records if r.event_kind == "notify_failed"]
    assert failed_runs == ["1", "2"]
    assert [post["run_id"][0] for post in receiver.posts("ops")] == ["0"]


def test_close_delivers_what_is_queued_and_later_publishes_are_dropped(
    receiver: Receiver, records: Records, target: Callable[..., NotifyTarget]
) -> None:
    sender = notifier(target("ops", receiver.url("ops")))
    for digit in "123":
        sender.publish(failed(run_id=digit * 32))
    assert sender.close()
    assert len(receiver.posts("ops")) == 3
    sender.publish(failed())
    dropped = records.wait_for(lambda r: r.event_kind == "notify_dropped")
    assert dropped.getMessage().endswith("to ops: the notifier is closed")


# The config: [[notify]] targets and their problems.

DEPLOYMENT = """
[[deployments]]
name = "nightly-report"
flow = "flows.py:report"
cron = "0 2 * * *"
"""


def load(tmp_path: Path, text: str) -> tuple[Any, list[str]]:
    path = tmp_path / "gnomon.toml"
    path.write_text(DEPLOYMENT + textwrap.dedent(text))
    result = load_config(path, check_flows=False)
    return result.config, [str(problem) for problem in result.problems]


def test_a_url_from_the_environment_is_loaded_and_delivered_to(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPS_HOOK", receiver.url("from-env"))
    config, problems = load(
        tmp_path,
        """
        [daemon]
        public_url = "https://gnomon.example.com/"

        [[notify]]
        url_env = "OPS_HOOK"
        events = ["failed", "recovered"]
        deployments = ["nightly-report"]
        timeout = "5s"
        max_attempts = 2
        """,
    )
    assert problems == []
    [ops] = config.notify
    assert (ops.name, ops.events, ops.timeout.total_seconds(), ops.max_attempts) == (
        "notify-1",
        (NotifyEvent.FAILED, NotifyEvent.RECOVERED),
        5.0,
        2,
    )
    assert receiver.url("from-env") not in repr(config)  # the URL is a SecretStr
    sender = Notifier(config.notify, public_url=config.daemon.public_url)
    sender.publish(failed())
    assert sender.close()
    [post] = receiver.posts("from-env")
    assert post["url"] == f"https://gnomon.example.com/runs/{RUN_ID}"


def test_a_url_from_a_file_beside_the_config_is_loaded_and_delivered_to(
    tmp_path: Path, receiver: Receiver
) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "ops.url").write_text(receiver.url("from-file") + "\n")
    config, problems = load(tmp_path, '[[notify]]\nname = "ops"\nurl_file = "secrets/ops.url"\n')
    assert problems == []
    assert config.notify[0].url_file == tmp_path / "secrets" / "ops.url"
    sender = Notifier(config.notify)
    sender.publish(failed())
    assert sender.close()
    assert len(receiver.posts("from-file")) == 1


N = 'gnomon.toml: notify "ops": '
SECRET_URL = "https://hooks.example.com/services/T000/B000/XXXX"


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (
            'url_env = "OPS_HOOK"',
            N + 'url_env "OPS_HOOK": environment variable OPS_HOOK is not set',
        ),
        (
            'url_env = "NOT_A_URL"',
            N + 'url_env "NOT_A_URL": environment variable NOT_A_URL does not hold an http(s) URL',
        ),
        (
            'url_file = "secrets/none.url"',
            N + 'url_file "secrets/none.url": no such file',
        ),
        (
            f'url = "{SECRET_URL}"',
            N + "url: a webhook URL is a secret and never belongs in the config: set url_env to "
            "the name of an environment variable holding it, or url_file to a file holding it",
        ),
        (
            'url_env = "SET_HOOK"\nurl_file = "ops.url"',
            N + "set exactly one of url_env or url_file (both are set)",
        ),
        (
            'url_env = "SET_HOOK"\nevents = ["failure"]',
            N + "events.0 \"failure\": Input should be 'failed', 'crashed', 'timed_out', "
            "'missed', 'recovered', 'auto_paused', 'late', 'late_cleared', 'deadline_missed', "
            "'deadline_cleared', 'too_fast', 'too_fast_cleared', 'stale' or 'fresh_again'",
        ),
        (
            'url_env = "SET_HOOK"\nevents = []',
            N + "events []: must name at least one event (remove the target to send none)",
        ),
        (
            'url_env = "SET_HOOK"\ndeployments = ["nightly-reprot"]',
            N + 'deployments "nightly-reprot": no deployment has this name; '
            'did you mean "nightly-report"?',
        ),
        (
            'url_env = "SET_HOOK"\nevnets = ["failed"]',
            N + 'evnets: unknown key (did you mean "events"?)',
        ),
        (
            'url_env = "SET_HOOK"\nmax_attempts = 0',
            N + "max_attempts 0: Input should be greater than or equal to 1",
        ),
        ('url_env = "SET_HOOK"\ntimeout = "soon"', N + 'timeout "soon": not a duration'),
    ],
)
def test_notify_problems_name_file_target_field_and_value_but_never_the_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, entry: str, expected: str
) -> None:
    monkeypatch.delenv("OPS_HOOK", raising=False)
    monkeypatch.setenv("NOT_A_URL", SECRET_URL.replace("https://", "hxxps:"))
    monkeypatch.setenv("SET_HOOK", SECRET_URL)
    config, problems = load(tmp_path, f'[[notify]]\nname = "ops"\n{entry}\n')
    assert any(problem.startswith(expected) for problem in problems), problems
    assert not any("hooks.example.com" in problem for problem in problems)
    assert config.notify == ()  # a bad target is left out


def test_two_targets_with_one_name_and_a_bad_public_url_are_problems(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SET_HOOK", SECRET_URL)
    config, problems = load(
        tmp_path,
        """
        [daemon]
        public_url = "gnomon.example.com"

        [[notify]]
        url_env = "SET_HOOK"

        [[notify]]
        name = "notify-1"
        url_env = "SET_HOOK"
        """,
    )
    assert problems == [
        'gnomon.toml: daemon.public_url "gnomon.example.com": '
        'must be an http(s) URL, like "https://gnomon.example.com"',
        'gnomon.toml: notify "notify-1": another [[notify]] entry has this name',
    ]
    assert [target.name for target in config.notify] == ["notify-1"]


def test_the_commented_example_in_config_example_toml_loads_once_uncommented(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    example = (REPO / "config.example.toml").read_text()
    block = example[example.index("# [[notify]]") :].split("\n#\n")[0]
    notify = "\n".join(line.removeprefix("# ") for line in block.splitlines())
    monkeypatch.setenv("SLACK_WEBHOOK_URL", SECRET_URL)
    text = DEPLOYMENT.replace("nightly-report", "nightly-etl") + notify
    (tmp_path / "gnomon.toml").write_text(text)
    result = load_config(tmp_path / "gnomon.toml", check_flows=False)
    assert [str(problem) for problem in result.problems] == []
    assert result.config.notify[0].name == "ops-slack"
