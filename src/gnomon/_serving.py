"""``gnomon.serve(*deployments)`` and ``flow.serve(...)``: gnomon's own daemon, in the
foreground of the script that calls it, for that script's deployments: the same store,
policies, worker pool and logs as ``gnomon daemon``, without a config file.

The deployments are stored as the script's (source ``serve:<script path>``), shown by
``gnomon deployments ls``, the API and the dashboard, and paused or run with the usual
commands while the script serves them. The daemon's lock is the script's while it serves:
where a daemon (or another serving script) already holds the store, ``serve`` refuses and
prints the ``[[deployments]]`` tables to add to that daemon's config instead. A name the
config file has is refused; one a killed script left scheduled is taken over (see
``gnomon.deployments._sync``).

Workers import the script by its path under another module name than ``__main__``, so
its ``if __name__ == "__main__":`` block does not run in them; a ``serve()`` call left at
the script's top level without that guard does nothing there (``importing_flow_file``).

Above the daemon in the layers (a top-level module): ``Flow.serve`` reaches it through
the ``gnomon`` package's face when called, so ``flows`` imports nothing above it.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gnomon._deploying import RunnerDeployment, to_deployment
from gnomon.exceptions import ServeRefused, StoreSchemaTooNew

if TYPE_CHECKING:
    from gnomon.daemon import Daemon
    from gnomon.deployments import DaemonConfig, Deployment
    from gnomon.flows import Flow


def serve_flow(flow: Flow[..., Any], name: str | None = None, **options: Any) -> None:
    """``flow.serve(name, ...)``: serve one deployment of ``flow`` (named after the flow by
    default); the serve options (``limit``, ``webserver``, ...) go to ``serve``."""
    from gnomon.flows import importing_flow_file

    if importing_flow_file():
        return  # a worker or the flow check importing the serving script (see above)
    serving = {key: options.pop(key) for key in SERVE_OPTIONS if key in options}
    if "global_limit" in options:
        options["concurrency_limit"] = options.pop("global_limit")
    if name and Path(name).is_file():  # Prefect's: a script's path names it by its stem
        name = Path(name).stem
    try:
        deployment = to_deployment(flow, name or flow.name, **options)
    except (TypeError, ValueError) as error:
        # The one-line way to schedule a script: a bad argument is one line naming it and
        # its value, as the config file's problems are, not a traceback.
        print(f"gnomon serve: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    serve(deployment, **serving)


SERVE_OPTIONS = ("pause_on_shutdown", "print_starting_message", "limit", "webserver")


def serve(
    *deployments: RunnerDeployment,
    pause_on_shutdown: bool = True,
    print_starting_message: bool = True,
    limit: int | None = None,
    webserver: bool = False,
    **kwargs: Any,
) -> None:
    """Schedule and run ``deployments`` (from ``flow.to_deployment``) in this process until
    Ctrl-C or SIGTERM, which stop it as they stop the daemon (running runs get
    ``shutdown_grace`` to finish).

    ``limit``: the worker pool's size (default: ``[daemon] workers``). ``webserver``: also
    serve the HTTP API and dashboard at ``[daemon] api``. ``pause_on_shutdown``: at stop,
    the deployments stop being scheduled (inactive); False leaves them scheduled, and the
    next serve catches up the fires missed meanwhile by their catch-up policy. Settings
    come from the config file's ``[daemon]`` table when there is one (its deployments are
    not served). A refusal is printed and ends the script with exit code 1."""
    from gnomon.flows import importing_flow_file

    if importing_flow_file():
        return  # a worker or the flow check importing the serving script (see above)
    if kwargs:
        raise TypeError(f"serve() got unexpected keyword arguments: {', '.join(sorted(kwargs))}")
    try:
        daemon = _start(deployments, pause_on_shutdown, limit, webserver)
    except (ServeRefused, StoreSchemaTooNew) as error:  # the second: a newer gnomon's store
        print(f"gnomon serve: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    try:
        if print_starting_message:
            _print_starting(deployments, daemon)
    except OSError:
        pass  # stdout closed (piped to `head`): serve on, as the daemon does
    except BaseException:
        daemon.shutdown()  # started: it holds the store's lock and runs its threads
        raise
    _run(daemon)


async def aserve(*deployments: RunnerDeployment, **options: Any) -> None:
    """Prefect's ``aserve``: ``serve`` from async code. It holds the event loop until the
    serving stops, as there is nothing else for the loop to do meanwhile: the daemon's
    loop runs in this thread (it handles the signals)."""
    serve(*deployments, **options)


def _start(
    deployments: tuple[RunnerDeployment, ...], keep: bool, limit: int | None, webserver: bool
) -> Daemon:
    """A started daemon serving ``deployments``, or ServeRefused saying why not."""
    from gnomon.daemon import Daemon, ServedDeployments
    from gnomon.deployments import GnomonConfig, LoadResult
    from gnomon.exceptions import ConfigError, ServiceStartError

    if not deployments:
        raise ServeRefused("no deployments to serve: pass flow.to_deployment(...) results")
    if threading.current_thread() is not threading.main_thread():
        raise ServeRefused("serve() must be called from the main thread (it handles signals)")
    names = [each.name for each in deployments]
    if len(set(names)) != len(names):
        raise ServeRefused(f"two deployments share a name: {', '.join(sorted(names))}")
    daemon_config = _daemon_config(limit, webserver)
    models = tuple(each.deployment(daemon_config) for each in deployments)
    source = _source()
    _refuse_if_held(models, daemon_config)
    _refuse_if_defined_elsewhere(models, source)
    schemas = {each.entrypoint: each.flow.parameter_schema() for each in deployments}
    config = GnomonConfig(daemon=daemon_config, deployments=models)
    loaded = LoadResult(config, [], schemas, flows_ok=True)
    served = ServedDeployments(source, loaded, keep_active=not keep)
    daemon = Daemon(None, services=_services(webserver), served=served)
    daemon.install_signal_handlers()
    try:
        daemon.start()
    except (ConfigError, ServiceStartError, StoreSchemaTooNew) as error:
        daemon.abandon()
        raise ServeRefused(str(error)) from None
    except ServeRefused:
        daemon.abandon()
        raise
    except Exception as error:
        from gnomon.daemon import DaemonAlreadyRunning

        if not isinstance(error, DaemonAlreadyRunning):
            raise
        daemon.abandon()  # another process took the store between the check and the lock
        raise ServeRefused(_held_message(str(error), models, daemon_config)) from None
    return daemon


def _run(daemon: Daemon) -> None:
    """The daemon's loop until a stop signal; a database file replaced under it ends the
    script as it ends the daemon (exit code 66)."""
    from gnomon.daemon import EXIT_STORE_GONE, StoreFileChanged

    try:
        daemon.serve()
    except StoreFileChanged:  # logged when found; serve() has shut down
        raise SystemExit(EXIT_STORE_GONE) from None


def _daemon_config(limit: int | None, webserver: bool) -> DaemonConfig:
    """The config file's ``[daemon]`` table if there is a file (else the defaults), with
    ``limit`` workers and the API only with ``webserver``."""
    from gnomon.deployments import DaemonConfig, load_config

    try:
        from gnomon._location import find_config_file

        path = find_config_file()
    except Exception as error:  # GNOMON_CONFIG naming no file
        raise ServeRefused(str(error)) from None
    daemon = DaemonConfig()
    if path is not None:
        result = load_config(path, check_flows=False)
        broken = [str(problem) for problem in result.problems if problem.deployment is None]
        if broken:
            raise ServeRefused(f"the config file {path} has problems:\n" + "\n".join(broken))
        daemon = result.config.daemon
    changes: dict[str, Any] = {} if webserver else {"api": None}
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ServeRefused(f"limit={limit!r}: must be a number of runs, at least 1")
        changes["workers"] = limit
    return daemon.model_copy(update=changes)


def _source() -> str:
    """``serve:<path>`` of the script being run, whose deployments these are."""
    from gnomon.deployments import SERVE_PREFIX

    script = getattr(sys.modules.get("__main__"), "__file__", None)
    if not script:
        raise ServeRefused(
            "serve() needs a script file to serve from (python my_flows.py); interactively,"
            " call the flow to run it, or add its [[deployments]] table to the config file"
        )
    return f"{SERVE_PREFIX}{Path(script).resolve()}"


def _refuse_if_held(models: tuple[Deployment, ...], daemon_config: DaemonConfig) -> None:
    """ServeRefused, with the tables to add instead, where a daemon holds the store."""
    from gnomon._settings import get_settings
    from gnomon.daemon import DaemonAlreadyRunning, find_holder, lock_path
    from gnomon.deployments import SERVE_PREFIX

    settings = get_settings()
    holder = find_holder(settings.home, settings.effective_database_url)
    if holder is not None:
        path = lock_path(settings.home, settings.effective_database_url)
        held = str(DaemonAlreadyRunning(holder, path))
        if str(holder.get("config") or "").startswith(SERVE_PREFIX):
            # Another script serves this store: it has no config file to add these to.
            raise ServeRefused(
                f"{held}.\nOne process schedules a store: stop that script first, or serve"
                " these deployments from it (gnomon.serve(a, b, ...) serves several)"
            )
        if holder.get("config"):
            held += f", serving {holder['config']}"
        raise ServeRefused(_held_message(held, models, daemon_config))


def _held_message(held: str, models: tuple[Deployment, ...], daemon_config: DaemonConfig) -> str:
    from gnomon.deployments import deployments_toml

    return (
        f"{held}.\nOne daemon schedules a store: add these deployments to its config file"
        " instead, then run `gnomon daemon reload`:\n\n" + deployments_toml(models, daemon_config)
    )


def _refuse_if_defined_elsewhere(models: tuple[Deployment, ...], source: str) -> None:
    """ServeRefused naming both sources where the config file has one of the names active
    (the sync refuses them too; this says so before anything starts). Another script's
    are not: no daemon holds the store (``_refuse_if_held``), so that script was killed
    before it could retire them, and the sync, under the lock, takes them over."""
    from gnomon.deployments import owner, refusal_message, refuses
    from gnomon.store import get_store

    wanted = {model.name for model in models}
    rows = get_store().read_deployments()
    refusals = [
        refusal_message(row.name, source, owner(row))
        for row in rows
        if row.name in wanted and refuses(row, source, lock_held=True)
    ]
    if refusals:
        raise ServeRefused("\n".join(refusals))


def _services(webserver: bool) -> list[Any]:
    if not webserver:
        return []
    from gnomon.http import serve_api

    return [serve_api]


def _print_starting(deployments: tuple[RunnerDeployment, ...], daemon: Daemon) -> None:
    """What Prefect's serve prints: what is served, and how to run, pause and stop it."""
    lines = [f"Serving {len(deployments)} deployment(s) with gnomon (Ctrl-C stops):"]
    for model in daemon.config.deployments:
        written = "; ".join(
            f"{spec.kind} {' '.join(spec.expression.split())}" for spec in model.specs
        )
        lines.append(f"  {model.name}: {written} ({model.flow})")
    first = deployments[0].name
    lines += [
        f"Run one now:    gnomon run {first}",
        f"Pause it:       gnomon pause {first}",
        f"Its runs:       gnomon runs list --deployment {first}",
    ]
    print("\n".join(lines), flush=True)
