"""The rack: the emulated hardware dpf-sim and the benchmarks run, checked with the host's own discovery code,
a real DMS client and real netlink."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from pyroute2 import IPRoute, netns

from dpfd.host.discovery import node_labels, scan
from dpfd.host.dms.client import DmsClient
from dpfd.sim.bluefield.dpu_os import DpuOs, DpuOsOptions
from dpfd.sim.ovs import missing_ovs
from dpfd.sim.ports import free_port
from dpfd.sim.rack import DpuPlan, HostPlan, Rack, RackPlan, address_of_dpu

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")


def _bridge_state(ns: str) -> str:
    with IPRoute(netns=ns, flags=0) as ipr:
        return str(ipr.get_links(ipr.link_lookup(ifname="br-dpu")[0])[0].get_attr("IFLA_OPERSTATE"))


def _plan(tmp_path: Path, ns: str) -> RackPlan:
    dpus = [
        DpuPlan(
            name=f"worker-1-0000-0{bus}-00",
            pci=f"0000:0{bus}:00",
            pf_names=(f"p{2 * i}", f"p{2 * i + 1}"),
            dms_port=free_port(),
            state_dir=tmp_path / f"dpu{i}",
        )
        for i, bus in enumerate((3, 4))
    ]
    host = HostPlan(
        node="worker-1", netns=ns, bridge_address="198.51.100.11/24", sysfs_root=tmp_path / "sys", dpus=dpus
    )
    return RackPlan(hosts=[host], reboot_seconds=0.1)


async def test_a_rack_host_is_what_discovery_expects_and_its_dms_answers(tmp_path: Path) -> None:
    ns = f"dpf-rack-{uuid.uuid4().hex[:8]}"
    plan = _plan(tmp_path, ns)
    rack = Rack(plan)
    await rack.start()
    try:
        found = await asyncio.to_thread(scan, tmp_path / "sys", netns=ns)
        assert [d.pci_address for d in found.dpus] == ["0000-03-00", "0000-04-00"]
        labels = node_labels(found)
        assert labels["feature.node.kubernetes.io/dpu-0-pf0-name"] == "p0"
        assert found.oob_bridge_configured
        assert await asyncio.to_thread(_bridge_state, ns) in ("UP", "UNKNOWN")
        for dpu in plan.hosts[0].dpus:
            client = DmsClient(address_of_dpu(dpu), None, name=dpu.name)
            try:
                assert await client.verify() == ""  # nothing activated yet
            finally:
                await client.close()
    finally:
        await rack.stop()
    assert ns not in netns.listnetns()


def test_the_rack_process_replaces_a_namespace_a_killed_rack_left(tmp_path: Path) -> None:
    ns = f"dpf-rack-{uuid.uuid4().hex[:8]}"
    netns.create(ns)  # what a SIGKILLed rack leaves behind: a namespace with no br-dpu
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(_plan(tmp_path, ns).model_dump_json())
    proc = subprocess.Popen([sys.executable, "-m", "dpfd.sim.rack", "--plan", str(plan_file)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready 2", proc.stderr.read() if proc.stderr else ""
        assert scan(tmp_path / "sys", netns=ns).oob_bridge_configured
    finally:
        proc.terminate()
        assert proc.wait(15) == 0, proc.stderr.read() if proc.stderr else ""
    assert ns not in netns.listnetns()


def test_a_bad_plan_is_refused_with_the_file_and_the_field(tmp_path: Path) -> None:
    plan_file = tmp_path / "plan.json"
    plan_file.write_text('{"hosts": [{"node": "w1", "sysfsRoot": "/x"}]}')
    out = subprocess.run([sys.executable, "-m", "dpfd.sim.rack", "--plan", str(plan_file)],
                         capture_output=True, text=True, timeout=30)  # fmt: skip
    assert out.returncode == 2
    assert str(plan_file) in out.stderr and "sysfs_root" in out.stderr


async def test_with_a_data_plane_each_bluefield_gets_its_own_ovs_reachable_through_dpf_sim_exec(tmp_path: Path) -> None:
    if why := missing_ovs():
        pytest.skip(why)
    ns = f"dpf-rack-{uuid.uuid4().hex[:8]}"
    plan = _plan(tmp_path, ns).model_copy(update={"dataplane": "ovs"})
    rack = Rack(plan)
    await rack.start()
    try:
        name = plan.hosts[0].dpus[0].name
        assert set(rack.ovs) == {d.name for d in plan.hosts[0].dpus}
        exec_ = [sys.executable, "-m", "dpfd.sim.cli", "exec", name, "--state-dir", str(tmp_path), "--"]
        out = await asyncio.to_thread(subprocess.run, [*exec_, "ovs-vsctl", "list-br"], capture_output=True,
                                      text=True, timeout=30)  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == ["br-sfc"]
        # The command runs in the DPU's namespace: the userspace datapath's tap for br-sfc is there.
        out = await asyncio.to_thread(subprocess.run, [*exec_, "ip", "-o", "link", "show", "br-sfc"],
                                      capture_output=True, text=True, timeout=30)  # fmt: skip
        assert out.returncode == 0 and "br-sfc" in out.stdout, out.stderr
        unknown = await asyncio.to_thread(subprocess.run, [*exec_[:4], "nope", *exec_[5:], "true"],
                                          capture_output=True, text=True, timeout=30)  # fmt: skip
        assert unknown.returncode == 2 and "no emulated host or DPU 'nope'" in unknown.stderr and name in unknown.stderr
    finally:
        await rack.stop()
    assert not any(o.netns in netns.listnetns() for o in rack.ovs.values() if o.netns)


def test_the_dpu_os_points_its_dpfd_at_the_bluefields_own_ovs(tmp_path: Path) -> None:
    dpu_os = DpuOs(
        tmp_path, "w1-0000-03-00", DpuOsOptions(dataplane={"ovsdb": "unix:/x/db.sock", "portType": "internal"})
    )
    config = tmp_path / "dpfd.yaml"
    config.write_text("node: w1-0000-03-00\nrole: dpu\netcd: {endpoints: ['http://127.0.0.1:2379']}\n")
    data = yaml.safe_load(dpu_os._dpu_config(config))
    assert data["dataplane"] == {"ovsdb": "unix:/x/db.sock", "portType": "internal"}
    assert data["stateDir"].startswith(str(tmp_path))


def _links(ns: str) -> dict[str, dict[str, Any]]:
    out = subprocess.run(["ip", "-j", "-n", ns, "link", "show"], capture_output=True, text=True, timeout=10, check=True)
    return {link["ifname"]: link for link in json.loads(out.stdout)}


def _udp_from_wire_to_host(wire_ns: str, host_ns: str, host_pf: str) -> str:
    """Addresses on wire0 and the host PF; datagrams from the wire until the host's server prints the first."""
    subprocess.run(["ip", "-n", wire_ns, "addr", "add", "203.0.113.1/24", "dev", "wire0"], check=True)
    subprocess.run(["ip", "-n", host_ns, "addr", "add", "203.0.113.2/24", "dev", host_pf], check=True)
    recv = ("import socket; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(('203.0.113.2',7000));"
            "print('ready',flush=True); s.settimeout(20); print(s.recvfrom(100)[0].decode(),flush=True)")  # fmt: skip
    server = subprocess.Popen(["ip", "netns", "exec", host_ns, sys.executable, "-c", recv],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert server.stdout is not None and server.stdout.readline().strip() == "ready"
    # Traffic, not a wait: the first datagrams may go while ARP is still resolving.
    send = ("import socket,time; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
            "for _ in range(200):\n s.sendto(b'over the wire',('203.0.113.2',7000)); time.sleep(0.05)")  # fmt: skip
    sender = subprocess.Popen(["ip", "netns", "exec", wire_ns, sys.executable, "-c", send])
    try:
        out, err = server.communicate(timeout=30)
        assert server.returncode == 0, err
        return out.strip()
    finally:
        sender.kill()
        sender.wait(10)


async def test_each_bluefields_ports_face_a_wire_and_a_host_namespace_joined_through_its_ovs(tmp_path: Path) -> None:
    if why := missing_ovs():
        pytest.skip(why)
    ns = f"dpf-rack-{uuid.uuid4().hex[:8]}"
    plan = _plan(tmp_path, ns).model_copy(update={"dataplane": "ovs"})
    rack = Rack(plan)
    await rack.start()
    try:
        dpu = plan.hosts[0].dpus[1]  # PFs p2, p3 on the host
        ovs, ends = rack.ovs[dpu.name], rack.port_ends[dpu.name]
        assert ovs.netns is not None
        assert ends.peers == {"p0": (ends.wire_netns, "wire0"), "p1": (ends.wire_netns, "wire1"),
                              "pf0hpf": (ends.host_netns, "p2"), "pf1hpf": (ends.host_netns, "p3")}  # fmt: skip
        inside_links = _links(ovs.netns)
        for inside, (side, outside) in ends.peers.items():
            link = _links(side)[outside]
            assert "UP" in link["flags"], f"{outside} in {side} is down"
            assert link["link_index"] == inside_links[inside]["ifindex"], f"{outside} is not {inside}'s peer"
        # As the flavor's OVS script: p0 on br-sfc, an uplink; the PF representors wait for a ServiceInterface.
        assert ovs.vsctl("list-ports", "br-sfc").split() == ["p0"]
        assert ovs.vsctl("get", "Port", "p0", "external_ids:dpf-type").strip().strip('"') == "physical"
        assert ovs.vsctl("get", "Interface", "p0", "ofport").strip() not in ("-1", "[]")
        # A datagram from the wire reaches the host through br-sfc once pf0hpf is a port and a flow joins them.
        ovs.vsctl("add-port", "br-sfc", "pf0hpf")
        ovs.ofctl("add-flow", "br-sfc", "priority=1,actions=NORMAL")
        got = await asyncio.to_thread(_udp_from_wire_to_host, ends.wire_netns, ends.host_netns, "p2")
        assert got == "over the wire"
        out = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "dpfd.sim.cli", "exec", dpu.name,
                                      "--state-dir", str(tmp_path), "--in", "host", "--", "ip", "-o", "addr"],
                                      capture_output=True, text=True, timeout=30)  # fmt: skip
        assert out.returncode == 0 and "203.0.113.2/24" in out.stdout, out.stderr
    finally:
        await rack.stop()
    gone = set(netns.listnetns())
    assert not any(e.wire_netns in gone or e.host_netns in gone for e in rack.port_ends.values())
