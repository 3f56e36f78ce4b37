"""Lock (exclusion and fencing) and Semaphore (limit) against a real etcd."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from dpfd.store import Lock, Put, Semaphore, SessionLost, Store, StoreError
from dpfd.store.keys import lock_key

Eventually = Callable[[Callable[[], Awaitable[bool]], float, str], Awaitable[None]]


async def test_lock_excludes_and_hands_over_in_turn(store: Store) -> None:
    sessions = [await store.session(ttl=5) for _ in range(4)]
    inside: list[int] = []
    most = 0
    tokens: list[int] = []

    async def worker(i: int) -> None:
        nonlocal most
        lock = Lock(store, sessions[i], "exclusive", holder=f"w{i}")
        for _ in range(3):
            token = await lock.acquire(timeout=10)
            tokens.append(token)
            inside.append(i)
            most = max(most, len(inside))
            kv = await store.get(lock_key("exclusive"))
            assert kv is not None and kv.value == f"w{i}".encode() and kv.create_revision == token
            await asyncio.sleep(0)  # let the others try while we hold it
            inside.remove(i)
            await lock.release()

    await asyncio.gather(*(worker(i) for i in range(4)))
    assert most == 1
    assert len(tokens) == 12 and tokens == sorted(tokens) and len(set(tokens)) == 12  # fencing tokens only grow
    for s in sessions:
        await s.close()


async def test_try_acquire_and_timeout(store: Store) -> None:
    a, b = await store.session(ttl=5), await store.session(ttl=5)
    lock_a, lock_b = Lock(store, a, "try"), Lock(store, b, "try")
    token = await lock_a.try_acquire()
    assert token is not None and lock_a.token == token
    assert await lock_a.try_acquire() == token  # already ours
    assert await lock_b.try_acquire() is None
    with pytest.raises(TimeoutError):
        await lock_b.acquire(timeout=0.3)
    await lock_a.release()
    assert await lock_b.acquire(timeout=2) > token
    await a.close()
    await b.close()


async def test_stale_holder_cannot_write_after_the_lock_passed_on(store: Store) -> None:
    old_session, new_session = await store.session(ttl=5), await store.session(ttl=5)
    stale = Lock(store, old_session, "fenced", holder="stale")
    fresh = Lock(store, new_session, "fenced", holder="fresh")
    await stale.acquire()
    assert await stale.fenced_commit([Put("/l/data", "by stale, while holding")])
    waiter = asyncio.create_task(fresh.acquire(timeout=10))
    # The old holder stalls past its lease (as in a GC or VM pause): etcd drops the lease and the key.
    assert await store.revoke(old_session.lease_id)
    new_token = await waiter
    assert stale.token is not None and new_token > stale.token
    # The stale holder still believes it holds the lock; its fenced writes must not land.
    assert not await stale.fenced_commit([Put("/l/data", "by stale, after losing it")])
    assert await fresh.fenced_commit([Put("/l/data", "by fresh")])
    kv = await store.get("/l/data")
    assert kv is not None and kv.value == b"by fresh"
    # Releasing a lock that passed on must not free the new holder's lock.
    await stale.release()
    assert (kv := await store.get(lock_key("fenced"))) is not None and kv.value == b"fresh"
    with pytest.raises(StoreError, match="not held"):
        stale.fence()
    await new_session.close()
    await old_session.close()


async def test_acquire_gives_up_when_the_session_is_lost(store: Store) -> None:
    holder, waiter_session = await store.session(ttl=5), await store.session(ttl=2)
    await Lock(store, holder, "lost").acquire()
    waiting = asyncio.create_task(Lock(store, waiter_session, "lost").acquire())
    await store.revoke(waiter_session.lease_id)
    with pytest.raises(SessionLost):
        await asyncio.wait_for(waiting, timeout=3)
    await holder.close()


async def test_semaphore_admits_limit_holders_in_arrival_order(store: Store, eventually: Eventually) -> None:
    sessions = [await store.session(ttl=5) for _ in range(4)]
    sems = [Semaphore(store, sessions[i], "rollout", limit=2, holder=f"w{i}") for i in range(4)]
    await sems[0].acquire()
    await sems[1].acquire()
    waiting = []
    for i in (2, 3):  # one after the other, so that the arrival order is known
        waiting.append(asyncio.create_task(sems[i].acquire(timeout=10)))

        async def queued(n: int = i + 1) -> bool:
            return len((await store.get_prefix("/dpf/v1/semaphores/rollout/"))[0]) == n

        await eventually(queued, 5, f"w{i} to queue")
    assert not any(t.done() for t in waiting)
    assert await sems[0].holders() == ["w0", "w1"]
    await sems[0].release()
    done, _ = await asyncio.wait(waiting, timeout=5, return_when=asyncio.FIRST_COMPLETED)
    assert done == {waiting[0]}  # first come, first served
    assert await sems[0].holders() == ["w1", "w2"]
    await sems[1].release()
    await asyncio.wait_for(waiting[1], 5)
    assert await sems[0].holders() == ["w2", "w3"]
    for s in sessions:
        await s.close()
    assert await sems[0].holders() == []


async def test_semaphore_never_exceeds_its_limit_under_contention(store: Store) -> None:
    sessions = [await store.session(ttl=5) for _ in range(6)]
    inside = 0
    most = 0

    async def worker(i: int) -> None:
        nonlocal inside, most
        for _ in range(3):
            async with Semaphore(store, sessions[i], "busy", limit=2):
                inside += 1
                most = max(most, inside)
                await store.put(f"/l/work/{i}", "x")  # a real round trip while holding it
                inside -= 1

    await asyncio.wait_for(asyncio.gather(*(worker(i) for i in range(6))), 20)
    assert 1 <= most <= 2
    for s in sessions:
        await s.close()


async def test_semaphore_timeout_gives_up_the_place(store: Store) -> None:
    a, b = await store.session(ttl=5), await store.session(ttl=5)
    held = Semaphore(store, a, "one", limit=1)
    await held.acquire()
    with pytest.raises(TimeoutError):
        await Semaphore(store, b, "one", limit=1).acquire(timeout=0.3)
    kvs, _ = await store.get_prefix("/dpf/v1/semaphores/one/")
    assert [kv.lease for kv in kvs] == [a.lease_id]
    await held.release()
    await a.close()
    await b.close()
