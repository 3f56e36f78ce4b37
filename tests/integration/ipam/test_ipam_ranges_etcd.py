"""Per-node IPAM ranges in real etcd: concurrent writers (tasks and another process) never share a range."""

from __future__ import annotations

import asyncio
from ipaddress import IPv4Network

import pytest

from controller.ipam.plan import PoolExhausted
from controller.ipam.reconciler import IpamReconciler
from dpfd.api.chains import DPUServiceIPAMSpec
from dpfd.store import Store
from dpfd.store.ipam_addrs import Addresses
from dpfd.store.ipam_ranges import PoolRanges, check_disjoint
from dpfd.store.ipam_types import IpamError, NoRange
from tests.integration.ipam.claims import claim_subnets, node_range
from tests.integration.ipam.conftest import Contender


async def test_tasks_and_another_process_never_get_the_same_range(
    store: Store, etcd_endpoints: list[str], contenders: list[Contender]
) -> None:
    other = await Contender.start(etcd_endpoints[0], "ranges", "pool-a", "proc-", "10")
    contenders.append(other)
    other.go()
    # 16 /28s in the /24 and 22 claimants: 16 win, 6 find it full, none shares
    ours, theirs = await asyncio.gather(
        claim_subnets(store, "pool-a", [f"task-{i}" for i in range(12)]), other.result()
    )
    assert isinstance(theirs, dict)
    claimed = {**ours, **theirs}
    won = {n: s for n, s in claimed.items() if s is not None}
    assert len(won) == 16 and len(set(won.values())) == 16
    assert sum(1 for s in theirs.values() if s) > 0, "the other process won nothing: it did not contend"
    state = await PoolRanges(store).read("pool-a")
    assert {n: str(r.subnet) for n, r in state.ranges.items()} == won
    check_disjoint("pool-a", state.ranges)


async def test_apply_refuses_a_stale_state_and_overlapping_ranges(store: Store) -> None:
    ranges = PoolRanges(store)
    empty = await ranges.read("p")
    assert empty.revision == 0 and empty.ranges == {}
    a = node_range(IPv4Network("198.51.100.0/28"))
    assert await ranges.apply(empty, {"a": a}, {})
    assert not await ranges.apply(empty, {"b": a}, {}), "a second writer on the same state must lose"
    now = await ranges.read("p")
    assert now.ranges == {"a": a}
    with pytest.raises(IpamError, match="overlaps"):
        await ranges.apply(now, {"a": a, "b": node_range(IPv4Network("198.51.100.0/27"))}, {})


def network_spec(**kw: object) -> DPUServiceIPAMSpec:
    ipv4 = {"network": "198.51.100.0/24", "prefixSize": 28, "gatewayIndex": 1, **kw}
    return DPUServiceIPAMSpec.model_validate({"ipv4Network": ipv4, "metadata": {"labels": {"svc": "chain"}}})


async def test_concurrent_reconcilers_agree_and_exhaustion_is_reported(store: Store, etcd_endpoints: list[str]) -> None:
    stores = [await Store.connect(etcd_endpoints) for _ in range(4)]
    try:
        nodes = [f"dpu-{i:02}" for i in range(20)]
        recs = [IpamReconciler(s) for s in stores]
        results = await asyncio.gather(
            *(r.reconcile("pool-b", network_spec(), nodes) for r in recs), return_exceptions=True
        )
        for res in results:
            assert isinstance(res, PoolExhausted), res
            assert "no range left for dpu-16, dpu-17, dpu-18, dpu-19" in str(res)
        state = await PoolRanges(store).read("pool-b")
        assert sorted(state.ranges) == nodes[:16]
        check_disjoint("pool-b", state.ranges)
        assert state.ranges["dpu-00"].labels == (("svc", "chain"),)
    finally:
        for s in stores:
            await s.close()


async def test_reconcile_keeps_ranges_and_drops_nodes_with_their_addresses(store: Store) -> None:
    rec = IpamReconciler(store)
    first = await rec.reconcile("pool-c", network_spec(), ["a", "b"])
    addrs = Addresses(store)
    addr, _ = await addrs.allocate("pool-c", "b", "c1/eth0")
    # routes change and "a" goes: b keeps its subnet and its allocation
    spec = network_spec(routes=[{"dst": "203.0.113.0/24"}])
    second = await rec.reconcile("pool-c", spec, ["b", "c"])
    assert second.ranges["b"].subnet == first.ranges["b"].subnet
    assert second.ranges["c"].subnet == first.ranges["a"].subnet
    assert await addrs.lookup("pool-c", "b", "c1/eth0") == addr
    got = await PoolRanges(store).get("pool-c", "b")
    assert got is not None and got[0].routes == (IPv4Network("203.0.113.0/24"),)
    # a mode switch replaces everything, allocations included
    sub = DPUServiceIPAMSpec.model_validate(
        {"ipv4Subnet": {"subnet": "203.0.113.0/24", "gateway": "203.0.113.1", "perNodeIPCount": 20}}
    )
    third = await rec.reconcile("pool-c", sub, ["b"])
    assert third.ranges["b"].subnet == IPv4Network("203.0.113.0/24")
    assert await addrs.lookup("pool-c", "b", "c1/eth0") is None
    await rec.reconcile("pool-c", None, [])
    with pytest.raises(NoRange, match="pool pool-c has no range for node b"):
        await addrs.allocate("pool-c", "b", "c2/eth0")
