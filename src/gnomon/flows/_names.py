"""Run names: default flow run names, two random words as Prefect's ("crimson-fox"), and
the names ``flow_run_name`` and ``task_run_name`` give."""

from __future__ import annotations

import inspect
import random
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gnomon.flows._flow import Flow
    from gnomon.flows._task import Task

_ADJECTIVES = (
    "amber",
    "arctic",
    "azure",
    "bold",
    "brave",
    "brisk",
    "calm",
    "clever",
    "cobalt",
    "coral",
    "crimson",
    "cunning",
    "dapper",
    "daring",
    "eager",
    "earnest",
    "emerald",
    "fearless",
    "fervent",
    "gentle",
    "golden",
    "hardy",
    "honest",
    "humble",
    "ivory",
    "jade",
    "jolly",
    "keen",
    "lively",
    "loyal",
    "lucid",
    "mellow",
    "merry",
    "mighty",
    "nimble",
    "noble",
    "olive",
    "patient",
    "placid",
    "plucky",
    "proud",
    "quiet",
    "rapid",
    "rustic",
    "sage",
    "scarlet",
    "serene",
    "silver",
    "sleek",
    "smart",
    "snowy",
    "spry",
    "steady",
    "stoic",
    "sturdy",
    "swift",
    "tidy",
    "topaz",
    "tranquil",
    "vivid",
    "wary",
    "witty",
    "zealous",
)
_ANIMALS = (
    "albatross",
    "alpaca",
    "badger",
    "beaver",
    "bison",
    "bobcat",
    "buffalo",
    "camel",
    "caribou",
    "cheetah",
    "condor",
    "coyote",
    "crane",
    "dingo",
    "dolphin",
    "eagle",
    "egret",
    "falcon",
    "ferret",
    "finch",
    "gazelle",
    "gecko",
    "heron",
    "hyena",
    "ibex",
    "iguana",
    "jackal",
    "jaguar",
    "kestrel",
    "koala",
    "lemur",
    "leopard",
    "lynx",
    "marmot",
    "marten",
    "mink",
    "moose",
    "narwhal",
    "ocelot",
    "orca",
    "osprey",
    "otter",
    "owl",
    "panda",
    "panther",
    "pelican",
    "puffin",
    "quail",
    "raven",
    "salmon",
    "seal",
    "stork",
    "swan",
    "tapir",
    "tiger",
    "toucan",
    "walrus",
    "weasel",
    "wolf",
    "wombat",
    "yak",
    "zebra",
)


def random_run_name() -> str:
    return f"{random.choice(_ADJECTIVES)}-{random.choice(_ANIMALS)}"


def custom_flow_run_name(flow: Flow[..., Any], parameters: dict[str, Any]) -> str:
    """The run name ``flow_run_name`` gives, as Prefect resolves it: a template filled from
    the validated parameters (``"ingest-{config.vendor}"``), or a callable called with no
    arguments inside the run (so it can read ``gnomon.runtime``)."""
    template = flow.flow_run_name
    if callable(template):
        return _checked(template(), template, "flow_run_name")
    return str(template).format(**parameters)


def custom_task_run_name(task: Task[..., Any], parameters: dict[str, Any]) -> str:
    """The run name ``task_run_name`` gives, as Prefect resolves it: a template, or a
    callable, given ``parameters=`` if it takes an argument of that name."""
    template = task.task_run_name
    if callable(template):
        if "parameters" in inspect.signature(template).parameters:
            return _checked(template(parameters=parameters), template, "task_run_name")
        return _checked(template(), template, "task_run_name")
    return str(template).format(**parameters)


def _checked(name: Any, callback: Any, option: str) -> str:
    if not isinstance(name, str):
        raise TypeError(
            f"Callable {callback} for {option!r} returned type {type(name).__name__} but a"
            " string is required."
        )
    return name
