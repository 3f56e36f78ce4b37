"""The CNI's AddressAllocator backed by etcd: this DPU's range of each pool, as the controller assigned it
(controller/ipam), and addresses allocated and released there (dpfd.store.ipam_addrs).

The pool is the network name the CNI passes (a DPUServiceIPAM's name). The network configuration's ipam
section must name the pool's subnet (its gateway and routes are what the CNI result reports); an address the
range gives outside that subnet is released again and refused with a message saying so. Owners whose
attachment is gone are collected by `collect` (the CNI's GC does the same through `owners` and `release`).

dpfd wires it in place of HostLocalAllocator when it has a store:

    CniService(EtcdAllocator(store, node_name), ports, host_netns)
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface

from dpfd.dpu.cni.ipam import PoolExhausted
from dpfd.dpu.cni.netconf import IpamConfig
from dpfd.store.client import Store
from dpfd.store.ipam_addrs import Addresses
from dpfd.store.ipam_types import AddressesExhausted, IpamError, NoRange


class EtcdAllocator:
    def __init__(self, store: Store, node: str) -> None:
        self._addrs = Addresses(store)
        self.node = node

    async def allocate(self, pool: str, config: IpamConfig, owner: str) -> IPv4Interface:
        try:
            addr, rng = await self._addrs.allocate(pool, self.node, owner)
        except AddressesExhausted as e:
            raise PoolExhausted(str(e)) from e
        if addr not in config.subnet or not rng.subnet.subnet_of(config.subnet):
            await self._addrs.release(pool, self.node, owner)
            raise IpamError(
                f"pool {pool}: node {self.node}'s range {rng.describe()} is not within the network configuration's"
                f" subnet {config.subnet}; its ipam section must name the pool's subnet"
            )
        return IPv4Interface(f"{addr}/{config.subnet.prefixlen}")

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
