"""How a deployment's runs are run: the environment variables, working directory and user
a worker gives the flow (``env``, ``working_dir``, ``user``), and the run pools
(``[[pools]]``) that limit how many runs of several deployments run at once.

An ``env`` value is written in the file (``API_URL = "https://x"``), read from the daemon's
environment (``{ from_env = "TOKEN" }``) or from a file (``{ file = "/run/secrets/pw" }``,
relative to the config file, its content without the trailing newline). References are
read when a run starts, in its worker (daemon/_runsetup): a rotated secret file is read
afresh by the next run, and a variable or file missing then fails that run naming the
deployment and the variable. Every value is a secret as far as showing it goes: the store,
``deployments
show``, the API and the dashboard see ``********`` for a value written in the file and the
reference (the variable's name, the file's path) for the others (``env_document``).
"""

from __future__ import annotations

import os
import pwd
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Protocol

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictInt

from gnomon._names import NAME_RULE, is_name
from gnomon._secrets import MASK

# The variables gnomon's own processes read: a deployment must not point the worker at
# another store or change how it logs.
_RESERVED_PREFIX = "GNOMON_"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _check_env_name(name: str) -> str:
    if not _ENV_NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not a variable name (letters, digits, _)")
    return name


class FromEnv(BaseModel):
    """``{ from_env = "NAME" }``: the daemon's environment variable NAME."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    from_env: Annotated[str, AfterValidator(_check_env_name)]


class FromFile(BaseModel):
    """``{ file = "path" }``: a file's content (relative paths: to the config file)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    file: Path


_ENV_VALUE = 'must be a text, { from_env = "NAME" } or { file = "path" }'


def _env_value(value: Any) -> Any:
    """An ``env`` entry as one of its three forms, with one error naming what it may be
    (not one per form tried)."""
    if isinstance(value, str | FromEnv | FromFile):
        return value
    if isinstance(value, dict) and set(value) == {"from_env"}:
        if not isinstance(value["from_env"], str):
            raise ValueError(_ENV_VALUE)
        return FromEnv(from_env=_check_env_name(value["from_env"]))
    if isinstance(value, dict) and set(value) == {"file"} and isinstance(value["file"], str):
        return FromFile(file=Path(value["file"]))
    raise ValueError(_ENV_VALUE)


EnvValue = Annotated[str | FromEnv | FromFile, BeforeValidator(_env_value)]


def absolute_files(env: Mapping[str, EnvValue], base: Path | None) -> dict[str, EnvValue]:
    """``env`` with each ``file`` reference made absolute against ``base`` (the config
    file's directory), ``~`` expanded."""
    resolved: dict[str, EnvValue] = {}
    for name, value in env.items():
        if isinstance(value, FromFile):
            path = value.file.expanduser()
            if not path.is_absolute():
                path = Path(os.path.normpath((base or Path.cwd()).absolute() / path))
            resolved[name] = FromFile(file=path)
        else:
            resolved[name] = value
    return resolved


def check_env(env: Mapping[str, EnvValue]) -> Mapping[str, EnvValue]:
    """``env`` if every name may be set for a run, else ValueError naming the first that
    may not."""
    for name in env:
        _check_env_name(name)
        if name.upper().startswith(_RESERVED_PREFIX):
            raise ValueError(f"{name}: GNOMON_* variables are gnomon's own, not a run's")
    return env


def check_user(name: str | None) -> str | None:
    """``name`` if the daemon may run flows as that user: it runs as root and the user
    exists; else ValueError saying which is not so."""
    if name is None:
        return None
    if os.geteuid() != 0:
        raise ValueError(
            f"running flows as user {name!r} needs the daemon to run as root"
            f" (it runs as uid {os.geteuid()}); remove user, or start the daemon as root"
        )
    try:
        pwd.getpwnam(name)
    except KeyError:
        raise ValueError(f"no such user {name!r} on this machine") from None
    return name


def check_working_dir(path: Path | None) -> Path | None:
    if path is not None and not path.is_dir():
        raise ValueError(f"{str(path)!r} is not a directory")
    return path


def env_request(env: Mapping[str, EnvValue]) -> dict[str, Any]:
    """``env`` as a run's request to its worker carries it: values in full, references as
    ``{"from_env": name}`` or ``{"file": path}`` (the worker reads them as the run
    starts: daemon/_runsetup)."""
    return {
        name: value if isinstance(value, str) else value.model_dump(mode="json")
        for name, value in env.items()
    }


def env_document(env: Mapping[str, EnvValue]) -> dict[str, Any]:
    """``env`` as the store and every view keep it: a value written in the file masked,
    a reference as written (a variable's name or a file's path is not the secret)."""
    return {
        name: MASK if isinstance(value, str) else value
        for name, value in sorted(env_request(env).items())
    }


def _check_pool_name(value: str) -> str:
    if not is_name(value):
        raise ValueError(f"must be {NAME_RULE}")
    return value


PoolName = Annotated[str, AfterValidator(_check_pool_name)]


class RunPool(BaseModel):
    """A ``[[pools]]`` entry: at most ``slots`` runs of the deployments that name it
    (``pool = "..."``) run at once; the others wait, Pending, for a slot."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: PoolName
    slots: Annotated[StrictInt, Field(ge=1)]
    description: str | None = None


# Pools are counted in the store as concurrency limits of this prefix (see daemon/_pools).
POOL_LIMIT_PREFIX = "pool:"


def pool_limit(name: str) -> str:
    """The concurrency limit that counts the pool ``name``'s slots."""
    return f"{POOL_LIMIT_PREFIX}{name}"


class PoolLimits(Protocol):
    """What ``sync_pools`` needs of a store: its concurrency limits."""

    def read_concurrency_limits(self, names: list[str] | None = None) -> dict[str, int]: ...

    def set_concurrency_limit(
        self, name: str, limit: int, slot_decay_per_second: float = 0.0
    ) -> None: ...

    def delete_concurrency_limit(self, name: str) -> bool: ...


def sync_pools(store: PoolLimits, pools: Iterable[RunPool], kept: Iterable[str] = ()) -> None:
    """Make the store's pool limits the config's ``pools`` (the daemon at start and at each
    reload, ``gnomon deployments apply``); a pool no longer in the config is removed
    unless a deployment still scheduled (``kept``: one whose last good version a reload
    kept) names it. Slots held stay held: a pool made smaller lets its running runs
    finish and starts runs again once fewer than its new slots are taken."""
    wanted = {pool.name: pool.slots for pool in pools}
    existing = {
        name.removeprefix(POOL_LIMIT_PREFIX): slots
        for name, slots in store.read_concurrency_limits().items()
        if name.startswith(POOL_LIMIT_PREFIX)
    }
    for name, slots in sorted(wanted.items()):
        if existing.get(name) != slots:
            store.set_concurrency_limit(pool_limit(name), slots)
    for name in sorted(set(existing) - set(wanted) - set(kept)):
        store.delete_concurrency_limit(pool_limit(name))
