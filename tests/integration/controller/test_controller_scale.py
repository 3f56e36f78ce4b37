"""A DPUSet over 1,000 nodes: DPUs and intents arrive quickly, in few etcd transactions."""

from __future__ import annotations

import asyncio

from controller_harness import KubeEnv, dpuset_obj, intents, kube, node_obj, start_replica, store, wait_until

from dpfd.store import Store

__all__ = ["kube", "store"]  # fixtures

NODES = 1000
# Generous for a shared 2-core machine (about 1-2 s when it is quiet); a per-object sleep or an O(n²)
# loop would blow through it.
DEADLINE = 20.0


async def test_thousand_dpus_reach_etcd_batched(kube: KubeEnv, store: Store, etcd_endpoints: list[str]) -> None:
    for i in range(NODES):
        await kube.server.apply_object(node_obj(f"host-{i:04d}", ip=f"10.1.{i // 250}.{i % 250 + 1}"))
    replica = await start_replica(kube, etcd_endpoints)
    try:
        work = await wait_until(lambda: replica.controller.work, what="leading")
        txns_before = replica.controller.store.stats.txns
        loop = asyncio.get_running_loop()
        started = loop.time()
        await kube.server.apply_object(dpuset_obj())

        async def all_intents() -> bool:
            return len(await intents(store)) == NODES

        await wait_until(all_intents, within=DEADLINE, what=f"{NODES} intents")
        took = loop.time() - started
        assert len(kube.dpus()) == NODES
        txns = replica.controller.store.stats.txns - txns_before
        assert work.publisher.stats.puts == NODES, "each intent written once"
        assert txns <= NODES // 10, f"intents should be batched, got {txns} transactions"
        print(f"{NODES} DPUs to intents in {took:.2f}s, {txns} etcd transactions")

        # A template change touching every DPU: patched in Kubernetes, then every intent updated.
        await kube.server.apply_object(dpuset_obj(node_labels={"role": "worker", "rack": "r1"}))

        async def all_updated() -> bool:
            got = await intents(store)
            return sum(b'"rack":"r1"' in v for v in got.values()) == NODES

        await wait_until(all_updated, within=DEADLINE, what="every intent updated")
    finally:
        await replica.stop()
