"""Group commit on the event loop: one commit runs at a time, and every caller
that joins while it runs shares the next one.

Used by the disk spool (the appends made while an fsync runs share the next
one) and the local store (the puts made while a directory sync runs share the
next one). The commit itself is the user's coroutine; blocking I/O belongs in
an executor it awaits, never on the loop."""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable, Generic, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    """`commit(items)` gets the items of every caller that joined since the
    previous commit started, in the order they joined, and returns one result
    per item; if it raises, each of those callers gets the exception. A caller
    that joins while a commit runs is never part of it: what it did before
    joining is covered by the commit it gets. A cancelled caller does not cancel
    the commit it joined (a commit may own files until it ends)."""

    def __init__(self, commit: Callable[[list[T]], Awaitable[Sequence[R]]]) -> None:
        self._run_commit = commit
        self._next: asyncio.Future[Sequence[R]] | None = None   # the commit not started yet
        self._items: list[T] = []                                 # its items
        self._running = False
        self._task: asyncio.Task[None] | None = None              # held: the loop keeps only weak references
        self.started = 0                                          # commits started, for tests

    @property
    def waiting(self) -> int:
        """Callers joined for the commit not started yet."""
        return len(self._items)

    async def join(self, item: T) -> R:
        """Wait for the commit that covers `item`; its result for it."""
        loop = asyncio.get_running_loop()
        if self._next is None:
            self._next = loop.create_future()
            if not self._running:
                # After the callbacks already due, so this loop turn's callers join in.
                loop.call_soon(self._start)
        future, index = self._next, len(self._items)
        self._items.append(item)
        results = await asyncio.shield(future)
        return results[index]

    def _start(self) -> None:
        if not self._running and self._next is not None:
            self._running = True
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        self._running = True
        try:
            while self._next is not None:
                future, self._next = self._next, None
                items, self._items = self._items, []
                self.started += 1
                try:
                    results = await self._run_commit(items)
                except asyncio.CancelledError:
                    future.cancel()
                    if self._next is not None:
                        self._next.cancel()
                        self._next, self._items = None, []
                    raise
                except Exception as e:  # never leave a caller waiting forever
                    future.set_exception(e)
                else:
                    assert len(results) == len(items), "a commit returns one result per item"
                    future.set_result(results)
        finally:
            self._running = False
