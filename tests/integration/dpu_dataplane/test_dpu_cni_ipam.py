"""The DPU dpfd's SFC CNI with addresses from the etcd IPAM, wired as the daemon wires it (dataplane_for with the
store): real etcd with the controller's per-node ranges (IpamReconciler), a private OVS whose namespace is
`dataplane.cniNetns`, the real dpf-sfc-cni executable. Addresses come from this node's range, two pods never share
one, the result's gateway and routes are the range's, DEL releases, a pod gone without DEL is collected, and the
pool comes from DPF's cni-args (poolNames, poolType, allocateDefaultGateway) or else the network name."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path
from typing import Any

import pytest

from controller.ipam.reconciler import IpamReconciler
from dpfd.api.chains import DPUServiceIPAMSpec
from dpfd.cni import wire
from dpfd.config import DpfdConfig
from dpfd.daemon import dataplane_for
from dpfd.dpu.cni.ipam_store import EtcdAllocator
from dpfd.dpu.cni.links import host_ifname
from dpfd.dpu.cni.netconf import IpamConfig
from dpfd.dpu.dataplane import Dataplane
from dpfd.store import Store
from dpfd.store.ipam_ranges import PoolRanges
from dpfd.store.ipam_types import NodeRange
from tests.integration.cni.cni_env import Plugin, addresses, links, netns, ns_path, ping, sh
from tests.ovs_fixture import PrivateOvs
from tests.waiting import eventually

NODE = "dpu-a"
BR = "br-sfc"
# ipv4Network: a /28 per node with its gateway at .1, a default route and one more route via it.
SFC = DPUServiceIPAMSpec.model_validate({
    "metadata": {"labels": {"svc.dpu.nvidia.com/pool": "sfc"}},
    "ipv4Network": {"network": "203.0.113.0/24", "prefixSize": 28, "gatewayIndex": 1, "defaultGateway": True,
                    "routes": [{"dst": "198.51.100.0/24"}]},
})  # fmt: skip
# ipv4Subnet: blocks of 4 of a shared /25 with one gateway.
BLOCKS = DPUServiceIPAMSpec.model_validate(
    {"ipv4Subnet": {"subnet": "198.51.100.128/25", "gateway": "198.51.100.129", "perNodeIPCount": 4}}
)


@dataclass
class Env:
    ovs: PrivateOvs
    store: Store
    dataplane: Dataplane
    plugin: Plugin

    async def range_of(self, pool: str) -> NodeRange:
        got = await PoolRanges(self.store).get(pool, NODE)
        assert got is not None, f"pool {pool} has no range for {NODE}"
        return got[0]

    async def owners(self, pool: str) -> dict[str, IPv4Address]:
        return await EtcdAllocator(self.store, NODE).owners(pool)

    def ofport(self, port: str) -> int:
        return int(self.ovs.vsctl("get", "Interface", port, "ofport").strip())

    def ports(self) -> list[str]:
        """The CNI's ports on br-sfc (not the monitor's canary pair)."""
        return sorted(p for p in self.ovs.vsctl("list-ports", BR).split() if not p.startswith("dpfmon"))


def config(ovs: PrivateOvs, endpoints: list[str], socket: Path, leak_interval: float) -> DpfdConfig:
    return DpfdConfig.model_validate({
        "node": NODE, "role": "dpu", "etcd": {"endpoints": endpoints},
        "stateDir": str(socket.parent / "state"), "runtimeDir": str(socket.parent),
        "dataplane": {"enabled": True, "ovsdb": ovs.db, "portType": "internal", "ofctl": ["ovs-ofctl"],
                      "ofctlTarget": ovs.mgmt(BR), "cniSocket": str(socket), "cniNetns": ovs.netns,
                      "cniLeakInterval": leak_interval},
    })  # fmt: skip


@pytest.fixture
async def env(ovs: PrivateOvs, etcd_endpoints: list[str], tmp_path: Path) -> AsyncIterator[Env]:
    ovs.add_bridge(BR)
    assert ovs.netns is not None
    store = await Store.connect(etcd_endpoints)
    ipam = IpamReconciler(store)
    for pool in ("sfc", "blocks"):
        await ipam.reconcile(pool, None, [])  # the session etcd may hold them from another test
    await ipam.reconcile("sfc", SFC, ["dpu-0", NODE, "dpu-b"])
    await ipam.reconcile("blocks", BLOCKS, ["dpu-0", NODE])
    cfg = config(ovs, etcd_endpoints, tmp_path / "run" / "sfc-cni.sock", leak_interval=3600)
    dataplane = dataplane_for(cfg, store)
    assert dataplane is not None
    await dataplane.start()
    await eventually(dataplane.connected.is_set, 15, "dpfd connected to OVSDB (its monitor up)")
    conf = {
        "cniVersion": "1.0.0", "name": "sfc", "type": "dpf-sfc-cni", "socket": str(cfg.dataplane.cni_socket),
        "bridge": BR, "ipam": {"type": "nv-ipam"},
    }  # fmt: skip
    try:
        yield Env(ovs, store, dataplane, Plugin(conf))
    finally:
        await dataplane.stop()
        for pool in ("sfc", "blocks"):
            await ipam.reconcile(pool, None, [])
        await store.close()


def with_cni_args(conf: dict[str, Any], **cni: object) -> dict[str, Any]:
    """The network configuration as Multus hands it over with a pod's cni-args (DPF's pod-ipam-injector)."""
    return {**conf, "args": {"cni": cni}}


async def test_addresses_from_the_nodes_range_with_its_gateway_and_routes(env: Env) -> None:
    rng = await env.range_of("sfc")
    assert rng.gateway is not None
    with netns("dpf-ipam-pod") as a, netns("dpf-ipam-pod") as b:
        rc_a, res_a = await env.plugin.run("ADD", "ca", ns_path(a), pod="svc-a")
        rc_b, res_b = await env.plugin.run("ADD", "cb", ns_path(b), pod="svc-b")
        assert (rc_a, rc_b) == (0, 0), (res_a, res_b)
        got = [IPv4Interface(r["ips"][0]["address"]) for r in (res_a, res_b)]
        assert got[0] != got[1], "two pods got one address"
        for addr in got:
            assert rng.first <= addr.ip <= rng.last and addr.ip != rng.gateway, (addr, rng.describe())
            assert addr.network == rng.subnet
        assert await env.owners("sfc") == {"ca/eth1": got[0].ip, "cb/eth1": got[1].ip}
        assert res_a["ips"][0]["gateway"] == str(rng.gateway)
        assert res_a["routes"] == [
            {"dst": "198.51.100.0/24", "gw": str(rng.gateway)},
            {"dst": "0.0.0.0/0", "gw": str(rng.gateway)},
        ]
        # ... and that is what the pod has: its address, the range's routes via the gateway
        assert addresses(links(a)["eth1"]) == {str(got[0])}
        routes = sh("ip", "-n", a, "-4", "route", "show").stdout
        assert f"default via {rng.gateway} dev eth1" in routes and f"198.51.100.0/24 via {rng.gateway}" in routes
        # the host ends are in cniNetns, as br-sfc ports ovs-vswitchd opened; pods talk once br-sfc forwards
        host_a = host_ifname("ca", "eth1")
        assert host_a in links(env.ovs.netns) and host_a not in links(None)
        assert env.ports() == sorted([host_a, host_ifname("cb", "eth1")])
        await eventually(lambda: all(env.ofport(p) > 0 for p in env.ports()), 5, "ovs-vswitchd opening the CNI ports")
        # (not NORMAL: it would flood through the monitor's canary patch pair, a loop)
        pa, pb = env.ofport(host_a), env.ofport(host_ifname("cb", "eth1"))
        env.ovs.ofctl("add-flow", BR, f"priority=1,in_port={pa},actions=output:{pb}")
        env.ovs.ofctl("add-flow", BR, f"priority=1,in_port={pb},actions=output:{pa}")
        assert ping(a, str(got[1].ip)), "pod a cannot reach pod b through br-sfc"
        assert await env.plugin.run("CHECK", "ca", ns_path(a)) == (0, None)

        assert await env.plugin.run("DEL", "ca", ns_path(a)) == (0, None)
        assert await env.owners("sfc") == {"cb/eth1": got[1].ip}, "DEL must release the address in etcd"
        assert await env.plugin.run("DEL", "ca", ns_path(a)) == (0, None)
        assert env.ports() == [host_ifname("cb", "eth1")]
        assert await env.plugin.run("DEL", "cb", ns_path(b)) == (0, None)
        assert await env.owners("sfc") == {}


async def test_pods_gone_without_del_are_collected(env: Env) -> None:
    assert env.dataplane.cni is not None
    with netns("dpf-ipam-pod") as keep:
        assert (await env.plugin.run("ADD", "keep", ns_path(keep)))[0] == 0
        with netns("dpf-ipam-pod") as gone:
            assert (await env.plugin.run("ADD", "gone", ns_path(gone)))[0] == 0
        # the namespace went with the pod end, the veth pair with it (the kernel cleans a namespace up in the
        # background, so a moment later); the address and the OVS port stay
        gone_end = host_ifname("gone", "eth1")
        await eventually(lambda: gone_end not in links(env.ovs.netns), 5, "the kernel removing the gone pod's veth")
        assert set(await env.owners("sfc")) == {"keep/eth1", "gone/eth1"}
        assert await env.dataplane.cni.collect_leaks(BR) == [("sfc", "gone/eth1")]
        assert set(await env.owners("sfc")) == {"keep/eth1"}
        assert env.ports() == [host_ifname("keep", "eth1")]
        assert await env.dataplane.cni.collect_leaks(BR) == []
        assert await env.plugin.run("CHECK", "keep", ns_path(keep)) == (0, None)


async def test_dpfd_collects_leaks_at_start_and_then_periodically(
    env: Env, etcd_endpoints: list[str], tmp_path: Path
) -> None:
    """Allocations with no attachment at all (a dpfd died inside an ADD): a starting dpfd's first pass finds
    them in every pool of its node, later passes in the pools it knows."""
    allocator = EtcdAllocator(env.store, NODE)
    ipam = IpamConfig.model_validate({"type": "nv-ipam"})
    await allocator.allocate("blocks", ipam, "dead/eth1")
    assert env.dataplane.cni is not None
    assert await env.dataplane.cni.collect_leaks(BR) == [], "a pool this dpfd has not seen: only the full pass"
    again = dataplane_for(config(env.ovs, etcd_endpoints, tmp_path / "run2" / "sfc-cni.sock", 0.2), env.store)
    assert again is not None
    await again.start()
    try:
        await eventually(_no_owners(env, "blocks"), 10, "the startup pass releasing dead/eth1")
        await allocator.allocate("blocks", ipam, "dead2/eth1")
        await eventually(_no_owners(env, "blocks"), 10, "a periodic pass releasing dead2/eth1")
    finally:
        await again.stop()


def _no_owners(env: Env, pool: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return not await env.owners(pool)

    return check


async def test_the_pool_comes_from_dpfs_cni_args(env: Env) -> None:
    blocks = await env.range_of("blocks")
    with netns("dpf-ipam-pod") as a, netns("dpf-ipam-pod") as b, netns("dpf-ipam-pod") as c:
        conf = with_cni_args(env.plugin.conf, poolNames=["blocks"], poolType="ippool")
        rc, res = await env.plugin.run("ADD", "ca", ns_path(a), conf=conf)
        assert rc == 0, res
        addr = IPv4Interface(res["ips"][0]["address"])
        assert blocks.first <= addr.ip <= blocks.last and addr.network == blocks.subnet, (addr, blocks.describe())
        assert res["ips"][0]["gateway"] == "198.51.100.129" and res["routes"] == []
        assert set(await env.owners("blocks")) == {"ca/eth1"} and await env.owners("sfc") == {}
        # the wrong poolType for the pool is refused, and nothing stays allocated
        wrong = with_cni_args(env.plugin.conf, poolNames=["sfc"], poolType="ippool")
        rc, err = await env.plugin.run("ADD", "cb", ns_path(b), conf=wrong)
        assert (rc, err["code"]) == (1, wire.ERR_INVALID_CONFIG) and "is a cidrpool here" in err["msg"], err
        assert await env.owners("sfc") == {}
        # allocateDefaultGateway: this pod is the range's gateway (no gateway, no routes via itself)
        router = with_cni_args(env.plugin.conf, poolNames="sfc", allocateDefaultGateway=True)
        rc, res = await env.plugin.run("ADD", "cb", ns_path(b), conf=router)
        rng = await env.range_of("sfc")
        assert rc == 0, res
        assert res["ips"] == [{"address": f"{rng.gateway}/{rng.subnet.prefixlen}", "interface": 1}]
        assert res["routes"] == []
        rc, err = await env.plugin.run("ADD", "cc", ns_path(c), conf=router)
        assert (rc, err["code"]) == (1, wire.ERR_INTERNAL) and "held by cb/eth1" in err["msg"], err
        # DEL with the same cni-args releases from that pool
        assert await env.plugin.run("DEL", "ca", ns_path(a), conf=conf) == (0, None)
        assert await env.plugin.run("DEL", "cb", ns_path(b), conf=router) == (0, None)
        assert await env.owners("blocks") == {} and await env.owners("sfc") == {}


async def test_a_pool_without_a_range_here_says_try_again_later(env: Env) -> None:
    with netns("dpf-ipam-pod") as a:
        conf = with_cni_args(env.plugin.conf, poolNames=["nothere"])
        rc, err = await env.plugin.run("ADD", "ca", ns_path(a), conf=conf)
        assert (rc, err["code"]) == (1, wire.ERR_TRY_AGAIN_LATER), err
        assert "pool nothere (from args.cni)" in err["msg"] and "no range for node dpu-a" in err["msg"], err
        assert env.ports() == []
