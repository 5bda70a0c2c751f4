"""Every public name of Prefect 3's documented API, with where gnomon has it or why not.

One table drives three things: what ``from gnomon.x import y`` and ``import gnomon.x.y``
do for a Prefect name gnomon does not define (``gnomon._prefect_import`` raises
``NotProvidedByGnomon`` with the row's note), the full table in
``docs/prefect-compatibility.md`` (generated from it, a test keeps them equal), and the
test that every name said to be supported really resolves.

A row is ``prefect name | gnomon location | note``. Its status follows from what is filled:

- a location and no note: **supported**, the same behaviour at that location;
- a location and a note: **differs**, the note says how;
- ``-`` for the location: **not supported**, the note names the alternative.

A row for a module (``prefect.events``) covers every name under it that has no row of its
own. The names were walked from ``prefect/__init__.py`` and the modules of Prefect 3.8.8's
API reference (``tools/prefect_names.py`` lists the names an installed Prefect has that
the table lacks); a location names a module or a module's attribute, dotted.
"""

# ruff: noqa: E501 -- the table keeps one Prefect name per line, however long its note

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass


class Status(enum.StrEnum):
    SUPPORTED = "supported"
    DIFFERS = "differs"
    NOT_SUPPORTED = "not supported"


@dataclass(frozen=True, slots=True)
class PrefectName:
    """One public Prefect name (or module) and what gnomon offers for it."""

    prefect: str
    gnomon: str | None
    note: str

    @property
    def status(self) -> Status:
        if self.gnomon is None:
            return Status.NOT_SUPPORTED
        return Status.DIFFERS if self.note else Status.SUPPORTED


_NO_SERVER = (
    "gnomon has no API server: runs, logs and limits are in its store, read with the "
    "`gnomon` CLI, its HTTP API or `gnomon.store.get_store()`"
)
_DAEMON = (
    "gnomon's daemon runs deployments from its TOML config (`gnomon daemon`), or "
    "`flow.serve()` / `gnomon.serve()` in the foreground"
)
_RESULTS = (
    "results are signed pickles under GNOMON_HOME/results or the `[results] storage` of the "
    "config (a directory or an fsspec URL); `persist_result=` turns them on or off, the "
    "serializer is not configurable"
)
_ENGINE = "call the flow or task; gnomon's engine is internal (`gnomon.flows`)"
_SETTINGS = "gnomon reads GNOMON_* environment variables and its TOML config (`gnomon config`)"
_NOTIFY = "`[[notify]]` targets in the config (webhooks, e-mail) on a deployment's failures"

# prefect name | gnomon location | note
_TABLE = """
prefect.Flow | gnomon.Flow |
prefect.State | gnomon.State |
prefect.Task | gnomon.Task |
prefect.Transaction | gnomon.transactions.Transaction |
prefect.allow_failure | gnomon.allow_failure |
prefect.apause_flow_run | gnomon.flow_runs.apause_flow_run |
prefect.aresume_flow_run | gnomon.flow_runs.aresume_flow_run |
prefect.aserve | gnomon.aserve |
prefect.asuspend_flow_run | gnomon.flow_runs.asuspend_flow_run |
prefect.deploy | - | {deploy}
prefect.flow | gnomon.flow |
prefect.get_client | - | {no_server}
prefect.get_run_logger | gnomon.get_run_logger |
prefect.pause_flow_run | gnomon.flow_runs.pause_flow_run |
prefect.resume_flow_run | gnomon.flow_runs.resume_flow_run |
prefect.serve | gnomon.serve |
prefect.suspend_flow_run | gnomon.flow_runs.suspend_flow_run |
prefect.tags | gnomon.tags |
prefect.task | gnomon.task |
prefect.unmapped | gnomon.unmapped |
prefect.flows.Flow | gnomon.flows.Flow |
prefect.flows.flow | gnomon.flows.flow |
prefect.flows.serve | gnomon.serve |
prefect.flows.aserve | gnomon.aserve |
prefect.flows.FlowDecorator | - | `gnomon.flow`: its type is not exported
prefect.flows.InfrastructureBoundFlow | - | {daemon}
prefect.flows.bind_flow_to_infrastructure | - | {daemon}
prefect.flows.load_flow_from_entrypoint | gnomon.flows.load_flow | takes "path/to/file.py:function" as a deployment's `flow` field does
prefect.flows.safe_load_flow_from_entrypoint | - | `gnomon check` imports a deployment's flows in a process of their own
prefect.flows.load_flow_from_flow_run | - | `gnomon.flows.execute_flow_run(id)` loads and runs a stored run
prefect.flows.load_flow_arguments_from_entrypoint | - | `gnomon check` validates a deployment's flow and parameters
prefect.flows.load_function_and_convert_to_flow | - | decorate the function with `@flow`
prefect.flows.load_placeholder_flow | - | {engine}
prefect.flows.is_entrypoint_async | - | {engine}
prefect.flows.select_flow | - | name the flow's function in the entrypoint ("file.py:function")
prefect.flows.BANNED_CHARACTERS | - | gnomon's name rule is `gnomon._names`
prefect.flows.WITHOUT_BANNED_CHARACTERS | - | gnomon's name rule is `gnomon._names`
prefect.flows.FlowStateHook | - | a hook is any callable `(flow, flow_run, state)`
prefect.Flow.serve | gnomon.Flow.serve |
prefect.Flow.to_deployment | gnomon.Flow.to_deployment |
prefect.Flow.deploy | gnomon.Flow.deploy | raises an error whose message holds the TOML deployment to add instead
prefect.Flow.from_source | - | point a deployment's `flow` at a file on this machine ("path/to/file.py:function")
prefect.Flow.visualize | - | the run page of the dashboard shows a run's task runs
prefect.Flow.with_options | gnomon.Flow.with_options |
prefect.Flow.validate_parameters | gnomon.Flow.validate_parameters |
prefect.tasks.Task | gnomon.tasks.Task |
prefect.tasks.task | gnomon.tasks.task |
prefect.tasks.exponential_backoff | gnomon.tasks.exponential_backoff |
prefect.tasks.task_input_hash | gnomon.tasks.task_input_hash |
prefect.tasks.MaterializingTask | - | assets are not supported: write the file in a task and record it with an artifact
prefect.tasks.TaskOptions | - | pass the options to `@task` or `Task.with_options`
prefect.tasks.TaskRunNameCallbackWithParameters | - | a `task_run_name` callable with a `parameters` argument is accepted as it is
prefect.tasks.NUM_CHARS_DYNAMIC_KEY | - | task run names count calls: `fetch-0`, `fetch-1`
prefect.Task.submit | gnomon.Task.submit |
prefect.Task.map | gnomon.Task.map |
prefect.Task.with_options | gnomon.Task.with_options |
prefect.Task.delay | - | submit it inside a flow (`task.submit`); gnomon has no task workers
prefect.Task.serve | - | {daemon}
prefect.states.State | gnomon.states.State |
prefect.states.StateType | gnomon.states.StateType |
prefect.states.AwaitingRetry | gnomon.states.AwaitingRetry |
prefect.states.Cancelled | gnomon.states.Cancelled |
prefect.states.Completed | gnomon.states.Completed |
prefect.states.Crashed | gnomon.states.Crashed |
prefect.states.Failed | gnomon.states.Failed |
prefect.states.Pending | gnomon.states.Pending |
prefect.states.Retrying | gnomon.states.Retrying |
prefect.states.Running | gnomon.states.Running |
prefect.states.Scheduled | gnomon.states.Scheduled |
prefect.states.Paused | gnomon.states.Paused |
prefect.states.Suspended | gnomon.states.Suspended |
prefect.states.Cancelling | - | gnomon's cancellation ends a run's process at once (`gnomon runs cancel ID`)
prefect.states.Late | - | gnomon records a fire that started late as Running, and one past its grace as Missed
prefect.states.AwaitingConcurrencySlot | - | a task waiting for a tag limit's slot stays Pending
prefect.states.InfrastructurePending | - | {daemon}
prefect.states.Submitting | - | a run waiting for a daemon's worker stays Pending
prefect.states.StateGroup | - | check each state with `state.is_failed()` and the like
prefect.states.get_state_exception | - | `state.result(raise_on_failure=True)` raises the run's exception
prefect.states.aget_state_exception | - | `state.result(raise_on_failure=True)` raises the run's exception
prefect.states.raise_state_exception | - | `state.result(raise_on_failure=True)` raises the run's exception
prefect.states.araise_state_exception | - | `state.result(raise_on_failure=True)` raises the run's exception
prefect.states.get_state_result | - | `state.result()`
prefect.states.exception_to_crashed_state | - | {engine}
prefect.states.exception_to_failed_state | - | {engine}
prefect.states.format_exception | - | `traceback.format_exception`
prefect.states.is_state_iterable | gnomon.states.is_state_iterable |
prefect.states.return_value_to_state | - | {engine}
prefect.states.to_state_create | - | {engine}
prefect.states.RESULT_READ_MAXIMUM_ATTEMPTS | - | {results}
prefect.states.RESULT_READ_RETRY_DELAY | - | {results}
prefect.futures.PrefectFuture | gnomon.futures.PrefectFuture |
prefect.futures.PrefectFutureList | gnomon.futures.PrefectFutureList |
prefect.futures.DoneAndNotDoneFutures | gnomon.futures.DoneAndNotDoneFutures |
prefect.futures.as_completed | gnomon.futures.as_completed |
prefect.futures.wait | gnomon.futures.wait |
prefect.futures.PrefectConcurrentFuture | gnomon.futures.PrefectFuture | gnomon has one future type for every task runner
prefect.futures.PrefectWrappedFuture | gnomon.futures.PrefectFuture | gnomon has one future type for every task runner
prefect.futures.PrefectDistributedFuture | - | submit tasks inside a flow: gnomon has no task workers
prefect.futures.PrefectFlowRunFuture | - | run a deployment with `gnomon run NAME` and follow it with `gnomon runs show ID`
prefect.futures.PrefectTaskRunFuture | gnomon.futures.PrefectFuture | gnomon has one future type for every task runner
prefect.futures.resolve_futures_to_results | - | `[future.result() for future in futures]`
prefect.futures.resolve_futures_to_states | - | `[future.state for future in futures]`
prefect.context | gnomon.context |
prefect.context.get_run_context | gnomon.context.get_run_context |
prefect.context.FlowRunContext | gnomon.context.FlowRunContext |
prefect.context.TaskRunContext | gnomon.context.TaskRunContext |
prefect.context.tags | gnomon.context.tags |
prefect.context.RunContext | - | `FlowRunContext` and `TaskRunContext` are the run contexts
prefect.context.ContextModel | - | `FlowRunContext.get()` and `TaskRunContext.get()` read the current run
prefect.context.EngineContext | - | `FlowRunContext`
prefect.context.TagsContext | - | `gnomon.tags(...)` adds tags; `gnomon.runtime.task_run.tags` reads them
prefect.context.AssetContext | - | assets are not supported
prefect.context.AsyncClientContext | - | {no_server}
prefect.context.SyncClientContext | - | {no_server}
prefect.context.SettingsContext | - | {settings}
prefect.context.GLOBAL_SETTINGS_CONTEXT | - | {settings}
prefect.context.get_settings_context | - | {settings}
prefect.context.refresh_global_settings_context | - | {settings}
prefect.context.root_settings_context | - | {settings}
prefect.context.use_profile | - | {settings}
prefect.context.hydrated_context | - | {engine}
prefect.context.serialize_context | - | {engine}
prefect.context.with_context | - | {engine}
prefect.runtime | gnomon.runtime |
prefect.runtime.flow_run.id | gnomon.runtime.flow_run.id |
prefect.runtime.flow_run.name | gnomon.runtime.flow_run.name |
prefect.runtime.flow_run.flow_name | gnomon.runtime.flow_run.flow_name |
prefect.runtime.flow_run.parameters | gnomon.runtime.flow_run.parameters |
prefect.runtime.flow_run.run_count | gnomon.runtime.flow_run.run_count |
prefect.runtime.flow_run.parent_flow_run_id | gnomon.runtime.flow_run.parent_flow_run_id |
prefect.runtime.flow_run.tags | gnomon.runtime.flow_run.tags |
prefect.runtime.flow_run.flow_version | - | `flow.version`, read from the flow object
prefect.runtime.flow_run.scheduled_start_time | - | `gnomon runs show ID` gives a deployment run's nominal fire time
prefect.runtime.flow_run.root_flow_run_id | - | follow `parent_flow_run_id`
prefect.runtime.flow_run.parent_deployment_id | - | `gnomon.runtime.deployment.name` names a run's deployment
prefect.runtime.flow_run.job_variables | - | {daemon}
prefect.runtime.flow_run.api_url | - | {no_server}
prefect.runtime.flow_run.ui_url | - | the dashboard's run page is /runs/ID on the daemon's HTTP address
prefect.runtime.task_run.id | gnomon.runtime.task_run.id |
prefect.runtime.task_run.name | gnomon.runtime.task_run.name |
prefect.runtime.task_run.task_name | gnomon.runtime.task_run.task_name |
prefect.runtime.task_run.parameters | gnomon.runtime.task_run.parameters |
prefect.runtime.task_run.run_count | gnomon.runtime.task_run.run_count |
prefect.runtime.task_run.tags | gnomon.runtime.task_run.tags |
prefect.runtime.task_run.api_url | - | {no_server}
prefect.runtime.task_run.ui_url | - | the dashboard's run page lists a flow run's task runs
prefect.runtime.deployment.id | gnomon.runtime.deployment.id | a deployment's name is its id in gnomon, so `id` is the name
prefect.runtime.deployment.name | gnomon.runtime.deployment.name |
prefect.runtime.deployment.parameters | gnomon.runtime.deployment.parameters |
prefect.runtime.deployment.flow_run_id | gnomon.runtime.deployment.flow_run_id |
prefect.runtime.deployment.version | gnomon.runtime.deployment.version | always None: gnomon's deployments are not versioned (the config file is)
prefect.logging.get_run_logger | gnomon.logging.get_run_logger |
prefect.logging.disable_run_logger | gnomon.logging.disable_run_logger |
prefect.logging.get_logger | gnomon.logging.get_logger | loggers under `gnomon.`, as Prefect's are under `prefect.`
prefect.logging.LogEavesdropper | - | pytest's `caplog` sees run logs: run loggers propagate to the root logger
prefect.logging.loggers | - | import `get_run_logger`, `get_logger` and `disable_run_logger` from `gnomon.logging`
prefect.logging.handlers | - | gnomon's store handler is installed for you; add handlers to the root logger
prefect.logging.formatters | - | `GNOMON_LOG_FORMAT` (json, text or auto)
prefect.logging.configuration | - | `GNOMON_LOG_LEVEL` and `GNOMON_LOG_FORMAT`; configure the root logger as usual
prefect.logging.filters | - | secret-named fields and a run's secret parameters are masked for you
prefect.logging.highlighters | - | `GNOMON_LOG_FORMAT=text` colours a terminal's lines
prefect.logging.clients | - | {no_server}
prefect.testing.utilities.prefect_test_harness | gnomon.testing.utilities.prefect_test_harness | a temporary GNOMON_HOME with its own SQLite store, not a temporary server
prefect.testing.utilities.get_most_recent_flow_run | - | `gnomon.store.get_store()` reads the runs; `gnomon runs list --limit 1`
prefect.testing.utilities.assert_does_not_warn | - | `warnings.catch_warnings()` with `simplefilter("error")`
prefect.testing.utilities.exceptions_equal | - | compare `type(a) is type(b) and a.args == b.args`
prefect.testing.utilities.assert_blocks_equal | - | blocks are not supported (Secret is: compare `.get()`)
prefect.testing.utilities.assert_uses_result_serializer | - | {results}
prefect.testing.utilities.assert_uses_result_storage | - | {results}
prefect.testing.utilities.kubernetes_environments_equal | - | {daemon}
prefect.testing.utilities.a_test_step | - | Prefect's own test helper
prefect.testing.utilities.b_test_step | - | Prefect's own test helper
prefect.testing.fixtures | - | `prefect_test_harness()` in a fixture of your own
prefect.testing.cli | - | click's `CliRunner` on `gnomon.cli.main`
prefect.testing.docker | - | {daemon}
prefect.utilities.annotations.quote | gnomon.utilities.annotations.quote |
prefect.utilities.annotations.unmapped | gnomon.utilities.annotations.unmapped |
prefect.utilities.annotations.allow_failure | gnomon.utilities.annotations.allow_failure |
prefect.utilities.annotations.BaseAnnotation | gnomon.utilities.annotations.BaseAnnotation |
prefect.utilities.annotations.Quote | gnomon.utilities.annotations.quote | `Quote` is the deprecated spelling of `quote`
prefect.utilities.annotations.NotSet | - | leave the argument out
prefect.utilities.annotations.freeze | - | pass a copy of the value
prefect.utilities.annotations.opaque | - | `quote(value)` keeps gnomon from looking inside a value
prefect.utilities | - | the Python standard library (`asyncio`, `hashlib`, `importlib`) does what Prefect's helpers do for its own code
prefect.concurrency.sync.concurrency | gnomon.concurrency.sync.concurrency | {concurrency}
prefect.concurrency.sync.rate_limit | gnomon.concurrency.sync.rate_limit |
prefect.concurrency.asyncio.concurrency | gnomon.concurrency.asyncio.concurrency | {concurrency}
prefect.concurrency.asyncio.rate_limit | gnomon.concurrency.asyncio.rate_limit |
prefect.concurrency.asyncio.ConcurrencySlotAcquisitionError | gnomon.exceptions.ConcurrencySlotAcquisitionError |
prefect.concurrency.asyncio.AcquireConcurrencySlotTimeoutError | gnomon.exceptions.AcquireConcurrencySlotTimeoutError |
prefect.concurrency.context | - | {engine}
prefect.concurrency.services | - | {engine}
prefect.concurrency.v1 | - | tag limits: `gnomon.concurrency.set_tag_concurrency_limit(tag, n)`
prefect.schedules.Schedule | gnomon.schedules.Schedule |
prefect.schedules.Cron | gnomon.schedules.Cron | `day_or=False` cannot be deployed: gnomon's cron follows cron's day rule
prefect.schedules.Interval | gnomon.schedules.Interval | without `anchor_date` an interval counts from when its deployment is first registered
prefect.schedules.RRule | gnomon.schedules.RRule | deployed as gnomon's rrule: one RRULE (and a DTSTART); without DTSTART it starts at midnight of its deployment's registration day, and a yearly, monthly or weekly rule must then name its days
prefect.artifacts.create_markdown_artifact | gnomon.artifacts.create_markdown_artifact |
prefect.artifacts.create_table_artifact | gnomon.artifacts.create_table_artifact |
prefect.artifacts.create_link_artifact | gnomon.artifacts.create_link_artifact |
prefect.artifacts.create_progress_artifact | gnomon.artifacts.create_progress_artifact |
prefect.artifacts.update_progress_artifact | gnomon.artifacts.update_progress_artifact |
prefect.artifacts.acreate_markdown_artifact | gnomon.artifacts.acreate_markdown_artifact |
prefect.artifacts.acreate_table_artifact | gnomon.artifacts.acreate_table_artifact |
prefect.artifacts.acreate_link_artifact | gnomon.artifacts.acreate_link_artifact |
prefect.artifacts.acreate_progress_artifact | gnomon.artifacts.acreate_progress_artifact |
prefect.artifacts.aupdate_progress_artifact | gnomon.artifacts.aupdate_progress_artifact |
prefect.artifacts.Artifact | gnomon.artifacts.Artifact |
prefect.artifacts.MarkdownArtifact | gnomon.artifacts.MarkdownArtifact |
prefect.artifacts.TableArtifact | gnomon.artifacts.TableArtifact |
prefect.artifacts.LinkArtifact | gnomon.artifacts.LinkArtifact |
prefect.artifacts.ProgressArtifact | gnomon.artifacts.ProgressArtifact |
prefect.artifacts.create_image_artifact | gnomon.artifacts.create_image_artifact |
prefect.artifacts.acreate_image_artifact | gnomon.artifacts.acreate_image_artifact |
prefect.artifacts.ImageArtifact | gnomon.artifacts.ImageArtifact |
prefect.variables.Variable | gnomon.variables.Variable |
prefect.variables.MAX_VARIABLE_NAME_LENGTH | gnomon.variables.MAX_VARIABLE_NAME_LENGTH |
prefect.blocks.system.Secret | gnomon.blocks.system.Secret |
prefect.blocks.core | - | {blocks}
prefect.blocks.abstract | - | {blocks}
prefect.blocks.notifications | - | {notify}
prefect.blocks.webhook | - | {notify}
prefect.blocks.redis | - | {blocks}
prefect.blocks | - | {blocks}
prefect.transactions.transaction | gnomon.transactions.transaction |
prefect.transactions.Transaction | gnomon.transactions.Transaction |
prefect.transactions.get_transaction | gnomon.transactions.get_transaction |
prefect.transactions.CommitMode | gnomon.transactions.CommitMode |
prefect.transactions.IsolationLevel | gnomon.transactions.IsolationLevel |
prefect.transactions.TransactionState | gnomon.transactions.TransactionState |
prefect.transactions.atransaction | gnomon.transactions.atransaction |
prefect.transactions.AsyncTransaction | gnomon.transactions.AsyncTransaction | the one synchronous `Transaction`: `async with atransaction()` works, its `commit()` and `rollback()` are not awaited
prefect.transactions.BaseTransaction | gnomon.transactions.BaseTransaction |
prefect.flow_runs.pause_flow_run | gnomon.flow_runs.pause_flow_run |
prefect.flow_runs.suspend_flow_run | gnomon.flow_runs.suspend_flow_run |
prefect.flow_runs.resume_flow_run | gnomon.flow_runs.resume_flow_run |
prefect.flow_runs.apause_flow_run | gnomon.flow_runs.apause_flow_run |
prefect.flow_runs.asuspend_flow_run | gnomon.flow_runs.asuspend_flow_run |
prefect.flow_runs.aresume_flow_run | gnomon.flow_runs.aresume_flow_run |
prefect.flow_runs.wait_for_flow_run | - | `gnomon runs show ID` (or the HTTP API's /runs/ID) until the run is final
prefect.deployments.run_deployment | - | `gnomon run NAME --param key=value`, or POST /deployments/NAME/runs on the HTTP API
prefect.deployments.arun_deployment | - | `gnomon run NAME --param key=value`, or POST /deployments/NAME/runs on the HTTP API
prefect.deployments.deploy | - | {deploy}
prefect.deployments.initialize_project | - | `gnomon init` writes a starting config
prefect.deployments.runner | - | {daemon}
prefect.deployments.base | - | {daemon}
prefect.deployments.flow_runs | - | `gnomon run NAME`
prefect.deployments.schedules | - | `gnomon.schedules` (Cron, Interval) or a deployment's `cron` / `interval`
prefect.deployments.steps | - | a deployment's flow is a file on this machine: no pull steps
prefect.cache_policies.CachePolicy | gnomon.cache_policies.CachePolicy |
prefect.cache_policies.CacheKeyFnPolicy | gnomon.cache_policies.CacheKeyFnPolicy |
prefect.cache_policies.CompoundCachePolicy | gnomon.cache_policies.CompoundCachePolicy |
prefect.cache_policies.DEFAULT | gnomon.cache_policies.DEFAULT |
prefect.cache_policies.FLOW_PARAMETERS | gnomon.cache_policies.FLOW_PARAMETERS |
prefect.cache_policies.FlowParameters | gnomon.cache_policies.FlowParameters |
prefect.cache_policies.INPUTS | gnomon.cache_policies.INPUTS |
prefect.cache_policies.Inputs | gnomon.cache_policies.Inputs |
prefect.cache_policies.NONE | gnomon.cache_policies.NONE |
prefect.cache_policies.NO_CACHE | gnomon.cache_policies.NO_CACHE |
prefect.cache_policies.RUN_ID | gnomon.cache_policies.RUN_ID |
prefect.cache_policies.RunId | gnomon.cache_policies.RunId |
prefect.cache_policies.TASK_SOURCE | gnomon.cache_policies.TASK_SOURCE |
prefect.cache_policies.TaskSource | gnomon.cache_policies.TaskSource |
prefect.cache_policies.STABLE_TRANSFORMS | - | a `cache_key_fn` can hash a value as you choose
prefect.task_runners.TaskRunner | gnomon.task_runners.TaskRunner |
prefect.task_runners.ThreadPoolTaskRunner | gnomon.task_runners.ThreadPoolTaskRunner | bounded at 4 x the CPU count by default (Prefect's is unbounded)
prefect.task_runners.ProcessPoolTaskRunner | gnomon.task_runners.ProcessPoolTaskRunner |
prefect.task_runners.ConcurrentTaskRunner | gnomon.task_runners.ThreadPoolTaskRunner | `ConcurrentTaskRunner` is Prefect 2's name of the thread pool runner
prefect.task_runners.PrefectTaskRunner | - | `ThreadPoolTaskRunner` or `ProcessPoolTaskRunner`: gnomon has no task workers
prefect.exceptions.MissingContextError | gnomon.exceptions.MissingContextError |
prefect.exceptions.ParameterTypeError | gnomon.exceptions.ParameterTypeError |
prefect.exceptions.ParameterBindError | gnomon.exceptions.ParameterBindError |
prefect.exceptions.SignatureMismatchError | gnomon.exceptions.SignatureMismatchError |
prefect.exceptions.MappingLengthMismatch | gnomon.exceptions.MappingLengthMismatch |
prefect.exceptions.MappingMissingIterable | gnomon.exceptions.MappingMissingIterable |
prefect.exceptions.UpstreamTaskError | gnomon.exceptions.UpstreamTaskError |
prefect.exceptions.UnfinishedRun | gnomon.exceptions.UnfinishedRun |
prefect.exceptions.CrashedRun | gnomon.exceptions.CrashedRun |
prefect.exceptions.CancelledRun | gnomon.exceptions.CancelledRun |
prefect.exceptions.FailedRun | gnomon.exceptions.FailedRun |
prefect.exceptions.PausedRun | gnomon.exceptions.PausedRun |
prefect.exceptions.FlowPauseTimeout | gnomon.exceptions.FlowPauseTimeout |
prefect.exceptions.NotPausedError | gnomon.exceptions.NotPausedError |
prefect.exceptions.ObjectNotFound | gnomon.exceptions.ObjectNotFound |
prefect.exceptions.TerminationSignal | gnomon.exceptions.TerminationSignal |
prefect.exceptions.PrefectException | gnomon.exceptions.GnomonError | `GnomonError` is the base of gnomon's errors
prefect.exceptions.MissingResult | gnomon.exceptions.MissingResult |
prefect.exceptions.ScriptError | - | a flow file that fails to import raises its own exception; `gnomon check` reports it
prefect.exceptions.MissingFlowError | - | `gnomon check` names a deployment whose flow cannot be found
prefect.exceptions.UnspecifiedFlowError | - | name the flow's function in the entrypoint ("file.py:function")
prefect.exceptions.ReservedArgumentError | - | gnomon reserves no parameter names
prefect.exceptions.InvalidNameError | gnomon.exceptions.ConfigError | a bad deployment name is a `ConfigError` naming it
prefect.exceptions.ObjectAlreadyExists | - | gnomon's store overwrites or refuses with a message naming the object
prefect.exceptions.ObjectLimitReached | - | {no_server}
prefect.exceptions.ObjectUnsupported | - | {no_server}
prefect.exceptions.PrefectHTTPStatusError | - | {no_server}
prefect.exceptions.PrefectSignal | - | gnomon's signals derive from `BaseException`, as `TerminationSignal` does
prefect.exceptions.ExternalSignal | - | gnomon's signals derive from `BaseException`, as `TerminationSignal` does
prefect.exceptions.Pause | gnomon.exceptions.Pause | the signal `suspend_flow_run` raises to end the run's code; flow code never catches it
prefect.exceptions.Abort | - | {engine}
prefect.exceptions.FlowRunWaitTimeout | - | {no_server}
prefect.exceptions.FlowRunWatchError | - | {no_server}
prefect.exceptions.HashError | - | a value that cannot be hashed for a cache key raises its own TypeError naming it
prefect.exceptions.SerializationError | - | {results}
prefect.exceptions.ConfigurationError | gnomon.exceptions.ConfigError |
prefect.exceptions.MissingProfileError | - | {settings}
prefect.exceptions.ProfileSettingsValidationError | - | {settings}
prefect.exceptions.BlockMissingCapabilities | - | {blocks}
prefect.exceptions.ProtectedBlockError | - | {blocks}
prefect.exceptions.InfrastructureError | - | {daemon}
prefect.exceptions.InfrastructureNotAvailable | - | {daemon}
prefect.exceptions.InfrastructureNotFound | - | {daemon}
prefect.exceptions.InvalidRepositoryURLError | - | a deployment's flow is a file on this machine
prefect.exceptions.EventTooLarge | - | {events}
prefect.exceptions.PrefectImportError | - | Python's ImportError
prefect.exceptions.exception_traceback | - | `traceback.format_exception`
prefect.results | - | {results}
prefect.serializers | - | {results}
prefect.filesystems | - | {results}
prefect.events | - | {events}
prefect.automations | - | {notify}; a deployment's retry policy reruns failed runs
prefect.client | - | {no_server}
prefect.settings | - | {settings}
prefect.server | - | {no_server}
prefect.workers | - | {daemon}
prefect.runner | - | {daemon}
prefect.infrastructure | - | {daemon}
prefect.docker | - | {daemon}
prefect.bundles | - | {daemon}
prefect.task_worker | - | submit tasks inside a flow; gnomon has no task workers
prefect.task_runs | - | `gnomon runs show ID` lists a flow run's task runs
prefect.input | gnomon.input | only `RunInput`, for `wait_for_input=` of `pause_flow_run` / `suspend_flow_run`; input sent to a running flow is not there
prefect.input.RunInput | gnomon.input.RunInput | for `wait_for_input=` (with `with_initial_data`); `send_to`, `receive` and `respond` are not there
prefect.input.send_input | - | pause the flow with `pause_flow_run(wait_for_input=...)` and resume it with `gnomon runs resume ID --input KEY=VALUE`
prefect.input.receive_input | - | pause the flow with `pause_flow_run(wait_for_input=...)` and resume it with `gnomon runs resume ID --input KEY=VALUE`
prefect.assets | - | write the file in a task and record it with an artifact
prefect.plugins | - | gnomon has no plugin system
prefect.locking | - | {results}
prefect.telemetry | - | gnomon's daemon has Prometheus metrics (/metrics)
prefect.types | - | pydantic's and Python's types
prefect.engine | - | {engine}
prefect.flow_engine | - | {engine}
prefect.task_engine | - | {engine}
prefect.agent | - | {daemon}
prefect.main | gnomon | `prefect.main` is what `prefect/__init__.py` re-exports: import from `gnomon`
"""

_NOTES = {
    "blocks": (
        "blocks are not supported: `gnomon.blocks.system.Secret` holds secrets, "
        "`gnomon.variables.Variable` holds settings"
    ),
    "concurrency": (
        "no lease or `max_retries`: slots of a process that died are freed by the next waiter "
        "on its host; on a limit with a `slot_decay_per_second` its slots are held until the "
        "block ends (Prefect decays them while held)"
    ),
    "daemon": _DAEMON,
    "deploy": (
        "gnomon has no work pools or image builds: its error message holds the TOML "
        "deployment to add to the config instead"
    ),
    "engine": _ENGINE,
    "events": (
        "gnomon has no event system: `on_completion` / `on_failure` hooks and the "
        "config's `[[notify]]` targets react to runs"
    ),
    "no_server": _NO_SERVER,
    "notify": _NOTIFY,
    "results": _RESULTS,
    "settings": _SETTINGS,
}


def _row(line: str) -> PrefectName:
    prefect, location, note = (part.strip() for part in line.split("|", 2))
    return PrefectName(prefect, None if location == "-" else location, note.format(**_NOTES))


@functools.cache
def prefect_names() -> dict[str, PrefectName]:
    """Every row of the table, by Prefect name."""
    rows = [_row(line) for line in _TABLE.strip().splitlines()]
    table = {row.prefect: row for row in rows}
    if len(table) != len(rows):
        duplicated = sorted({row.prefect for row in rows if rows.count(row) > 1})
        raise AssertionError(f"prefect names listed twice: {duplicated}")
    return table


def nearest(prefect: str) -> PrefectName | None:
    """The row of ``prefect``, or of the nearest module above it that has one."""
    table = prefect_names()
    while prefect:
        if (row := table.get(prefect)) is not None:
            return row
        prefect = prefect.rpartition(".")[0]
    return None


def provided_below(prefect: str) -> bool:
    """Whether a name under module ``prefect`` is supported, or differs (is provided)."""
    prefix = f"{prefect}."
    return any(
        row.gnomon is not None and name.startswith(prefix) for name, row in prefect_names().items()
    )


def prefect_name(gnomon_name: str) -> str:
    """Prefect's spelling of a gnomon module or name: ``gnomon.x.y`` is ``prefect.x.y``."""
    return "prefect" + gnomon_name.removeprefix("gnomon")


DOC_BEGIN = "<!-- prefect-names: generated from gnomon._prefect_names, do not edit -->"
DOC_END = "<!-- prefect-names: end -->"


def markdown_table() -> str:
    """The table as docs/prefect-compatibility.md shows it, between its markers."""
    lines = [DOC_BEGIN, "", "| Prefect | status | gnomon | note |", "|---|---|---|---|"]
    for row in prefect_names().values():
        where = f"`{row.gnomon}`" if row.gnomon else ""
        note = row.note.replace("|", "\\|")
        lines.append(f"| `{row.prefect}` | {row.status} | {where} | {note} |")
    return "\n".join([*lines, "", DOC_END])
