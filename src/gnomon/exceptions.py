"""gnomon's exceptions. Each derives from ``GnomonError`` and, where one fits, a builtin."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping


class GnomonError(Exception):
    """Base class of every error gnomon raises on purpose."""


class ServiceStartError(GnomonError):
    """A service the daemon was given to run beside it (the HTTP API) cannot start: the
    daemon exits with code 1 and this message, as when another daemon holds the store."""


class ConfigError(GnomonError, ValueError):
    """The configuration (file or GNOMON_* environment) is invalid; the message says where."""


class InvalidInput(GnomonError, ValueError):
    """A value an operator typed (a CLI option, an API query parameter or body field) that
    cannot be used; the message says why and what would do."""


class MissingContextError(GnomonError, RuntimeError):
    """Raised when run-scoped API (``get_run_logger``) is used outside a flow or task run."""


class ParameterTypeError(GnomonError, TypeError):
    """A flow parameter did not validate against the flow's type hints; the message shows
    each bad value, but a secret-named parameter's as ``********``."""

    def __init__(self, flow_name: str, problems: list[tuple[str, Any, str]]) -> None:
        from gnomon._secrets import masked

        self.flow_name = flow_name
        self.problems = problems
        details = "; ".join(
            f"parameter {name!r} = {masked(name, value)!r}: {reason}"
            for name, value, reason in problems
        )
        super().__init__(f"flow {flow_name!r} got invalid parameters: {details}")


class ParameterBindError(GnomonError, TypeError):
    """A call's arguments do not bind to the flow's or task's signature (one missing, one too
    many, an unknown name); the message is Prefect's, naming the function, its signature
    and what it received."""

    @classmethod
    def from_bind_failure(
        cls,
        fn: Callable[..., Any],
        error: TypeError,
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
    ) -> ParameterBindError:
        import inspect  # here: the CLI's fast commands import this module and not inspect

        name = getattr(fn, "__name__", repr(fn))
        signature = str(inspect.signature(fn)).strip("()")
        return cls(
            f"Error binding parameters for function {name!r}: {error}.\n"
            f"Function {name!r} has signature '{signature}' but received args: {args!r}"
            f" and kwargs: {list(kwargs)!r}."
        )


class SignatureMismatchError(GnomonError, TypeError):
    """Arguments that cannot bind to the function's signature (unknown or missing names)."""


class MappingLengthMismatch(GnomonError, ValueError):
    """``task.map`` was given iterables of different lengths."""


class MappingMissingIterable(GnomonError, ValueError):
    """``task.map`` was given no iterable argument to map over."""


class UpstreamTaskError(GnomonError, RuntimeError):
    """An upstream task a task depends on did not complete, so the task did not run."""


class UnfinishedRun(GnomonError, RuntimeError):
    """The result of a run that has not reached a final state was requested."""


class TaskRunTimeoutError(GnomonError, TimeoutError):
    """A task run exceeded its ``timeout_seconds``."""


class FlowRunTimeoutError(GnomonError, TimeoutError):
    """A flow run exceeded its ``timeout_seconds``."""


class CrashedRun(GnomonError, RuntimeError):
    """The run was interrupted by KeyboardInterrupt, SystemExit or its process dying."""


class CancelledRun(GnomonError, RuntimeError):
    """The run was cancelled."""


class FailedRun(GnomonError, RuntimeError):
    """A run failed without an exception of its own: it returned ``Failed()``, or its
    failed state carries a message but no error (Prefect's ``FailedRun``)."""


class MissingResult(GnomonError, RuntimeError):
    """A completed state has no result attached (a bare ``Completed()`` built by hand)."""


class AcquireConcurrencySlotTimeoutError(GnomonError, TimeoutError):
    """Concurrency slots could not be acquired within ``timeout_seconds``."""


class ConcurrencySlotAcquisitionError(GnomonError, RuntimeError):
    """``concurrency(..., strict=True)`` or ``rate_limit(..., strict=True)`` named no limit
    that exists, or ``rate_limit`` was used on a limit it cannot decay (as Prefect's)."""


class NotProvidedByGnomon(GnomonError, ImportError):
    """A Prefect name gnomon does not provide was imported or looked up; the message names
    the alternative (``gnomon._prefect_names`` holds every name with its status).

    An ImportError rather than an AttributeError: ``from gnomon.x import y`` would replace an
    AttributeError with Python's own "cannot import name", losing the alternative.
    """

    def __init__(self, asked: str, message: str) -> None:
        super().__init__(message, name=asked)


class ResultStorageError(GnomonError, OSError):
    """A stored result is missing, or failed its signature check and was not unpickled."""


class FlowRunNotRunnable(GnomonError, RuntimeError):
    """A stored flow run was asked to start but is not Scheduled or Pending."""


class FlowPauseTimeout(GnomonError, TimeoutError):
    """A paused flow run was not resumed within its pause's ``timeout``."""


class NotPausedError(GnomonError, RuntimeError):
    """A run that is not paused (or suspended) was asked to resume."""


class PausedRun(GnomonError, RuntimeError):
    """The result of a paused (or suspended) run was asked for: it has none yet."""


class Pause(BaseException):
    """Raised by ``suspend_flow_run`` to end the current flow run's process, its run left
    Suspended. A BaseException, as Prefect's: user code catching ``Exception`` must not stop
    the suspension."""

    def __init__(self, message: str, state: Any = None) -> None:
        super().__init__(message)
        self.state = state


class ObjectNotFound(GnomonError, LookupError):
    """A run or other stored object does not exist."""


class SecretsKeyError(GnomonError, RuntimeError):
    """The key secrets are encrypted with cannot be had (no key file configured, a file
    missing, unreadable, readable by anyone, or not a key) or does not open a stored
    secret; the message says where gnomon looked."""


class StoreOwnedByAnotherUser(GnomonError, PermissionError):
    """A command that would change the store runs as another user than the store's owner.

    Files it created (a lock file, a migration's) would belong to that user, and the
    daemon, running as the owner, could not open them. ``owner`` is None when the store
    cannot even be looked at.
    """

    def __init__(self, path: Path, owner: int | None, user: int) -> None:
        from gnomon._files import user_name

        self.path = path
        self.owner = owner
        self.user = user
        who = user_name(user)
        if owner is None:
            super().__init__(f"{path}: permission denied for user {who}")
            return
        owner_name = user_name(owner)
        super().__init__(
            f"{path} belongs to user {owner_name}, and this command runs as {who}: "
            f"run it as the store's owner (sudo -u {owner_name} gnomon ...), so that every "
            "file it creates stays one the daemon can open; commands that only read may "
            "run as any user allowed to read the store"
        )


class StoreFileGone(GnomonError, FileNotFoundError):
    """A SQLite database that must not be created here does not exist, or its path names
    another file than the one this process opened (deleted, moved or replaced under it)."""

    def __init__(self, path: Path, replaced: bool = False) -> None:
        self.path = path
        self.replaced = replaced
        what = "was replaced by another file" if replaced else "does not exist (deleted or moved?)"
        super().__init__(f"the database {path} {what}; not opening another one in its place")


class StoreSchemaTooNew(GnomonError, RuntimeError):
    """The database's schema is at a revision this gnomon does not know: a newer gnomon (on
    another host, mid rolling upgrade) migrated it. This code cannot tell what that schema
    holds, nor migrate it (Alembic knows no way from a revision it has not got).

    ``reason`` is the message without the store's name, for callers that name it already
    (the command line's one-line store faults)."""

    def __init__(self, store: str, revision: str, newest: str, version: str) -> None:
        self.store = store
        self.revision = revision
        self.reason = (
            f"its schema is at revision {revision}, which gnomon {version} does not know (its"
            f" newest is {newest}): a newer gnomon migrated it; upgrade gnomon on this host"
        )
        super().__init__(f"store {store}: {self.reason}")


class DeployNotSupported(GnomonError, NotImplementedError):
    """``flow.deploy()``: gnomon has no work pools to deploy to; the message holds the
    ``[[deployments]]`` table to add to the config file instead."""


class ServeRefused(GnomonError, RuntimeError):
    """``serve()`` cannot serve its deployments here (a daemon holds the store, another
    source defines one of their names, no script to serve from); the message says why and
    what to do instead."""


class TerminationSignal(BaseException):
    """Raised inside a run's thread to interrupt a body that exceeded its deadline.

    It derives from BaseException so that user code's ``except Exception`` cannot swallow it.
    """


# Prefect's exceptions gnomon spells otherwise (``PrefectException`` is ``GnomonError``), or
# does not have, are answered from the table in gnomon._prefect_names.
from gnomon._prefect_import import prefect_fallback  # noqa: E402 -- after the classes it uses

__getattr__ = prefect_fallback(__name__)
