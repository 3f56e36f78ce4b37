"""What the DPU dpfd does for each SFC CNI request (ADD, DEL, CHECK, STATUS, GC); answers in dpfd.cni.wire form.

ADD: an address for the attachment from the pool (dpfd.dpu.cni.pools: the request's poolNames, else the network
name), with the gateway and routes the allocator reports for the pool here, a veth pair with one end in the pod's namespace named
CNI_IFNAME (addressed, routed, up), the other end a port of the bridge with `dpf-id=<podns>/<pod>/<ifname>` (DPF's
service-interface id, which the chain's flows look up). A failing step undoes the earlier ones.
DEL: the port, the pair and the address go; each step accepts that its thing is already gone (DEL twice succeeds).
CHECK: the pod end exists, is up and has the address (and prevResult's), the host end exists and is a bridge port.
Leaks (an address whose attachment's host end is gone: the pod's namespace went without a DEL, dpfd died during
an ADD) are detached and released by `collect_leaks`, which dpfd runs at start and then periodically.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import Any

from dpfd.cni import wire
from dpfd.dpu.cni import links
from dpfd.dpu.cni.bridge import BridgeError, BridgePorts
from dpfd.dpu.cni.ipam import AddressAllocator, Addressing, PoolExhausted
from dpfd.dpu.cni.netconf import ConfigError, NetConf, parse_netconf
from dpfd.dpu.cni.pools import PoolRequest, pool_request
from dpfd.store.ipam_types import NoRange

log = logging.getLogger(__name__)

POD_NAMESPACE_ARG = "K8S_POD_NAMESPACE"
POD_NAME_ARG = "K8S_POD_NAME"
CNI_OWNER_ID = "dpf-cni"  # external_id marking a port as the CNI's (stale-port collection leaves it alone)


class Failure(Exception):
    """A request failed with CNI error `code`."""

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.details = details


@dataclass(frozen=True)
class Request:
    command: str
    container_id: str
    netns: str
    ifname: str
    args: dict[str, str]
    conf: NetConf

    @property
    def owner(self) -> str:
        return f"{self.container_id}/{self.ifname}"

    @property
    def host_name(self) -> str:
        return links.host_ifname(self.container_id, self.ifname)

    def pool(self) -> PoolRequest:
        try:
            return pool_request(self.conf, self.args)
        except ConfigError as e:
            raise Failure(e.code, str(e)) from e


def parse_request(message: dict[str, Any]) -> Request:
    if message.get("v") != wire.PROTOCOL_VERSION:
        raise Failure(
            wire.ERR_INCOMPATIBLE_VERSION,
            f"request protocol v{message.get('v')}; this dpfd speaks v{wire.PROTOCOL_VERSION}",
        )
    command = message.get("command")
    if command not in ("ADD", "DEL", "CHECK", "STATUS", "GC"):
        raise Failure(wire.ERR_INVALID_ENV, f"unknown command {command!r}")
    fields = {k: message.get(k, "") for k in ("containerId", "netns", "ifname")}
    args = message.get("args", {})
    if not all(isinstance(v, str) for v in fields.values()) or not isinstance(args, dict):
        raise Failure(wire.ERR_DECODE, "request fields have the wrong types")
    try:
        conf = parse_netconf(message.get("config"))
    except ConfigError as e:
        raise Failure(e.code, str(e)) from e
    return Request(
        command,
        fields["containerId"],
        fields["netns"],
        fields["ifname"],
        {str(k): str(v) for k, v in args.items()},
        conf,
    )


class CniService:
    """Carries out CNI requests on this DPU. `host_netns`: the namespace (path) of the bridge and host ends."""

    def __init__(self, allocator: AddressAllocator, ports: BridgePorts, host_netns: str | None = None) -> None:
        self._ipam = allocator
        self._ports = ports
        self._host_netns = host_netns
        self._locks: dict[str, asyncio.Lock] = {}
        self.pools: set[str] = set()  # pools this service allocated from or found holding (for leak passes)

    async def handle(self, message: dict[str, Any]) -> dict[str, Any]:
        """The wire answer to one request message."""
        try:
            req = parse_request(message)
            async with self._locked(req.owner):
                result = await getattr(self, f"_{req.command.lower()}")(req)
            return {"result": result}
        except Failure as e:
            return wire.error(e.code, e.msg, e.details)
        except Exception as e:
            log.exception("CNI %s failed", message.get("command"))
            return wire.error(wire.ERR_INTERNAL, f"dpfd failed: {e}", type(e).__name__)

    @contextlib.asynccontextmanager
    async def _locked(self, key: str) -> AsyncIterator[None]:
        """One request at a time per attachment (ADD and DEL of one pod must not interleave)."""
        lock = self._locks.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                yield
        finally:
            if not lock.locked() and self._locks.get(key) is lock:
                del self._locks[key]

    async def _add(self, req: Request) -> dict[str, Any]:
        ipam = req.conf.ipam
        if ipam is None:
            raise Failure(
                wire.ERR_INVALID_CONFIG, "network configuration has no ipam section (the pool to take addresses from)"
            )
        pod_ns, pod = req.args.get(POD_NAMESPACE_ARG), req.args.get(POD_NAME_ARG)
        if not pod_ns or not pod:
            raise Failure(
                wire.ERR_INVALID_ENV,
                f"CNI_ARGS needs {POD_NAMESPACE_ARG} and {POD_NAME_ARG} (the port's dpf-id is <podns>/<pod>/<ifname>)",
            )
        want = req.pool()
        try:
            addressing = await self._ipam.addressing(want.pool, ipam)
            self.pools.add(want.pool)
            address = await self._ipam.allocate(want.pool, ipam, req.owner, gateway=want.gateway)
        except ConfigError as e:
            raise Failure(e.code, str(e)) from e
        except NoRange as e:
            raise Failure(wire.ERR_TRY_AGAIN_LATER, f"pool {want.pool} (from {want.source}): {e}") from e
        except PoolExhausted as e:
            raise Failure(wire.ERR_INTERNAL, str(e)) from e
        try:
            gateway, routes = _pod_addressing(want, addressing, address)
        except Failure:
            await self._ipam.release(want.pool, req.owner)
            raise
        try:
            attached = await asyncio.to_thread(
                links.add_veth,
                self._host_netns,
                req.host_name,
                req.netns,
                req.ifname,
                address,
                gateway,
                routes,
                req.conf.mtu,
            )
        except (links.LinkError, OSError) as e:
            await self._ipam.release(want.pool, req.owner)
            raise Failure(wire.ERR_INTERNAL, f"ADD {req.owner}: {e}") from e
        try:
            if not req.conf.tx_checksum_offload:
                await _tx_checksum_off(req.netns, req.ifname)
            ids = {"dpf-id": f"{pod_ns}/{pod}/{req.ifname}", CNI_OWNER_ID: req.owner}
            await self._ports.add_port(req.conf.bridge, req.host_name, ids)
        except (BridgeError, links.LinkError) as e:
            await asyncio.to_thread(links.del_veth, self._host_netns, req.host_name)
            await self._ipam.release(want.pool, req.owner)
            raise Failure(wire.ERR_INTERNAL, f"ADD {req.owner}: {e}") from e
        log.info(
            "CNI ADD %s: %s from pool %s as %s in %s, port %s on %s",
            req.owner,
            address,
            want.pool,
            req.ifname,
            req.netns,
            req.host_name,
            req.conf.bridge,
        )
        ip: dict[str, Any] = {"address": str(address), "interface": 1}
        if gateway is not None:
            ip["gateway"] = str(gateway)
        return {
            "interfaces": [
                {"name": req.host_name, "mac": attached.host_mac},
                {"name": req.ifname, "mac": attached.pod_mac, "sandbox": req.netns},
            ],
            "ips": [ip],
            "routes": [
                {"dst": str(dst), **({"gw": str(gw or gateway)} if gw or gateway else {})} for dst, gw in routes
            ],
            "dns": {},
        }

    async def _del(self, req: Request) -> dict[str, Any]:
        await self._detach(req.conf.bridge, req.pool().pool, req.owner)
        return {}

    async def _detach(self, bridge: str, pool: str, owner: str) -> None:
        container_id, _, ifname = owner.partition("/")
        host_name = links.host_ifname(container_id, ifname)
        try:
            await self._ports.del_port(bridge, host_name)
            removed = await asyncio.to_thread(links.del_veth, self._host_netns, host_name)
        except (BridgeError, OSError) as e:
            raise Failure(wire.ERR_INTERNAL, f"DEL {owner}: {e}") from e
        await self._ipam.release(pool, owner)
        log.info("CNI DEL %s (%s)", owner, "removed" if removed else "already gone")

    async def collect_leaks(self, bridge: str, everything: bool = False) -> list[tuple[str, str]]:
        """Detach and release every attachment holding an address whose host end is gone; (pool, owner) of
        those. `everything`: every pool this node holds addresses in (a read of the whole IPAM keyspace, for
        the startup pass); otherwise the pools this service has seen. An ADD in progress holds its owner's
        lock until its veth exists or its address is released, so it is never taken for a leak."""
        if everything:
            held = await self._ipam.held()
            self.pools |= set(held)
        else:
            held = {pool: await self._ipam.owners(pool) for pool in sorted(self.pools)}
        present = await asyncio.to_thread(links.host_ifnames, self._host_netns)
        collected: list[tuple[str, str]] = []
        for pool, owners in sorted(held.items()):
            for owner in sorted(owners):
                container_id, _, ifname = owner.partition("/")
                host_name = links.host_ifname(container_id, ifname)
                if host_name in present:
                    continue
                async with self._locked(owner):
                    if await asyncio.to_thread(links.link_exists, self._host_netns, host_name):
                        continue  # an ADD finished meanwhile
                    if await self._ipam.lookup(pool, owner) is None:
                        continue  # a DEL or a failed ADD released it meanwhile
                    try:
                        await self._detach(bridge, pool, owner)
                    except Failure as e:  # e.g. its port is on another bridge: the others still go
                        log.warning("CNI: leaked address of %s in pool %s not collected: %s", owner, pool, e.msg)
                        continue
                collected.append((pool, owner))
        if collected:
            log.info("CNI: collected %d leaked addresses: %s", len(collected), collected)
        return collected

    async def _check(self, req: Request) -> dict[str, Any]:
        ipam = req.conf.ipam
        if ipam is None:
            raise Failure(wire.ERR_INVALID_CONFIG, "network configuration has no ipam section")
        pool = req.pool().pool
        addr = await self._ipam.lookup(pool, req.owner)
        if addr is None:
            raise Failure(wire.ERR_CHECK_FAILED, f"CHECK {req.owner}: no address is allocated to it in pool {pool}")
        prev = _prev_result_addresses(req.conf.prev_result, req.ifname)
        try:
            prefixlen = (await self._ipam.addressing(pool, ipam)).prefixlen
        except (ConfigError, NoRange) as e:
            raise Failure(wire.ERR_CHECK_FAILED, f"CHECK {req.owner}: pool {pool}: {e}") from e
        want = [IPv4Interface(f"{addr}/{prefixlen}")]
        want += [a for a in prev if a not in want]
        problems = await asyncio.to_thread(
            links.check_veth, self._host_netns, req.host_name, req.netns, req.ifname, want
        )
        if not await self._ports.has_port(req.conf.bridge, req.host_name):
            problems.append(f"{req.host_name} is not a port of {req.conf.bridge}")
        if problems:
            raise Failure(wire.ERR_CHECK_FAILED, f"CHECK {req.owner}: " + "; ".join(problems))
        return {}

    async def _status(self, req: Request) -> dict[str, Any]:
        if not await self._ports.bridge_exists(req.conf.bridge):
            raise Failure(wire.ERR_PLUGIN_NOT_AVAILABLE, f"bridge {req.conf.bridge} does not exist on this DPU")
        pool = req.pool().pool
        if req.conf.ipam is not None and await self._ipam.free(pool, req.conf.ipam) == 0:
            raise Failure(wire.ERR_LIMITED_CONNECTIVITY, f"pool {pool} has no free address")
        return {}

    async def _gc(self, req: Request) -> dict[str, Any]:
        """Detach every attachment of this network that the runtime no longer lists as valid."""
        if req.conf.valid_attachments is None:
            raise Failure(wire.ERR_INVALID_CONFIG, "GC needs cni.dev/valid-attachments")
        valid = {f"{a.get('containerID')}/{a.get('ifname')}" for a in req.conf.valid_attachments if isinstance(a, dict)}
        pool = req.pool().pool
        for owner in sorted(await self._ipam.owners(pool)):
            if owner in valid:
                continue
            async with self._locked(owner):
                await self._detach(req.conf.bridge, pool, owner)
        return {}


def _pod_addressing(
    want: PoolRequest, addressing: Addressing, address: IPv4Interface
) -> tuple[IPv4Address | None, list[tuple[IPv4Network, IPv4Address | None]]]:
    """The pod's gateway and routes; Failure for a poolType the pool is not, or a default route with no gateway.
    A pod holding the gateway address itself (allocateDefaultGateway) gets no gateway and no routes via it."""
    if want.pool_type is not None and addressing.pool_type not in (None, want.pool_type):
        raise Failure(
            wire.ERR_INVALID_CONFIG,
            f"pool {want.pool} is a {addressing.pool_type} here, the request asks for poolType {want.pool_type}",
        )
    gateway = addressing.gateway
    routes = list(addressing.routes)
    if gateway is not None and gateway == address.ip:
        gateway = None
        routes = [(dst, gw) for dst, gw in routes if gw is not None and gw != address.ip]
    if gateway is None and any(gw is None and dst.prefixlen == 0 for dst, gw in routes):
        raise Failure(wire.ERR_INVALID_CONFIG, f"pool {want.pool}: a default route needs a gateway")
    return gateway, routes


def _prev_result_addresses(prev: dict[str, Any] | None, ifname: str) -> list[IPv4Interface]:
    """IPv4 addresses prevResult puts on the pod interface `ifname`."""
    if not prev:
        return []
    interfaces = prev.get("interfaces") or []
    out = []
    for ip in prev.get("ips") or []:
        idx = ip.get("interface")
        if isinstance(idx, int) and 0 <= idx < len(interfaces) and interfaces[idx].get("name") != ifname:
            continue
        with contextlib.suppress(ValueError, TypeError):
            iface = IPv4Interface(ip.get("address"))
            out.append(iface)
    return out


async def _tx_checksum_off(netns: str, ifname: str) -> None:
    """Turn the pod end's tx checksum offload off: OVS's userspace datapath does not fill checksums in."""
    proc = await asyncio.create_subprocess_exec(
        "nsenter", f"--net={netns}", "ethtool", "-K", ifname, "tx", "off",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await proc.communicate()
    if proc.returncode != 0:
        raise links.LinkError(f"ethtool -K {ifname} tx off in {netns}: {err.decode().strip()}")
