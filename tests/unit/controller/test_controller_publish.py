"""IntentPublisher against a real etcd: diffs only, batched transactions, reload on restart, fencing."""

from __future__ import annotations

import json

import pytest

from controller.publish import FenceLost, IntentPublisher
from dpfd.api.intents import Intent, ObjectRef
from dpfd.store import Compare, Store
from dpfd.store import keys as store_keys


def dpu(i: int, generation: int = 1, node: str | None = None) -> tuple[ObjectRef, Intent]:
    ref = ObjectRef(kind="DPU", namespace="dpf", name=f"host-{i:04d}-0000-03-00")
    intent = Intent(
        node=node or f"host-{i:04d}",
        ref=ref,
        uid=f"uid-{i}",
        generation=generation,
        spec={"bfb": "bf-bundle", "nodeName": node or f"host-{i:04d}"},
    )
    return ref, intent


async def intents_in_etcd(store: Store) -> dict[str, dict[str, object]]:
    kvs, _ = await store.get_prefix(store_keys.intents_prefix())
    return {kv.key: json.loads(kv.value) for kv in kvs}


async def test_thousand_intents_take_at_most_eight_transactions(etcd_endpoints: list[str]) -> None:
    async with await Store.connect(etcd_endpoints) as store:
        pub = IntentPublisher(store)
        await pub.start()
        before = store.stats.txns
        for i in range(1000):
            ref, intent = dpu(i)
            pub.declare(ref, [intent])
        await pub.wait_flushed()
        assert store.stats.txns - before <= 8
        assert pub.stats.puts == 1000
        stored = await intents_in_etcd(store)
        assert len(stored) == 1000
        _, sample = dpu(7)
        assert stored[store_keys.intent_key(sample.node, sample.ref)] == json.loads(sample.model_dump_json())
        await pub.stop()


async def test_only_changes_are_written(etcd_endpoints: list[str]) -> None:
    async with await Store.connect(etcd_endpoints) as store:
        pub = IntentPublisher(store)
        await pub.start()
        for i in range(10):
            pub.declare(*_one(dpu(i)))
        await pub.wait_flushed()
        puts_before, txns_before = pub.stats.puts, store.stats.txns
        for i in range(10):  # the same declarations again: nothing to write
            pub.declare(*_one(dpu(i)))
        await pub.wait_flushed()
        assert pub.stats.puts == puts_before and store.stats.txns == txns_before
        pub.declare(*_one(dpu(3, generation=2)))  # one changed
        pub.declare(dpu(4)[0], [])  # one vanished
        await pub.wait_flushed()
        assert pub.stats.puts == puts_before + 1 and pub.stats.deletes == 1
        assert store.stats.txns == txns_before + 1, "both changes go in one transaction"
        stored = await intents_in_etcd(store)
        assert len(stored) == 9
        _, changed = dpu(3)
        assert stored[store_keys.intent_key(changed.node, changed.ref)]["generation"] == 2
        await pub.stop()


async def test_moving_an_intent_to_another_node_deletes_the_old_key(etcd_endpoints: list[str]) -> None:
    async with await Store.connect(etcd_endpoints) as store:
        pub = IntentPublisher(store)
        await pub.start()
        ref, intent = dpu(1, node="node-a")
        pub.declare(ref, [intent])
        await pub.wait_flushed()
        _, moved = dpu(1, node="node-b")
        pub.declare(ref, [moved])
        await pub.wait_flushed()
        assert list(await intents_in_etcd(store)) == [store_keys.intent_key("node-b", ref)]
        await pub.stop()


async def test_restart_loads_existing_intents_and_writes_nothing_unchanged(etcd_endpoints: list[str]) -> None:
    async with await Store.connect(etcd_endpoints) as store:
        first = IntentPublisher(store)
        await first.start()
        for i in range(300):
            first.declare(*_one(dpu(i)))
        await first.stop()  # flushes

        second = IntentPublisher(store)
        await second.start()
        assert len(second.sources("DPU")) == 300
        txns_before = store.stats.txns
        for i in range(300):
            second.declare(*_one(dpu(i)))
        await second.wait_flushed()
        assert store.stats.txns == txns_before and second.stats.puts == 0
        # A source that no longer exists is cleaned up by declaring it empty.
        second.declare(dpu(0)[0], [])
        await second.wait_flushed()
        assert second.stats.deletes == 1 and len(await intents_in_etcd(store)) == 299
        await second.stop()


async def test_fence_stops_a_deposed_writer(etcd_endpoints: list[str]) -> None:
    async with await Store.connect(etcd_endpoints) as store:
        await store.put("/test/leader", "me")
        kv = await store.get("/test/leader")
        assert kv is not None
        fence = [Compare.create_revision("/test/leader", "=", kv.create_revision)]
        pub = IntentPublisher(store, fence=lambda: fence)
        await pub.start()
        pub.declare(*_one(dpu(1)))
        await pub.wait_flushed()
        assert len(await intents_in_etcd(store)) == 1
        await store.delete("/test/leader")  # leadership gone
        pub.declare(*_one(dpu(2)))
        with pytest.raises(FenceLost):
            await pub.wait_flushed()
        assert len(await intents_in_etcd(store)) == 1, "nothing written once the fence fails"
        assert pub.stopped.is_set()
        await pub.stop()


def _one(pair: tuple[ObjectRef, Intent]) -> tuple[ObjectRef, list[Intent]]:
    return pair[0], [pair[1]]
