"""KeyedRunner: per-key serialisation, coalescing, delayed kicks, bounded stop, shared limits."""

from __future__ import annotations

import asyncio
from collections import defaultdict

from dpfd.agent.keyed_runner import KeyedRunner, outside_slot
from tests.waiting import eventually


class Work:
    """Work whose runs block until released, recording overlap per key."""

    def __init__(self) -> None:
        self.release: dict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self.started: dict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self.runs: dict[str, int] = defaultdict(int)
        self.active: dict[str, int] = defaultdict(int)
        self.max_active: dict[str, int] = defaultdict(int)
        self.total_active = 0
        self.max_total = 0

    async def __call__(self, key: str) -> None:
        self.runs[key] += 1
        self.active[key] += 1
        self.total_active += 1
        self.max_active[key] = max(self.max_active[key], self.active[key])
        self.max_total = max(self.max_total, self.total_active)
        self.started[key].set()
        try:
            await self.release[key].wait()
        finally:
            self.active[key] -= 1
            self.total_active -= 1


async def wait_idle(r: KeyedRunner[str]) -> None:
    await asyncio.wait_for(r.wait_idle(), 5)


async def test_changes_during_a_run_queue_exactly_one_more() -> None:
    work = Work()
    r: KeyedRunner[str] = KeyedRunner(work, concurrency=4)
    r.kick("a")
    await asyncio.wait_for(work.started["a"].wait(), 5)
    for _ in range(10):
        r.kick("a")
    assert r.is_running("a")
    work.release["a"].set()
    await wait_idle(r)
    assert work.runs["a"] == 2
    assert work.max_active["a"] == 1


async def test_keys_run_in_parallel_up_to_the_limit() -> None:
    work = Work()
    r: KeyedRunner[str] = KeyedRunner(work, concurrency=2)
    for k in "abcd":
        r.kick(k)
    await asyncio.wait_for(asyncio.gather(work.started["a"].wait(), work.started["b"].wait()), 5)
    assert work.total_active == 2 and not work.started["c"].is_set()
    for k in "abcd":
        work.release[k].set()
    await wait_idle(r)
    assert work.max_total == 2 and all(work.runs[k] == 1 for k in "abcd")


async def test_shared_semaphore_bounds_runners_together() -> None:
    work = Work()
    sem = asyncio.Semaphore(1)
    r1: KeyedRunner[str] = KeyedRunner(work, concurrency=sem)
    r2: KeyedRunner[str] = KeyedRunner(work, concurrency=sem)
    r1.kick("a")
    r2.kick("b")
    await asyncio.wait_for(work.started["a"].wait(), 5)
    work.release["a"].set()
    await asyncio.wait_for(work.started["b"].wait(), 5)
    work.release["b"].set()
    await wait_idle(r1)
    await wait_idle(r2)
    assert work.max_total == 1


async def test_kick_after_fires_once_and_can_be_cancelled() -> None:
    work = Work()
    work.release["a"].set()
    work.release["b"].set()
    r: KeyedRunner[str] = KeyedRunner(work)
    r.kick_after("a", 0.01)
    r.kick_after("a", 0.01)  # already pending: ignored
    r.kick_after("b", 0.01)
    r.cancel_delayed("b")
    assert r.has_delayed("a") and not r.has_delayed("b")
    await asyncio.wait_for(work.started["a"].wait(), 5)
    await wait_idle(r)
    assert work.runs == {"a": 1}


async def test_stop_waits_for_running_work_then_cancels() -> None:
    work = Work()
    r: KeyedRunner[str] = KeyedRunner(work)
    r.kick("quick")
    r.kick("stuck")
    await asyncio.wait_for(asyncio.gather(work.started["quick"].wait(), work.started["stuck"].wait()), 5)
    asyncio.get_running_loop().call_soon(work.release["quick"].set)
    assert await r.stop(grace=0.2) is False  # "stuck" never finishes: cancelled after the grace
    assert work.active["stuck"] == 0 and r.busy == 0
    r.kick("late")
    assert r.busy == 0, "a stopped runner took new work"


async def test_a_crashing_work_does_not_wedge_its_key() -> None:
    calls = 0

    async def boom(key: str) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("bug")

    r: KeyedRunner[str] = KeyedRunner(boom)
    r.kick("a")
    await wait_idle(r)
    r.kick("a")
    await wait_idle(r)
    assert calls == 2


async def test_stop_does_not_start_queued_work() -> None:
    work = Work()
    r: KeyedRunner[str] = KeyedRunner(work, concurrency=1)
    r.kick("running")
    r.kick("queued")  # waits for the only slot
    await asyncio.wait_for(work.started["running"].wait(), 5)
    asyncio.get_running_loop().call_soon(work.release["running"].set)
    assert await r.stop(grace=5.0) is True
    assert work.runs == {"running": 1}


async def test_work_waiting_outside_its_slot_lets_other_keys_run() -> None:
    gate = asyncio.Event()
    order: list[str] = []
    active = 0
    peak = 0

    async def work(key: str) -> None:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        order.append(f"start {key}")
        active -= 1
        await outside_slot(gate.wait())  # all four wait here at once although the limit is one
        active += 1
        peak = max(peak, active)
        order.append(f"end {key}")
        active -= 1

    r: KeyedRunner[str] = KeyedRunner(work, concurrency=1)
    for k in "abcd":
        r.kick(k)
    await eventually(lambda: len(order) == 4, within=5, what="every key started while the first waits")
    assert order == [f"start {k}" for k in "abcd"]
    gate.set()
    await wait_idle(r)
    assert sorted(order[4:]) == [f"end {k}" for k in "abcd"] and peak == 1


async def test_outside_slot_without_a_runner_just_awaits() -> None:
    async def seven() -> int:
        return 7

    assert await outside_slot(seven()) == 7
