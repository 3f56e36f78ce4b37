"""Host networking against real netlink: a fresh network namespace with a real br-dpu, VF0 a real veth end.

Only the BlueField is emulated (its sysfs tree and the kernel's SR-IOV side); the bridge, the VF netdev, the
enslaving, MTU and link state are the kernel's, read back over netlink.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pyroute2 import IPRoute, netns

from dpfd.host.discovery import DiscoveredDpu, node_labels, scan
from dpfd.host.hostnet import (
    IFF_UP,
    STEP_BRIDGE,
    HostNetworkError,
    SysfsHostNetwork,
    configure_host_network,
    read_sriov_numvfs,
)
from dpfd.sim.sysfs import EmulatedSysfs, VethVfNetdevs
from tests.waiting import eventually

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")

BRIDGE_ADDRESS = "198.51.100.1"
GATEWAY = "198.51.100.254"
OOB_LABEL = "feature.node.kubernetes.io/dpu-oob-bridge-configured"


@pytest.fixture
def ns() -> Iterator[str]:
    """A fresh, empty network namespace, removed after the test (with every link in it)."""
    name = f"dpf-hn-{uuid.uuid4().hex[:8]}"
    netns.create(name)
    with IPRoute(netns=name, flags=0) as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
    yield name
    netns.remove(name)


async def add_bridge(ns: str, *, address: str | None = BRIDGE_ADDRESS, default_route: bool = True) -> None:
    """The admin's prerequisite: br-dpu with an IPv4 address and the default route through it."""
    await asyncio.to_thread(_add_bridge, ns, address, default_route)


def _add_bridge(ns: str, address: str | None, default_route: bool) -> None:
    # pyroute2's sync IPRoute runs its own event loop, so it is used from a worker thread, never the test's loop.
    with IPRoute(netns=ns, flags=0) as ipr:
        ipr.link("add", ifname="br-dpu", kind="bridge")
        index = ipr.link_lookup(ifname="br-dpu")[0]
        ipr.link("set", index=index, state="up")
        if address:
            ipr.addr("add", index=index, address=address, prefixlen=24)
        if address and default_route:
            ipr.route("add", dst="0.0.0.0/0", gateway=GATEWAY, oif=index)


def set_up(ns: str, name: str) -> None:
    with IPRoute(netns=ns, flags=0) as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname=name)[0], state="up")


def add_default_route(ns: str) -> None:
    with IPRoute(netns=ns, flags=0) as ipr:
        ipr.route("add", dst="0.0.0.0/0", gateway=GATEWAY, oif=ipr.link_lookup(ifname="br-dpu")[0])


@dataclass
class Host:
    ns: str
    sysfs: EmulatedSysfs

    async def dpu(self) -> DiscoveredDpu:
        found = (await asyncio.to_thread(scan, self.sysfs.root, netns=self.ns)).dpu("0000-03-00")
        assert found is not None
        return found

    async def operstate(self, name: str, wanted: str) -> bool:
        return bool((await self.link(name)).get_attr("IFLA_OPERSTATE") == wanted)

    async def link(self, name: str) -> Any:
        return await asyncio.to_thread(self._link, name)

    def _link(self, name: str) -> Any:
        with IPRoute(netns=self.ns, flags=0) as ipr:
            links = ipr.link("dump", ifname=name)
            return links[0] if links else None


@pytest.fixture
async def host(ns: str, tmp_path: Path) -> AsyncIterator[Host]:
    """One BF3 in an emulated sysfs; the emulated kernel gives VF0 of each PF a real veth end inside `ns`."""
    sysfs = EmulatedSysfs(tmp_path / "sys")
    sysfs.add_bluefield("0000:03:00", model="BF3", pf_names=("ens1f0np0", "ens1f1np1"), total_vfs=16)
    task = asyncio.create_task(sysfs.serve_sriov(poll_interval=0.005, vf_netdevs=VethVfNetdevs(ns, indices=(0,))))
    yield Host(ns, sysfs)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_vf0_joins_the_bridge_with_mtu_and_up(host: Host) -> None:
    await add_bridge(host.ns)

    result = await configure_host_network(
        await host.dpu(), sysfs_root=host.sysfs.root, num_vfs=4, mtu=9000, netns=host.ns, timeout=10
    )

    assert result.vf_netdev == "ens1f0v0"
    assert result.changes == [
        "0000:03:00.0 sriov_numvfs 0 -> 4",
        "0000:03:00.1 sriov_numvfs 0 -> 4",
        "ens1f0v0 mtu 1500 -> 9000",
        "ens1f0v0 enslaved to br-dpu",
        "ens1f0v0 up",
    ]
    vf, bridge = await host.link("ens1f0v0"), await host.link("br-dpu")
    assert vf.get_attr("IFLA_MASTER") == bridge["index"]
    assert vf.get_attr("IFLA_MTU") == 9000
    assert vf["flags"] & IFF_UP
    # The VF carries traffic once its DPU side (the veth peer, pf0vf0 on a real DPU) is up too.
    await asyncio.to_thread(set_up, host.ns, "ens1f0v0-p")
    await eventually(lambda: host.operstate("ens1f0v0", "UP"), within=5, what="ens1f0v0 operstate UP")
    assert (await host.link("ens1f1v0"))[
        "flags"
    ] & IFF_UP == 0  # PF1's VF0 gets VFs but stays out of the bridge, as in DPF


async def test_second_run_changes_nothing(host: Host) -> None:
    await add_bridge(host.ns)
    first = await configure_host_network(
        await host.dpu(), sysfs_root=host.sysfs.root, num_vfs=4, mtu=9000, netns=host.ns, timeout=10
    )
    events = list(host.sysfs.events)
    vf_before = await host.link("ens1f0v0")

    second = await configure_host_network(
        await host.dpu(), sysfs_root=host.sysfs.root, num_vfs=4, mtu=9000, netns=host.ns, timeout=10
    )

    assert first.changed and not second.changed
    assert second.summary() == "DPU 0000-03-00: host network already configured (ens1f0v0 in br-dpu)"
    assert host.sysfs.events == events  # no sriov_numvfs write reached the kernel
    assert (await host.link("ens1f0v0"))["index"] == vf_before["index"]  # the same netdev, not a recreated one


async def test_a_new_vf_count_recreates_vfs_and_reattaches_vf0(host: Host) -> None:
    await add_bridge(host.ns)
    await configure_host_network(
        await host.dpu(), sysfs_root=host.sysfs.root, num_vfs=4, mtu=9000, netns=host.ns, timeout=10
    )

    result = await configure_host_network(
        await host.dpu(), sysfs_root=host.sysfs.root, num_vfs=8, mtu=9000, netns=host.ns, timeout=10
    )

    assert result.changes[:2] == [
        "0000:03:00.0 sriov_numvfs 4 -> 8 (through 0)",
        "0000:03:00.1 sriov_numvfs 4 -> 8 (through 0)",
    ]
    assert "ens1f0v0 enslaved to br-dpu" in result.changes  # a new VF0 netdev came with the new VFs
    assert read_sriov_numvfs(host.sysfs.function_dir("0000:03:00.0") / "sriov_numvfs") == 8
    vf, bridge = await host.link("ens1f0v0"), await host.link("br-dpu")
    assert vf.get_attr("IFLA_MASTER") == bridge["index"]


async def test_missing_bridge_is_a_precise_error_and_changes_nothing(host: Host) -> None:
    with pytest.raises(HostNetworkError) as caught:
        await configure_host_network(
            await host.dpu(), sysfs_root=host.sysfs.root, num_vfs=4, mtu=9000, netns=host.ns, timeout=0.3
        )

    assert caught.value.step == STEP_BRIDGE
    assert str(caught.value) == (
        f"DPU 0000-03-00: host network: wait for bridge: bridge br-dpu does not exist in network namespace {host.ns} "
        "(waited 0.3s)"
    )
    for pf in ("0000:03:00.0", "0000:03:00.1"):
        assert read_sriov_numvfs(host.sysfs.function_dir(pf) / "sriov_numvfs") == 0
    assert host.sysfs.events == []
    assert await host.link("ens1f0v0") is None


async def test_bridge_without_ipv4_is_named(host: Host) -> None:
    await add_bridge(host.ns, address=None)

    with pytest.raises(HostNetworkError, match=r"wait for bridge: bridge br-dpu in network namespace \S+ has no IPv4 "):
        await configure_host_network(
            await host.dpu(), sysfs_root=host.sysfs.root, num_vfs=4, mtu=1500, netns=host.ns, timeout=0.2
        )
    assert host.sysfs.events == []


async def test_bridge_that_appears_late_is_waited_for(host: Host) -> None:
    """DPF's script waits for br-dpu; so does this, up to the timeout."""
    configuring = asyncio.create_task(
        configure_host_network(
            await host.dpu(), sysfs_root=host.sysfs.root, num_vfs=2, mtu=1500, netns=host.ns, timeout=10
        )
    )
    with pytest.raises(TimeoutError):  # still waiting, neither failed nor done, while the bridge is missing
        await asyncio.wait_for(asyncio.shield(configuring), 0.3)
    await add_bridge(host.ns)

    result = await configuring
    assert "ens1f0v0 enslaved to br-dpu" in result.changes


async def test_bad_arguments_change_nothing(host: Host) -> None:
    await add_bridge(host.ns)

    with pytest.raises(
        HostNetworkError,
        match=r"^DPU 0000-03-00: host network: validate: num_vfs 17 exceeds 0000:03:00.0's sriov_totalvfs 16$",
    ):
        await configure_host_network(await host.dpu(), sysfs_root=host.sysfs.root, num_vfs=17, mtu=1500, netns=host.ns)
    with pytest.raises(HostNetworkError, match=r"validate: mtu 9300 is outside 68\.\.9216$"):
        await configure_host_network(await host.dpu(), sysfs_root=host.sysfs.root, num_vfs=4, mtu=9300, netns=host.ns)
    assert host.sysfs.events == []


async def test_discovery_sees_the_configured_bridge(host: Host) -> None:
    assert OOB_LABEL not in node_labels(await asyncio.to_thread(scan, host.sysfs.root, netns=host.ns))
    await add_bridge(host.ns, default_route=False)
    found = await asyncio.to_thread(scan, host.sysfs.root, netns=host.ns)
    assert found.bridge.ipv4_addresses == [BRIDGE_ADDRESS]
    assert found.bridge.problem == f"bridge br-dpu in network namespace {host.ns} carries no default IPv4 route"
    assert OOB_LABEL not in node_labels(found)

    await asyncio.to_thread(add_default_route, host.ns)
    found = await asyncio.to_thread(scan, host.sysfs.root, netns=host.ns)

    assert found.oob_bridge_configured and found.bridge.default_route
    assert node_labels(found)[OOB_LABEL] == ""


async def test_provisioning_adapter_finds_the_dpu_by_pci_address(host: Host) -> None:
    await add_bridge(host.ns)

    @dataclass
    class Target:
        pci_address: str

    network = SysfsHostNetwork(host.sysfs.root, netns=host.ns, timeout=10)
    result = await network.configure(Target("0000-03-00"), num_vfs=2, mtu=1500)
    assert result["vf_netdev"] == "ens1f0v0" and "ens1f0v0 enslaved to br-dpu" in result["changes"]

    with pytest.raises(HostNetworkError, match=r"^DPU 0000-04-00: host network: find DPU: no BlueField at this PCI"):
        await network.configure(Target("0000-04-00"), num_vfs=2, mtu=1500)


async def test_a_vf_without_a_kernel_netdev_is_named(ns: str, tmp_path: Path) -> None:
    """sysfs lists VF0's netdev but the namespace has no such link (the VF's driver is not bound there)."""
    await add_bridge(ns)
    sysfs = EmulatedSysfs(tmp_path / "sys")
    sysfs.add_bluefield("0000:03:00", model="BF3")
    task = asyncio.create_task(sysfs.serve_sriov(poll_interval=0.005))  # no VF netdev factory
    try:
        host = Host(ns, sysfs)
        with pytest.raises(HostNetworkError) as caught:
            await configure_host_network(
                await host.dpu(), sysfs_root=sysfs.root, num_vfs=2, mtu=1500, netns=ns, timeout=0.3
            )
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert str(caught.value) == (
        f"DPU 0000-03-00: host network: wait for VF0 netdev: 0000:03:00.0: sysfs names ens1f0v0 but network namespace "
        f"{ns} has no such netdev (waited 0.3s)"
    )
