"""Contending writers, shared by the tests and contender.py: each claims for itself, retrying lost races."""

from __future__ import annotations

import asyncio
from ipaddress import IPv4Network

from dpfd.store import Store
from dpfd.store.ipam_addrs import Addresses
from dpfd.store.ipam_ranges import PoolRanges
from dpfd.store.ipam_types import AddressesExhausted, NodeRange

NETWORK = IPv4Network("198.51.100.0/24")


def node_range(subnet: IPv4Network) -> NodeRange:
    return NodeRange(subnet, subnet.network_address, subnet.broadcast_address, gateway=subnet.network_address + 1)


async def claim_subnet(store: Store, pool: str, node: str) -> tuple[str | None, int]:
    """Add a /28 for node to the pool without touching the others' (read, pick, commit-if-unchanged);
    (subnet or None when full, races lost)."""
    ranges = PoolRanges(store)
    lost = 0
    while True:
        state = await ranges.read(pool)
        taken = {r.subnet for r in state.ranges.values()}
        free = next((s for s in NETWORK.subnets(new_prefix=28) if s not in taken), None)
        if free is None:
            return None, lost
        if await ranges.apply(state, {**state.ranges, node: node_range(free)}, {"by": node}):
            return str(free), lost
        lost += 1


async def claim_subnets(store: Store, pool: str, nodes: list[str]) -> dict[str, str | None]:
    got = await asyncio.gather(*(claim_subnet(store, pool, n) for n in nodes))
    return {n: subnet for n, (subnet, _) in zip(nodes, got, strict=True)}


async def allocate_many(store: Store, pool: str, node: str, owners: list[str]) -> dict[str, str | None]:
    """Allocate for every owner at once; owner -> address, or None for those the range had no room for."""
    addrs = Addresses(store)

    async def one(owner: str) -> str | None:
        try:
            addr, _ = await addrs.allocate(pool, node, owner)
        except AddressesExhausted:
            return None
        return str(addr)

    got = await asyncio.gather(*(one(o) for o in owners))
    return dict(zip(owners, got, strict=True))
