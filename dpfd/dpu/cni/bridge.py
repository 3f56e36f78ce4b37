"""Ports of CNI attachments on the DPU's bridge: the `BridgePorts` protocol and two implementations.

- `OvsVsctlPorts`: Open vSwitch through `ovs-vsctl --db=unix:SOCK` (until the ovsdbapp layer of dpfd/dpu/ovs
  implements this protocol); the external_ids go on the Interface row, as DPF's CNI puts `dpf-id` there.
- `LinuxBridgePorts`: a Linux bridge over netlink, for tests and hosts without OVS; the external_ids are kept
  in the port's interface alias ("k=v,k=v"), so they can be read back like OVS's.
"""

from __future__ import annotations

import asyncio
import json
from typing import Protocol

from pyroute2.netlink.exceptions import NetlinkError

from dpfd.dpu.cni.links import iproute


class BridgeError(Exception):
    """The bridge refused a change; the message says which and why."""


class BridgePorts(Protocol):
    async def add_port(self, bridge: str, name: str, external_ids: dict[str, str]) -> None:
        """Make `name` a port of `bridge` with these external_ids (idempotent)."""
        ...

    async def del_port(self, bridge: str, name: str) -> None:
        """Remove port `name` from `bridge`; a missing port is no error."""
        ...

    async def has_port(self, bridge: str, name: str) -> bool: ...

    async def bridge_exists(self, bridge: str) -> bool: ...


class OvsVsctlPorts:
    """BridgePorts on Open vSwitch via ovs-vsctl (one transaction per call)."""

    def __init__(self, db_socket: str, ovs_vsctl: str = "ovs-vsctl", timeout: float = 10.0) -> None:
        self._argv = [ovs_vsctl, f"--db=unix:{db_socket}", f"--timeout={int(timeout)}"]
        self._timeout = timeout

    async def _run(self, *args: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            *self._argv, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), self._timeout + 5)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise BridgeError(f"ovs-vsctl {' '.join(args)} did not finish within {self._timeout + 5:g}s") from None
        return proc.returncode or 0, out.decode(), err.decode().strip()

    async def add_port(self, bridge: str, name: str, external_ids: dict[str, str]) -> None:
        ids = [f"external_ids:{k}={_quote(v)}" for k, v in sorted(external_ids.items())]
        rc, _, err = await self._run("--may-exist", "add-port", bridge, name, "--", "set", "Interface", name, *ids)
        if rc != 0:
            raise BridgeError(f"adding {name} to {bridge}: {err}")

    async def del_port(self, bridge: str, name: str) -> None:
        rc, _, err = await self._run("--if-exists", "del-port", bridge, name)
        if rc != 0 and "no bridge named" not in err:
            raise BridgeError(f"removing {name} from {bridge}: {err}")

    async def has_port(self, bridge: str, name: str) -> bool:
        rc, out, err = await self._run("list-ports", bridge)
        if rc != 0:
            if "no bridge named" in err:
                return False
            raise BridgeError(f"listing ports of {bridge}: {err}")
        return name in out.split()

    async def bridge_exists(self, bridge: str) -> bool:
        rc, _, err = await self._run("br-exists", bridge)
        if rc not in (0, 2):
            raise BridgeError(f"checking bridge {bridge}: {err}")
        return rc == 0

    async def external_ids(self, name: str) -> dict[str, str]:
        """The Interface's external_ids (for checks and tests)."""
        rc, out, err = await self._run("--format=json", "--columns=external_ids", "list", "Interface", name)
        if rc != 0:
            raise BridgeError(f"reading external_ids of {name}: {err}")
        rows = json.loads(out)["data"]
        return {k: v for k, v in rows[0][0][1]} if rows else {}


def _quote(value: str) -> str:
    """An ovs-vsctl string value: quoted, so '/' ',' '=' and ':' in dpf-id survive."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class LinuxBridgePorts:
    """BridgePorts on a Linux bridge in network namespace `netns` (a path; None: dpfd's own)."""

    def __init__(self, netns: str | None = None) -> None:
        self._netns = netns

    async def add_port(self, bridge: str, name: str, external_ids: dict[str, str]) -> None:
        await asyncio.to_thread(self._add, bridge, name, external_ids)

    def _add(self, bridge: str, name: str, external_ids: dict[str, str]) -> None:
        with iproute(self._netns) as ipr:
            br = ipr.link_lookup(ifname=bridge)
            port = ipr.link_lookup(ifname=name)
            if not br:
                raise BridgeError(f"adding {name} to {bridge}: no bridge named {bridge}")
            if not port:
                raise BridgeError(f"adding {name} to {bridge}: no interface named {name}")
            alias = ",".join(f"{k}={v}" for k, v in sorted(external_ids.items()))
            try:
                ipr.link("set", index=port[0], master=br[0], ifalias=alias)
            except NetlinkError as e:
                raise BridgeError(f"adding {name} to {bridge}: {e}") from e

    async def del_port(self, bridge: str, name: str) -> None:
        await asyncio.to_thread(self._del, bridge, name)

    def _del(self, bridge: str, name: str) -> None:
        with iproute(self._netns) as ipr:
            br = ipr.link_lookup(ifname=bridge)
            port = ipr.link_lookup(ifname=name)
            if not br or not port:
                return
            if ipr.get_links(port[0])[0].get_attr("IFLA_MASTER") == br[0]:
                ipr.link("set", index=port[0], master=0)

    async def has_port(self, bridge: str, name: str) -> bool:
        return await asyncio.to_thread(self._has, bridge, name)

    def _has(self, bridge: str, name: str) -> bool:
        with iproute(self._netns) as ipr:
            br = ipr.link_lookup(ifname=bridge)
            port = ipr.link_lookup(ifname=name)
            return bool(br and port and ipr.get_links(port[0])[0].get_attr("IFLA_MASTER") == br[0])

    async def bridge_exists(self, bridge: str) -> bool:
        return await asyncio.to_thread(self._exists, bridge)

    def _exists(self, bridge: str) -> bool:
        with iproute(self._netns) as ipr:
            return bool(ipr.link_lookup(ifname=bridge))

    async def external_ids(self, name: str) -> dict[str, str]:
        """The port's external_ids as add_port stored them."""
        return await asyncio.to_thread(self._ids, name)

    def _ids(self, name: str) -> dict[str, str]:
        with iproute(self._netns) as ipr:
            port = ipr.link_lookup(ifname=name)
            alias = ipr.get_links(port[0])[0].get_attr("IFLA_IFALIAS") if port else None
        return dict(pair.split("=", 1) for pair in alias.split(",")) if alias else {}
