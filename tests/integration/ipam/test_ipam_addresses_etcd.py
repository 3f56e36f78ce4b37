"""Addresses in a node's range in real etcd: concurrency across tasks and processes, exhaustion, reuse, restart."""

from __future__ import annotations

import asyncio
from ipaddress import IPv4Address, IPv4Network

import pytest

from dpfd.store import Store
from dpfd.store.ipam_addrs import Addresses, NodeAllocations
from dpfd.store.ipam_ranges import PoolRanges
from dpfd.store.ipam_types import AddressesExhausted, NodeRange
from tests.integration.ipam.claims import allocate_many
from tests.integration.ipam.conftest import Contender

SUBNET = IPv4Network("198.51.100.0/27")  # 30 hosts, gateway .1: 29 addresses for pods


async def give_range(store: Store, pool: str, node: str, subnet: IPv4Network = SUBNET) -> NodeRange:
    ranges = PoolRanges(store)
    state = await ranges.read(pool)
    rng = NodeRange(subnet, subnet.network_address, subnet.broadcast_address, gateway=subnet.network_address + 1)
    assert await ranges.apply(state, {**state.ranges, node: rng}, {})
    return rng


async def test_tasks_and_another_process_never_get_the_same_address(
    store: Store, etcd_endpoints: list[str], contenders: list[Contender]
) -> None:
    rng = await give_range(store, "p", "dpu-1")
    other = await Contender.start(etcd_endpoints[0], "addresses", "p", "dpu-1", "proc-", "20")
    contenders.append(other)
    other.go()
    ours, theirs = await asyncio.gather(
        allocate_many(store, "p", "dpu-1", [f"task-{i}/eth0" for i in range(20)]), other.result()
    )
    assert isinstance(theirs, dict)
    got = {o: a for o, a in {**ours, **theirs}.items() if a is not None}
    assert len(got) == 29 and len(set(got.values())) == 29, "an address was handed out twice or left unused"
    assert {IPv4Address(a) for a in got.values()} == set(rng.candidates())
    assert any(theirs.values()), "the other process got nothing: it did not contend"
    owners = await Addresses(store).owners("p", "dpu-1")
    assert {o: str(a) for o, a in owners.items()} == got


async def test_exhaustion_release_reuse_and_idempotence(store: Store) -> None:
    await give_range(store, "p", "n", IPv4Network("198.51.100.16/29"))  # .17 gateway: .18-.22 for pods
    addrs = Addresses(store)
    got = [(await addrs.allocate("p", "n", f"c{i}/eth0"))[0] for i in range(5)]
    assert [str(a) for a in got] == [f"198.51.100.{i}" for i in range(18, 23)]
    assert (await addrs.allocate("p", "n", "c2/eth0"))[0] == got[2], "a retried ADD must get the same address"
    with pytest.raises(AddressesExhausted, match=r"range 198.51.100.16/29 has no free address for c5/eth0"):
        await addrs.allocate("p", "n", "c5/eth0")
    assert await addrs.free("p", "n") == 0
    assert await addrs.release("p", "n", "c1/eth0")
    assert not await addrs.release("p", "n", "c1/eth0"), "releasing twice is a no-op"
    assert (await addrs.allocate("p", "n", "c5/eth0"))[0] == got[1]
    assert await addrs.lookup("p", "n", "c1/eth0") is None


async def test_freed_addresses_are_not_reused_at_once(store: Store) -> None:
    await give_range(store, "p", "n")
    addrs = Addresses(store)
    a, _ = await addrs.allocate("p", "n", "a/eth0")
    await addrs.release("p", "n", "a/eth0")
    b, _ = await addrs.allocate("p", "n", "b/eth0")
    assert b != a and int(b) == int(a) + 1


async def test_a_restart_keeps_allocations(etcd_endpoints: list[str]) -> None:
    async with await Store.connect(etcd_endpoints) as first:
        await give_range(first, "p", "n")
        before = {o: (await Addresses(first).allocate("p", "n", o))[0] for o in ("x/eth0", "y/net1")}
    async with await Store.connect(etcd_endpoints) as second:
        addrs = Addresses(second)
        assert await addrs.owners("p", "n") == before
        assert (await addrs.allocate("p", "n", "x/eth0"))[0] == before["x/eth0"]
        new, _ = await addrs.allocate("p", "n", "z/eth0")
        assert new not in before.values()


async def test_leaks_are_collected(store: Store) -> None:
    await give_range(store, "p", "n")
    addrs = Addresses(store)
    for o in ("live/eth0", "gone/eth0", "gone2/net1"):
        await addrs.allocate("p", "n", o)
    assert await addrs.collect("p", "n", {"live/eth0"}) == ["gone/eth0", "gone2/net1"]
    assert list(await addrs.owners("p", "n")) == ["live/eth0"]


async def test_an_allocation_never_lands_in_a_replaced_range(store: Store) -> None:
    """The controller moves the node's range between allocate's read and its commit: the commit must fail
    and the address come from the new range."""
    await give_range(store, "p", "n")
    ranges = PoolRanges(store)
    moved = NodeRange(IPv4Network("203.0.113.0/28"), IPv4Address("203.0.113.0"), IPv4Address("203.0.113.15"))

    class MovedAfterRead(Addresses):
        reads = 0

        async def read(self, pool: str, node: str) -> NodeAllocations:
            state = await super().read(pool, node)
            self.reads += 1
            if self.reads == 1:  # the range this read saw is replaced before allocate commits
                assert await ranges.apply(await ranges.read(pool), {node: moved}, {})
            return state

    addrs = MovedAfterRead(store)
    addr, rng = await addrs.allocate("p", "n", "o/eth0")
    assert addrs.reads == 2
    assert rng == moved and addr in IPv4Network("203.0.113.0/28")
    assert await Addresses(store).owners("p", "n") == {"o/eth0": addr}
