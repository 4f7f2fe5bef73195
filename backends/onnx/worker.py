"""The one thread that runs a model, shared fairly between short jobs and long ones.

Completions are short jobs and run in the order they come. A chat answer is a long job (many
seconds on a CPU). While one runs, short jobs submitted meanwhile do not wait behind it: the
long job calls ``between()`` before each of its forward passes, and that runs them there, on
the same thread. So a completion waits for at most one forward pass of a long answer, and the
long answer is delayed by the completions it let through. The model is only ever touched by
this thread, so the jobs need no locks of their own; they must not share a KV cache.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_Job = tuple[concurrent.futures.Future[Any], Callable[..., Any], tuple[Any, ...]]


def _run(
    future: concurrent.futures.Future[Any], work: Callable[..., Any], args: tuple[Any, ...]
) -> None:
    if not future.set_running_or_notify_cancel():
        return  # cancelled while it waited
    try:
        result = work(*args)
    except BaseException as error:  # handed to whoever waits on the future
        future.set_exception(error)
    else:
        future.set_result(result)


class ModelWorker:
    def __init__(self, name: str) -> None:
        self._executor = concurrent.futures.ThreadPoolExecutor(1, name)
        self._lock = threading.Lock()
        self._long_jobs = 0
        self._waiting: deque[_Job] = deque()

    def submit(self, work: Callable[..., T], *args: Any) -> concurrent.futures.Future[T]:
        """A short job: run in order, or between two steps of a long job that is running."""
        with self._lock:
            if self._long_jobs:
                future: concurrent.futures.Future[T] = concurrent.futures.Future()
                self._waiting.append((future, work, args))
                return future
        return self._executor.submit(work, *args)

    def submit_background(self, work: Callable[..., T], *args: Any) -> concurrent.futures.Future[T]:
        """A job that is nobody's answer (warming a cache): never runs inside a long job."""
        return self._executor.submit(work, *args)

    def submit_long(self, work: Callable[..., T], *args: Any) -> concurrent.futures.Future[T]:
        """A long job; ``work`` must call ``between()`` before each forward pass."""
        return self._executor.submit(self._long, work, *args)

    def between(self) -> None:
        """Run the short jobs that came while a long job runs (from the worker thread)."""
        while True:
            with self._lock:
                if not self._waiting:
                    return
                job = self._waiting.popleft()
            _run(*job)

    def _long(self, work: Callable[..., T], *args: Any) -> T:
        with self._lock:
            self._long_jobs += 1
        try:
            return work(*args)
        finally:
            with self._lock:
                self._long_jobs -= 1
            # Short jobs that came after its last step: they run now, ahead of the queue.
            self.between()

    def shutdown(self) -> None:
        """Stop taking jobs; those not started are cancelled."""
        with self._lock:
            waiting, self._waiting = list(self._waiting), deque()
        for future, _, _ in waiting:
            future.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)
