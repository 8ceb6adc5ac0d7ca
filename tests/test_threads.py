"""The worker threads (otlp_router/threads.py): a job's result or exception reaches its
caller; at most `size` jobs run at once, on threads started as needed; a caller cancelled
before its job starts cancels the job; shutdown refuses new jobs and, if asked, cancels the
queued ones; a job that ends after its loop closed leaves the thread working."""

from __future__ import annotations

import asyncio
import threading

import pytest

from otlp_router.threads import Workers, offload


def test_results_and_exceptions_reach_the_caller() -> None:
    workers = Workers(2, "t")

    def fail() -> None:
        raise OSError(28, "No space left on device")

    async def main() -> None:
        assert await workers.run(lambda a, b: a + b, 2, 3) == 5
        assert await workers.run(threading.current_thread) is not threading.current_thread()
        with pytest.raises(OSError) as failed:
            await workers.run(fail)
        assert failed.value.errno == 28
        assert await offload(sum, [1, 2, 3]) == 6
    asyncio.run(main())


def test_at_most_size_jobs_run_at_once_on_threads_started_as_needed() -> None:
    workers = Workers(3, "t")
    running, most, lock, go = [0], [0], threading.Lock(), threading.Event()

    def job(n: int) -> int:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        assert go.wait(10)
        with lock:
            running[0] -= 1
        return n

    async def main() -> list[int]:
        tasks = [asyncio.ensure_future(workers.run(job, n)) for n in range(10)]
        while most[0] < 3:
            await asyncio.sleep(0.001)
        go.set()
        return await asyncio.gather(*tasks)
    assert asyncio.run(main()) == list(range(10))
    assert most[0] == 3 and workers.threads == 3

    async def one_at_a_time() -> None:
        for n in range(20):
            assert await workers.run(int, n) == n
    asyncio.run(one_at_a_time())
    assert workers.threads == 3   # idle threads take the next jobs


async def _busy_and_queued(workers: Workers, gate: threading.Event, ran: list[str]
                           ) -> tuple[asyncio.Future[bool], asyncio.Future[None]]:
    """A job holding the pool's one thread until `gate` is set, and one queued behind it."""
    blocker = asyncio.ensure_future(workers.run(gate.wait, 10))
    queued = asyncio.ensure_future(workers.run(ran.append, "queued"))
    await asyncio.sleep(0.01)
    return blocker, queued


def test_a_caller_cancelled_before_its_job_starts_cancels_the_job() -> None:
    workers = Workers(1, "t")
    gate, ran = threading.Event(), list[str]()

    async def main() -> None:
        blocker, queued = await _busy_and_queued(workers, gate, ran)
        queued.cancel()
        gate.set()
        assert await blocker is True
        assert await workers.run(ran.append, "next") is None
    asyncio.run(main())
    assert ran == ["next"]


@pytest.mark.parametrize("cancel_queued", [False, True])
def test_shutdown_refuses_new_jobs_and_runs_or_cancels_the_queued_ones(cancel_queued: bool) -> None:
    workers = Workers(1, "t")
    gate, ran = threading.Event(), list[str]()

    async def main() -> None:
        blocker, queued = await _busy_and_queued(workers, gate, ran)
        workers.shutdown(cancel_queued=cancel_queued)
        with pytest.raises(RuntimeError, match="shut down"):
            await workers.run(ran.append, "after")
        gate.set()
        assert await blocker is True   # the running job ends as it would
        if cancel_queued:
            with pytest.raises(asyncio.CancelledError):
                await queued
        else:
            await queued
    asyncio.run(main())
    assert ran == ([] if cancel_queued else ["queued"])


def test_a_job_that_ends_after_its_loop_closed_leaves_the_thread_working() -> None:
    workers = Workers(1, "t")
    started, gate = threading.Event(), threading.Event()

    def slow() -> str:
        started.set()
        assert gate.wait(10)
        return "late"

    async def abandon() -> None:
        task = asyncio.ensure_future(workers.run(slow))
        await asyncio.sleep(0)
        assert await asyncio.to_thread(started.wait, 10)
        task.cancel()
    asyncio.run(abandon())   # closes its loop with the job still running
    gate.set()

    async def again() -> str:
        return await workers.run(str, "still here")
    assert asyncio.run(again()) == "still here"
