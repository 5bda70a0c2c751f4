"""Loading the config file, with every problem named by file, deployment, field and value.

A bad deployment never stops the others: ``load_config`` returns the valid deployments with
the list of every problem found, and the caller decides what problems mean (the daemon
refuses to start on any; a reload reports bad deployments and skips them). Flows are
imported and the parameters checked against their signatures at load (in a child process,
see ``_flowcheck``), so that a typo is found when the config is written rather than when
the schedule first fires.
"""

from __future__ import annotations

import dataclasses
import difflib
import glob
import json
import os
import tomllib
from collections import defaultdict
from collections.abc import Mapping, Set
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from gnomon._settings import Settings, find_config_file
from gnomon.deployments._calendars import (
    CALENDARS_CONTEXT,
    CalendarEntry,
    MaintenanceEntry,
    resolve_calendars,
)
from gnomon.deployments._flowcheck import FlowCheck, FlowChecker
from gnomon.deployments._models import (
    DaemonConfig,
    Deployment,
    GnomonConfig,
    NotifyTarget,
    resolve_entrypoint,
)
from gnomon.deployments._runenv import RunPool
from gnomon.deployments._upstreams import upstream_problems
from gnomon.exceptions import ConfigError
from gnomon.scheduling import Calendar, MaintenanceWindow, ScheduleError

MAIN_KEYS = (
    "daemon",
    "deployments",
    "notify",
    "pools",
    "include",
    "calendars",
    "maintenance",
)
SETTINGS_KEYS = tuple(Settings.model_fields)  # engine settings, read by gnomon._settings
SECRET_URL = (
    "a webhook URL is a secret and never belongs in the config: set url_env to the name "
    "of an environment variable holding it, or url_file to a file holding it"
)
NO_CONFIG = (
    "no config file: set GNOMON_CONFIG or create ./gnomon.toml "
    "(also looked for ~/.config/gnomon/config.toml and /etc/gnomon/config.toml)"
)


# GNOMON_DAEMON_WORKERS=8 overrides `workers` in [daemon], and so on for each key.
DAEMON_ENV_PREFIX = "GNOMON_DAEMON_"


@dataclasses.dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with the config and exactly where: file, deployment (or notification
    target), field, value.

    ``str()`` gives the line operators read, e.g. ``deployments/crm.toml: deployment
    "sync-crm": cron "61 * * * *": minute 61 is outside 0-59``; parts that are None are left
    out, and the file is shown relative to the main config file's directory (``root``).
    """

    file: Path | None
    deployment: str | None
    field: str | None
    value: Any
    message: str
    root: Path | None = dataclasses.field(default=None, repr=False, compare=False)
    notify: str | None = None  # the [[notify]] target's name, for a problem in one
    # A deployment's problem that still affects others (two deployments with one name).
    shared: bool = False
    # The [[calendars]] or [[maintenance]] entry's name, for a problem in one.
    calendar: str | None = None
    maintenance: str | None = None

    @property
    def confined(self) -> bool:
        """Whether the problem is confined to one deployment, which can keep its last good
        version while everything else applies (a reload's rule). A calendar's is: each
        deployment that names it has a problem of its own."""
        return (self.deployment is not None and not self.shared) or self.calendar is not None

    def __str__(self) -> str:
        parts = []
        if self.file is not None:
            parts.append(display_path(self.file, self.root))
        if self.deployment is not None:
            parts.append(f"deployment {_render(self.deployment)}")
        if self.notify is not None:
            parts.append(f"notify {_render(self.notify)}")
        if self.calendar is not None:
            parts.append(f"calendar {_render(self.calendar)}")
        if self.maintenance is not None:
            parts.append(f"maintenance {_render(self.maintenance)}")
        if self.field is not None:
            value = "" if self.value is None else f" {_render(self.value)}"
            parts.append(f"{self.field}{value}")
        parts.append(self.message)
        return ": ".join(parts)


def display_path(path: Path, root: Path | None) -> str:
    """``path`` relative to ``root`` when it lies inside it, else as it is."""
    if root is not None and path.is_relative_to(root):
        return str(path.relative_to(root))
    return str(path)


def _render(value: Any) -> str:
    """A value as the file would spell it: strings in double quotes, arrays in brackets."""
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):  # circular or otherwise unrenderable
        return repr(value)


@dataclasses.dataclass(frozen=True)
class LoadResult:
    """The config with only its valid deployments, and every problem found.

    ``schemas`` has the parameter JSON schema of each flow the check imported, by
    entrypoint; ``flows_ok`` says that the config was read and every deployment's flow was
    checked and passed (the condition for the daemon to load the flow code afresh).
    """

    config: GnomonConfig
    problems: list[ConfigProblem]
    schemas: Mapping[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    flows_ok: bool = False

    @property
    def ok(self) -> bool:
        """Whether the config has no problem at all."""
        return not self.problems

    @property
    def failed(self) -> frozenset[str]:
        """Names of the deployments that have problems (and are missing from ``config``)."""
        return frozenset(p.deployment for p in self.problems if p.deployment is not None)


def load_config(path: Path | None = None, *, check_flows: bool = True) -> LoadResult:
    """Read the config at ``path`` (default: ``find_config_file()``) and its included files.

    With ``check_flows``, each deployment's flow is imported (in a child process) and its
    parameters are checked against the flow's signature and type hints.
    """
    return _Loader(check_flows).load(path)


def load_config_or_raise(path: Path | None = None, *, check_flows: bool = True) -> LoadResult:
    """The load's result if the config has no problem, else ConfigError listing every
    problem, one per line (the daemon's start)."""
    result = load_config(path, check_flows=check_flows)
    if result.problems:
        raise ConfigError("\n".join(str(problem) for problem in result.problems))
    return result


_Entry = tuple[Path, int, dict[str, Any]]  # the declaring file, the index in it, the table


@dataclasses.dataclass(frozen=True)
class _FlowEntry:
    """A deployment whose flow the check process checks, and where its problems belong."""

    file: Path
    name: str | None
    prefix: str
    written: Any  # the flow field as the file has it
    entrypoint: str
    parameters: dict[str, Any]
    position: int  # in the problems list: after the deployment's own
    # A spec of ``schedules`` with parameters: its own (checked merged over the
    # deployment's, its problems reported only for these, the rest being the deployment's).
    own: frozenset[str] | None = None


class _Loader:
    """One load: the problems found so far, and the flows to check."""

    def __init__(self, check_flows: bool) -> None:
        self.check_flows = check_flows
        self.problems: list[ConfigProblem] = []
        self.root: Path | None = None
        self._flows: list[_FlowEntry] = []

    def problem(
        self,
        file: Path | None,
        message: str,
        deployment: str | None = None,
        field: str | None = None,
        value: Any = None,
        notify: str | None = None,
        shared: bool = False,
        *,
        calendar: str | None = None,
        maintenance: str | None = None,
    ) -> None:
        self.problems.append(
            ConfigProblem(
                file,
                deployment,
                field,
                value,
                message,
                self.root,
                notify,
                shared,
                calendar,
                maintenance,
            )
        )

    def load(self, path: Path | None) -> LoadResult:
        # Started first: the check process imports gnomon while this one reads the files.
        checker = FlowChecker() if self.check_flows else None
        try:
            return self._load(path, checker)
        finally:
            if checker is not None:
                checker.close()

    def _load(self, path: Path | None, checker: FlowChecker | None) -> LoadResult:
        main = self._locate(path)
        document = self._read(main) if main is not None else None
        if main is None or document is None:
            files = (main,) if main is not None else ()
            return LoadResult(GnomonConfig(path=main, files=files), self.problems)
        for key in document:
            if key not in MAIN_KEYS and key not in SETTINGS_KEYS:
                self.problem(main, _unknown_key(key, (*MAIN_KEYS, *SETTINGS_KEYS)), field=key)
        daemon = self._daemon(main, document.get("daemon"))
        included = self._included(main, document.get("include"))
        entries = self._entries(main, document)
        for file in included:
            entries.extend(self._included_entries(file))
        declared = {table["name"] for _, _, table in entries if isinstance(table.get("name"), str)}
        calendars = self._calendars(main, document.get("calendars"))
        pools = self._pools(main, document.get("pools"))
        deployments = self._upstream_checks(
            self._deployments(entries, daemon, calendars, {pool.name for pool in pools}),
            declared,
        )
        schemas: dict[str, dict[str, Any]] = {}
        flows_ok = False
        if checker is not None:
            deployments, schemas, flows_ok = self._check_flows(checker, deployments, daemon)
        config = GnomonConfig(
            daemon=daemon,
            deployments=tuple(deployments),
            notify=tuple(self._notify_targets(main, document.get("notify"), declared)),
            maintenance=tuple(
                self._maintenance(main, document.get("maintenance"), declared, daemon.timezone)
            ),
            pools=tuple(pools),
            path=main,
            files=(main, *included),
        )
        return LoadResult(config, self.problems, schemas, flows_ok)

    def _locate(self, path: Path | None) -> Path | None:
        if path is None:
            try:
                path = find_config_file()
            except ConfigError as error:
                self.problem(None, str(error))
                return None
            if path is None:
                self.problem(None, NO_CONFIG)
                return None
        main = Path(path).expanduser().absolute()
        self.root = main.parent
        return main

    def _read(self, file: Path) -> dict[str, Any] | None:
        try:
            with file.open("rb") as stream:
                return tomllib.load(stream)
        except tomllib.TOMLDecodeError as error:  # its message names the line and column
            self.problem(file, f"invalid TOML: {error}")
        except FileNotFoundError:
            self.problem(file, "no such file")
        except (OSError, UnicodeDecodeError) as error:
            self.problem(file, f"cannot read: {getattr(error, 'strerror', None) or error}")
        return None

    def _daemon(self, main: Path, table: Any) -> DaemonConfig:
        """``[daemon]``; a bad setting is reported and left at its default, not fatal here."""
        if table is None:
            table = {}
        if not isinstance(table, dict):
            self.problem(main, "must be a table: write [daemon]", field="daemon", value=table)
            table = {}
        context = {"base_dir": main.parent}
        table = {**table, **self._daemon_environment(main, context)}
        try:
            return DaemonConfig.model_validate(table, context=context)
        except ValidationError as error:
            bad = self._validation_problems(error, DaemonConfig, main, None, "daemon.")
        good = {key: value for key, value in table.items() if key not in bad}
        try:
            return DaemonConfig.model_validate(good, context=context)
        except ValidationError:  # cannot happen field by field, but never fail the load on it
            return DaemonConfig()

    def _daemon_environment(self, main: Path, context: dict[str, Any]) -> dict[str, Any]:
        """``GNOMON_DAEMON_<KEY>`` variables, which override ``[daemon]`` keys of the file.

        Each value is read as a TOML value (``8`` is a number, ``true`` a boolean), else as
        a string (``30s``, ``Europe/Berlin``); a bad one is reported naming the variable.
        An empty one is unset.
        """
        overrides: dict[str, Any] = {}
        for variable, text in sorted(os.environ.items()):
            if not variable.startswith(DAEMON_ENV_PREFIX) or text == "":
                continue  # an empty one is unset, as every GNOMON_* variable (_settings)
            key = variable.removeprefix(DAEMON_ENV_PREFIX).lower()
            try:
                value = tomllib.loads(f"value = {text}")["value"]
            except tomllib.TOMLDecodeError:
                value = text
            try:
                DaemonConfig.model_validate({key: value}, context=context)
            except ValidationError as error:
                reason = error.errors()[0]["msg"]
                self.problem(
                    main, f"{reason} (set by {variable})", field=f"daemon.{key}", value=value
                )
                continue
            overrides[key] = value
        return overrides

    def _included(self, main: Path, patterns: Any) -> list[Path]:
        """The files ``include`` names: globs relative to the main file, in sorted order.

        A pattern without wildcards must name a file; a glob may match nothing (an empty
        ``deployments/`` directory is a normal state).
        """
        if patterns is None:
            return []
        if isinstance(patterns, str):
            patterns = [patterns]
        if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
            message = 'must be a list of glob patterns, like ["deployments/*.toml"]'
            self.problem(main, message, field="include", value=patterns)
            return []
        files: list[Path] = []
        for pattern in patterns:
            full = os.path.normpath(main.parent / os.path.expanduser(pattern))
            matches = sorted(Path(match) for match in glob.glob(full, recursive=True))
            if not matches and not any(char in pattern for char in "*?["):
                self.problem(main, "no such file", field="include", value=pattern)
            files.extend(m for m in matches if m.is_file() and m != main and m not in files)
        return files

    def _included_entries(self, file: Path) -> list[_Entry]:
        document = self._read(file)
        if document is None:
            return []
        for key in document:
            if key != "deployments":
                message = "unknown key: an included file holds only [[deployments]]"
                self.problem(file, message, field=key)
        return self._entries(file, document)

    def _entries(self, file: Path, document: dict[str, Any]) -> list[_Entry]:
        tables = document.get("deployments", [])
        if not isinstance(tables, list):
            message = "must be an array of tables: write [[deployments]]"
            self.problem(file, message, field="deployments")
            return []
        entries: list[_Entry] = []
        for index, table in enumerate(tables):
            if isinstance(table, dict):
                entries.append((file, index, table))
            else:
                message = "must be a table: write [[deployments]]"
                self.problem(file, message, field=f"deployments[{index}]", value=table)
        return entries

    def _tables(self, main: Path, tables: Any, key: str) -> list[tuple[str, dict[str, Any]]]:
        """The tables of ``[[key]]`` in the main file with their names (a nameless window
        is ``maintenance-1``, ...; a calendar needs one, deployments name it); one that is
        no table, or repeats a name, is reported."""
        if tables is None:
            return []
        if not isinstance(tables, list):
            self.problem(main, f"must be an array of tables: write [[{key}]]", field=key)
            return []
        named: list[tuple[str, dict[str, Any]]] = []
        for index, table in enumerate(tables):
            if not isinstance(table, dict):
                message = f"must be a table: write [[{key}]]"
                self.problem(main, message, field=f"{key}[{index}]", value=table)
                continue
            entry = table if key == "calendars" else {"name": f"{key}-{index + 1}", **table}
            name = entry.get("name")
            name = name if isinstance(name, str) else f"{key}[{index}]"
            if any(name == seen for seen, _ in named):
                message = f"another [[{key}]] entry has this name"
                if key == "calendars":
                    self.problem(main, message, calendar=name)
                else:
                    self.problem(main, message, maintenance=name)
                continue
            named.append((name, entry))
        return named

    def _calendars(self, main: Path, tables: Any) -> dict[str, Calendar | None]:
        """The ``[[calendars]]`` by name, built; None for one with a problem (reported)."""
        entries: dict[str, CalendarEntry] = {}
        broken: dict[str, Calendar | None] = {}
        for name, table in self._tables(main, tables, "calendars"):
            try:
                entries[name] = CalendarEntry.model_validate(table)
            except ValidationError as error:
                self._validation_problems(error, CalendarEntry, main, None, "", calendar=name)
                broken[name] = None
        built, problems = resolve_calendars(entries, broken)
        for calendar, field, value, message in problems:
            self.problem(main, message, None, field, value, calendar=calendar)
        return {**broken, **built}

    def _maintenance(
        self, main: Path, tables: Any, deployments: set[str], zone: str
    ) -> list[MaintenanceWindow]:
        """The ``[[maintenance]]`` windows; a bad one is reported (and left out)."""
        windows: list[MaintenanceWindow] = []
        for name, table in self._tables(main, tables, "maintenance"):
            before = len(self.problems)
            try:
                entry = MaintenanceEntry.model_validate(table)
            except ValidationError as error:
                self._validation_problems(error, MaintenanceEntry, main, None, "", maintenance=name)
                continue
            for deployment in entry.deployments:
                if deployment not in deployments:
                    message = "no deployment has this name"
                    self.problem(main, message, None, "deployments", deployment, maintenance=name)
            try:
                window = entry.window(zone)
            except ScheduleError as error:
                self.problem(main, str(error), None, "end", str(entry.end), maintenance=name)
                continue
            if len(self.problems) == before:
                windows.append(window)
        return windows

    def _pools(self, main: Path, tables: Any) -> list[RunPool]:
        """The valid ``[[pools]]``; a bad one is reported and left out (the deployments
        that name it are then refused too)."""
        if tables is None:
            return []
        if not isinstance(tables, list):
            self.problem(main, "must be an array of tables: write [[pools]]", field="pools")
            return []
        pools: dict[str, RunPool] = {}
        for index, table in enumerate(tables):
            prefix = f"pools[{index}]."
            if not isinstance(table, dict):
                message = "must be a table: write [[pools]]"
                self.problem(main, message, field=f"pools[{index}]", value=table)
                continue
            try:
                pool = RunPool.model_validate(table)
            except ValidationError as error:
                self._validation_problems(error, RunPool, main, None, prefix)
                continue
            if pool.name in pools:
                message = "another [[pools]] entry has this name"
                self.problem(main, message, field=f"{prefix}name", value=pool.name)
                continue
            pools[pool.name] = pool
        return list(pools.values())

    def _deployments(
        self,
        entries: list[_Entry],
        daemon: DaemonConfig,
        calendars: Mapping[str, Calendar | None] | None = None,
        pools: Set[str] = frozenset(),
    ) -> list[Deployment]:
        """The valid deployments; of two with one name, the first declared is kept."""
        declared: dict[str, Path] = {}
        valid = []
        for file, index, table in entries:
            name = table.get("name") if isinstance(table.get("name"), str) else None
            if name is not None and name in declared:
                where = display_path(declared[name], self.root)
                self.problem(file, f"also defined in {where}", deployment=name, shared=True)
                continue
            if name is not None:
                declared[name] = file
            deployment = self._deployment(file, index, name, table, daemon, calendars or {})
            pool = deployment.pool if deployment is not None else None
            if deployment is not None and pool is not None and pool not in pools:
                close = difflib.get_close_matches(pool, sorted(pools), n=1)
                hint = f'; did you mean "{close[0]}"?' if close else ""
                message = f"no [[pools]] entry has this name{hint}"
                self.problem(file, message, deployment.name, "pool", pool)
                continue
            if deployment is not None:
                valid.append(deployment)
        return valid

    def _deployment(
        self,
        file: Path,
        index: int,
        name: str | None,
        table: dict[str, Any],
        daemon: DaemonConfig,
        calendars: Mapping[str, Calendar | None],
    ) -> Deployment | None:
        before = len(self.problems)
        # A nameless entry is pointed at by its place in the file instead.
        prefix = "" if name is not None else f"deployments[{index}]."
        if "source_file" in table:  # a field of the model, but set by the loader
            self.problem(file, "unknown key", name, f"{prefix}source_file", table["source_file"])
        deployment: Deployment | None = None
        bad: set[str] = set()
        try:
            deployment = Deployment.model_validate(
                {**table, "source_file": file},
                context={"daemon": daemon, CALENDARS_CONTEXT: calendars},
            )
        except ValidationError as error:
            bad = self._validation_problems(error, Deployment, file, name, prefix)
        if self.check_flows and not bad & {"flow", "parameters"}:
            self._defer_flow_check(file, name, prefix, table, deployment)
        return deployment if len(self.problems) == before else None

    def _upstream_checks(
        self, deployments: list[Deployment], declared: set[str]
    ) -> list[Deployment]:
        """The deployments whose ``after`` holds given all the others (see _upstreams);
        each problem is its downstream's own."""
        problems = upstream_problems(deployments, declared, datetime.now(UTC))
        files = {deployment.name: deployment.source_file for deployment in deployments}
        for problem in problems:
            file = files[problem.deployment]
            self.problem(file, str(problem), problem.deployment, "after", problem.value)
        failed = {problem.deployment for problem in problems}
        return [deployment for deployment in deployments if deployment.name not in failed]

    def _notify_targets(self, main: Path, tables: Any, deployments: set[str]) -> list[NotifyTarget]:
        """The valid ``[[notify]]`` targets, URLs read; a bad one is reported and left out.

        ``deployments`` are the names declared anywhere (valid or not), which the targets'
        deployment filters may name.
        """
        if tables is None:
            return []
        if not isinstance(tables, list):
            self.problem(main, "must be an array of tables: write [[notify]]", field="notify")
            return []
        targets: list[NotifyTarget] = []
        names: set[str] = set()
        for index, table in enumerate(tables):
            if not isinstance(table, dict):
                message = "must be a table: write [[notify]]"
                self.problem(main, message, field=f"notify[{index}]", value=table)
                continue
            # A nameless target is called notify-1, notify-2, ... in order, in problems and logs.
            entry = {"name": f"notify-{index + 1}", **table}
            name = entry["name"] if isinstance(entry["name"], str) else f"notify[{index}]"
            if name in names:
                self.problem(main, "another [[notify]] entry has this name", notify=name)
                continue
            names.add(name)
            target = self._notify_target(main, name, entry, deployments)
            if target is not None:
                targets.append(target)
        return targets

    def _notify_target(
        self, main: Path, name: str, table: dict[str, Any], deployments: set[str]
    ) -> NotifyTarget | None:
        before = len(self.problems)
        if "url" in table:  # reported without its value: the value is the secret
            self.problem(main, SECRET_URL, field="url", notify=name)
        target: NotifyTarget | None = None
        fields = {key: value for key, value in table.items() if key != "url"}
        try:
            target = NotifyTarget.model_validate(fields, context={"base_dir": main.parent})
        except ValidationError as error:
            self._validation_problems(error, NotifyTarget, main, None, "", notify=name)
        wanted = table.get("deployments")
        if isinstance(wanted, list):
            for deployment in wanted:
                if isinstance(deployment, str) and deployment not in deployments:
                    close = difflib.get_close_matches(deployment, sorted(deployments), n=1)
                    hint = f'; did you mean "{close[0]}"?' if close else ""
                    message = f"no deployment has this name{hint}"
                    self.problem(main, message, None, "deployments", deployment, notify=name)
        if target is not None:
            source = "url_env" if target.url_env is not None else "url_file"
            try:
                target = target.resolved()
            except ValueError as error:  # names the variable or the path, never the URL
                self.problem(main, str(error), None, source, table[source], notify=name)
        return target if len(self.problems) == before else None

    def _validation_problems(
        self,
        error: ValidationError,
        model: type[BaseModel],
        file: Path,
        deployment: str | None,
        prefix: str,
        notify: str | None = None,
        *,
        calendar: str | None = None,
        maintenance: str | None = None,
    ) -> set[str]:
        """Report pydantic's errors as problems; returns the top-level keys that failed."""
        # Fields the loader sets, which the file must not; never suggested for a typo.
        known = [key for key in model.model_fields if key not in {"source_file", "url"}]
        bad = set()
        for detail in error.errors(include_url=False):
            loc = detail["loc"]
            field = prefix + ".".join(map(str, loc)) if loc else None
            value = detail["input"] if loc else None
            if detail["type"] == "extra_forbidden":
                message, value = _unknown_key(str(loc[-1]), known), None
            elif detail["type"] == "missing":
                message, value = "required key is missing", None
            elif detail["type"] in {"tuple_type", "list_type"}:
                message = 'must be a list, like ["a", "b"]'  # not pydantic's "a valid tuple"
            else:
                message = detail["msg"].removeprefix("Value error, ")
            if loc and loc[0] == "env":
                value = None  # env values are secrets: the message names the variable
            self.problem(
                file,
                message,
                deployment,
                field,
                value,
                notify,
                calendar=calendar,
                maintenance=maintenance,
            )
            if loc:
                bad.add(str(loc[0]))
        return bad

    def _defer_flow_check(
        self,
        file: Path,
        name: str | None,
        prefix: str,
        table: dict[str, Any],
        deployment: Deployment | None,
    ) -> None:
        """Queue the flow's check, also for an entry with other problems."""
        if deployment is not None:
            entrypoint, parameters = deployment.flow, deployment.parameters
        else:
            try:
                entrypoint = resolve_entrypoint(table["flow"], file.parent)
            except (KeyError, TypeError, ValueError, AttributeError):
                return  # reported as the flow field's own problem
            parameters = table.get("parameters", {})
        position = len(self.problems)
        self._flows.append(
            _FlowEntry(file, name, prefix, table["flow"], entrypoint, parameters, position)
        )
        for index, own in _spec_parameters(deployment, table):
            self._flows.append(
                _FlowEntry(
                    file,
                    name,
                    f"{prefix}schedules.{index}.",
                    table["flow"],
                    entrypoint,
                    {**parameters, **own},
                    position,
                    frozenset(own),
                )
            )

    def _check_flows(
        self, checker: FlowChecker, deployments: list[Deployment], daemon: DaemonConfig
    ) -> tuple[list[Deployment], dict[str, dict[str, Any]], bool]:
        """Run the queued flow checks: the deployments that passed, the flows' parameter
        schemas, and whether every flow passed."""
        timeout = daemon.flow_check_timeout.total_seconds()
        checks = checker.check(self._flow_requests(), timeout) if self._flows else {}
        failed = self._report_flow_checks(checks)
        schemas = {ep: check.schema for ep, check in checks.items() if check.schema}
        passed = not any(check.error or check.problems for check in checks.values())
        return [d for d in deployments if d.name not in failed], schemas, passed

    def _flow_requests(self) -> dict[str, list[dict[str, Any]]]:
        """The parameter sets to check, by entrypoint, in the order of ``self._flows``."""
        requests: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for entry in self._flows:
            requests[entry.entrypoint].append(entry.parameters)
        return requests

    def _report_flow_checks(self, checks: Mapping[str, FlowCheck]) -> set[str | None]:
        """Put each deployment's flow problems after its own; the names of those with any."""
        found: dict[str, dict[int, list[tuple[str, str]]]] = {}
        for entrypoint, check in checks.items():
            found[entrypoint] = defaultdict(list)
            for index, field, message in check.problems:
                found[entrypoint][index].append((field, message))
        seen: dict[str, int] = defaultdict(int)
        inserts: list[tuple[int, list[ConfigProblem]]] = []
        for entry in self._flows:
            index = seen[entry.entrypoint]
            seen[entry.entrypoint] += 1
            error = checks[entry.entrypoint].error
            problems = [
                ConfigProblem(
                    entry.file,
                    entry.name,
                    entry.prefix + field,
                    _value(field, entry),
                    message,
                    self.root,
                )
                for field, message in found[entry.entrypoint].get(index, [])
                if entry.own is None or field.removeprefix("parameters.") in entry.own
            ]
            if error is not None and entry.own is None:  # the flow's error: reported once
                problems = [
                    ConfigProblem(
                        entry.file,
                        entry.name,
                        f"{entry.prefix}flow",
                        entry.written,
                        error,
                        self.root,
                    )
                ]
            if problems:
                inserts.append((entry.position, problems))
        for position, problems in reversed(inserts):  # later positions first: indices hold
            self.problems[position:position] = problems
        return {problems[0].deployment for _, problems in inserts}


def _spec_parameters(
    deployment: Deployment | None, table: dict[str, Any]
) -> list[tuple[int, dict[str, Any]]]:
    """The parameters of each ``schedules`` entry that has some, by its index (read from
    the file's table when the deployment has other problems)."""
    if deployment is not None:
        specs = enumerate(deployment.schedules or ())
        return [(index, spec.parameters) for index, spec in specs if spec.parameters]
    entries = table.get("schedules")
    if not isinstance(entries, list):
        return []
    return [
        (index, entry["parameters"])
        for index, entry in enumerate(entries)
        if isinstance(entry, dict)
        and isinstance(entry.get("parameters"), dict)
        and entry["parameters"]
    ]


def _value(field: str, entry: _FlowEntry) -> Any:
    """The value a parameter problem's field names (None for a missing parameter)."""
    key = field.removeprefix("parameters.")
    return entry.parameters.get(key) if key != field else None


def _unknown_key(key: str, known: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    return f'unknown key (did you mean "{close[0]}"?)' if close else "unknown key"
