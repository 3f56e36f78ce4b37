"""What the DPU dpfd does for each SFC CNI request (ADD, DEL, CHECK, STATUS, GC); answers in dpfd.cni.wire form.

ADD: an address for the attachment from the pool, a veth pair with one end in the pod's namespace named
CNI_IFNAME (addressed, routed, up), the other end a port of the bridge with `dpf-id=<podns>/<pod>/<ifname>` (DPF's
service-interface id, which the chain's flows look up). A failing step undoes the earlier ones.
DEL: the port, the pair and the address go; each step accepts that its thing is already gone (DEL twice succeeds).
CHECK: the pod end exists, is up and has the address (and prevResult's), the host end exists and is a bridge port.
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
from dpfd.dpu.cni.ipam import AddressAllocator, PoolExhausted
from dpfd.dpu.cni.netconf import ConfigError, NetConf, parse_netconf

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
        routes: list[tuple[IPv4Network, IPv4Address | None]] = [(r.dst, r.gw) for r in ipam.routes]
        if (
            any(gw is None for _, gw in routes)
            and ipam.gateway is None
            and any(dst.prefixlen == 0 for dst, _ in routes)
        ):
            raise Failure(wire.ERR_INVALID_CONFIG, "ipam: a default route needs a gateway")
        try:
            address = await self._ipam.allocate(req.conf.name, ipam, req.owner)
        except PoolExhausted as e:
            raise Failure(wire.ERR_INTERNAL, str(e)) from e
        try:
            attached = await asyncio.to_thread(
                links.add_veth,
                self._host_netns,
                req.host_name,
                req.netns,
                req.ifname,
                address,
                ipam.gateway,
                routes,
                req.conf.mtu,
            )
        except (links.LinkError, OSError) as e:
            await self._ipam.release(req.conf.name, req.owner)
            raise Failure(wire.ERR_INTERNAL, f"ADD {req.owner}: {e}") from e
        try:
            if not req.conf.tx_checksum_offload:
                await _tx_checksum_off(req.netns, req.ifname)
            ids = {"dpf-id": f"{pod_ns}/{pod}/{req.ifname}", CNI_OWNER_ID: req.owner}
            await self._ports.add_port(req.conf.bridge, req.host_name, ids)
        except (BridgeError, links.LinkError) as e:
            await asyncio.to_thread(links.del_veth, self._host_netns, req.host_name)
            await self._ipam.release(req.conf.name, req.owner)
            raise Failure(wire.ERR_INTERNAL, f"ADD {req.owner}: {e}") from e
        log.info(
            "CNI ADD %s: %s as %s in %s, port %s on %s",
            req.owner,
            address,
            req.ifname,
            req.netns,
            req.host_name,
            req.conf.bridge,
        )
        ip: dict[str, Any] = {"address": str(address), "interface": 1}
        if ipam.gateway is not None:
            ip["gateway"] = str(ipam.gateway)
        return {
            "interfaces": [
                {"name": req.host_name, "mac": attached.host_mac},
                {"name": req.ifname, "mac": attached.pod_mac, "sandbox": req.netns},
            ],
            "ips": [ip],
            "routes": [
                {"dst": str(dst), **({"gw": str(gw or ipam.gateway)} if gw or ipam.gateway else {})}
                for dst, gw in routes
            ],
            "dns": {},
        }

    async def _del(self, req: Request) -> dict[str, Any]:
        await self._detach(req.conf, req.owner, req.container_id, req.ifname)
        return {}

    async def _detach(self, conf: NetConf, owner: str, container_id: str, ifname: str) -> None:
        host_name = links.host_ifname(container_id, ifname)
        try:
            await self._ports.del_port(conf.bridge, host_name)
            removed = await asyncio.to_thread(links.del_veth, self._host_netns, host_name)
        except (BridgeError, OSError) as e:
            raise Failure(wire.ERR_INTERNAL, f"DEL {owner}: {e}") from e
        await self._ipam.release(conf.name, owner)
        log.info("CNI DEL %s (%s)", owner, "removed" if removed else "already gone")

    async def _check(self, req: Request) -> dict[str, Any]:
        ipam = req.conf.ipam
        if ipam is None:
            raise Failure(wire.ERR_INVALID_CONFIG, "network configuration has no ipam section")
        addr = await self._ipam.lookup(req.conf.name, req.owner)
        if addr is None:
            raise Failure(
                wire.ERR_CHECK_FAILED, f"CHECK {req.owner}: no address is allocated to it in pool {req.conf.name}"
            )
        want = [IPv4Interface(f"{addr}/{ipam.subnet.prefixlen}")]
        want += [a for a in _prev_result_addresses(req.conf.prev_result, req.ifname) if a not in want]
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
        if req.conf.ipam is not None and await self._ipam.free(req.conf.name, req.conf.ipam) == 0:
            raise Failure(wire.ERR_LIMITED_CONNECTIVITY, f"pool {req.conf.name} has no free address")
        return {}

    async def _gc(self, req: Request) -> dict[str, Any]:
        """Detach every attachment of this network that the runtime no longer lists as valid."""
        if req.conf.valid_attachments is None:
            raise Failure(wire.ERR_INVALID_CONFIG, "GC needs cni.dev/valid-attachments")
        valid = {f"{a.get('containerID')}/{a.get('ifname')}" for a in req.conf.valid_attachments if isinstance(a, dict)}
        for owner in sorted(await self._ipam.owners(req.conf.name)):
            if owner in valid:
                continue
            container_id, _, ifname = owner.partition("/")
            async with self._locked(owner):
                await self._detach(req.conf, owner, container_id, ifname)
        return {}


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
