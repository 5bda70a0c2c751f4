"""Reloading the config: all or nothing, off the loop's thread, with its outcome told.

One rule for SIGHUP, ``gnomon daemon reload`` and ``gnomon deployments apply``:

- a file that cannot be read or parsed, or a problem not confined to one deployment (two
  deployments with one name, a broken ``include``, a bad ``[daemon]`` key, a bad
  ``[[notify]]`` target), changes nothing: the reload is **refused**;
- a problem confined to one deployment keeps that deployment's last good version (a new
  deployment with a problem is not added) and everything else applies: **partial**;
- otherwise everything applies: **applied**.

Loading (reading the files, checking the flows) runs in a thread of its own, so the loop
keeps scheduling meanwhile; the loop applies the plan in one step. The CLI and the API ask
for a reload with a request row in the store and wait for its outcome there.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gnomon.daemon._tracking import DAEMON_ACTOR
from gnomon.store import Actor, ReloadStatus

if TYPE_CHECKING:
    from gnomon.deployments import Deployment, LoadResult
    from gnomon.store import ScheduleStore

log = logging.getLogger("gnomon.daemon")


@dataclass(frozen=True, slots=True)
class ReloadPlan:
    """What a loaded config changes in the running set of deployments."""

    status: ReloadStatus
    deployments: tuple[Deployment, ...]  # the set to run: valid ones plus kept last good ones
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # name: fields
    kept: tuple[str, ...] = ()  # deployments with problems that keep their last good version
    problems: tuple[str, ...] = ()

    def detail(self) -> dict[str, Any]:
        """The outcome as JSON for the audit log and the request row."""
        return {
            "status": self.status.value,
            "added": list(self.added),
            "removed": list(self.removed),
            "changed": {name: list(fields) for name, fields in self.changed.items()},
            "kept_last_good": list(self.kept),
            "problems": list(self.problems),
        }

    def with_pauses(self, applied: Mapping[str, Sequence[str]]) -> ReloadPlan:
        """The plan with "paused" among a deployment's changed fields where the sync
        applied the file's pause (``applied``: the sync's fields by name), and only there:
        a ``paused`` line in the file changes the pause only when it says something new
        (see ``gnomon.deployments``)."""
        names = self.changed.keys() | {n for n, fields in applied.items() if "paused" in fields}
        changed = {}
        for name in sorted(names):
            pause = ("paused",) if "paused" in applied.get(name, ()) else ()
            fields = tuple(sorted({*self.changed.get(name, ()), *pause}))
            if fields:
                changed[name] = fields
        return replace(self, changed=changed)

    def summary(self) -> str:
        """One line: "applied: 1 added, 0 removed, 2 changed" and what was kept."""
        counts = (
            f"{len(self.added)} added, {len(self.removed)} removed, {len(self.changed)} changed"
        )
        if self.status is ReloadStatus.REFUSED:
            return f"refused, nothing changed: {len(self.problems)} problem(s)"
        kept = f"; {len(self.kept)} kept their last good version" if self.kept else ""
        return f"{self.status.value}: {counts}{kept}"


def plan_reload(current: Mapping[str, Deployment], result: LoadResult) -> ReloadPlan:
    """The plan for applying ``result`` to the ``current`` deployments (by name)."""
    problems = tuple(str(problem) for problem in result.problems)
    if any(not problem.confined for problem in result.problems):
        return ReloadPlan(ReloadStatus.REFUSED, tuple(current.values()), problems=problems)
    loaded = {deployment.name: deployment for deployment in result.config.deployments}
    kept = tuple(sorted(name for name in result.failed if name in current and name not in loaded))
    running = {**loaded, **{name: current[name] for name in kept}}
    changed = {
        name: fields
        for name, deployment in loaded.items()
        if name in current and (fields := changed_fields(current[name], deployment))
    }
    return ReloadPlan(
        ReloadStatus.PARTIAL if problems else ReloadStatus.APPLIED,
        tuple(running.values()),
        added=tuple(sorted(set(loaded) - set(current))),
        removed=tuple(sorted(set(current) - set(running))),
        changed=changed,
        kept=kept,
        problems=problems,
    )


def changed_fields(before: Deployment, after: Deployment) -> tuple[str, ...]:
    """The names of the fields whose values differ (never the values: parameters may hold
    secrets), but ``paused``: whether the file's changes the pause is the sync's to say
    (``ReloadPlan.with_pauses``)."""
    old, new = before.model_dump(), after.model_dump()
    keys = old.keys() | new.keys()
    return tuple(sorted(key for key in keys if key != "paused" and old.get(key) != new.get(key)))


@dataclass(frozen=True, slots=True)
class Loaded:
    """A config load the loop may apply: the result, and the request rows it answers."""

    result: LoadResult
    requests: tuple[int, ...]


class ConfigLoader:
    """Loads the config in its own thread when asked (``request``); the loop takes each
    finished load with ``take``. Requests that arrive during a load are answered by the
    next one, which reads the file as it is then."""

    def __init__(
        self,
        path: Path | None,
        wake: Callable[[], None],
        load: Callable[[Path | None], LoadResult] | None = None,
    ) -> None:
        self.path = path
        self._wake = wake
        self._load = load or _load_config
        self._lock = threading.Lock()
        self._wanted: list[int] | None = None  # request ids waiting for a load; [] = a signal
        self._loading = False
        self._done: list[Loaded] = []

    def request(self, request_ids: Sequence[int] = ()) -> None:
        """Ask for a load answering ``request_ids`` (none for a plain SIGHUP)."""
        with self._lock:
            self._wanted = [*(self._wanted or []), *request_ids]
            if self._loading:
                return
            self._loading = True
        threading.Thread(target=self._run, name="gnomon-reload", daemon=True).start()

    @property
    def busy(self) -> bool:
        """Whether a load is under way or finished and not taken yet."""
        with self._lock:
            return self._loading or bool(self._done)

    def take(self) -> Loaded | None:
        """The oldest finished load, if any (the loop thread only)."""
        with self._lock:
            return self._done.pop(0) if self._done else None

    def retry(self, loaded: Loaded) -> None:
        """Give back a load the loop could not apply (the store failed): it comes first
        at the next ``take``."""
        with self._lock:
            self._done.insert(0, loaded)

    def _run(self) -> None:
        while True:
            with self._lock:
                wanted, self._wanted = self._wanted, None
                if wanted is None:
                    self._loading = False
                    return
            try:
                result = self._load(self.path)
            except Exception:  # a bug in loading: report it as a refused reload, keep going
                log.exception("loading the config failed")
                result = _failed_load(self.path)
            with self._lock:
                self._done.append(Loaded(result, tuple(wanted)))
            self._wake()


def _load_config(path: Path | None) -> LoadResult:
    from gnomon.deployments import load_config

    return load_config(path)


def _failed_load(path: Path | None) -> LoadResult:
    from gnomon.deployments import ConfigProblem, GnomonConfig, LoadResult

    problem = ConfigProblem(path, None, None, None, "the config could not be loaded (see log)")
    return LoadResult(GnomonConfig(path=path), [problem])


def record_outcome(
    store: ScheduleStore, requests: Sequence[int], plan: ReloadPlan, config: Path | None
) -> None:
    """Write a reload's outcome into the requests it answers and the audit log (as whoever
    asked first, or the daemon for a SIGHUP), in one transaction."""

    rows = [store.read_reload(request) for request in requests]
    first = next((row for row in rows if row is not None), None)
    actor = Actor(first.requested_by, first.origin) if first else DAEMON_ACTOR
    target = str(config) if config else None
    store.finish_reload(requests, actor, plan.status, plan.detail(), target)


def answer_at_start(store: ScheduleStore, config: Path | None) -> None:
    """Reload requests left by a daemon that stopped are answered by this start, which
    loaded the config without a problem."""

    pending = [row.id for row in store.read_pending_reloads()]
    if pending:
        detail = {"status": ReloadStatus.APPLIED, "note": "applied by the daemon's start"}
        target = str(config) if config else None
        store.finish_reload(pending, DAEMON_ACTOR, ReloadStatus.APPLIED, detail, target)
