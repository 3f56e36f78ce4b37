"""The CNI's AddressAllocator backed by etcd: this DPU's range of each pool, as the controller assigned it
(controller/ipam), and addresses allocated and released there (dpfd.store.ipam_addrs).

The pool is a DPUServiceIPAM's name (dpfd.dpu.cni.pools picks it from the request). A pod's address is
`<address>/<the range's subnet prefix>`; the CNI result's gateway and routes are the range's (its routes via
the gateway, a default route too when the pool has defaultGateway) plus the ipam section's own routes. When the
ipam section names a subnet, the range must lie within it: an address outside is released again and refused
with a message saying so. Owners whose attachment is gone are collected by `collect` (CniService.collect_leaks
and the CNI's GC do the same through `held`/`owners` and `release`).

dpfd wires it in place of HostLocalAllocator when it has a store (dpfd.dpu.dataplane):

    CniService(EtcdAllocator(store, node_name), ports, host_netns)
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from dpfd.dpu.cni.ipam import DEFAULT_ROUTE, Addressing, GatewayTaken, PoolExhausted
from dpfd.dpu.cni.netconf import IpamConfig
from dpfd.store.client import Store
from dpfd.store.ipam_addrs import Addresses
from dpfd.store.ipam_ranges import PoolRanges
from dpfd.store.ipam_types import AddressesExhausted, IpamError, NodeRange, NoRange


class EtcdAllocator:
    def __init__(self, store: Store, node: str) -> None:
        self._addrs = Addresses(store)
        self._ranges = PoolRanges(store)
        self.node = node

    async def allocate(self, pool: str, config: IpamConfig, owner: str, gateway: bool = False) -> IPv4Interface:
        try:
            if gateway:
                got = await self._range(pool)
                if got.gateway is None:
                    raise GatewayTaken(f"pool {pool}: node {self.node}'s range {got.describe()} has no gateway")
                addr, rng = await self._addrs.claim(pool, self.node, owner, got.gateway)
            else:
                addr, rng = await self._addrs.allocate(pool, self.node, owner)
        except AddressesExhausted as e:
            raise (GatewayTaken if gateway else PoolExhausted)(str(e)) from e
        if config.subnet is not None and (addr not in config.subnet or not rng.subnet.subnet_of(config.subnet)):
            await self._addrs.release(pool, self.node, owner)
            raise IpamError(
                f"pool {pool}: node {self.node}'s range {rng.describe()} is not within the network configuration's"
                f" subnet {config.subnet}; its ipam section must name the pool's subnet (or none)"
            )
        return IPv4Interface(f"{addr}/{rng.subnet.prefixlen}")

    async def _range(self, pool: str) -> NodeRange:
        got = await self._ranges.get(pool, self.node)
        if got is None:
            raise NoRange(f"pool {pool} has no range for node {self.node} (not assigned by the controller yet?)")
        return got[0]

    async def addressing(self, pool: str, config: IpamConfig) -> Addressing:
        """The range's gateway (else the ipam section's) and routes: the range's via the gateway, a default
        route when the pool sets defaultGateway, and the ipam section's (those win for a destination in both)."""
        rng = await self._range(pool)
        routes: dict[IPv4Network, IPv4Address | None] = dict.fromkeys(rng.routes)
        if rng.default_gateway and rng.gateway is not None:
            routes.setdefault(DEFAULT_ROUTE, None)
        routes.update((r.dst, r.gw) for r in config.routes)
        whole = rng.first == rng.subnet.network_address and rng.last == rng.subnet.broadcast_address
        gateway = rng.gateway or config.gateway
        return Addressing(rng.subnet.prefixlen, gateway, tuple(routes.items()), "cidrpool" if whole else "ippool")

    async def held(self) -> dict[str, dict[str, IPv4Address]]:
        return await self._addrs.node_owners(self.node)

    async def release(self, pool: str, owner: str) -> None:
        await self._addrs.release(pool, self.node, owner)

    async def lookup(self, pool: str, owner: str) -> IPv4Address | None:
        return await self._addrs.lookup(pool, self.node, owner)

    async def owners(self, pool: str) -> dict[str, IPv4Address]:
        return await self._addrs.owners(pool, self.node)

    async def free(self, pool: str, config: IpamConfig) -> int:
        try:
            return await self._addrs.free(pool, self.node)
        except NoRange:
            return 0

    async def collect(self, pool: str, present: set[str]) -> list[str]:
        """Release the addresses of owners not in `present` (attachments that no longer exist); those released."""
        return await self._addrs.collect(pool, self.node, present)
