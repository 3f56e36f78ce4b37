"""Key-value, prefixes, batched commits and transactions against a real etcd."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from dpfd.store import (
    MAX_TXN_OPS,
    Compacted,
    Compare,
    Delete,
    Put,
    Store,
    StoreError,
    StoreUnavailable,
)

Etcdctl = Callable[..., Awaitable[bytes]]


async def test_put_get_delete(store: Store) -> None:
    assert await store.get("/t/missing") is None
    rev1 = await store.put("/t/a", b"one")
    kv = await store.get("/t/a")
    assert kv is not None
    assert (kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version) == (
        "/t/a",
        b"one",
        rev1,
        rev1,
        1,
    )
    rev2 = await store.put("/t/a", "two")  # str values are stored as UTF-8
    kv = await store.get("/t/a")
    assert kv is not None and kv.value == b"two" and kv.mod_revision == rev2 > rev1 and kv.version == 2
    assert kv.create_revision == rev1
    assert await store.delete("/t/a") is True
    assert await store.delete("/t/a") is False
    assert await store.get("/t/a") is None


async def test_data_written_is_visible_to_etcdctl(store: Store, etcdctl: Etcdctl) -> None:
    await store.put("/t/ctl", "from-dpf")
    out = await etcdctl(store.endpoint, "get", "/t/ctl", "--print-value-only")
    assert out.strip() == b"from-dpf"


async def test_prefix_is_sorted_paginated_and_exact(store: Store) -> None:
    keys = [f"/t/p/{i:05d}" for i in range(2500)]
    await store.commit([Put(k, k) for k in reversed(keys)])
    await store.put("/t/p", "not under the prefix /t/p/")
    await store.put("/t/p0", "nor this")
    before = store.stats.ranges
    kvs, rev = await store.get_prefix("/t/p/")
    assert [kv.key for kv in kvs] == keys
    assert all(kv.value == kv.key.encode() for kv in kvs)
    assert store.stats.ranges - before == 3  # 1,000 keys a page
    assert rev == await store.revision()
    assert await store.delete_prefix("/t/p/") == 2500
    assert (await store.get_prefix("/t/p/"))[0] == []
    assert await store.get("/t/p") is not None


async def test_commit_batches_1000_ops_into_full_txns(store: Store) -> None:
    before = (store.stats.txns, store.stats.txn_ops)
    last = await store.commit([Put(f"/t/b/{i:04d}", str(i)) for i in range(1000)])
    txns, ops = store.stats.txns - before[0], store.stats.txn_ops - before[1]
    assert txns == -(-1000 // MAX_TXN_OPS) == 8
    assert ops == 1000
    kvs, rev = await store.get_prefix("/t/b/")
    assert len(kvs) == 1000 and rev == last
    # Each txn is atomic: the 1,000 keys landed in exactly 8 revisions.
    assert len({kv.mod_revision for kv in kvs}) == 8


async def test_commit_keeps_order_of_writes_to_the_same_key(store: Store) -> None:
    # Rewrites of one key (and a prefix delete) must land in order even though batches are pipelined.
    ops: list[Put | Delete] = []
    for round_ in range(5):
        ops += [Put(f"/t/o/{i:03d}", f"{round_}") for i in range(150)]
    ops += [Delete("/t/o/", prefix=True), Put("/t/o/000", "after-delete")]
    ops += [Put("/t/o/001", "a"), Put("/t/o/001", "b"), Delete("/t/o/002"), Put("/t/o/002", "c")]
    await store.commit(ops)
    kvs, _ = await store.get_prefix("/t/o/")
    assert {kv.key: kv.value for kv in kvs} == {
        "/t/o/000": b"after-delete",
        "/t/o/001": b"b",
        "/t/o/002": b"c",
    }


async def test_empty_commit_returns_current_revision(store: Store) -> None:
    rev = await store.put("/t/e", "x")
    assert await store.commit([]) == rev


async def test_txn_compares(store: Store) -> None:
    created = await store.put("/t/x", "v1")
    ok = await store.txn(
        [
            Compare.create_revision("/t/x", "=", created),
            Compare.mod_revision("/t/x", "<", created + 1),
            Compare.version("/t/x", ">", 0),
            Compare.value("/t/x", "=", b"v1"),
            Compare.create_revision("/t/absent", "=", 0),
        ],
        [Put("/t/x", "v2"), Put("/t/y", "y")],
        [Put("/t/failed", "1")],
    )
    assert ok.succeeded and ok.revision == created + 1
    assert (await store.get("/t/y")) is not None
    bad = await store.txn([Compare.value("/t/x", "!=", b"v2")], [Delete("/t/x")], [Put("/t/failed", "1")])
    assert not bad.succeeded
    assert (await store.get("/t/x")) is not None
    assert (await store.get("/t/failed")) is not None


async def test_txn_rejects_too_many_ops_with_a_clear_error(store: Store) -> None:
    with pytest.raises(StoreError, match="129 ops; etcd allows at most 128"):
        await store.txn([], [Put(f"/t/m/{i}", "x") for i in range(MAX_TXN_OPS + 1)])
    with pytest.raises(ValueError, match="op '=='"):
        Compare.version("/t/k", "==", 1)


async def test_compact_then_reading_old_history_fails(store: Store) -> None:
    first = await store.put("/t/c", "1")
    await store.put("/t/c", "2")
    await store.compact(first + 1)
    with pytest.raises(Compacted):
        await store.compact(first)


async def test_connect_fails_clearly_when_nothing_listens() -> None:
    from dpfd.sim.ports import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(StoreUnavailable, match="no etcd member answered"):
        await Store.connect([dead], dial_timeout=0.5)


def test_batch_plan_splits_where_etcd_would_reject_a_txn() -> None:
    from dpfd.store.batching import plan_batches

    ops: list[Put | Delete] = [Put("/a", "1"), Put("/b", "1"), Put("/a", "2")]  # /a twice: a new txn
    ops += [Delete("/p/", prefix=True), Put("/p/x", "1"), Delete("/q")]  # a put under that delete: new txn
    plan = plan_batches(ops, max_ops=128)
    assert [[o.key for o in b.ops] for b in plan] == [["/a", "/b"], ["/a", "/p/"], ["/p/x", "/q"]]
    # Overlap is symmetric, so a later batch waits for an earlier one whichever side holds the prefix.
    assert plan[1].overlaps(plan[2]) and plan[2].overlaps(plan[1])
    assert plan[0].overlaps(plan[1]) and not plan[0].overlaps(plan[2])
    assert [len(b.ops) for b in plan_batches([Put(f"/k{i}", "") for i in range(300)])] == [128, 128, 44]
