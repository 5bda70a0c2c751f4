"""A run's environment, working directory and user (a deployment's ``env``,
``working_dir`` and ``user``): sent with the run to its worker, applied there around that
run only.

Workers are reused across deployments, so what a run changes is undone after it: the
variables are put back as they were and the working directory too (``applied``). A user
cannot be undone (a process that gave root up cannot take it back, and must not be able
to), so a worker that ran a run as another user exits after it and the pool starts a fresh
one (the worker's ``exiting``).

``env`` references (``{"from_env": ...}``, ``{"file": ...}``) are read in the worker as
the run starts, still as the daemon's user (a root-only secret file is readable), before
the user changes: a rotated file is read afresh by each run, and one missing fails the run,
naming the deployment and the variable. Their values are masked in everything the worker
stores or prints from then on, as a run's secret parameters are.

Standard library only, and nothing imported at start-up: the worker loads it on a run that
has a setup.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gnomon.deployments import Deployment

SETUP_KEY = "setup"  # the run request's field that carries it


class RunSetupError(Exception):
    """A run's setup could not be applied: a variable or file missing, a working
    directory gone, a user that no longer exists. The run fails with this message."""


@dataclass(frozen=True, slots=True)
class RunSetup:
    """How the worker runs one run: ``env`` as the request carries it (a value, or a
    ``{"from_env": name}`` / ``{"file": path}`` reference), ``working_dir``, ``user``."""

    deployment: str
    env: Mapping[str, Any] = field(default_factory=dict)
    working_dir: str | None = None
    user: str | None = None

    @classmethod
    def of(cls, deployment: Deployment) -> RunSetup | None:
        """The setup a deployment states; None when it states none (most)."""
        if not deployment.env and deployment.working_dir is None and deployment.user is None:
            return None
        from gnomon.deployments import env_request

        return cls(
            deployment.name,
            env_request(deployment.env),
            str(deployment.working_dir) if deployment.working_dir is not None else None,
            deployment.user,
        )

    def message(self) -> dict[str, Any]:
        """The request's ``setup`` field (values in it: the pipe is the worker's own)."""
        return {
            "deployment": self.deployment,
            "env": dict(self.env),
            "working_dir": self.working_dir,
            "user": self.user,
        }

    @classmethod
    def from_message(cls, request: Mapping[str, Any]) -> RunSetup | None:
        setup = request.get(SETUP_KEY)
        if not isinstance(setup, dict):
            return None
        return cls(
            str(setup.get("deployment") or ""),
            dict(setup.get("env") or {}),
            setup.get("working_dir"),
            setup.get("user"),
        )


def resolve_env(deployment: str, env: Mapping[str, Any]) -> dict[str, str]:
    """The values of ``env`` now: references read from this process's environment and
    from files (the content without its last newline); RunSetupError naming the deployment
    and the variable when one cannot be read."""
    values: dict[str, str] = {}
    for name, value in env.items():
        where = f"deployment {deployment!r}: env {name}"
        if isinstance(value, dict) and "from_env" in value:
            found = os.environ.get(str(value["from_env"]))
            if found is None:
                raise RunSetupError(f"{where}: environment variable {value['from_env']} is not set")
            values[name] = found
        elif isinstance(value, dict) and "file" in value:
            path = str(value["file"])
            try:
                with open(path, encoding="utf-8") as stream:
                    values[name] = stream.read().removesuffix("\n")
            except FileNotFoundError:
                raise RunSetupError(f"{where}: no such file {path!r}") from None
            except (OSError, UnicodeDecodeError) as error:
                reason = getattr(error, "strerror", None) or error
                raise RunSetupError(f"{where}: cannot read {path!r}: {reason}") from None
        else:
            values[name] = str(value)
    return values


@contextmanager
def applied(setup: RunSetup) -> Iterator[Callable[[], None] | None]:
    """Run the block with ``setup``'s variables and working directory, put back after
    it; RunSetupError, before the block, if they cannot be applied. Gives the block the
    function that changes to ``setup``'s user (None without one), which the worker calls
    once the run is claimed and its store connections are open; after it, nothing is put
    back (the worker exits)."""
    from gnomon._secrets import remember_secret

    values = resolve_env(setup.deployment, setup.env)
    account = _account(setup)
    for value in values.values():
        remember_secret(value)  # masked in whatever the worker stores or prints
    saved_env = dict(os.environ)
    saved_cwd = os.getcwd()
    became: list[bool] = []

    def become() -> None:
        assert account is not None
        became.append(True)
        _become(account)

    try:
        os.environ.update(values)
        if setup.working_dir is not None:
            try:
                os.chdir(setup.working_dir)
            except OSError as error:
                raise RunSetupError(
                    f"deployment {setup.deployment!r}: working_dir {setup.working_dir!r}:"
                    f" {error.strerror or error}"
                ) from None
        yield become if account is not None else None
    finally:
        if not became:
            os.environ.clear()
            os.environ.update(saved_env)
            os.chdir(saved_cwd)


class WorkerSetup:
    """The worker's side: a run request's setup around the run's execution (``with``;
    nothing for a run without one). Its variables and directory apply around the run,
    its user from the run's claim on (``claimed``, which the engine calls); RunSetupError
    on entering if they cannot be applied."""

    def __init__(self, request: Mapping[str, Any] | None) -> None:
        self.setup = RunSetup.from_message(request or {})
        self.became_user = False  # the run changed the worker's user, for good
        self.claimed: Callable[[], None] | None = None
        self._context: Any = None

    def __enter__(self) -> None:
        if self.setup is None:
            return
        context = applied(self.setup)
        become = context.__enter__()
        self._context = context
        if become is not None:

            def claimed() -> None:
                from gnomon.store import get_store

                # As root still: the database's files may be closed to the user.
                get_store().open_connections()
                self.became_user = True  # also if the change fails half-way
                become()

            self.claimed = claimed

    def __exit__(self, *exc: Any) -> None:
        if self._context is not None:
            self._context.__exit__(*exc)


def _account(setup: RunSetup) -> pwd.struct_passwd | None:
    if setup.user is None:
        return None
    try:
        return pwd.getpwnam(setup.user)
    except KeyError:
        raise RunSetupError(
            f"deployment {setup.deployment!r}: user {setup.user!r}: no such user"
        ) from None


def _become(account: pwd.struct_passwd) -> None:
    """Give up root for ``account``: its groups, group and user, for good (the real,
    effective and saved ids all change), and its HOME, USER and LOGNAME."""
    os.initgroups(account.pw_name, account.pw_gid)
    os.setgid(account.pw_gid)
    os.setuid(account.pw_uid)
    os.environ.update(HOME=account.pw_dir, USER=account.pw_name, LOGNAME=account.pw_name)
