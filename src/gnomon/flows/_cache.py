"""Cache policies: how a task run's cache key is computed, with Prefect's names.

A policy maps a task call to a key, or to None for "do not cache this call". Policies combine
with ``+`` (the key hashes every part) and ``INPUTS - "arg"`` leaves an argument out.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gnomon.flows._context import TaskRunContext


class UnhashableInputs(ValueError):
    """The inputs cannot be hashed into a cache key (the call runs uncached)."""


def hash_objects(*objects: Any) -> str:
    """A stable hex digest of ``objects``: JSON when they allow it, else their pickle."""
    try:
        payload = json.dumps(objects, sort_keys=True, default=_json_default).encode()
    except (TypeError, ValueError):
        import cloudpickle

        try:
            payload = cloudpickle.dumps(objects)
        except Exception as error:
            raise UnhashableInputs(f"cannot hash {objects!r}: {error}") from error
    return hashlib.blake2b(payload, digest_size=16).hexdigest()


def _json_default(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    if isinstance(value, bytes):
        return value.hex()
    # Everything else goes to pickle: repr() may embed memory addresses.
    raise TypeError(type(value).__name__)


@dataclass(frozen=True, slots=True)
class CacheInputs:
    """What a policy may look at for one task call."""

    context: TaskRunContext
    inputs: dict[str, Any]
    flow_parameters: dict[str, Any]
    flow_run_id: str | None


class CachePolicy:
    """Base class: subclasses implement ``compute_key``."""

    def compute_key(self, call: CacheInputs) -> str | None:
        raise NotImplementedError

    def __add__(self, other: CachePolicy) -> CachePolicy:
        if isinstance(other, _NoCache):
            return self
        if isinstance(self, _NoCache):
            return other
        return CompoundCachePolicy((*_parts(self), *_parts(other)))

    def __sub__(self, name: str) -> CachePolicy:
        raise TypeError(f"cannot exclude {name!r} from {self!r}: it does not hash inputs")


def _parts(policy: CachePolicy) -> tuple[CachePolicy, ...]:
    return policy.policies if isinstance(policy, CompoundCachePolicy) else (policy,)


@dataclass(frozen=True, slots=True)
class CompoundCachePolicy(CachePolicy):
    policies: tuple[CachePolicy, ...]

    def compute_key(self, call: CacheInputs) -> str | None:
        keys = [policy.compute_key(call) for policy in self.policies]
        present = [key for key in keys if key is not None]
        return hash_objects(*present) if present else None

    def __sub__(self, name: str) -> CachePolicy:
        return CompoundCachePolicy(
            tuple(p - name if isinstance(p, Inputs) else p for p in self.policies)
        )


@dataclass(frozen=True, slots=True)
class Inputs(CachePolicy):
    """The task's arguments, except those named in ``exclude``."""

    exclude: frozenset[str] = field(default_factory=frozenset)

    def compute_key(self, call: CacheInputs) -> str | None:
        kept = {k: v for k, v in call.inputs.items() if k not in self.exclude}
        return hash_objects(kept) if kept else None

    def __sub__(self, name: str) -> CachePolicy:
        return Inputs(self.exclude | {name})


@dataclass(frozen=True, slots=True)
class TaskSource(CachePolicy):
    """The task function's source code, so editing the task invalidates its cache."""

    def compute_key(self, call: CacheInputs) -> str | None:
        fn = call.context.task.fn
        try:
            source = inspect.getsource(fn)
        except (OSError, TypeError):
            source = fn.__code__.co_code.hex()
        return hash_objects(source)


@dataclass(frozen=True, slots=True)
class FlowParameters(CachePolicy):
    """The parameters of the flow run the task belongs to."""

    def compute_key(self, call: CacheInputs) -> str | None:
        return hash_objects(call.flow_parameters) if call.flow_parameters else None


@dataclass(frozen=True, slots=True)
class RunId(CachePolicy):
    """The flow run's id: the cache lives for one flow run."""

    def compute_key(self, call: CacheInputs) -> str | None:
        return str(call.flow_run_id or call.context.task_run_id)


@dataclass(frozen=True, slots=True)
class _NoCache(CachePolicy):
    def compute_key(self, call: CacheInputs) -> str | None:
        return None

    def __sub__(self, name: str) -> CachePolicy:
        return self


@dataclass(frozen=True, slots=True)
class CacheKeyFnPolicy(CachePolicy):
    """A user function ``(context, parameters) -> str | None``, as ``cache_key_fn=`` takes."""

    cache_key_fn: Callable[[Any, dict[str, Any]], str | None]

    def compute_key(self, call: CacheInputs) -> str | None:
        # Any string is a key (the result store names its file safely); an empty one, as
        # in Prefect, means "do not cache".
        return self.cache_key_fn(call.context, call.inputs) or None


INPUTS = Inputs()
TASK_SOURCE = TaskSource()
FLOW_PARAMETERS = FlowParameters()
RUN_ID = RunId()
NONE = _NoCache()
NO_CACHE = NONE
DEFAULT = INPUTS + TASK_SOURCE + RUN_ID


def task_input_hash(context: TaskRunContext, arguments: dict[str, Any]) -> str | None:
    """Prefect's ``task_input_hash``: the task's key, its code and its arguments."""
    try:
        return hash_objects(
            context.task.task_key, context.task.fn.__code__.co_code.hex(), arguments
        )
    except UnhashableInputs:
        return None
