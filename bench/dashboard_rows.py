"""The rows of the dashboard benchmark's store, made from one seed (``dashboard_data.py``
writes them): deployments of a realistic mix, their runs at their fire times with their
outcomes, run states, task runs (the big run's 10,000 among them), log lines and audit
entries, as tuples in the column order of the ``*_COLUMNS`` list above each maker."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

BIG_DEPLOYMENT = "etl-warehouse-big"  # its newest finished run has --big-tasks task runs
SPAN = timedelta(days=7)
ZONES = [
    "UTC",
    "Europe/Paris",
    "America/New_York",
    "America/Los_Angeles",
    "Asia/Kolkata",
    "Asia/Tokyo",
    "Australia/Sydney",
]
TAGS = ["crm", "billing", "etl", "reports", "ml", "ops", "critical", "nightly"]
TEAMS = ["crm", "billing", "warehouse", "reports", "ml", "ops", "search", "mail"]
JOBS = ["sync", "export", "import", "refresh", "check", "rollup", "cleanup", "notify"]
INTERVALS = {"2m": 120, "10m": 600, "15m": 900, "1h": 3600}
# (state type, state name, share of finished runs): mostly Completed.
OUTCOMES = [
    ("COMPLETED", "Completed", 0.925),
    ("FAILED", "Failed", 0.03),
    ("FAILED", "TimedOut", 0.005),
    ("CRASHED", "Crashed", 0.003),
    ("CANCELLED", "Skipped", 0.02),
    ("CANCELLED", "Missed", 0.01),
    ("CANCELLED", "Cancelled", 0.007),
]
UNRUN = {"Skipped", "Missed"}


@dataclass(eq=False)  # one per deployment: kept in sets by identity
class Deployment:
    name: str
    flow: str
    period: int  # seconds between fires
    offset: int  # seconds past a multiple of the period (UTC) at which it fires
    chatty: int  # log lines per run, relative
    text: str  # its config entry
    parameters: dict[str, Any] = field(default_factory=dict)
    paused: bool = False
    fires: list[datetime] = field(default_factory=list)


@dataclass(eq=False)
class Run:
    id: str
    deployment: Deployment
    scheduled_for: datetime
    state_type: str
    state_name: str
    start: datetime | None
    end: datetime | None


def make_deployments(count: int, rng: random.Random) -> list[Deployment]:
    made = []
    for index in range(count):
        team, job = TEAMS[index % len(TEAMS)], JOBS[(index // len(TEAMS)) % len(JOBS)]
        name = BIG_DEPLOYMENT if index == 0 else f"{team}-{job}-{index:04d}"
        zone = ZONES[index % len(ZONES)]
        utc_offset = int(ZoneInfo(zone).utcoffset(datetime.now()).total_seconds())
        tags = rng.sample(TAGS, rng.randint(1, 3))
        share = (index * 7919 % 100) / 100  # spread evenly, in no order of index
        flow, parameters = "flows.py:sync", {"region": rng.choice(["eu", "us", "apac"])}
        if index == 0:
            flow, parameters = "flows.py:warehouse", {"batches": 10000}
            when, period, offset = 'cron = "0 2 * * *"', 86400, (2 * 3600 - utc_offset) % 86400
        elif share < 0.40:
            when, period, offset = 'cron = "* * * * *"', 60, 0
        elif share < 0.70:
            when, period, offset = 'cron = "*/5 * * * *"', 300, 0
        elif share < 0.80:
            interval = rng.choice(list(INTERVALS))
            when, period, offset = f'interval = "{interval}"', INTERVALS[interval], index % 60
        elif share < 0.92:
            minute = rng.randrange(60)
            when, period = f'cron = "{minute} * * * *"', 3600
            offset = (minute * 60 - utc_offset) % 3600
        else:
            minute, hour = rng.randrange(60), rng.randrange(24)
            flow, parameters = "flows.py:report", {"day": "yesterday"}
            when, period = f'cron = "{minute} {hour} * * *"', 86400
            offset = (hour * 3600 + minute * 60 - utc_offset) % 86400
        text = f"""
            [[deployments]]
            name = "{name}"
            flow = "{flow}"
            {when}
            timezone = "{zone}"
            tags = {json.dumps(tags)}
            parameters = {_toml_table(parameters)}
            timeout = "30m"
            """
        chatty = rng.choice([1, 1, 1, 2, 2, 5, 20]) if index else 0
        made.append(Deployment(name, flow, period, offset, chatty, text, parameters))
    return made


def _toml_table(values: dict[str, Any]) -> str:
    return "{ " + ", ".join(f"{key} = {json.dumps(value)}" for key, value in values.items()) + " }"


def plan_fires(deployments: list[Deployment], total: int, now: datetime) -> None:
    """Give each deployment its newest fire times, ``total`` in all, none older than
    ``SPAN``: every deployment as many as the same cap allows (water-filling)."""
    epoch = int(now.timestamp())
    capacity = [int(SPAN.total_seconds()) // each.period for each in deployments]
    low, high = 0, max(capacity)
    while low < high:  # the smallest cap that gives at least ``total``
        middle = (low + high) // 2
        if sum(min(middle, each) for each in capacity) >= total:
            high = middle
        else:
            low = middle + 1
    counts = [min(low, each) for each in capacity]
    surplus = sum(counts) - total
    for index in sorted(range(len(counts)), key=lambda i: -counts[i]):
        if surplus <= 0:
            break
        counts[index] -= 1
        surplus -= 1
    for index, (each, count) in enumerate(zip(deployments, counts, strict=True)):
        newest = (epoch - each.offset) // each.period * each.period + each.offset
        if index % 20 == 1 and not each.paused:
            newest += each.period  # its next fire, already decided: Scheduled
        each.fires = [datetime.fromtimestamp(newest - k * each.period, UTC) for k in range(count)][
            ::-1
        ]


def make_runs(deployments: list[Deployment], now: datetime, rng: random.Random) -> list[Run]:
    """Every planned fire's run, oldest first, with its outcome."""
    planned = sorted((fire, index) for index, each in enumerate(deployments) for fire in each.fires)
    weights = [share for _, _, share in OUTCOMES]
    outcomes = rng.choices(OUTCOMES, weights, k=len(planned))
    runs = []
    for (fire, index), (outcome_type, outcome_name, _) in zip(planned, outcomes, strict=True):
        deployment = deployments[index]
        state_type, state_name = outcome_type, outcome_name
        duration = rng.uniform(0.5, min(600.0, deployment.period * 0.6))
        start = fire + timedelta(seconds=rng.uniform(0.01, 0.3))
        end: datetime | None = start + timedelta(seconds=duration)
        if fire > now:
            state_type, state_name, start, end = "SCHEDULED", "Scheduled", None, None
        elif end is not None and end > now:
            state_type, state_name, end = "RUNNING", "Running", None
        elif state_name in UNRUN:
            start = end = None
        runs.append(Run(uuid.uuid4().hex, deployment, fire, state_type, state_name, start, end))
    # Every tenth deployment's newest started run is a long one, still Running now.
    long_ones = set(deployments[3::10])
    for run in reversed(runs):
        if run.deployment in long_ones and run.start is not None:
            run.state_type, run.state_name, run.end = "RUNNING", "Running", None
            long_ones.discard(run.deployment)
    big = [run for run in runs if run.deployment.name == BIG_DEPLOYMENT and run.end]
    if big:
        big[-1].state_type, big[-1].state_name = "COMPLETED", "Completed"
    return runs


FLOW_RUN_COLUMNS = [
    "id",
    "name",
    "flow_name",
    "entrypoint",
    "parameters",
    "tags",
    "state_type",
    "state_name",
    "state_message",
    "run_count",
    "start_time",
    "end_time",
    "created",
    "updated",
    "error_type",
    "error_message",
    "error_traceback",
    "deployment_name",
    "scheduled_for",
    "trigger",
    "daemon_id",
    "worker_pid",
    "exit_code",
    "signal",
    "requested_by",
    "retry_of",
    "expected_start_time",
]


def flow_run_rows(runs: list[Run], rng: random.Random) -> Iterator[tuple[Any, ...]]:
    previous: dict[str, str] = {}
    for run in runs:
        deployment = run.deployment
        trigger, requested_by, retry_of, message = "schedule", None, None, None
        error: tuple[str | None, str | None, str | None] = (None, None, None)
        exit_code = signal = None
        roll = rng.random()
        if roll < 0.005:
            trigger, requested_by = "manual", rng.choice(["alice", "bob", "ci-bot"])
        elif roll < 0.007 and deployment.name in previous:
            trigger, requested_by = "retry", "alice"
            retry_of = previous[deployment.name]
        if run.state_name == "Failed":
            error = (
                "ValueError",
                f"upstream returned 502 for batch {rng.randrange(1000)}",
                'Traceback (most recent call last):\n  File "flows.py", line 14, in sync\n'
                "ValueError: upstream returned 502",
            )
            message = "Flow run failed: ValueError"
        elif run.state_name == "TimedOut":
            message = "timed out after 30m"
        elif run.state_name == "Crashed":
            message, exit_code, signal = "the worker process was killed (SIGKILL)", -9, "SIGKILL"
        elif run.state_name == "Skipped":
            message = "skipped: the previous run is still running (overlap = skip)"
        elif run.state_name == "Missed":
            message = "missed: the daemon was not running at the fire time"
        elif run.state_name == "Cancelled":
            message = "cancelled by alice"
        created = run.scheduled_for - timedelta(milliseconds=5)
        previous[deployment.name] = run.id
        yield (
            run.id,
            f"{deployment.name}@{run.scheduled_for:%Y-%m-%dT%H:%M:%SZ}",
            deployment.flow.split(":")[1],
            deployment.flow,
            deployment.parameters,
            None,
            run.state_type,
            run.state_name,
            message,
            1 if run.start else 0,
            run.start,
            run.end,
            created,
            run.end or run.start or created,
            *error,
            deployment.name,
            run.scheduled_for,
            trigger,
            "bench-daemon-1" if run.start else None,
            4000 + rng.randrange(1000) if run.start else None,
            exit_code,
            signal,
            requested_by,
            retry_of,
            run.scheduled_for,
        )


STATE_COLUMNS = ["flow_run_id", "task_run_id", "timestamp", "type", "name", "message", "attempt"]


def state_rows(runs: list[Run]) -> Iterator[tuple[Any, ...]]:
    """A run's states: Scheduled, Pending, Running and its final state, as far as it got."""
    for run in runs:
        created = run.scheduled_for - timedelta(milliseconds=5)
        yield (run.id, None, created, "SCHEDULED", "Scheduled", None, None)
        if run.start is not None:
            yield (
                run.id,
                None,
                run.start - timedelta(milliseconds=3),
                "PENDING",
                "Pending",
                None,
                None,
            )
            yield (run.id, None, run.start, "RUNNING", "Running", None, 1)
        if run.end is not None or run.state_name in UNRUN:
            final_time = run.end or created
            yield (run.id, None, final_time, run.state_type, run.state_name, None, None)


TASK_RUN_COLUMNS = [
    "id",
    "flow_run_id",
    "task_key",
    "name",
    "dynamic_key",
    "state_type",
    "state_name",
    "run_count",
    "start_time",
    "end_time",
    "created",
    "updated",
]


@dataclass
class TaskPlan:
    """The task runs of the runs that have some, and their states."""

    big: Run | None = None  # the run with the most task runs
    tasks: list[tuple[Any, ...]] = field(default_factory=list)
    states: list[tuple[Any, ...]] = field(default_factory=list)
    logs: dict[str, list[tuple[str, datetime, str]]] = field(default_factory=dict)


def plan_tasks(
    runs: list[Run], history: int, every: int, big_count: int, rng: random.Random
) -> TaskPlan:
    """Task runs for every ``every``-th of the newest ``history`` runs, and ``big_count``
    for the newest finished run of ``BIG_DEPLOYMENT``, wherever it is."""
    plan = TaskPlan()
    big = [run for run in runs if run.deployment.name == BIG_DEPLOYMENT and run.end]
    if big:
        plan.big = big[-1]
        _tasks_of(plan, big[-1], big_count, rng, retried=0.05, failed=0.002, logged=True)
    first = len(runs) - history
    for position, run in enumerate(runs[first:], start=first):
        if run.start is None or run.end is None or (big and run is big[-1]):
            continue
        if every and position % every == 0:
            _tasks_of(plan, run, rng.randint(3, 12), rng, retried=0.02, failed=0.0, logged=False)
    return plan


def _tasks_of(
    plan: TaskPlan,
    run: Run,
    count: int,
    rng: random.Random,
    *,
    retried: float,
    failed: float,
    logged: bool,
) -> None:
    assert run.start is not None
    assert run.end is not None
    span = (run.end - run.start).total_seconds()
    if logged:  # the big run: long enough for its tasks to show in a Gantt chart
        run.end = run.start + timedelta(seconds=max(span, count * 0.12))
        span = (run.end - run.start).total_seconds()
    step = span / (count + 1)
    for index in range(count):
        task_id = uuid.uuid4().hex
        start = run.start + timedelta(seconds=step * index + rng.uniform(0, step * 0.2))
        end = start + timedelta(seconds=rng.uniform(step * 0.1, step * 0.9) + 0.001)
        roll = rng.random()
        attempts = 2 if roll < retried else 1
        final_type, final_name = (
            ("FAILED", "Failed") if roll > 1 - failed else ("COMPLETED", "Completed")
        )
        plan.tasks.append(
            (
                task_id,
                run.id,
                "flows.step",
                f"step-{index}",
                str(index),
                final_type,
                final_name,
                attempts,
                start,
                end,
                start,
                end,
            )
        )
        states = [(run.id, task_id, start, "PENDING", "Pending", None, None)]
        middle = start + (end - start) / 2
        if attempts == 2:
            states += [
                (run.id, task_id, start, "RUNNING", "Running", None, 1),
                (run.id, task_id, middle, "SCHEDULED", "AwaitingRetry", "retry 1 of 1", 1),
                (run.id, task_id, middle, "RUNNING", "Retrying", None, 2),
            ]
        else:
            states.append((run.id, task_id, start, "RUNNING", "Running", None, 1))
        message = "ValueError: row 17 is malformed" if final_type == "FAILED" else None
        states.append((run.id, task_id, end, final_type, final_name, message, attempts))
        plan.states += states
        if logged:
            lines = plan.logs.setdefault(run.id, [])
            lines.append((task_id, start, f"step {index}: reading batch"))
            lines.append((task_id, end, f"step {index}: {final_name}"))


LOG_COLUMNS = [
    "flow_run_id",
    "task_run_id",
    "timestamp",
    "level",
    "logger",
    "message",
    "deployment_name",
]


def log_rows(
    runs: list[Run], total: int, plan: TaskPlan, rng: random.Random
) -> Iterator[tuple[Any, ...]]:
    """``total`` lines in all: the task lines ``plan`` has, the rest spread over the runs
    that started, in proportion to their deployment's chattiness."""
    started = [run for run in runs if run.start is not None]
    fixed = sum(len(lines) for lines in plan.logs.values())
    weight = sum(run.deployment.chatty for run in started) or 1
    scale = max(0, total - fixed) / weight
    made = 0.0
    written = 0
    for run in started:
        made += run.deployment.chatty * scale
        count = int(made) - written
        written += count
        yield from _lines_of(run, count, plan.logs.get(run.id, []), rng)
    # Whatever rounding left: the last run's.
    if started and written < total - fixed:
        yield from _lines_of(started[-1], total - fixed - written, [], rng)


def _lines_of(
    run: Run, count: int, tasks: list[tuple[str, datetime, str]], rng: random.Random
) -> Iterator[tuple[Any, ...]]:
    assert run.start is not None
    name = run.deployment.name
    span = ((run.end or run.start + timedelta(seconds=1)) - run.start).total_seconds()
    step = span / (count + 1)
    for index in range(count):
        when = run.start + timedelta(seconds=step * index)
        if index == 0:
            yield (run.id, None, when, 20, "gnomon.flow_runs", f"Beginning flow run {name}", name)
        elif index == count - 1 and run.end is not None:
            level = 40 if run.state_type in ("FAILED", "CRASHED") else 20
            text = f"Finished in state {run.state_name}"
            yield (run.id, None, when, level, "gnomon.flow_runs", text, name)
        else:
            roll = rng.random()
            level = 30 if roll < 0.04 else 40 if roll < 0.05 else 10 if roll < 0.15 else 20
            text = f"processed batch {index} of {name}: {rng.randrange(10_000)} rows"
            yield (run.id, None, when, level, "flows.jobs", text, name)
    for task_id, when, text in tasks:
        yield (run.id, task_id, when, 20, "gnomon.task_runs", text, name)


AUDIT_COLUMNS = ["timestamp", "actor", "origin", "action", "target", "reason", "detail"]


def audit_rows(
    count: int, deployments: list[Deployment], now: datetime, rng: random.Random
) -> Iterator[tuple[Any, ...]]:
    actions = ["pause", "resume", "run", "cancel", "retry", "apply", "token-create", "limit-set"]
    for index in range(count):
        action = rng.choice(actions)
        when = now - SPAN + SPAN * (index / max(1, count))
        target = rng.choice(deployments).name
        reason = "maintenance" if action == "pause" else None
        yield (
            when,
            rng.choice(["alice", "bob", "ci-bot"]),
            rng.choice(["cli", "api", "dashboard"]),
            action,
            target,
            reason,
            {"client": "10.0.0.7"} if action != "apply" else None,
        )
