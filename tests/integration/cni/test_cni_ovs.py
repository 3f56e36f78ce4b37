"""The SFC CNI with a real (private, userspace-datapath) Open vSwitch: the real dpf-sfc-cni, the dpfd CNI server in
this process with OvsVsctlPorts, veth host ends in the OVS namespace as ports of br-sfc with DPF's dpf-id.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dpfd.cni import wire
from dpfd.dpu.cni.bridge import OvsVsctlPorts
from dpfd.dpu.cni.ipam import HostLocalAllocator
from dpfd.dpu.cni.links import host_ifname
from dpfd.dpu.cni.server import CniServer
from dpfd.dpu.cni.service import CniService
from tests.integration.cni.cni_env import GATEWAY, SUBNET, Plugin, netns, ns_path, ping
from tests.ovs_fixture import PrivateOvs
from tests.waiting import eventually


@dataclass
class Env:
    ovs: PrivateOvs
    plugin: Plugin
    ports: OvsVsctlPorts


@pytest.fixture
async def env(ovs: PrivateOvs, tmp_path: Path) -> AsyncIterator[Env]:
    ovs.add_bridge("br-sfc")
    assert ovs.netns is not None
    ports = OvsVsctlPorts(str(ovs.db_sock))
    service = CniService(HostLocalAllocator(tmp_path / "ipam"), ports, host_netns=ns_path(ovs.netns))
    server = await CniServer(service, tmp_path / "sfc-cni.sock").start()
    conf = {
        "cniVersion": "1.0.0", "name": "mybrsfc", "type": "dpf-sfc-cni", "socket": str(server.path), "bridge": "br-sfc",
        "ipam": {"type": "dpf-sfc-pool", "subnet": SUBNET, "rangeStart": "198.51.100.20", "gateway": GATEWAY},
    }  # fmt: skip
    try:
        yield Env(ovs, Plugin(conf), ports)
    finally:
        await server.stop()


def ofport(ovs: PrivateOvs, name: str) -> int:
    return int(ovs.vsctl("get", "Interface", name, "ofport").strip())


async def test_pods_become_br_sfc_ports_with_dpf_id_and_talk_through_ovs(env: Env) -> None:
    with netns("dpf-cni-pod") as a, netns("dpf-cni-pod") as b:
        rc_a, res_a = await env.plugin.run("ADD", "ca", ns_path(a), pod="svc-a")
        rc_b, res_b = await env.plugin.run("ADD", "cb", ns_path(b), pod="svc-b")
        assert (rc_a, rc_b) == (0, 0), (res_a, res_b)
        host_a, host_b = host_ifname("ca", "eth1"), host_ifname("cb", "eth1")
        assert sorted(env.ovs.vsctl("list-ports", "br-sfc").split()) == sorted([host_a, host_b])
        assert await env.ports.external_ids(host_a) == {"dpf-id": "ns1/svc-a/eth1", "dpf-cni": "ca/eth1"}
        assert (
            env.ovs.vsctl(
                "--bare", "--columns=name", "find", "Interface", 'external_ids:dpf-id="ns1/svc-b/eth1"'
            ).strip()
            == host_b
        )
        # ovs-vswitchd opened both veth ends (a port it cannot open gets ofport -1)
        await eventually(
            lambda: ofport(env.ovs, host_a) > 0 and ofport(env.ovs, host_b) > 0, 5, "ofports of the CNI ports"
        )
        addr_b = res_b["ips"][0]["address"].split("/")[0]
        assert not ping(a, addr_b), "br-sfc is fail_mode=secure with no flows: nothing may pass yet"
        env.ovs.ofctl("add-flow", "br-sfc", "priority=1,actions=NORMAL")
        assert ping(a, addr_b), "pod a cannot reach pod b through br-sfc"
        assert await env.plugin.run("CHECK", "ca", ns_path(a)) == (0, None)

        assert await env.plugin.run("DEL", "ca", ns_path(a)) == (0, None)
        assert await env.plugin.run("DEL", "ca", ns_path(a)) == (0, None)
        assert env.ovs.vsctl("list-ports", "br-sfc").split() == [host_b]


async def test_check_sees_the_port_removed_from_ovs(env: Env) -> None:
    with netns("dpf-cni-pod") as a:
        assert (await env.plugin.run("ADD", "ca", ns_path(a)))[0] == 0
        env.ovs.vsctl("del-port", "br-sfc", host_ifname("ca", "eth1"))
        rc, err = await env.plugin.run("CHECK", "ca", ns_path(a))
        assert (rc, err["code"]) == (1, wire.ERR_CHECK_FAILED)
        assert "is not a port of br-sfc" in err["msg"]
        assert await env.plugin.run("DEL", "ca", ns_path(a)) == (0, None)


async def test_add_to_a_missing_bridge_fails_cleanly(env: Env) -> None:
    with netns("dpf-cni-pod") as a:
        conf = {**env.plugin.conf, "bridge": "br-none"}
        rc, err = await env.plugin.run("ADD", "ca", ns_path(a), conf=conf)
        assert (rc, err["code"]) == (1, wire.ERR_INTERNAL)
        assert "br-none" in err["msg"]
        out = env.ovs.run(["ip", "netns", "exec", env.ovs.netns or "", "ip", "-br", "link"])
        assert not [line for line in out.splitlines() if line.startswith(host_ifname("ca", "eth1"))], out
