"""A run's final state from what its function returned, and what a call of it gives back,
by Prefect 3's rules (``prefect.states.return_value_to_state`` and the flow engine's
``result``).

- A state built by hand (``return Failed(message="gave up")``) is the run's final state.
- A run's state (a future's, or a call's with ``return_state=True``), or a list, tuple or
  set of them, makes a new state: Completed if all completed ("All states completed."),
  else Cancelled, Paused or Failed with a count ("1/2 states failed.").
- Anything else completes the run with that value; futures inside it (in lists, tuples,
  sets and dicts, at any depth) become their final states first.

A flow call (without ``return_state``) then gives back the returned value with its futures
resolved to states, as Prefect does; only a returned state is turned into its result (or
its exception raised).
"""

from __future__ import annotations

from types import GeneratorType
from typing import Any

from gnomon.flows._futures import PrefectFuture
from gnomon.states import Completed, State, StateType, is_state_iterable, returned_state


def resolve_futures_to_states(value: Any) -> Any:
    """``value`` with each future in it (at any depth of lists, tuples, sets and dicts)
    replaced by its final state, waiting for it; other values are kept as they are."""
    if isinstance(value, PrefectFuture):
        value.wait()
        return value.state
    if isinstance(value, dict):
        return {key: resolve_futures_to_states(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [resolve_futures_to_states(item) for item in value]
        return items if isinstance(value, list) else type(value)(items)
    return value


def is_hand_built(state: State) -> bool:
    """A state the user's code made itself, not one the engine recorded for a run."""
    details = state.state_details
    return details.flow_run_id is None and details.task_run_id is None


def return_value_to_state(value: Any) -> State:
    """The final state of a run whose function returned ``value`` (futures resolved)."""
    if isinstance(value, State) and is_hand_built(value):
        return returned_state(value)
    if isinstance(value, State) or is_state_iterable(value):
        return _aggregate(value)
    if isinstance(value, GeneratorType):  # not portable: kept as the list it yields
        value = list(value)
    return Completed(data=value)


def _aggregate(value: Any) -> State:
    states = [value] if isinstance(value, State) else list(value)
    total = len(states)
    counts = {kind: sum(state.type is kind for state in states) for kind in StateType}
    if counts[StateType.COMPLETED] == total:
        return Completed("All states completed.", data=value)
    for kind, word in ((StateType.CANCELLED, "cancelled"), (StateType.PAUSED, "paused")):
        if counts[kind]:
            return State(kind, message=f"{counts[kind]}/{total} states {word}.", data=value)
    failed = counts[StateType.FAILED] + counts[StateType.CRASHED]
    if failed:
        message = f"{failed}/{total} states failed."
    else:
        message = f"{sum(not state.is_final() for state in states)}/{total} states are not final."
    return State(StateType.FAILED, message=message, data=value)


def call_result(state: State) -> Any:
    """What a flow call without ``return_state`` gives back for its final ``state``: the
    states it returned in a list, tuple or set, as they are (even when some failed), and
    otherwise the state's result (raising its exception)."""
    if not isinstance(state.data, State) and is_state_iterable(state.data):
        return state.data
    return state.result(_sync=True)
