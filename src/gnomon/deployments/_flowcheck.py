"""Checking the deployments' flows at load, in a child process with a timeout per module.

A flow is checked when the config is loaded (by the daemon at start and on reload, by
``gnomon deployments validate`` and ``apply``): that it imports, is a @flow, and takes each
deployment's parameters, as a run would validate them. Importing a flow runs its module's
top-level code, which is the user's: it may loop forever, call ``os._exit`` or crash. So it
runs in ``gnomon.flows._check``, never in the process that loads the config. A module that gives
no answer within the timeout, or that ends the check process, is reported as a problem of
each of its flows, and the check goes on with the other modules in a fresh process.

The check also yields each flow's parameter JSON schema, which the sync stores with the
deployment so that run requests can be checked without importing the flow.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

# Starting the check process and importing gnomon in it; its own deadline, apart from the
# modules' (on a loaded machine it can take seconds).
START_TIMEOUT = 60.0


@dataclass(frozen=True)
class FlowCheck:
    """One flow's check: why it cannot be had (``error``), or its parameter schema and, by
    the index of the parameter set, the (field, message) problems found."""

    error: str | None = None
    schema: dict[str, Any] | None = None
    problems: tuple[tuple[int, str, str], ...] = ()


_Module = tuple[str, dict[str, list[dict[str, Any]]]]  # (target, {entrypoint: [parameters]})


class FlowChecker:
    """The check process, started at once so that it imports gnomon while the config is
    read; ``check`` hands it the flows, ``close`` ends whatever is left."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = _spawn()

    def check(
        self, flows: Mapping[str, Sequence[dict[str, Any]]], timeout: float
    ) -> dict[str, FlowCheck]:
        """Each entrypoint's check, given the parameter sets to check against it.

        Entrypoints are grouped by module: each module has ``timeout`` seconds to import
        and check its flows.
        """
        modules: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for entrypoint, sets in flows.items():
            modules.setdefault(entrypoint.rpartition(":")[0], {})[entrypoint] = list(sets)
        pending: list[_Module] = list(modules.items())
        results: dict[str, FlowCheck] = {}
        while pending:
            process, self._process = self._process or _spawn(), None
            answered, failure, started = _converse(process, pending, timeout)
            for target, flows_of_module in pending[: len(answered)]:
                for entrypoint in flows_of_module:
                    results[entrypoint] = _result(answered[target][entrypoint])
            pending = pending[len(answered) :]
            # The module being checked when the process failed gets the blame; if it never
            # started, every module does (nothing would go better in a new process).
            failed, pending = (pending[:1], pending[1:]) if started else (pending, [])
            for target, flows_of_module in failed:
                message = f"cannot import {target}: {failure}"
                results.update(dict.fromkeys(flows_of_module, FlowCheck(error=message)))
        return results

    def close(self) -> None:
        """End the check process if ``check`` did not use it."""
        if self._process is not None:
            _end(self._process)
            self._process = None


def _spawn() -> subprocess.Popen[bytes]:
    # Its own session: ending it on a timeout also ends what the module started.
    return subprocess.Popen(
        [sys.executable, "-m", "gnomon.flows._check", str(os.getpid())],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )


def _end(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    for stream in (process.stdin, process.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


def _result(answer: dict[str, Any]) -> FlowCheck:
    if "error" in answer:
        return FlowCheck(error=str(answer["error"]))
    problems = tuple((int(i), str(field), str(message)) for i, field, message in answer["problems"])
    return FlowCheck(schema=answer.get("schema"), problems=problems)


def _converse(
    process: subprocess.Popen[bytes], pending: list[_Module], timeout: float
) -> tuple[dict[str, dict[str, Any]], str | None, bool]:
    """Have ``process`` check the ``pending`` modules, in order; the answers, by module, of
    those it checked, why it stopped short (None if it did not), and whether it had started
    (imported gnomon) at all. The process is ended and reaped either way."""
    assert process.stdin is not None
    assert process.stdout is not None
    channel = _Channel(process.stdout)
    answered: dict[str, dict[str, Any]] = {}
    try:
        try:
            if channel.read(time.monotonic() + START_TIMEOUT) is None:
                return answered, f"the flow check process could not start ({_exit(process)})", False
        except TimeoutError:
            return answered, f"the flow check process did not start in {START_TIMEOUT:g} s", False
        try:
            process.stdin.write(pickle.dumps(pending))
            process.stdin.close()
        except BrokenPipeError:
            pass  # it died; its end of file says how
        try:
            for target, _ in pending:
                message = channel.read(time.monotonic() + timeout)
                if message is None:
                    return answered, f"it ended the flow check process ({_exit(process)})", True
                answered[target] = message["flows"]
        except TimeoutError:
            return answered, f"no answer within {timeout:g} s (see flow_check_timeout)", True
        return answered, None, True
    finally:
        _end(process)
        channel.close()


def _exit(process: subprocess.Popen[bytes]) -> str:
    """How ``process``, whose answer channel reached its end, ended."""
    try:
        code = process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        return "it closed the answer channel"
    if code < 0:
        return f"killed by signal {signal.Signals(-code).name}"
    return f"exit code {code}"


class _Channel:
    """The check process's answers: JSON lines read with a deadline."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._fd = stream.fileno()
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._fd, selectors.EVENT_READ)
        self._buffer = b""

    def read(self, deadline: float) -> dict[str, Any] | None:
        """The next JSON object line; None at end of file; TimeoutError past ``deadline``."""
        while b"\n" not in self._buffer:
            if not self._selector.select(max(0.0, deadline - time.monotonic())):
                raise TimeoutError
            data = os.read(self._fd, 65536)
            if not data:
                return None
            self._buffer += data
        line, _, self._buffer = self._buffer.partition(b"\n")
        try:
            message = json.loads(line)
        except ValueError:
            return self.read(deadline)  # not ours (a module writing to the channel's fd)
        return message if isinstance(message, dict) else self.read(deadline)

    def close(self) -> None:
        self._selector.close()
