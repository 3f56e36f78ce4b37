"""The work queue: dedupe, one worker per key at a time, delays, rate-limited backoff."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

import pytest

from controller.queue import (
    DONE,
    ItemExponentialBackoff,
    QueueShutDown,
    RateLimiter,
    Result,
    TokenBucket,
    WorkQueue,
    run_workers,
)
from tests.waiting import eventually


async def wait_until(cond: Callable[[], Any], within: float = 5.0) -> None:
    await eventually(cond, within, poll=0.001)


async def test_adds_before_processing_are_deduplicated() -> None:
    q: WorkQueue[str] = WorkQueue("t")
    for _ in range(5):
        q.add("a")
    q.add("b")
    assert len(q) == 2
    assert await q.get() == "a"
    assert await q.get() == "b"
    q.done("a")
    q.done("b")
    assert len(q) == 0


async def test_key_re_added_while_processing_is_processed_again_after_done() -> None:
    q: WorkQueue[str] = WorkQueue("t")
    q.add("a")
    key = await q.get()
    q.add("a")
    q.add("a")
    assert len(q) == 0, "a key being processed must not be handed to another worker"
    q.done(key)
    assert len(q) == 1
    assert await q.get() == "a"
    q.done("a")
    assert len(q) == 0


async def test_never_two_workers_on_one_key() -> None:
    q: WorkQueue[str] = WorkQueue("t")
    in_flight: set[str] = set()
    overlaps = 0
    runs: dict[str, int] = {}
    release = asyncio.Event()

    async def reconcile(key: str) -> Result:
        nonlocal overlaps
        if key in in_flight:
            overlaps += 1
        in_flight.add(key)
        runs[key] = runs.get(key, 0) + 1
        if runs[key] == 1:
            await release.wait()  # hold the first run while the key is re-added
        in_flight.discard(key)
        return DONE

    q.add("k")
    workers = asyncio.create_task(run_workers(q, reconcile, 4))
    await wait_until(lambda: runs.get("k") == 1)
    for _ in range(10):
        q.add("k")
    release.set()
    await wait_until(lambda: runs.get("k") == 2)
    await wait_until(lambda: not in_flight and len(q) == 0)
    q.shut_down()
    await asyncio.wait_for(workers, 5)
    assert overlaps == 0
    assert runs["k"] == 2, "ten re-adds during processing collapse into one more run"


async def test_add_after_keeps_the_earliest_time() -> None:
    q: WorkQueue[str] = WorkQueue("t")
    q.add_after("a", 60.0)
    q.add_after("a", 0.01)
    q.add_after("a", 30.0)
    got = await asyncio.wait_for(q.get(), 2.0)
    assert got == "a"


def test_exponential_backoff_doubles_from_5ms_to_the_cap() -> None:
    b: ItemExponentialBackoff[str] = ItemExponentialBackoff()
    delays = [b.when("x") for _ in range(20)]
    assert delays[:4] == pytest.approx([0.005, 0.01, 0.02, 0.04])
    assert delays[-1] == 1000.0
    assert b.num_requeues("x") == 20
    assert b.when("y") == pytest.approx(0.005), "backoff is per key"
    b.forget("x")
    assert b.when("x") == pytest.approx(0.005)


def test_token_bucket_limits_overall_rate() -> None:
    now = [100.0]
    bucket = TokenBucket(qps=10, burst=3, clock=lambda: now[0])
    assert [bucket.reserve() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.reserve() == pytest.approx(0.1)
    now[0] += 1.0
    assert bucket.reserve() == 0.0


def test_rate_limiter_takes_the_larger_delay() -> None:
    now = [0.0]
    rl: RateLimiter[str] = RateLimiter(ItemExponentialBackoff(0.005, 1000), TokenBucket(1, 1, lambda: now[0]))
    assert rl.when("a") == pytest.approx(0.005)  # a token is available: per-item backoff wins
    assert rl.when("b") == pytest.approx(1.0)  # bucket empty: the overall limit wins


async def test_failures_are_retried_with_backoff_and_success_forgets() -> None:
    q: WorkQueue[str] = WorkQueue("t")
    attempts: list[float] = []
    loop = asyncio.get_running_loop()

    async def reconcile(key: str) -> Result:
        attempts.append(loop.time())
        if len(attempts) < 4:
            raise RuntimeError("not yet")
        return DONE

    q.add("k")
    workers = asyncio.create_task(run_workers(q, reconcile, 2))
    await wait_until(lambda: len(attempts) == 4)
    await wait_until(lambda: q.num_requeues("k") == 0)
    q.shut_down()
    await asyncio.wait_for(workers, 5)
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    # 5 ms, 10 ms, 20 ms (timer slack allowed upward only)
    assert gaps[0] >= 0.004 and gaps[1] >= 0.009 and gaps[2] >= 0.019
    assert gaps[2] > gaps[0]


async def test_requeue_after_schedules_a_later_run() -> None:
    q: WorkQueue[str] = WorkQueue("t")
    runs = 0

    async def reconcile(key: str) -> Result:
        nonlocal runs
        runs += 1
        return Result(requeue_after=0.02) if runs == 1 else DONE

    q.add("k")
    workers = asyncio.create_task(run_workers(q, reconcile, 1))
    await wait_until(lambda: runs == 2)
    q.shut_down()
    await asyncio.wait_for(workers, 5)


async def test_shut_down_wakes_waiting_workers() -> None:
    q: WorkQueue[str] = WorkQueue("t")
    getter = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    q.shut_down()
    with pytest.raises(QueueShutDown):
        await asyncio.wait_for(getter, 2)
    q.add("late")
    assert len(q) == 0
