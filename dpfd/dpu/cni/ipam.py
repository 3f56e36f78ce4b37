"""Addresses for CNI attachments: the `AddressAllocator` protocol and a host-local style allocator on disk.

An owner is one attachment, "<containerId>/<ifname>". Allocation is idempotent per owner (an ADD retried gets
the same address); release of an owner that holds nothing is a no-op (DEL twice). The host-local allocator keeps
one file per address under <dir>/<pool>/, named by the address and holding the owner, created with link(2) so a
file exists only with its content and two claims of one address cannot both succeed (even across processes).
The etcd-backed per-node IPAM (dpfd.dpu.cni.ipam_store.EtcdAllocator) implements the same protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path
from typing import Protocol

from dpfd.dpu.cni.netconf import IpamConfig
from dpfd.dpu.cni.pools import PoolType

DEFAULT_ROUTE = IPv4Network("0.0.0.0/0")


class PoolExhausted(Exception):
    """No free address left in the pool."""


class GatewayTaken(PoolExhausted):
    """The attachment asked for the pool's gateway address, and the pool has none or another holds it."""


@dataclass(frozen=True)
class Addressing:
    """What a CNI result reports besides the address: the gateway and routes (a None gw: via the gateway)."""

    prefixlen: int  # of pods' addresses
    gateway: IPv4Address | None
    routes: tuple[tuple[IPv4Network, IPv4Address | None], ...]
    pool_type: PoolType | None = None  # None: no such notion (host-local)


class AddressAllocator(Protocol):
    async def allocate(self, pool: str, config: IpamConfig, owner: str, gateway: bool = False) -> IPv4Interface:
        """The owner's address (allocated now if it had none); PoolExhausted if none is free. `gateway`: the
        pool's gateway address itself (GatewayTaken if another owner has it)."""
        ...

    async def addressing(self, pool: str, config: IpamConfig) -> Addressing:
        """The gateway and routes of the pool here."""
        ...

    async def held(self) -> dict[str, dict[str, IPv4Address]]:
        """Every pool's owners on this node: {pool: {owner: address}}."""
        ...

    async def release(self, pool: str, owner: str) -> None:
        """Free the owner's address, if it has one."""
        ...

    async def lookup(self, pool: str, owner: str) -> IPv4Address | None:
        """The owner's address, None if it has none."""
        ...

    async def owners(self, pool: str) -> dict[str, IPv4Address]:
        """Every owner holding an address in the pool."""
        ...

    async def free(self, pool: str, config: IpamConfig) -> int:
        """How many addresses are still free."""
        ...


class HostLocalAllocator:
    """Addresses persisted as files under `directory` (the dpfd state dir's cni/ipam)."""

    def __init__(self, directory: Path) -> None:
        self._dir = directory
        self._lock = asyncio.Lock()

    def _pool_dir(self, pool: str) -> Path:
        if not pool or "/" in pool or pool.startswith("."):
            raise ValueError(f"pool name {pool!r} is not usable as a directory name")
        return self._dir / pool

    def _held(self, pool: str) -> dict[IPv4Address, str]:
        d = self._pool_dir(pool)
        held: dict[IPv4Address, str] = {}
        if not d.is_dir():
            return held
        for f in d.iterdir():
            try:
                addr = IPv4Address(f.name)
            except ValueError:
                continue  # last_reserved and temporary files
            with contextlib.suppress(FileNotFoundError):
                held[addr] = f.read_text().strip()
        return held

    async def allocate(self, pool: str, config: IpamConfig, owner: str, gateway: bool = False) -> IPv4Interface:
        prefixlen = config.host_local_subnet().prefixlen
        async with self._lock:
            held = self._held(pool)
            for addr, who in held.items():
                if who == owner:
                    return IPv4Interface(f"{addr}/{prefixlen}")
            d = self._pool_dir(pool)
            d.mkdir(parents=True, exist_ok=True)
            if gateway:
                if config.gateway is None or not self._claim(d, config.gateway, owner):
                    holder = held.get(config.gateway) if config.gateway is not None else None
                    raise GatewayTaken(
                        f"pool {pool}: gateway {config.gateway} for {owner}: "
                        + (f"held by {holder}" if holder else "the pool has no gateway")
                    )
                return IPv4Interface(f"{config.gateway}/{prefixlen}")
            candidates = config.candidates()
            # Round robin from after the last address handed out, as host-local does: a freed address is not
            # reused at once (a pod's old address still in some peer's ARP cache).
            last = self._last_reserved(d)
            start = next((i + 1 for i, a in enumerate(candidates) if a == last), 0)
            for addr in candidates[start:] + candidates[:start]:
                if addr in held:
                    continue
                if self._claim(d, addr, owner):
                    (d / "last_reserved").write_text(str(addr))
                    return IPv4Interface(f"{addr}/{prefixlen}")
            raise PoolExhausted(f"pool {pool} ({config.subnet}) has no free address for {owner}")

    @staticmethod
    def _last_reserved(d: Path) -> IPv4Address | None:
        try:
            return IPv4Address((d / "last_reserved").read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    @staticmethod
    def _claim(d: Path, addr: IPv4Address, owner: str) -> bool:
        tmp = d / f".{addr}.{os.getpid()}.{secrets.token_hex(6)}.tmp"  # unique per claim, even across threads
        tmp.write_text(owner + "\n")
        try:
            os.link(tmp, d / str(addr))
            return True
        except FileExistsError:
            return False
        finally:
            tmp.unlink()

    async def release(self, pool: str, owner: str) -> None:
        async with self._lock:
            for addr, who in self._held(pool).items():
                if who == owner:
                    with contextlib.suppress(FileNotFoundError):
                        (self._pool_dir(pool) / str(addr)).unlink()

    async def lookup(self, pool: str, owner: str) -> IPv4Address | None:
        async with self._lock:
            for addr, who in self._held(pool).items():
                if who == owner:
                    return addr
        return None

    async def owners(self, pool: str) -> dict[str, IPv4Address]:
        async with self._lock:
            return {who: addr for addr, who in self._held(pool).items()}

    async def free(self, pool: str, config: IpamConfig) -> int:
        async with self._lock:
            held = self._held(pool)
            return sum(1 for a in config.candidates() if a not in held)

    async def addressing(self, pool: str, config: IpamConfig) -> Addressing:
        prefixlen = config.host_local_subnet().prefixlen
        return Addressing(prefixlen, config.gateway, tuple((r.dst, r.gw) for r in config.routes))

    async def held(self) -> dict[str, dict[str, IPv4Address]]:
        async with self._lock:
            if not self._dir.is_dir():
                return {}
            pools = [d.name for d in self._dir.iterdir() if d.is_dir() and not d.name.startswith(".")]
            return {p: {who: addr for addr, who in self._held(p).items()} for p in sorted(pools)}
