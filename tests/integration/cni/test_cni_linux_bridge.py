"""The SFC CNI end to end on real netlink: the real dpf-sfc-cni executable, the dpfd CNI server in this process,
a pod network namespace, and a "DPU" namespace holding a Linux bridge br-sfc whose address is the pool's gateway.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dpfd.cni import wire
from dpfd.dpu.cni.bridge import LinuxBridgePorts
from dpfd.dpu.cni.ipam import HostLocalAllocator
from dpfd.dpu.cni.links import host_ifname
from dpfd.dpu.cni.server import CniServer
from dpfd.dpu.cni.service import CniService
from tests.integration.cni.cni_env import GATEWAY, SUBNET, Plugin, addresses, links, netns, ns_path, ping, sh

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")


@dataclass
class Env:
    dpu: str
    plugin: Plugin
    ipam: HostLocalAllocator
    ports: LinuxBridgePorts


@pytest.fixture
def dpu_ns() -> Iterator[str]:
    with netns("dpf-cni-dpu") as ns:
        sh("ip", "-n", ns, "link", "add", "br-sfc", "type", "bridge")
        sh("ip", "-n", ns, "addr", "add", f"{GATEWAY}/24", "dev", "br-sfc")
        sh("ip", "-n", ns, "link", "set", "br-sfc", "up")
        yield ns


@pytest.fixture
def pod_ns() -> Iterator[str]:
    with netns("dpf-cni-pod") as ns:
        yield ns


@pytest.fixture
async def env(dpu_ns: str, tmp_path: Path) -> AsyncIterator[Env]:
    ipam = HostLocalAllocator(tmp_path / "ipam")
    ports = LinuxBridgePorts(ns_path(dpu_ns))
    server = await CniServer(CniService(ipam, ports, host_netns=ns_path(dpu_ns)), tmp_path / "sfc-cni.sock").start()
    conf = {
        "cniVersion": "1.1.0", "name": "mybrsfc", "type": "dpf-sfc-cni", "socket": str(server.path), "bridge": "br-sfc",
        "ipam": {"type": "dpf-sfc-pool", "subnet": SUBNET, "rangeStart": "198.51.100.10", "gateway": GATEWAY,
                 "routes": [{"dst": "0.0.0.0/0"}]},
    }  # fmt: skip
    try:
        yield Env(dpu_ns, Plugin(conf), ipam, ports)
    finally:
        await server.stop()


async def test_add_puts_an_addressed_interface_in_the_pod_and_its_peer_on_the_bridge(env: Env, pod_ns: str) -> None:
    rc, result = await env.plugin.run("ADD", "c1", ns_path(pod_ns), pod="pod1")
    assert rc == 0, result
    host = host_ifname("c1", "eth1")
    assert result["cniVersion"] == "1.1.0"
    assert [i["name"] for i in result["interfaces"]] == [host, "eth1"]
    assert result["interfaces"][1]["sandbox"] == ns_path(pod_ns)
    assert result["ips"] == [{"address": "198.51.100.10/24", "gateway": GATEWAY, "interface": 1}]
    assert result["routes"] == [{"dst": "0.0.0.0/0", "gw": GATEWAY}]

    pod = links(pod_ns)["eth1"]
    assert addresses(pod) == {"198.51.100.10/24"}
    assert pod["address"] == result["interfaces"][1]["mac"]
    assert "UP" in pod["flags"]
    assert GATEWAY in sh("ip", "-n", pod_ns, "route", "show", "default").stdout
    dpu = links(env.dpu)[host]
    assert dpu["master"] == "br-sfc"
    assert dpu["address"] == result["interfaces"][0]["mac"]
    assert await env.ports.external_ids(host) == {"dpf-id": "ns1/pod1/eth1", "dpf-cni": "c1/eth1"}
    assert ping(pod_ns, GATEWAY), "the pod cannot reach the bridge's address through its interface"
    assert not ping(pod_ns, "198.51.100.99"), "an address nobody has answered: the ping check proves nothing"


async def test_check_after_add_succeeds_and_fails_once_the_address_is_gone(env: Env, pod_ns: str) -> None:
    rc, result = await env.plugin.run("ADD", "c1", ns_path(pod_ns))
    assert rc == 0
    conf_with_prev = {**env.plugin.conf, "prevResult": result}
    assert await env.plugin.run("CHECK", "c1", ns_path(pod_ns), conf=conf_with_prev) == (0, None)
    sh("ip", "-n", pod_ns, "addr", "del", "198.51.100.10/24", "dev", "eth1")
    rc, err = await env.plugin.run("CHECK", "c1", ns_path(pod_ns), conf=conf_with_prev)
    assert rc == 1
    assert err["code"] == wire.ERR_CHECK_FAILED
    assert "lacks 198.51.100.10/24" in err["msg"]
    rc, err = await env.plugin.run("CHECK", "never-added", ns_path(pod_ns))
    assert (rc, err["code"]) == (1, wire.ERR_CHECK_FAILED)
    assert "no address" in err["msg"]


async def test_check_sees_a_port_taken_off_the_bridge(env: Env, pod_ns: str) -> None:
    assert (await env.plugin.run("ADD", "c1", ns_path(pod_ns)))[0] == 0
    sh("ip", "-n", env.dpu, "link", "set", host_ifname("c1", "eth1"), "nomaster")
    rc, err = await env.plugin.run("CHECK", "c1", ns_path(pod_ns))
    assert (rc, err["code"]) == (1, wire.ERR_CHECK_FAILED)
    assert "is not a port of br-sfc" in err["msg"]


async def test_del_twice_succeeds_and_frees_everything(env: Env, pod_ns: str) -> None:
    assert (await env.plugin.run("ADD", "c1", ns_path(pod_ns)))[0] == 0
    host = host_ifname("c1", "eth1")
    assert await env.plugin.run("DEL", "c1", ns_path(pod_ns)) == (0, None)
    assert "eth1" not in links(pod_ns)
    assert host not in links(env.dpu)
    assert await env.ipam.lookup("mybrsfc", "c1/eth1") is None
    assert await env.plugin.run("DEL", "c1", ns_path(pod_ns)) == (0, None)
    assert await env.plugin.run("DEL", "c1", "") == (0, None)  # the runtime may have no netns any more


async def test_del_after_the_pod_namespace_is_gone(env: Env) -> None:
    with netns("dpf-cni-pod") as ns:
        assert (await env.plugin.run("ADD", "c1", ns_path(ns)))[0] == 0
    assert await env.plugin.run("DEL", "c1", "/var/run/netns/gone") == (0, None)
    assert host_ifname("c1", "eth1") not in links(env.dpu)
    assert await env.ipam.owners("mybrsfc") == {}


async def test_two_pods_get_different_addresses_and_reach_each_other(env: Env) -> None:
    with netns("dpf-cni-pod") as a, netns("dpf-cni-pod") as b:
        rc_a, res_a = await env.plugin.run("ADD", "ca", ns_path(a), pod="pod-a")
        rc_b, res_b = await env.plugin.run("ADD", "cb", ns_path(b), pod="pod-b")
        assert (rc_a, rc_b) == (0, 0)
        addr_b = res_b["ips"][0]["address"]
        assert res_a["ips"][0]["address"] != addr_b
        assert ping(a, addr_b.split("/")[0]), "pod a cannot reach pod b across br-sfc"
        assert await env.ports.external_ids(host_ifname("cb", "eth1")) == {
            "dpf-id": "ns1/pod-b/eth1",
            "dpf-cni": "cb/eth1",
        }


async def test_add_retried_keeps_the_address_and_one_interface(env: Env, pod_ns: str) -> None:
    rc, first = await env.plugin.run("ADD", "c1", ns_path(pod_ns))
    assert rc == 0
    rc, second = await env.plugin.run("ADD", "c1", ns_path(pod_ns))
    assert rc == 0, second
    assert second["ips"] == first["ips"]
    assert addresses(links(pod_ns)["eth1"]) == {"198.51.100.10/24"}
    assert [n for n in links(env.dpu) if n.startswith("sfc")] == [host_ifname("c1", "eth1")]


async def test_failed_add_leaves_nothing_behind(env: Env, pod_ns: str) -> None:
    sh("ip", "-n", pod_ns, "link", "add", "eth1", "type", "veth", "peer", "name", "other")
    rc, err = await env.plugin.run("ADD", "c1", ns_path(pod_ns))
    assert rc == 1
    assert err["code"] == wire.ERR_INTERNAL
    assert "eth1 already exists" in err["msg"]
    assert await env.ipam.owners("mybrsfc") == {}
    assert not [n for n in links(env.dpu) if n.startswith("sfc")]
    rc, err = await env.plugin.run("ADD", "c2", "/var/run/netns/absent")
    assert (rc, err["code"]) == (1, wire.ERR_INTERNAL)
    assert "/var/run/netns/absent" in err["msg"]
    assert await env.ipam.owners("mybrsfc") == {}


async def test_add_without_pod_identity_is_error_4(env: Env, pod_ns: str) -> None:
    conf = env.plugin.conf
    env.plugin.conf = {**conf}
    rc, err = await env.plugin.run("ADD", "c1", ns_path(pod_ns), pod="")
    assert (rc, err["code"]) == (1, wire.ERR_INVALID_ENV)
    assert "K8S_POD_NAME" in err["msg"]


async def test_unknown_ipam_field_is_error_2(env: Env, pod_ns: str) -> None:
    conf = {**env.plugin.conf, "ipam": {**env.plugin.conf["ipam"], "exclude": ["198.51.100.11"]}}
    rc, err = await env.plugin.run("ADD", "c1", ns_path(pod_ns), conf=conf)
    assert (rc, err["code"]) == (1, wire.ERR_UNSUPPORTED_FIELD)
    assert "ipam.exclude" in err["msg"]


async def test_gc_detaches_what_the_runtime_no_longer_lists(env: Env) -> None:
    with netns("dpf-cni-pod") as a, netns("dpf-cni-pod") as b:
        assert (await env.plugin.run("ADD", "ca", ns_path(a)))[0] == 0
        assert (await env.plugin.run("ADD", "cb", ns_path(b)))[0] == 0
        conf = {**env.plugin.conf, "cni.dev/valid-attachments": [{"containerID": "ca", "ifname": "eth1"}]}
        assert await env.plugin.run("GC", conf=conf) == (0, None)
        assert set(await env.ipam.owners("mybrsfc")) == {"ca/eth1"}
        assert "eth1" not in links(b)
        assert "eth1" in links(a)


async def test_status_reports_a_missing_bridge(env: Env) -> None:
    assert await env.plugin.run("STATUS") == (0, None)
    rc, err = await env.plugin.run("STATUS", conf={**env.plugin.conf, "bridge": "br-none"})
    assert (rc, err["code"]) == (1, wire.ERR_PLUGIN_NOT_AVAILABLE)
