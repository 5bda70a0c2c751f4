"""gnomon: scheduled Python workflows on your own machines.

The authoring API follows Prefect 3: code written for ``prefect`` runs after changing its
imports to ``gnomon``. Importing this package stays cheap: the store, pydantic and structlog
load on the first run.
"""

from gnomon.flows._annotations import allow_failure, quote, unmapped
from gnomon.flows._context import tags
from gnomon.flows._flow import Flow, flow
from gnomon.flows._futures import PrefectFuture
from gnomon.flows._task import Task, task
from gnomon.logging import get_run_logger
from gnomon.states import State

__version__ = "0.1.0"

__all__ = [
    "Flow",
    "PrefectFuture",
    "State",
    "Task",
    "__version__",
    "allow_failure",
    "flow",
    "get_run_logger",
    "quote",
    "tags",
    "task",
    "unmapped",
]
