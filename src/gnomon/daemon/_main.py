"""Running the daemon from the command line: start-up with its failures told in one line
and an exit code, with the services the command composes it with (the HTTP API)."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from gnomon.daemon._service import Daemon

if TYPE_CHECKING:
    from gnomon.daemon._service import ServiceFactory

log = logging.getLogger("gnomon.daemon")


def run_daemon(
    config_path: Path | None,
    started: Callable[[int, str], None] | None = None,
    services: Sequence[ServiceFactory] = (),
) -> int:
    """Run the daemon in the foreground, with ``services`` beside it; returns the exit code
    (2: bad config, 1: another daemon holds the store, a newer gnomon migrated it, or a
    service cannot start, such as the API that cannot listen, or start-up fails otherwise;
    66: the database file was deleted or replaced under it).
    ``started`` hears how start-up ended (the exit code, 0 once ready, and a message):
    ``--detach`` reports it to its terminal."""

    from gnomon.daemon._lock import DaemonAlreadyRunning
    from gnomon.exceptions import ConfigError, ServiceStartError, StoreSchemaTooNew

    report = started or (lambda _code, _message: None)
    daemon = Daemon(config_path, services=services)
    daemon.install_signal_handlers()
    try:
        daemon.start()
    except ConfigError as error:
        print(f"gnomon daemon: the config has problems, not starting:\n{error}", file=sys.stderr)
        report(2, f"the config has problems, not starting:\n{error}")
        return 2
    except (DaemonAlreadyRunning, ServiceStartError, StoreSchemaTooNew) as error:
        print(f"gnomon daemon: {error}", file=sys.stderr)
        report(1, str(error))
        daemon.abandon()
        return 1
    except Exception as error:
        daemon.abandon()
        if _told_by_the_command_line(error):
            # The store's faults (a corrupt file, a full disk, a lock held by another
            # program) are told by the command line's own handler, in its words.
            report(1, f"start-up failed: {type(error).__name__}: {error}")
            raise
        # Told in one line (the traceback goes to the log); what it started has stopped.
        log.exception("start-up failed")
        message = f"start-up failed: {type(error).__name__}: {error}"
        print(f"gnomon daemon: {message}", file=sys.stderr)
        report(1, message)
        return 1
    except BaseException as error:
        report(1, f"start-up failed: {type(error).__name__}: {error}")
        daemon.abandon()
        raise
    report(0, f"pid {os.getpid()}, {len(daemon.config.deployments)} deployments")
    from gnomon.daemon._storefile import EXIT_STORE_GONE, StoreFileChanged

    try:
        return daemon.serve()
    except StoreFileChanged:  # logged when found; serve() has shut down
        return EXIT_STORE_GONE


def _told_by_the_command_line(error: Exception) -> bool:
    """Whether ``error`` is one the command line describes itself: the database's and the
    file system's, as before start-up failures were caught here."""
    from sqlalchemy.exc import SQLAlchemyError

    return isinstance(error, SQLAlchemyError | OSError)
