"""`ModelExecutor`: one daemon worker thread per model, so models cannot hold each other up.

Each model's batches run in order on its own thread (one model call at a time, as the weights and
the tokenizer are not meant to be shared between threads). A model that hangs blocks only its own
thread: the other models keep answering, and the hung one's callers time out against it.
The thread is a daemon, so a call that never returns cannot hold up interpreter exit either;
`concurrent.futures.ThreadPoolExecutor` joins its threads at exit and would wait forever.

A model thread may run at a lower priority (`nice`): the event loop and the other models'
threads then get a core first whenever they are ready to run, and a slow hub model uses
whatever is left. Linux gives each thread its own nice value.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, ParamSpec, TypeVar

__all__ = ["ModelExecutor", "lower_thread_priority"]

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

_Work = tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]


def lower_thread_priority(nice: int) -> None:
    """Raise the calling thread's nice value by `nice` (no-op where the OS cannot do it per thread)."""
    if nice <= 0 or not hasattr(os, "setpriority"):
        return
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + nice)
    except OSError as exc:  # a sandbox that forbids it: the thread runs at normal priority
        logger.debug("thread %s: priority unchanged: %s", threading.current_thread().name, exc)


class ModelExecutor(Executor):
    """A single daemon thread running submitted calls in order.

    Args:
        name: thread name, e.g. `model:ProsusAI/finbert`.
        nice: how much lower than the process the thread's priority is (0: the same).

    `shutdown(wait=False)` returns at once even while a call runs; that call's thread finishes (or
    stays hung) on its own and ends with the process.
    """

    def __init__(self, name: str, *, nice: int = 0) -> None:
        self.name = name
        self.nice = nice
        self._work: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        """Queue one call; its result or error lands in the returned future.

        Raises:
            RuntimeError: after `shutdown()`.
        """
        future: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self.name}: executor is shut down")
            self._work.put((future, fn, args, kwargs))
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop taking calls; optionally cancel queued ones and wait for the thread."""
        with self._lock:
            self._closed = True
            if cancel_futures:
                while True:
                    try:
                        work = self._work.get_nowait()
                    except queue.Empty:
                        break
                    if work is not None:
                        work[0].cancel()
            self._work.put(None)
        if wait:
            self._thread.join()

    def _serve(self) -> None:
        lower_thread_priority(self.nice)
        while True:
            work = self._work.get()
            if work is None:
                return
            future, fn, args, kwargs = work
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:  # handed to the caller's future, which decides
                future.set_exception(exc)
            else:
                future.set_result(result)
