"""Two controller replicas: only the leader publishes; a standby takes over when the leader goes."""

from __future__ import annotations

import asyncio

from controller_harness import (
    KubeEnv,
    dpuset_obj,
    intents,
    kube,
    node_obj,
    start_replica,
    store,
    wait_until,
)

from dpfd.store import Store
from dpfd.store.keys import election_prefix

__all__ = ["kube", "store"]  # fixtures

TTL = 3.0


async def _candidates(store: Store, n: int) -> bool:
    kvs, _ = await store.get_prefix(election_prefix("controller"))
    return len(kvs) == n


async def leader_lease(store: Store) -> int:
    kvs, _ = await store.get_prefix(election_prefix("controller"))
    leader = min(kvs, key=lambda kv: kv.create_revision)
    return leader.lease


async def test_only_the_leader_publishes_and_a_standby_takes_over(
    kube: KubeEnv, store: Store, etcd_endpoints: list[str]
) -> None:
    await kube.server.apply_object(node_obj("worker-0"))
    a = await start_replica(kube, etcd_endpoints, "a", lease_ttl=TTL)
    await wait_until(lambda: a.elector.is_leader, what="a leads")
    b = await start_replica(kube, etcd_endpoints, "b", lease_ttl=TTL)
    try:
        # The standby's one write is its candidacy key; count its writes from there on.
        await wait_until(lambda: _candidates(store, 2), what="b is a candidate")
        await wait_until(lambda: b.controller.store.stats.txns >= 1, what="b saw its candidacy written")
        b_txns = b.controller.store.stats.txns
        await kube.server.apply_object(dpuset_obj())
        await wait_until(lambda: _count(store, 1), what="intent written")
        assert a.controller.work is not None and a.controller.work.publisher.stats.puts == 1
        assert not b.elector.is_leader and b.controller.work is None
        assert b.controller.store.stats.txns == b_txns, "the standby wrote nothing"
        assert len(b.controller.dpus) == 1, "the standby keeps warm caches"

        # Kill the leader's session: its candidacy key goes with the lease.
        loop = asyncio.get_running_loop()
        await store.revoke(await leader_lease(store))
        killed_at = loop.time()
        await wait_until(lambda: b.elector.is_leader, within=TTL, what="b takes over within the TTL")
        took = loop.time() - killed_at
        await wait_until(lambda: not a.controller.work, within=TTL, what="a stops working")
        assert took < TTL

        # The new leader does the work: a new node gets its DPU and intent.
        await kube.server.apply_object(node_obj("worker-1"))
        await wait_until(lambda: _count(store, 2), what="the new leader publishes")
        assert b.controller.work is not None and b.controller.work.publisher.stats.puts >= 1
    finally:
        await b.stop()
        await a.stop()


async def test_a_stopped_leader_hands_over_at_once(kube: KubeEnv, store: Store, etcd_endpoints: list[str]) -> None:
    await kube.server.apply_object(node_obj("worker-0"))
    a = await start_replica(kube, etcd_endpoints, "a", lease_ttl=10.0)
    await wait_until(lambda: a.elector.is_leader, what="a leads")
    b = await start_replica(kube, etcd_endpoints, "b", lease_ttl=10.0)
    try:
        await kube.server.apply_object(dpuset_obj())
        await wait_until(lambda: _count(store, 1), what="intent written")
        loop = asyncio.get_running_loop()
        stopped_at = loop.time()
        await a.stop()  # flushes and resigns: no waiting for the 10 s lease
        await wait_until(lambda: b.elector.is_leader, within=3.0, what="b leads right after a resigns")
        assert loop.time() - stopped_at < 3.0
        # The new leader loaded the intents a wrote and rewrites none of them.
        work = await wait_until(lambda: b.controller.work, what="b's term started")
        await work.publisher.wait_flushed()
        dpu_queue = work.provisioning.dpu.queue
        await wait_until(lambda: dpu_queue.processed >= 1 and dpu_queue.idle(), what="b reconciled the DPU")
        await work.publisher.wait_flushed()
        assert work.publisher.stats.puts == 0
        assert len(await intents(store)) == 1
    finally:
        await b.stop()
        await a.stop()


async def _count(store: Store, n: int) -> bool:
    return len(await intents(store)) == n
