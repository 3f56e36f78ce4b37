"""Addresses within one node's IPAM range, allocated to owners and persisted in etcd.

Per allocation two keys: `ip/<address>` holding the owner and `owner/<owner>` holding the address. One
transaction creates both, only if neither exists and the node's range key is unchanged since it was read, so
two writers (tasks or processes) can never get one address, one owner never gets two, and nothing is allocated
from a range the controller has since replaced. `last` remembers the address handed out most recently: the
next allocation starts after it (as host-local does, so a freed address is not reused at once).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from ipaddress import IPv4Address

from dpfd.store.client import Store
from dpfd.store.ipam_ranges import PoolRanges
from dpfd.store.ipam_types import AddressesExhausted, IpamError, NodeRange, NoRange
from dpfd.store.keys import (
    IPAM_PREFIX,
    ipam_address_key,
    ipam_node_prefix,
    ipam_owner_key,
    ipam_owner_of_key,
    ipam_pool_prefix,
    ipam_range_key,
)
from dpfd.store.types import Compare, Delete, Put

log = logging.getLogger(__name__)

# Give up after this many lost races in one allocate: far more than writers on one node ever contend.
MAX_ATTEMPTS = 1000


@dataclass(frozen=True)
class NodeAllocations:
    range: NodeRange
    range_revision: int  # mod_revision of the node's range key when read
    by_address: dict[IPv4Address, str]
    last: IPv4Address | None


class Addresses:
    """Address allocations within nodes' ranges."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._ranges = PoolRanges(store)

    async def read(self, pool: str, node: str) -> NodeAllocations:
        """The node's range and its allocations; NoRange if the node has no range in the pool."""
        prefix = ipam_node_prefix(pool, node)
        got = await self._ranges.get(pool, node)
        if got is None:
            raise NoRange(f"pool {pool} has no range for node {node} (not assigned by the controller yet?)")
        rng, rev = got
        kvs, _ = await self._store.get_prefix(prefix)
        by_address: dict[IPv4Address, str] = {}
        last: IPv4Address | None = None
        for kv in kvs:
            rest = kv.key[len(prefix) :]
            try:
                if rest.startswith("ip/"):
                    by_address[IPv4Address(rest[3:])] = kv.value.decode()
                elif rest == "last":
                    last = IPv4Address(kv.value.decode())
            except ValueError as e:
                raise IpamError(f"pool {pool} node {node}: bad key {kv.key}: {e}") from e
        return NodeAllocations(rng, rev, by_address, last)

    async def allocate(self, pool: str, node: str, owner: str) -> tuple[IPv4Address, NodeRange]:
        """The owner's address (allocated now if it has none) and the range it is in. AddressesExhausted if the
        range has no free address, NoRange if the node has no range."""
        for attempt in range(MAX_ATTEMPTS):
            state = await self.read(pool, node)
            for addr, who in state.by_address.items():
                if who == owner:
                    return addr, state.range
            free = _free_in_order(state)
            if not free:
                raise AddressesExhausted(
                    f"pool {pool}: node {node}'s range {state.range.describe()} has no free address for {owner}"
                    f" ({len(state.by_address)} allocated)"
                )
            # Lost races mean others took the first free ones: spread the retries over the next few.
            addr = free[attempt % min(len(free), 8)] if attempt else free[0]
            if await self._take(pool, node, owner, addr, state, Put(ipam_node_prefix(pool, node) + "last", str(addr))):
                log.debug("pool %s node %s: %s -> %s", pool, node, owner, addr)
                return addr, state.range
        raise IpamError(f"pool {pool} node {node}: allocate for {owner} lost {MAX_ATTEMPTS} races in a row")

    async def claim(self, pool: str, node: str, owner: str, address: IPv4Address) -> tuple[IPv4Address, NodeRange]:
        """Allocate this one `address` of the node's range to the owner (e.g. the range's gateway, for a pod
        that is the gateway); the owner's existing address if it has one. AddressesExhausted naming the holder
        if another owner has it, IpamError if the range does not hold it."""
        for _ in range(MAX_ATTEMPTS):
            state = await self.read(pool, node)
            for addr, who in state.by_address.items():
                if who == owner:
                    return addr, state.range
            if not state.range.first <= address <= state.range.last:
                raise IpamError(f"pool {pool}: {address} is not in node {node}'s range {state.range.describe()}")
            holder = state.by_address.get(address)
            if holder is not None:
                raise AddressesExhausted(f"pool {pool}: {address} on node {node} is held by {holder}, not {owner}")
            if await self._take(pool, node, owner, address, state):
                return address, state.range
        raise IpamError(f"pool {pool} node {node}: claim of {address} for {owner} lost {MAX_ATTEMPTS} races in a row")

    async def _take(
        self, pool: str, node: str, owner: str, addr: IPv4Address, state: NodeAllocations, *more: Put
    ) -> bool:
        """One transaction giving `addr` to `owner`: only if the node's range is still the one read, and neither
        the address nor the owner has an allocation yet (two writers can never both win)."""
        res = await self._store.txn(
            [
                Compare.mod_revision(ipam_range_key(pool, node), "=", state.range_revision),
                Compare.create_revision(ipam_address_key(pool, node, str(addr)), "=", 0),
                Compare.create_revision(ipam_owner_key(pool, node, owner), "=", 0),
            ],
            [
                Put(ipam_address_key(pool, node, str(addr)), owner),
                Put(ipam_owner_key(pool, node, owner), str(addr)),
                *more,
            ],
        )
        return res.succeeded

    async def node_owners(self, node: str) -> dict[str, dict[str, IPv4Address]]:
        """Every pool's owners on this node: {pool: {owner: address}}. One read of the whole IPAM keyspace (every
        node's allocations): for a startup pass; later passes ask `owners` of the pools they know."""
        kvs, _ = await self._store.get_prefix(IPAM_PREFIX)
        marker = ipam_node_prefix("p", node)[len(ipam_pool_prefix("p")) - 1 :] + "owner/"  # /alloc/<node>/owner/
        out: dict[str, dict[str, IPv4Address]] = {}
        for kv in kvs:
            pool, sep, _ = kv.key[len(IPAM_PREFIX) :].partition(marker)
            if sep and pool and "/" not in pool:
                with contextlib.suppress(ValueError):
                    out.setdefault(pool, {})[ipam_owner_of_key(kv.key)] = IPv4Address(kv.value.decode())
        return out

    async def release(self, pool: str, node: str, owner: str) -> bool:
        """Free the owner's address; False if it had none."""
        key = ipam_owner_key(pool, node, owner)
        while True:
            kv = await self._store.get(key)
            if kv is None:
                return False
            addr_key = ipam_address_key(pool, node, kv.value.decode())
            held = Compare.mod_revision(key, "=", kv.mod_revision)
            res = await self._store.txn([held, Compare.value(addr_key, "=", owner)], [Delete(key), Delete(addr_key)])
            if res.succeeded:
                return True
            # Either the owner key changed meanwhile (look again), or its address key is not the owner's (a
            # dangling owner key, which no transaction here writes, but drop it alone rather than loop).
            res = await self._store.txn([held], [Delete(key)])
            if res.succeeded:
                log.warning("pool %s node %s: owner %s pointed at an address it did not hold", pool, node, owner)
                return True

    async def lookup(self, pool: str, node: str, owner: str) -> IPv4Address | None:
        kv = await self._store.get(ipam_owner_key(pool, node, owner))
        return IPv4Address(kv.value.decode()) if kv is not None else None

    async def owners(self, pool: str, node: str) -> dict[str, IPv4Address]:
        """Every owner holding an address on this node in the pool."""
        kvs, _ = await self._store.get_prefix(ipam_node_prefix(pool, node) + "owner/")
        return {ipam_owner_of_key(kv.key): IPv4Address(kv.value.decode()) for kv in kvs}

    async def free(self, pool: str, node: str) -> int:
        return len(_free_in_order(await self.read(pool, node)))

    async def collect(self, pool: str, node: str, present: set[str]) -> list[str]:
        """Release every owner not in `present` (leaks: attachments that no longer exist); the owners released."""
        leaked = sorted(set(await self.owners(pool, node)) - present)
        for owner in leaked:
            await self.release(pool, node, owner)
        if leaked:
            log.info("pool %s node %s: collected %d leaked addresses", pool, node, len(leaked))
        return leaked


def _free_in_order(state: NodeAllocations) -> list[IPv4Address]:
    candidates = state.range.candidates()
    start = 0
    if state.last is not None:
        start = next((i + 1 for i, a in enumerate(candidates) if a == state.last), 0)
    return [a for a in candidates[start:] + candidates[:start] if a not in state.by_address]
