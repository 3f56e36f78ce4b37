"""dpf-sim with a kamaji DPUCluster, end to end: `up` on the examples with docs/examples/kamaji's DPUCluster in place
of the static one. The controller asks for the NodePort Service, TenantControlPlane and keepalived objects as DPF's
kamaji cluster manager does; the emulated Kamaji serves the control plane on the node port and writes its admin
kubeconfig; the DPUCluster goes Ready on it and the DPU, flashed with a real DPU dpfd, joins it. The real kubectl
shows all of it. Deleting the DPUCluster's objects is covered in tests/integration/kamaji."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from dpfd.sim.ports import free_port
from tests.e2e.simfleet import (
    Sim,
    example_docs,
    is_ready,
    kamaji_dpucluster,
    kubectl,
    kubectl_json,
    wait_for,
    with_bfb_port,
    write_manifests,
)

NS = "dpf-operator-system"
CLUSTER = "dpu-cplane-tenant1"
HOST = "worker-1"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    tmp = tmp_path_factory.mktemp("kamaji")
    port = free_port()
    docs = [d for d in with_bfb_port(example_docs(), port)
            if d["kind"] != "DPUCluster" and (d["kind"] != "Node" or d["metadata"]["name"] == HOST)]  # fmt: skip
    sim = Sim(tmp / "sim", write_manifests(tmp / "manifests", [*docs, kamaji_dpucluster()]), port, 2.0)
    sim.start()
    try:
        sim.wait_up()
        yield sim
    finally:
        sim.cleanup()


def get(sim: Sim, kind: str, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = kubectl_json(sim.kubeconfig, "get", kind, "-n", NS, name)
    return obj


def test_kamaji_dpucluster_gets_its_control_plane_from_the_emulated_kamaji_and_the_dpu_joins_it(sim: Sim) -> None:
    def ready_cluster() -> dict[str, Any] | None:
        cluster = get(sim, "dpucluster", CLUSTER)
        return cluster if (cluster.get("status") or {}).get("phase") == "Ready" else None

    cluster = wait_for(ready_cluster, 60, f"DPUCluster {CLUSTER} Ready")
    assert cluster["spec"]["kubeconfig"] == f"{CLUSTER}-admin-kubeconfig"
    conditions = {c["type"]: (c["status"], c["reason"]) for c in cluster["status"]["conditions"]}
    assert conditions == {"Created": ("True", "Created"), "Ready": ("True", "HealthCheckPassed"),
                          "KeepalivedReady": ("True", "Deployed")}  # fmt: skip

    # What DPF's kamaji cluster manager creates, as kubectl shows it.
    service = get(sim, "service", CLUSTER)
    node_port = service["spec"]["ports"][0]["nodePort"]
    assert service["spec"]["type"] == "NodePort" and 30000 <= node_port <= 32767
    assert {r["kind"] for r in service["metadata"]["ownerReferences"]} == {"DPUCluster", "TenantControlPlane"}
    row = kubectl(sim.kubeconfig, "get", "svc", "-n", NS, CLUSTER, "--no-headers").stdout.split()
    assert row[1] == "NodePort" and row[4] == f"{node_port}:{node_port}/TCP", row  # Kamaji's: port = node port
    tcp = get(sim, "tenantcontrolplane", CLUSTER)
    assert tcp["spec"]["networkProfile"] == {"address": "10.0.110.200", "port": node_port}
    assert tcp["status"]["kubernetesResources"]["version"] == {"status": "Ready", "version": "v1.30.2"}
    tcp_row = kubectl(sim.kubeconfig, "get", "tcp", "-n", NS, CLUSTER, "--no-headers").stdout.split()
    assert tcp_row[:5] == [CLUSTER, "v1.30.2", "Ready", f"127.0.0.1:{node_port}", f"{CLUSTER}-admin-kubeconfig"]
    daemonset = get(sim, "daemonset", f"{CLUSTER}-keepalived")
    env = {e["name"]: e.get("value") for e in daemonset["spec"]["template"]["spec"]["initContainers"][0]["env"]}
    assert (env["VIRTUAL_IP"], env["NODE_PORT"]) == ("10.0.110.200", str(node_port))
    assert get(sim, "configmap", f"{CLUSTER}-keepalived")["data"]["keepalived.conf.tmpl"]

    # Kamaji's admin kubeconfig (the Secret, and the file dpf-sim keeps) reaches the control plane on the node port.
    secret = get(sim, "secret", f"{CLUSTER}-admin-kubeconfig")
    admin = yaml.safe_load(base64.b64decode(secret["data"]["admin.conf"]))
    assert admin["clusters"][0]["cluster"]["server"] == f"https://127.0.0.1:{node_port}"
    kubeconfig = sim.state / "dpuclusters" / f"{NS}-{CLUSTER}.kubeconfig"
    assert yaml.safe_load(kubeconfig.read_text()) == admin

    # The DPU is provisioned and joins the kamaji cluster: a Ready Node there, labelled as the DPUSet says.
    wait_for(lambda: [d for d in sim.dpus().values() if is_ready(d)], 120, "the DPU Ready")
    (dpu,) = sim.dpus().values()
    assert dpu["spec"]["cluster"]["name"] == CLUSTER
    nodes = {n["metadata"]["name"]: n for n in kubectl_json(kubeconfig, "get", "nodes")["items"]}
    assert set(nodes) == {dpu["metadata"]["name"]}
    node = nodes[dpu["metadata"]["name"]]
    assert [c["status"] for c in node["status"]["conditions"] if c["type"] == "Ready"] == ["True"]
    assert node["metadata"]["labels"].get("dpf.nvidia.com/dpu-role") == "worker"

    # dpf-sim's progress lines follow the DPUCluster as they follow DPUs.
    def cluster_lines() -> list[str]:
        return [line for line in sim.output().splitlines() if f"DPUCluster {NS}/{CLUSTER}: " in line]

    wait_for(lambda: any(ln.endswith("phase Ready [Ready]") for ln in cluster_lines()), 10, "a DPUCluster Ready line")
    phases = [ln.split("phase ", 1)[1].split(" [")[0] for ln in cluster_lines() if "phase " in ln]
    assert phases[-1] == "Ready", phases
    assert "Creating" not in phases or phases.index("Creating") < phases.index("Ready"), phases  # seen in order
