"""The daemon's handle on its worker templates (``_template.py``), and which one the pool
forks its workers from as reloads replace them.

Everything here runs on the pool's supervisor thread: that thread starts the templates
(their PR_SET_PDEATHSIG is tied to it), asks them to fork, and reads their sockets. A
template reaps its workers because it is their parent; the pool notices a worker's end
through the worker's pidfd, ends what is left of its tree, and then asks its template to
reap it and say how it ended.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import selectors
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("gnomon.daemon.pool")

WARM_TIMEOUT = 60.0  # for a template to import its flows
ANSWER_TIMEOUT = 10.0  # for a template's answer: a fork, or a worker's exit status
_MESSAGE_SIZE = 1 << 20


@dataclass(eq=False)
class TemplateProcess:
    """One template process: its control socket, and what it has told the daemon."""

    process: subprocess.Popen[bytes]
    control: socket.socket
    preload: list[str]
    deadline: float  # it must be ready by then (monotonic)
    ready: bool = False
    gone: bool = False  # its socket reached end of file: the process has ended
    failed: dict[str, str] = field(default_factory=dict)  # flows it could not import
    workers: set[int] = field(default_factory=set)  # forked and not yet waited for
    _exits: dict[int, int] = field(default_factory=dict)
    _requests: int = 0  # fork requests sent; answers name theirs
    _abandoned: set[int] = field(default_factory=set)  # forked for a request given up on

    @classmethod
    def start(cls, preload: list[str], env: dict[str, str], stdout: int) -> TemplateProcess:
        """Start a template importing ``preload``; its stdout and stderr go to ``stdout``."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            process = subprocess.Popen(
                [
                    sys.executable,
                    *("-m", "gnomon.daemon._template"),
                    *("--parent", str(os.getpid()), "--control", str(theirs.fileno())),
                    "--",  # entrypoints are never options
                    *preload,
                ],
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stdout,
                pass_fds=(theirs.fileno(),),
                env=env,
                # Out of the daemon's session: a Ctrl-C at the daemon's terminal must reach
                # the daemon only, which then lets running runs finish.
                start_new_session=True,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.setblocking(False)
        return cls(process, ours, list(preload), time.monotonic() + WARM_TIMEOUT)

    @property
    def pid(self) -> int:
        return self.process.pid

    def fork(self, fds: Sequence[int]) -> tuple[int, int | None]:
        """Fork a worker on ``fds`` (its stdin, result channel and output); its pid and
        pidfd (None without pidfds). OSError if the template cannot."""
        self._requests += 1
        socket.send_fds(self.control, [json.dumps({"fork": self._requests}).encode()], list(fds))
        deadline = time.monotonic() + ANSWER_TIMEOUT
        while True:
            message, received = self._receive(deadline)
            if message.get("request") == self._requests:
                pid = int(message["forked"])
                self.workers.add(pid)
                return pid, received[0] if received else None
            # Else the answer to a request given up on: that worker's pipes are closed here,
            # so it exits at once, unknown to the pool; the template reaps it then.
            _close(received)
            if "forked" in message:
                self._abandoned.add(int(message["forked"]))
                with contextlib.suppress(OSError):
                    self._send({"reap": int(message["forked"])})
            self._note(message)

    def read(self) -> None:
        """Take what the template has sent, without waiting."""
        with contextlib.suppress(BlockingIOError, ConnectionError):
            while not self.gone:
                message, received = self._receive(None)
                _close(received)  # only a fork's answer carries a descriptor
                self._note(message)

    def wait_exit(self, pid: int) -> int | None:
        """Have the template reap worker ``pid``, which has ended, and say how it ended
        (its return code: negative for a signal); None if the template is gone before it
        could say."""
        deadline = time.monotonic() + ANSWER_TIMEOUT
        with contextlib.suppress(OSError):
            if pid not in self._exits:
                self._send({"reap": pid})
            while pid not in self._exits and not self.gone:
                message, received = self._receive(deadline)
                _close(received)
                self._note(message)
        self.workers.discard(pid)
        return self._exits.pop(pid, None)

    def close(self) -> None:
        """End it and reap it: the pool closes a template only once it has no worker left
        (or has died), so there is nothing to wait for. Closing it again does nothing."""
        self.control.close()
        self.gone = True
        self.process.kill()  # a no-op once it is reaped
        self.process.wait()

    def _receive(self, deadline: float | None) -> tuple[dict[str, Any], list[int]]:
        """The next message (waiting until ``deadline``; None: not at all). ConnectionError
        at end of file, TimeoutError past the deadline or, without one, BlockingIOError."""
        if deadline is not None:
            ready = selectors.DefaultSelector()
            with ready:
                ready.register(self.control, selectors.EVENT_READ)
                if not ready.select(max(0.0, deadline - time.monotonic())):
                    raise TimeoutError(f"worker template {self.pid} did not answer")
        data, fds, _, _ = socket.recv_fds(self.control, _MESSAGE_SIZE, 1)
        if not data:
            self.gone = True
            raise ConnectionError(f"worker template {self.pid} is gone")
        return json.loads(data), fds

    def _send(self, message: dict[str, Any]) -> None:
        """Send ``message``; OSError if the template is gone (or, stopped, not reading)."""
        self.control.send(json.dumps(message).encode())

    def _note(self, message: dict[str, Any]) -> None:
        if "exited" in message:
            pid = int(message["exited"])
            if pid in self._abandoned:
                self._abandoned.discard(pid)
            else:
                self._exits[pid] = int(message["returncode"])
        elif "ready" in message:
            self.ready = True
            self.failed = dict(message.get("failed") or {})


def _close(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)


class Templates:
    """The pool's templates: the current one, which new workers fork from; a candidate
    warming after a reload, which replaces it once warm with every flow imported; and
    retired ones, kept until their last worker is waited for (a template's workers end
    with it, and only it can say how they ended).

    ``start`` starts a template process for a list of entrypoints; ``selector`` is the
    supervisor's, in which each template's socket is registered with the template as data.
    """

    def __init__(
        self,
        preload: list[str],
        start: Callable[[list[str]], TemplateProcess],
        selector: selectors.BaseSelector,
    ) -> None:
        self.preload = list(preload)
        self.current: TemplateProcess | None = None
        self.candidate: TemplateProcess | None = None
        self.retired: list[TemplateProcess] = []
        self._wanted: list[str] | None = None
        self._start = start
        self._selector = selector

    def request(self, preload: list[str]) -> None:
        """Warm a template importing ``preload`` afresh, to replace the current one."""
        self._wanted = list(preload)

    def ready(self) -> TemplateProcess | None:
        """The template to fork workers from, if it is warm."""
        current = self.current
        return current if current is not None and current.ready else None

    def tend(self, now: float, start_current: bool) -> str | None:
        """Start the candidate a reload asked for, and the current template if there is
        none and ``start_current``; end those not warm by their deadline. Returns why the
        current template failed, if it did."""
        self._tend_candidate(now)
        current = self.current
        if current is not None and not current.ready and now >= current.deadline:
            self._drop(current)
            return f"worker template {current.pid} did not import its flows in {WARM_TIMEOUT:g} s"
        if current is None and start_current:
            try:
                self.current = self._launch(self.preload)
            except OSError as error:
                return f"could not start a worker template process: {error}"
        return None

    def _tend_candidate(self, now: float) -> None:
        if self._wanted is not None:
            if self.candidate is not None:
                self._drop(self.candidate)  # a newer reload supersedes it
            wanted, self._wanted = self._wanted, None
            try:
                self.candidate = self._launch(wanted)
            except OSError as error:
                _not_reloaded(f"could not start a worker template process: {error}")
        candidate = self.candidate
        if candidate is not None and not candidate.ready and now >= candidate.deadline:
            _not_reloaded(f"the new worker template did not import its flows in {WARM_TIMEOUT:g} s")
            self._drop(candidate)

    def next_deadline(self) -> float | None:
        """When a template not yet warm must be."""
        times = [t.deadline for t in (self.current, self.candidate) if t and not t.ready]
        return min(times) if times else None

    def on_readable(self, template: TemplateProcess) -> tuple[bool, str | None]:
        """Read what ``template`` sent: whether the candidate replaced the current
        template (the pool then replaces its workers), and why the current one died, if
        it did."""
        template.read()
        if template is self.candidate:
            return self._candidate_news(template), None
        if template is self.current and template.gone:
            why = _ended(template)
            self._drop(template)
            return False, why
        if template in self.retired and template.gone:
            self._drop(template)  # its workers end with it; the pool reaps them
        return False, None

    def worker_gone(self, template: TemplateProcess) -> None:
        """A worker of ``template`` was waited for: a retired template with none left goes."""
        if template in self.retired and not template.workers:
            self._drop(template)

    def close_all(self) -> None:
        """End every template (the pool has no worker left)."""
        for template in [self.current, self.candidate, *self.retired]:
            if template is not None:
                self._drop(template)

    def _candidate_news(self, candidate: TemplateProcess) -> bool:
        if candidate.gone or (candidate.ready and candidate.failed):
            failed = (f"{entrypoint}: {error}" for entrypoint, error in candidate.failed.items())
            _not_reloaded(_ended(candidate) if candidate.gone else "; ".join(failed))
            self._drop(candidate)
            return False
        if not candidate.ready:
            return False
        previous, self.current, self.candidate = self.current, candidate, None
        self.preload = candidate.preload
        if previous is not None:
            self.retired.append(previous)
            self.worker_gone(previous)
        log.info(
            "flow code reloaded: worker template %d imported %d flows; workers are replaced, "
            "busy ones after their run",
            candidate.pid,
            len(candidate.preload),
            extra={"worker_template": candidate.pid},
        )
        return True

    def _launch(self, preload: list[str]) -> TemplateProcess:
        template = self._start(preload)
        self._selector.register(template.control, selectors.EVENT_READ, template)
        return template

    def _drop(self, template: TemplateProcess) -> None:
        with contextlib.suppress(KeyError, ValueError):  # unregistered already
            self._selector.unregister(template.control)
        template.close()
        for slot in ("current", "candidate"):
            if getattr(self, slot) is template:
                setattr(self, slot, None)
        if template in self.retired:
            self.retired.remove(template)


def _ended(template: TemplateProcess) -> str:
    from gnomon.daemon._worker_process import exit_description

    try:
        # Its socket closes as it exits, a moment before it can be waited for.
        code = template.process.wait(1.0)
    except subprocess.TimeoutExpired:
        return f"worker template process {template.pid} closed its socket"
    return exit_description(template.pid, code, "worker template process")


def _not_reloaded(why: str) -> None:
    log.error("the reloaded flow code is not used: %s; runs keep the code loaded before", why)
