"""The CNI's etcd-backed AddressAllocator: the DPU's range from the controller's reconcile, real etcd."""

from __future__ import annotations

import asyncio
from ipaddress import IPv4Interface

import pytest

from controller.ipam.reconciler import IpamReconciler
from dpfd.api.chains import DPUServiceIPAMSpec
from dpfd.dpu.cni.ipam import AddressAllocator, PoolExhausted
from dpfd.dpu.cni.ipam_store import EtcdAllocator
from dpfd.dpu.cni.netconf import IpamConfig
from dpfd.store import Store
from dpfd.store.ipam_types import IpamError, NoRange

SPEC = DPUServiceIPAMSpec.model_validate(
    {"ipv4Subnet": {"subnet": "203.0.113.0/24", "gateway": "203.0.113.1", "perNodeIPCount": 4}}
)
CONFIG = IpamConfig.model_validate({"type": "dpf-etcd", "subnet": "203.0.113.0/24", "gateway": "203.0.113.1"})


async def test_two_dpus_allocate_from_their_own_blocks(store: Store) -> None:
    await IpamReconciler(store).reconcile("sfc", SPEC, ["dpu-a", "dpu-b"])
    a: AddressAllocator = EtcdAllocator(store, "dpu-a")
    b: AddressAllocator = EtcdAllocator(store, "dpu-b")
    got_a = await asyncio.gather(*(a.allocate("sfc", CONFIG, f"c{i}/eth0") for i in range(3)))
    got_b = await asyncio.gather(*(b.allocate("sfc", CONFIG, f"c{i}/eth0") for i in range(3)))
    # dpu-a's block .1-.4 loses the shared gateway .1; dpu-b's is .5-.8
    assert sorted(got_a) == [IPv4Interface(f"203.0.113.{i}/24") for i in (2, 3, 4)]
    assert {str(i.ip) for i in got_b} <= {f"203.0.113.{i}" for i in (5, 6, 7, 8)} and len(set(got_b)) == 3
    with pytest.raises(PoolExhausted, match=r"node dpu-a's range 203.0.113.1-203.0.113.4 of 203.0.113.0/24"):
        await a.allocate("sfc", CONFIG, "c9/eth0")
    assert await a.free("sfc", CONFIG) == 0 and await b.free("sfc", CONFIG) == 1
    await a.release("sfc", "c1/eth0")
    await a.release("sfc", "c1/eth0")
    assert await a.lookup("sfc", "c1/eth0") is None
    assert await a.allocate("sfc", CONFIG, "c9/eth0") == got_a[1]
    assert await a.owners("sfc") == {"c0/eth0": got_a[0].ip, "c2/eth0": got_a[2].ip, "c9/eth0": got_a[1].ip}


async def test_leaks_collected_and_no_range_and_wrong_subnet_explained(store: Store) -> None:
    alloc = EtcdAllocator(store, "dpu-a")
    with pytest.raises(NoRange, match="pool sfc has no range for node dpu-a"):
        await alloc.allocate("sfc", CONFIG, "c0/eth0")
    assert await alloc.free("sfc", CONFIG) == 0
    await IpamReconciler(store).reconcile("sfc", SPEC, ["dpu-a"])
    for o in ("keep/eth0", "leak/eth0"):
        await alloc.allocate("sfc", CONFIG, o)
    assert await alloc.collect("sfc", {"keep/eth0"}) == ["leak/eth0"]
    assert list(await alloc.owners("sfc")) == ["keep/eth0"]
    wrong = IpamConfig.model_validate({"type": "dpf-etcd", "subnet": "198.51.100.0/24"})
    with pytest.raises(IpamError, match=r"is not within the network configuration's subnet 198.51.100.0/24"):
        await alloc.allocate("sfc", wrong, "other/eth0")
    assert await alloc.lookup("sfc", "other/eth0") is None, "a refused allocation must not stay allocated"
