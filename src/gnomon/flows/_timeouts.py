"""Running a body under a deadline without ever blocking the caller past it.

Prefect's synchronous task timeout waits for the body to return. gnomon runs a body that has
a timeout in its own daemon thread and waits on it with the deadline: when the deadline
passes, the caller gets a timeout at once, and the body's thread is sent an asynchronous
``TerminationSignal`` that stops it at its next Python bytecode. A body stuck in C code (a
``time.sleep``, a blocking socket read) keeps running in the background until that call
returns, but nobody waits for it.
"""

from __future__ import annotations

import contextvars
import ctypes
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from gnomon.exceptions import TerminationSignal

T = TypeVar("T")


class _Outcome:
    __slots__ = ("done", "error", "value")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None


def call_with_deadline(
    fn: Callable[[], T], timeout: float, on_timeout: Callable[[], BaseException]
) -> T:
    """Return ``fn()``, or raise ``on_timeout()`` once ``timeout`` seconds have passed."""
    outcome = _Outcome()
    context = contextvars.copy_context()

    def body() -> None:
        try:
            outcome.value = context.run(fn)
        except TerminationSignal:
            return
        except BaseException as error:
            outcome.error = error
        finally:
            outcome.done.set()

    thread = threading.Thread(target=body, name="gnomon-deadline", daemon=True)
    thread.start()
    if not outcome.done.wait(timeout):
        interrupt(thread)
        raise on_timeout()
    if outcome.error is not None:
        raise outcome.error
    return outcome.value


def interrupt(thread: threading.Thread) -> None:
    """Raise TerminationSignal in ``thread`` at its next bytecode (best effort)."""
    if thread.ident is None:
        return
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread.ident), ctypes.py_object(TerminationSignal)
    )
