"""dpf-sim with the data plane on, end to end: the example fleet (one host) comes up with `--dataplane ovs`, the real
kubectl applies docs/examples/chain (a DPUServiceIPAM, DPUServiceInterfaces p0, pf0hpf and two service pods'
interfaces, a DPUServiceChain p0 -> firewall -> pf0hpf) to the running sim; the DPU's dpfd makes the ports, the
real dpf-sfc-cni attaches two service pods, and real traffic crosses the chain along exactly its path
(ofproto/trace, flow counters, the pods' own counters); applying docs/examples/chain/reroute moves it to the
monitor pod."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dpfd.sim.ovs import missing_ovs
from dpfd.sim.ports import free_port
from tests.e2e.sfc import (
    HOST_IP,
    WIRE_IP,
    ServicePod,
    SimDpu,
    address_ends,
    tcp_wire_to_host,
    trace_outputs,
    udp_wire_to_host,
)
from tests.e2e.simfleet import (
    EXAMPLES,
    Sim,
    example_docs,
    is_ready,
    kubectl,
    kubectl_json,
    wait_for,
    with_bfb_port,
    write_manifests,
)
from tests.integration.cni.cni_env import ping

NS = "dpf-operator-system"
DPU = "worker-1-0000-03-00"
CHAIN = f"wire-to-host-{DPU}"

pytestmark = pytest.mark.skipif(bool(missing_ovs()), reason=missing_ovs() or "")


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Sim]:
    """The examples with one host (worker-1), data plane on."""
    port = free_port()
    docs = [d for d in with_bfb_port(example_docs(), port)
            if d["kind"] != "Node" or d["metadata"]["name"] == "worker-1"]  # fmt: skip
    sim = Sim(tmp_path / "sim", write_manifests(tmp_path / "manifests", docs), port, 2.0, extra=["--dataplane", "ovs"])
    sim.start()
    try:
        yield sim
    finally:
        sim.cleanup()


def _condition(sim: Sim, kind: str, name: str, type_: str = "Ready") -> dict[str, Any]:
    obj = kubectl_json(sim.kubeconfig, "get", kind, "-n", NS, name)
    conds = (obj.get("status") or {}).get("conditions") or []
    found = next((c for c in conds if c["type"] == type_), {})
    return {**found, "generation": obj["metadata"]["generation"]}


def _ready(sim: Sim, kind: str, name: str) -> dict[str, Any] | None:
    c = _condition(sim, kind, name)
    return c if c.get("status") == "True" and c.get("observedGeneration") == c["generation"] else None


def _apply(sim: Sim, folder: Path) -> None:
    out = kubectl(sim.kubeconfig, "apply", "-f", str(folder))
    assert out.returncode == 0, out.stderr


def test_a_chain_applied_with_kubectl_carries_wire_traffic_through_the_service_pod_and_reroutes(sim: Sim) -> None:
    sim.wait_up()
    wait_for(lambda: (sim.check_running(), is_ready(sim.dpus().get(DPU, {})))[1], 120, f"DPU {DPU} Ready")
    dpu = SimDpu(sim.state, DPU)
    _apply(sim, EXAMPLES / "chain")

    # Ports: p0 (put there by the flavor's OVS script) adopted, pf0hpf made, both with DPF's dpf-id.
    def uplinks() -> dict[str, Any] | None:
        ports = dpu.ports()
        ok = all(
            ports.get(n, {}).get("ofport", -1) > 0 and ports[n]["external_ids"].get("dpf-id") for n in ("p0", "pf0hpf")
        )
        return ports if ok else None

    ports = wait_for(uplinks, 60, "p0 and pf0hpf on br-sfc with dpf-id")
    assert ports["p0"]["external_ids"]["dpf-id"] == f"{NS}/p0-{DPU}"
    assert ports["pf0hpf"]["external_ids"]["dpf-id"] == f"{NS}/pf0hpf-{DPU}" and ports["pf0hpf"]["type"] == "system"
    wait_for(lambda: _ready(sim, "dpuserviceinterface", "pf0hpf"), 60, "DPUServiceInterface pf0hpf Ready")
    wait_for(lambda: _ready(sim, "dpuserviceipam", "mybrsfc"), 60, "DPUServiceIPAM mybrsfc Ready")
    # No pod yet: the chain waits, saying for what.
    pending = wait_for(lambda: "no CNI port" in _condition(sim, "dpuservicechain", "wire-to-host").get("message", "")
                       and _condition(sim, "dpuservicechain", "wire-to-host"), 60, "chain pending on the pods")  # fmt: skip
    assert pending["status"] == "False"

    firewall = ServicePod(dpu, "firewall-0", ("fw-in", "fw-out"))
    monitor = ServicePod(dpu, "monitor-0", ("mon-in", "mon-out"))
    try:
        firewall.start()
        monitor.start()
        for pod in (firewall, monitor):
            for result in pod.results.values():
                (ip,) = result["ips"]
                assert ip["address"].startswith("203.0.113.") and ip["address"].endswith("/25"), result
        of = {n: dpu.ofport_of(firewall.dpf_id(n)) for n in firewall.ifnames}
        of |= {n: dpu.ofport_of(monitor.dpf_id(n)) for n in monitor.ifnames}
        of |= {"p0": ports["p0"]["ofport"], "pf0hpf": ports["pf0hpf"]["ofport"]}
        assert all(v > 0 for v in of.values()), of

        # Flows: p0 <-> fw-in and fw-out <-> pf0hpf, one cookie.
        wait_for(lambda: _ready(sim, "dpuservicechain", "wire-to-host"), 60, "DPUServiceChain Ready")
        flow = wait_for(lambda: dpu.chain_flow(of["p0"]), 30, "the chain's flow from p0")
        assert flow["actions"].endswith(f"output:{of['fw-in']}"), flow
        cookie = flow["cookie"]
        assert dpu.chain_flow(of["fw-out"])["actions"].endswith(f"output:{of['pf0hpf']}")  # type: ignore[index]
        assert dpu.chain_flow(of["pf0hpf"])["actions"].endswith(f"output:{of['fw-out']}")  # type: ignore[index]
        assert dpu.chain_flow(of["mon-in"]) is None

        # ofproto/trace: from the wire into the firewall; from the firewall's far side to the host.
        wire_mac, host_mac = dpu.mac("wire", "wire0"), dpu.mac("host", "p0")
        packet = f"dl_src={wire_mac},dl_dst={host_mac},nw_src={WIRE_IP},nw_dst={HOST_IP},udp_dst=7000"
        assert trace_outputs(dpu.trace(f"in_port=p0,udp,{packet}")) == [of["fw-in"]]
        assert trace_outputs(dpu.trace(f"in_port={of['fw-out']},udp,{packet}")) == [of["pf0hpf"]]

        # Real traffic: ICMP, UDP and TCP from the wire reach the host, through the firewall pod.
        address_ends(dpu)
        assert ping(dpu.netns("wire"), HOST_IP), "no ICMP echo reply from the host through the chain"
        p0_before = dpu.chain_packets(of["p0"], cookie)
        fw_before, mon_before = firewall.rx_packets("fw-in"), monitor.rx_packets("mon-in")
        assert udp_wire_to_host(dpu, 50) == 50
        assert tcp_wire_to_host(dpu) == "echoed"
        assert firewall.rx_packets("fw-in") - fw_before >= 50, "the datagrams did not pass the firewall pod"
        assert dpu.chain_packets(of["p0"], cookie) - p0_before >= 50
        assert monitor.rx_packets("mon-in") - mon_before < 50, "the datagrams reached the monitor pod too"

        # Re-route: the same chain through the monitor pod.
        _apply(sim, EXAMPLES / "chain" / "reroute")
        wait_for(lambda: (f := dpu.chain_flow(of["p0"])) and f["actions"].endswith(f"output:{of['mon-in']}"), 60,
                 "the flow from p0 to the monitor pod")  # fmt: skip
        wait_for(lambda: _ready(sim, "dpuservicechain", "wire-to-host"), 60, "re-routed DPUServiceChain Ready")
        assert dpu.chain_flow(of["fw-in"]) is None and dpu.chain_flow(of["fw-out"]) is None
        assert dpu.chain_flow(of["p0"])["cookie"] == cookie  # type: ignore[index]
        assert trace_outputs(dpu.trace(f"in_port=p0,udp,{packet}")) == [of["mon-in"]]
        assert trace_outputs(dpu.trace(f"in_port={of['mon-out']},udp,{packet}")) == [of["pf0hpf"]]
        fw_before, mon_before = firewall.rx_packets("fw-in"), monitor.rx_packets("mon-in")
        assert udp_wire_to_host(dpu, 50) == 50
        assert monitor.rx_packets("mon-in") - mon_before >= 50, "the datagrams did not pass the monitor pod"
        assert firewall.rx_packets("fw-in") - fw_before < 50, "the datagrams still reach the firewall pod"
        assert tcp_wire_to_host(dpu) == "echoed"
    finally:
        monitor.stop()
        firewall.stop()
