"""The worker template: a process that imports gnomon and the deployments' flows once, then
forks the pool's workers, so that every worker starts warm with the code it loaded.

This is how flow code changes stay explicit. Workers started later (after a crash, or to
replace one that reached ``max_runs_per_worker``) are forked from the same template, so
they run the code it loaded, whatever the files hold by then; only a reload whose flow
check passes starts a new template (see ``_template_process.Templates``).

The pool starts ``python -m gnomon.daemon._template --parent PID --control FD -- ENTRYPOINT...``;
FD is one end of a SOCK_SEQPACKET socket pair (one message per datagram):

- template to daemon: ``{"ready": pid, "failed": {entrypoint: why}}`` once warm;
  ``{"forked": pid, "request": n}`` per worker, with its pidfd attached (SCM_RIGHTS) where the
  kernel has pidfds; ``{"exited": pid, "returncode": n}`` (negative: the signal) once it
  has reaped a worker, since only the template, its parent, can.
- daemon to template: ``{"fork": n}``, with the worker's stdin (read end), result channel
  and output (write ends) attached; the answer carries ``"request": n``. ``{"reap": pid}``
  once the daemon has ended what is left of an exited worker's tree: the template reaps a
  worker only then, so that until the daemon is done with it the worker's pid (and process
  group) cannot be another process's. End of file: fork no more, reap every worker, and
  exit once every worker has.

The template's stdout and stderr are relayed like a worker's. It holds no thread and no
database connection when it forks; a flow module that started a thread at import is named
in a warning, since the forked workers do not have that thread. Each worker is in its own
session and process group before the daemon hears of it, so the daemon's containment
(``_containment``) never takes the template's group for the worker's.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import logging
import os
import selectors
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any, NoReturn

from gnomon._lifeline import die_with_parent

log = logging.getLogger("gnomon.worker")

_FORK_FDS = 3  # stdin, channel, output
# How long an exiting worker waits for the non-daemon threads its runs left (the pool
# SIGKILLs it after kill_grace anyway).
KEPT_THREADS_WAIT = 10.0


def main(argv: list[str] | None = None) -> int:
    """Warm up, report ready, then fork workers until the daemon closes the socket; in a
    forked worker, serve runs."""
    args = _parse_args(argv)
    # SIGKILL, not SIGTERM: a flow module may install a handler for SIGTERM at import.
    die_with_parent(args.parent, signal.SIGKILL)
    control = socket.socket(fileno=args.control)
    control.set_inheritable(False)

    from gnomon.daemon._worker import freeze_heap, serve, warm_up

    failed = warm_up(args.preload)
    _drop_connections()
    _warn_about_threads()
    wake_r, wake_w = _watch_children()
    freeze_heap()
    _send(control, {"ready": os.getpid(), "failed": failed})
    channel = _fork_workers(control, (wake_r, wake_w))
    if channel is not None:
        # A forked worker: the template's file descriptors are closed, its own are in place.
        _end_worker(serve, channel)
    return 0


def _end_worker(serve: Callable[[int], int], channel: int) -> NoReturn:
    """Serve runs in a forked worker, then end it as ``os._exit`` does, once the exit hooks
    have run (the store's writer commits what it holds) and its output is flushed.

    Not through the interpreter's shutdown: a worker that stops mid-service (its store went
    read-only or missing) still has daemon threads, the one reading stdin among them, and
    finalizing while one holds a stream's lock aborts the process with "Fatal Python error:
    _enter_buffered_busy" in its output.
    """
    code = 1
    try:
        code = serve(channel)
    except SystemExit as stop:
        if stop.code is None or isinstance(stop.code, int):
            code = stop.code or 0
        else:
            print(stop.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
    finally:
        _join_threads(KEPT_THREADS_WAIT)
        with contextlib.suppress(BaseException):
            atexit._run_exitfuncs()  # what the interpreter's shutdown would run first
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


def _join_threads(timeout: float) -> None:
    """Wait up to ``timeout`` seconds in all for the threads the interpreter's shutdown
    would wait for (non-daemon ones a flow started), as it would."""
    deadline = time.monotonic() + timeout
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join(max(0.0, deadline - time.monotonic()))


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m gnomon.daemon._template")
    parser.add_argument("--parent", type=int, required=True, help="the daemon's pid")
    parser.add_argument("--control", type=int, required=True, help="the control socket's fd")
    parser.add_argument("preload", nargs="*", help="flow entrypoints to import")
    return parser.parse_args(argv)


def _drop_connections() -> None:
    """Close a store a flow module opened at import: a forked worker must not share its
    connections (each connects on its own, in ``serve``)."""
    from gnomon.store import reset_store

    reset_store()


def _warn_about_threads() -> None:
    others = [
        thread.name for thread in threading.enumerate() if thread is not threading.main_thread()
    ]
    if others:
        log.warning(
            "a flow module started threads at import (%s): workers forked from the template "
            "do not have them, and a lock one of them held stays held in every worker",
            ", ".join(others),
            extra={"threads": others},
        )


def _watch_children() -> tuple[int, int]:
    """A pipe that gets a byte whenever a child exits (SIGCHLD through the wake-up fd)."""
    wake_r, wake_w = os.pipe()
    for fd in (wake_r, wake_w):
        os.set_blocking(fd, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so that the fd gets the byte
    return wake_r, wake_w


class _Workers:
    """The workers this template forked and has not reaped, and those the daemon asked it
    to reap (all of them once the daemon is gone)."""

    def __init__(self, control: socket.socket) -> None:
        self.control = control
        self.unreaped: set[int] = set()
        self.asked: set[int] = set()

    def reap(self) -> None:
        """Reap the workers asked for that have exited, and every child in the template's
        own process group (what a flow module started at import, or a worker that died
        before it had a group of its own); report the workers' exits."""
        with contextlib.suppress(ChildProcessError):
            while (found := os.waitpid(-os.getpgrp(), os.WNOHANG))[0]:
                self._reaped(*found)
        for pid in sorted(self.asked):
            with contextlib.suppress(ChildProcessError):
                found = os.waitpid(pid, os.WNOHANG)
                if found[0]:
                    self._reaped(*found)

    def _reaped(self, pid: int, status: int) -> None:
        self.asked.discard(pid)
        if pid in self.unreaped:
            self.unreaped.discard(pid)
            _send(self.control, {"exited": pid, "returncode": os.waitstatus_to_exitcode(status)})


def _fork_workers(control: socket.socket, wake: tuple[int, int]) -> int | None:
    """Fork workers as the daemon asks and reap them when it asks. Returns None in the
    template, once the daemon closed the socket and every worker has exited; in a forked
    worker, its result channel's fd, its stdin and output set up."""
    template = os.getpid()
    wake_r = wake[0]
    workers = _Workers(control)
    selector = selectors.DefaultSelector()
    selector.register(control, selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)
    accepting = True
    while accepting or workers.unreaped:
        for key, _ in selector.select():
            if key.fd == wake_r:
                _drain(wake_r)
                workers.reap()
                continue
            message, fds, _, _ = socket.recv_fds(control, 1024, _FORK_FDS)
            if not message:  # the daemon closed its end: no one to wait for
                accepting = False
                selector.unregister(control)
                workers.asked |= workers.unreaped
                workers.reap()
                continue
            request = json.loads(message)
            if "reap" in request or len(fds) != _FORK_FDS:
                _close(fds)
                workers.asked.update([int(request["reap"])] if "reap" in request else [])
                workers.reap()
                continue
            pid = _fork(fds)
            if pid == 0:
                selector.close()
                return _become_worker(template, control, wake, fds)
            workers.unreaped.add(pid)
            _report_fork(control, pid, request.get("fork"))
    return None


def _fork(fds: list[int]) -> int:
    """Fork a worker on ``fds``; in the template, return its pid once it leads a session
    and process group of its own (or has died), the worker's ``fds`` closed here."""
    sys.stdout.flush()  # nothing buffered may be written twice
    sys.stderr.flush()
    settled_r, settled_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(settled_r)
        fds.append(settled_w)  # the worker closes it once it has its session
        return 0
    os.close(settled_w)
    _close(fds)
    with contextlib.suppress(OSError):
        os.read(settled_r, 1)  # end of file: the worker closed its end, or exited
    os.close(settled_r)
    return pid


def _become_worker(
    template: int, control: socket.socket, wake: tuple[int, int], fds: list[int]
) -> int:
    """In the forked child: drop what is the template's, take the worker's fds."""
    die_with_parent(template)  # a worker ends (SIGTERM) with its template
    # Its own session and process group: a signal meant for its run reaches nothing else.
    os.setsid()
    stdin, channel, output, settled = fds
    os.close(settled)  # the template may tell the daemon about it now
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    control.close()
    _close(list(wake))
    os.dup2(stdin, 0)
    os.dup2(output, 1)
    os.dup2(output, 2)
    _close([stdin, output])
    return channel


def _report_fork(control: socket.socket, pid: int, request: Any) -> None:
    """Tell the daemon about the new worker, with a pidfd: opened here, before this process
    can reap the worker, it names exactly that process even if the pid is reused later."""
    message = json.dumps({"forked": pid, "request": request}).encode()
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # no pidfds (not Linux, or a kernel before 5.3)
        _send_bytes(control, message, [])
        return
    try:
        _send_bytes(control, message, [pidfd])
    finally:
        os.close(pidfd)


def _send(control: socket.socket, message: dict[str, Any]) -> None:
    _send_bytes(control, json.dumps(message).encode(), [])


def _send_bytes(control: socket.socket, data: bytes, fds: list[int]) -> None:
    with contextlib.suppress(OSError):  # the daemon closed its end: no one to tell
        socket.send_fds(control, [data], fds)


def _drain(fd: int) -> None:
    with contextlib.suppress(BlockingIOError):
        while os.read(fd, 512):
            pass


def _close(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)


if __name__ == "__main__":
    sys.exit(main())
