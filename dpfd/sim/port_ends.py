"""The outside of an emulated BlueField's ports: what its uplinks are cabled to and the host its PFs face.

A real BlueField's `p0`/`p1` are its uplinks (the wire) and `pf0hpf`/`pf1hpf` the representors of the host's
PFs. In dpf-sim each of them is a veth end in the namespace of the BlueField's Open vSwitch, whose other end is
in one of two namespaces of its own:

- the wire namespace (`<ovs netns>-wire`): `wire0`, `wire1`, the far ends of `p0`, `p1`;
- the host namespace (`<ovs netns>-host`): the host's PF netdevs (`p0`, `p1` as the Node's labels name them), the
  far ends of `pf0hpf`, `pf1hpf`.

All ends are up, without addresses (no IPv6 in the OVS namespace either), and the outside ends do not offload tx checksums (OVS's userspace datapath
would pass partial checksums on). The uplinks join br-sfc as the flavor's OVS script adds `p0` (a system port,
`external_ids:dpf-type=physical` on the Port); the PF representors only exist as netdevs until a pf
ServiceInterface makes them ports. Synchronous: call from a worker thread.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from dpfd.host.netns import NETNS_DIR, iproute
from dpfd.sim.ovs import PrivateOvs


class PortEndsError(RuntimeError):
    pass


@dataclass(frozen=True)
class PortEnds:
    wire_netns: str
    host_netns: str
    # DPU-side name -> (namespace, name) of the other end: {"p0": (wire, "wire0"), "pf0hpf": (host, "p0"), ...}
    peers: dict[str, tuple[str, str]]

    def record(self) -> dict[str, object]:
        """For the BlueField's ovs.json (dpf-sim exec --in wire|host)."""
        return {"wireNetns": self.wire_netns, "hostNetns": self.host_netns,
                "peers": {k: {"netns": ns, "name": n} for k, (ns, n) in sorted(self.peers.items())}}  # fmt: skip


def uplink_name(index: int) -> str:
    return f"p{index}"


def pf_representor_name(index: int) -> str:
    return f"pf{index}hpf"


def make_port_ends(ovs: PrivateOvs, host_pf_names: Sequence[str], bridge: str = "br-sfc") -> PortEnds:
    """Namespaces and veths for the BlueField whose OVS is `ovs` (which must have its own namespace), its uplinks
    on `bridge` as the flavor script adds them."""
    if ovs.netns is None:
        raise PortEndsError("the BlueField's OVS has no network namespace of its own")
    ends = PortEnds(f"{ovs.netns}-wire", f"{ovs.netns}-host", {})
    try:
        for ns in (ends.wire_netns, ends.host_netns):
            _remove_netns(ns)
            _run("ip", "netns", "add", ns)
            _run("ip", "-n", ns, "link", "set", "lo", "up")
        # The OVS namespace's own kernel stays quiet: no IPv6 router solicitations or MLD reports from the ends
        # in it (the uplinks, representors and the CNI's host ends) into the chains.
        _run("ip", "netns", "exec", ovs.netns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
             "net.ipv6.conf.default.disable_ipv6=1")  # fmt: skip
        with iproute(ovs.netns) as ipr:
            for i, host_pf in enumerate(host_pf_names):
                pairs = (
                    (uplink_name(i), ends.wire_netns, f"wire{i}"),
                    (pf_representor_name(i), ends.host_netns, host_pf),
                )
                for inside, ns, outside in pairs:
                    ipr.link("add", ifname=inside, kind="veth", peer={"ifname": outside, "net_ns_fd": ns})
                    ipr.link("set", index=ipr.link_lookup(ifname=inside)[0], state="up")
                    ends.peers[inside] = (ns, outside)
        for ns, outside in ends.peers.values():
            _run("ip", "-n", ns, "link", "set", outside, "up")
            _run("ip", "netns", "exec", ns, "ethtool", "-K", outside, "tx", "off")
        ovs.vsctl("--may-exist", "add-port", bridge, uplink_name(0), "--",
                  "set", "Port", uplink_name(0), "external_ids:dpf-type=physical")  # fmt: skip
    except BaseException:
        remove_port_ends(ends)
        raise
    return ends


def remove_port_ends(ends: PortEnds) -> None:
    """Delete both namespaces (their veths go, and with them the ends in the OVS namespace)."""
    for ns in (ends.wire_netns, ends.host_netns):
        _remove_netns(ns)


def _remove_netns(name: str) -> None:
    if os.path.exists(os.path.join(NETNS_DIR, name)):
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)


def _run(*argv: str) -> None:
    out = subprocess.run(list(argv), capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise PortEndsError(f"{' '.join(argv)}: {out.stderr.strip() or f'exit {out.returncode}'}")
