"""Group commit on the event loop: one commit at a time, the callers that join
while one runs share the next, each gets its own result or the commit's error."""

from __future__ import annotations

import asyncio

import pytest

from otlp_router.groupcommit import GroupCommit


class Recorder:
    """A commit that records its items, each result the item times ten; the first
    commit waits for `release`, and the commits listed in `fail` raise."""

    def __init__(self, fail: tuple[int, ...] = ()) -> None:
        self.batches: list[list[int]] = []
        self.release = asyncio.Event()
        self.fail = fail

    async def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(items)
        if len(self.batches) == 1:
            await self.release.wait()
        if len(self.batches) in self.fail:
            raise OSError(5, "Input/output error")
        return [item * 10 for item in items]


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_callers_joining_while_a_commit_runs_share_the_next_one_and_get_their_own_results() -> None:
    async def main() -> None:
        commit = Recorder()
        group = GroupCommit(commit)
        first = asyncio.create_task(group.join(1))
        await _settle()
        assert commit.batches == [[1]]
        rest = [asyncio.create_task(group.join(n)) for n in (2, 3, 4)]
        await _settle()
        assert commit.batches == [[1]] and group.waiting == 3   # none of them in the running commit
        commit.release.set()
        assert await asyncio.gather(first, *rest) == [10, 20, 30, 40]
        assert commit.batches == [[1], [2, 3, 4]] and group.started == 2
    asyncio.run(main())


def test_the_callers_of_one_loop_turn_share_a_commit() -> None:
    async def main() -> None:
        commit = Recorder()
        commit.release.set()
        group = GroupCommit(commit)
        assert await asyncio.gather(*(group.join(n) for n in range(5))) == [0, 10, 20, 30, 40]
        assert commit.batches == [[0, 1, 2, 3, 4]]
    asyncio.run(main())


def test_a_failed_commit_fails_each_of_its_callers_and_the_next_commit_still_runs() -> None:
    async def main() -> None:
        commit = Recorder(fail=(2,))
        group = GroupCommit(commit)
        first = asyncio.create_task(group.join(1))
        await _settle()
        failing = [asyncio.create_task(group.join(n)) for n in (2, 3)]
        await _settle()
        commit.release.set()
        assert await first == 10
        for task in failing:
            with pytest.raises(OSError, match="Input/output error"):
                await task
        assert await group.join(4) == 40
    asyncio.run(main())


def test_a_cancelled_caller_does_not_cancel_the_commit_it_joined() -> None:
    async def main() -> None:
        commit = Recorder()
        group = GroupCommit(commit)
        first = asyncio.create_task(group.join(1))
        other = asyncio.create_task(group.join(2))
        await _settle()
        first.cancel()
        await _settle()
        commit.release.set()
        assert await other == 20
        assert first.cancelled() and commit.batches == [[1, 2]]
    asyncio.run(main())
