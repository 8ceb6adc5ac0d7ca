"""Threads that take blocking or long work off the event loop: one pool mechanism for the
stores, the encoders and the decoders (`Workers`), and a shared pool (`offload`) where
`asyncio.to_thread` would do.

`loop.run_in_executor` hands each call over through a `concurrent.futures.Future` (a Python
object with a Condition) chained to an asyncio future by callbacks written in Python: under
the per-trace JSON drain those hand-offs were about a third of the loop's Python time (py-spy).
Here a job goes into a `queue.SimpleQueue` (C) with the caller's own asyncio future, and the
worker sets that future from the loop with `call_soon_threadsafe`. (The spool keeps its
concurrent.futures executor, `spool.disk.spool_executor`: its mark saves are also made and
collected outside a running loop, and its tests swap in an inline executor.)
"""

from __future__ import annotations

import asyncio
import os
import queue
import threading
from typing import Any, Callable, TypeVar

T = TypeVar("T")

_STOP = None   # the job that tells a worker to leave


class Workers:
    """At most `size` threads named `{name}_{n}`, started as jobs find none idle; a job waits in
    the queue while all are busy. Daemon threads: what one is doing when the process exits is
    lost as in a crash, which every caller survives (the spool keeps what a job had not done)."""

    def __init__(self, size: int, name: str) -> None:
        if size < 1:
            raise ValueError("a pool needs at least one thread")
        self.size = size
        self.name = name
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._closed = False
        self._cancel_queued = False

    async def run(self, call: Callable[..., T], *args: Any) -> T:
        """`call(*args)` in one of the threads; its result or its exception. A caller cancelled
        before the job starts cancels the job; once started, the job runs to its end."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._lock:
            if self._closed:
                raise RuntimeError(f"the {self.name} threads are shut down")
            if self._idle:
                self._idle -= 1
            elif len(self._threads) < self.size:
                thread = threading.Thread(target=self._work, name=f"{self.name}_{len(self._threads)}", daemon=True)
                self._threads.append(thread)
                thread.start()
        self._jobs.put((loop, future, call, args))
        return await future

    def shutdown(self, cancel_queued: bool = False) -> None:
        """No new jobs; the running ones end as they would, the queued ones run too or, with
        `cancel_queued`, are cancelled. The threads leave once the queue is done."""
        with self._lock:
            self._closed = True
            self._cancel_queued = cancel_queued
            for _ in self._threads:
                self._jobs.put(_STOP)

    @property
    def threads(self) -> int:
        """Threads started (for tests)."""
        return len(self._threads)

    def _work(self) -> None:
        get = self._jobs.get
        while (job := get()) is not _STOP:
            loop, future, call, args = job
            if self._cancel_queued:
                _settle(loop, future.cancel)
            elif not future.cancelled():   # read across threads: at worst a cancelled job runs
                try:
                    result = call(*args)
                except BaseException as e:  # noqa: BLE001 - the caller's to handle, in its own task
                    _settle(loop, _set_exception, future, e)
                else:
                    _settle(loop, _set_result, future, result)
                del job, future, call, args   # not kept alive while this thread waits
            with self._lock:
                self._idle += 1


def _settle(loop: asyncio.AbstractEventLoop, callback: Callable[..., Any], *args: Any) -> None:
    try:
        loop.call_soon_threadsafe(callback, *args)
    except RuntimeError:
        pass   # the loop is closed: nobody waits for this any more


def _set_result(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():
        future.set_result(result)


def _set_exception(future: asyncio.Future[Any], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)


# As asyncio's default executor: for work that is neither a store's nor the spool's.
_shared = Workers(min(32, (os.cpu_count() or 1) + 4), "otlp-offload")


async def offload(call: Callable[..., T], *args: Any) -> T:
    """`asyncio.to_thread(call, *args)` on the shared pool."""
    return await _shared.run(call, *args)
