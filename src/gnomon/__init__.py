"""gnomon: scheduled Python workflows on your own machines.

The authoring API follows Prefect 3: code written for ``prefect`` runs after changing its
imports to ``gnomon``. Importing this package is cheap: each name below loads its module on
first use (PEP 562), so ``gnomon pause`` does not pay for the flow engine. A Prefect name
gnomon does not provide raises ``NotProvidedByGnomon`` naming the alternative
(``gnomon._prefect_names`` lists every one).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gnomon._lazy import lazy_names
from gnomon._prefect_import import install_finder
from gnomon._version import __version__

if TYPE_CHECKING:
    from gnomon.flow_runs import pause_flow_run, resume_flow_run, suspend_flow_run
    from gnomon.flows import (
        Flow,
        PrefectFuture,
        Task,
        allow_failure,
        flow,
        quote,
        tags,
        task,
        unmapped,
    )
    from gnomon.logging import get_run_logger
    from gnomon.states import State
    # Not here: RunnerDeployment (gnomon._deploying), serve and aserve (gnomon._serving), which sit
    # above the daemon. Flow reaches them through this face, and a type-checking import
    # would put them under flows in the import graph that keeps the layers.

_LAZY = {
    "Flow": "gnomon.flows",
    "PrefectFuture": "gnomon.flows",
    "RunnerDeployment": "gnomon._deploying",
    "State": "gnomon.states",
    "Task": "gnomon.flows",
    "allow_failure": "gnomon.flows",
    "aserve": "gnomon._serving",
    "flow": "gnomon.flows",
    "get_run_logger": "gnomon.logging",
    "pause_flow_run": "gnomon.flow_runs",
    "quote": "gnomon.flows",
    "serve": "gnomon._serving",
    "resume_flow_run": "gnomon.flow_runs",
    "suspend_flow_run": "gnomon.flow_runs",
    "tags": "gnomon.flows",
    "task": "gnomon.flows",
    "unmapped": "gnomon.flows",
}

__all__ = [
    "Flow",
    "PrefectFuture",
    "RunnerDeployment",
    "State",
    "Task",
    "__version__",
    "allow_failure",
    "aserve",
    "flow",
    "get_run_logger",
    "pause_flow_run",
    "quote",
    "resume_flow_run",
    "serve",
    "suspend_flow_run",
    "tags",
    "task",
    "unmapped",
]


__getattr__, __dir__ = lazy_names(__name__, _LAZY)
# A Prefect module gnomon has no file for (``gnomon.events``) says so and names the
# alternative, from the table in gnomon._prefect_names.
install_finder()
