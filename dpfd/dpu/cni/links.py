"""Netlink work for CNI attachments: the veth pair, the pod end's address and routes, checks. Synchronous:
call through asyncio.to_thread (pyroute2's IPRoute runs its own loop, and entering a namespace switches the
calling thread only).

Namespaces are paths (CNI_NETNS is one, e.g. /var/run/netns/x or /proc/<pid>/ns/net). A netlink socket stays
in the namespace it was opened in, so the thread enters the namespace with setns(2), opens the socket and
returns at once (no fork, unlike pyroute2's IPRoute(netns=...); see dpfd.host.netns).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from dpfd.host.netns import iproute as netns_iproute


class LinkError(Exception):
    """A netlink step failed; the message says which and why."""


def host_ifname(container_id: str, ifname: str) -> str:
    """The host end's name: derived from the attachment, so DEL finds it without state (15 characters)."""
    return "sfc" + hashlib.sha256(f"{container_id}/{ifname}".encode()).hexdigest()[:12]


@contextlib.contextmanager
def iproute(netns: str | None) -> Iterator[IPRoute]:
    """An IPRoute in the namespace at path `netns` (None: the caller's), closed on exit; entered with setns,
    not pyroute2's fork (see dpfd.host.netns). FileNotFoundError if it is not there."""
    with netns_iproute(netns) as ipr:
        yield ipr


def _index(ipr: IPRoute, name: str) -> int | None:
    found = ipr.link_lookup(ifname=name)
    return int(found[0]) if found else None


def _mac(ipr: IPRoute, index: int) -> str:
    return str(ipr.get_links(index)[0].get_attr("IFLA_ADDRESS"))


@dataclass(frozen=True)
class Attachment:
    host_mac: str
    pod_mac: str


def add_veth(
    host_netns: str | None,
    host_name: str,
    pod_netns: str,
    ifname: str,
    address: IPv4Interface,
    gateway: IPv4Address | None,
    routes: list[tuple[IPv4Network, IPv4Address | None]],
    mtu: int | None,
) -> Attachment:
    """Create the pair (`host_name` here, `ifname` in the pod), address and route the pod end, bring both up.

    A host end left by an earlier ADD of the same attachment is removed first (with its peer), so ADD can be retried.
    """
    try:
        pod_fd = os.open(pod_netns, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise LinkError(f"pod network namespace {pod_netns}: {e.strerror}") from e
    try:
        with iproute(host_netns) as ipr:
            old = _index(ipr, host_name)
            if old is not None:
                ipr.link("del", index=old)
            peer: dict[str, object] = {"ifname": ifname, "net_ns_fd": pod_fd}
            extra: dict[str, object] = {}
            if mtu is not None:
                peer["mtu"] = mtu
                extra["mtu"] = mtu
            try:
                ipr.link("add", ifname=host_name, kind="veth", peer=peer, **extra)
            except NetlinkError as e:
                if e.code == errno.EEXIST:
                    raise LinkError(f"{ifname} already exists in {pod_netns} (or {host_name} on the DPU)") from e
                raise LinkError(f"creating veth {host_name}/{ifname}: {e}") from e
            host_index = _index(ipr, host_name)
            if host_index is None:
                raise LinkError(f"veth {host_name} vanished right after it was created")
            ipr.link("set", index=host_index, state="up")
            host_mac = _mac(ipr, host_index)
    finally:
        os.close(pod_fd)
    try:
        with iproute(pod_netns) as pod:
            index = _index(pod, ifname)
            if index is None:
                raise LinkError(f"{ifname} did not appear in {pod_netns}")
            pod.link("set", index=index, state="up")
            pod.addr("add", index=index, address=str(address.ip), prefixlen=address.network.prefixlen)
            for dst, via in routes:
                gw = via or gateway
                pod.route("replace", dst=str(dst), gateway=str(gw) if gw else None, oif=index)
            return Attachment(host_mac=host_mac, pod_mac=_mac(pod, index))
    except (NetlinkError, OSError) as e:
        del_veth(host_netns, host_name)
        raise LinkError(f"configuring {ifname} in {pod_netns}: {e}") from e


def del_veth(host_netns: str | None, host_name: str) -> bool:
    """Remove the pair by its host end (the pod end goes with it); False if it was not there."""
    with iproute(host_netns) as ipr:
        index = _index(ipr, host_name)
        if index is None:
            return False
        try:
            ipr.link("del", index=index)
        except NetlinkError as e:
            if e.code == errno.ENODEV:
                return False
            raise
        return True


def check_veth(
    host_netns: str | None, host_name: str, pod_netns: str, ifname: str, addresses: list[IPv4Interface]
) -> list[str]:
    """What is not as ADD left it (empty: all is well)."""
    problems: list[str] = []
    with iproute(host_netns) as ipr:
        index = _index(ipr, host_name)
        if index is None:
            problems.append(f"host end {host_name} does not exist")
        elif not _is_up(ipr, index):
            problems.append(f"host end {host_name} is down")
    try:
        with iproute(pod_netns) as pod:
            index = _index(pod, ifname)
            if index is None:
                return [*problems, f"{ifname} does not exist in {pod_netns}"]
            if not _is_up(pod, index):
                problems.append(f"{ifname} in {pod_netns} is down")
            have = {(str(a.get_attr("IFA_ADDRESS")), int(a["prefixlen"])) for a in pod.get_addr(index=index, family=2)}
            for want in addresses:
                if (str(want.ip), want.network.prefixlen) not in have:
                    problems.append(f"{ifname} in {pod_netns} lacks {want}")
    except FileNotFoundError:
        problems.append(f"pod network namespace {pod_netns} does not exist")
    return problems


def _is_up(ipr: IPRoute, index: int) -> bool:
    return bool(ipr.get_links(index)[0]["flags"] & 0x1)


def link_exists(host_netns: str | None, name: str) -> bool:
    with iproute(host_netns) as ipr:
        return _index(ipr, name) is not None


def host_ifnames(host_netns: str | None) -> set[str]:
    """Names of the links in the host ends' namespace (one netlink dump, for leak passes)."""
    with iproute(host_netns) as ipr:
        return {str(link.get_attr("IFLA_IFNAME")) for link in ipr.get_links()}
