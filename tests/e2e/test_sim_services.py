"""dpf-sim with DPU services, end to end: `dpf-sim up` on docs/examples plus docs/examples/services (a
DPFOperatorConfig and a labelled pull Secret, a DPUService on the DPU cluster and one deployed in the host cluster, a
DPUServiceCredentialRequest, a DPUDeployment with its flavor, template and configuration). The real kubectl shows
what DPF would create — the ArgoCD Applications, AppProjects and cluster Secret, the DPUDeployment's DPUSet,
DPUService, DPUServiceInterface and DPUServiceChain, the credential Secret — and, with the emulated ArgoCD syncing the
Applications, the DPUServices turn Ready and their DaemonSets appear in the DPU cluster. A changed DPUService is
synced again; a deleted one waits for ArgoCD to prune it."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from dpfd.sim.ports import free_port
from tests.e2e.simfleet import (
    EXAMPLES,
    Sim,
    example_docs,
    kamaji_dpucluster,
    kubectl,
    kubectl_json,
    wait_for,
    with_bfb_port,
    write_manifests,
)

NS = "dpf-operator-system"
CLUSTER = "dpu-cplane-tenant1"
SERVICES = EXAMPLES / "services"
APPS = {
    f"{CLUSTER}-dummydpuservice": ("dummydpuservice", CLUSTER, "doca-platform-project-dpu"),
    f"{CLUSTER}-hbn-deployment-hbn": ("hbn-deployment-hbn", CLUSTER, "doca-platform-project-dpu"),
    "in-cluster-host-telemetry": ("host-telemetry", "in-cluster", "doca-platform-project-host"),
    # The DPFOperatorConfig's system DPUServices.
    **{
        f"{CLUSTER}-{name}": (name, CLUSTER, "doca-platform-project-dpu")
        for name in ("flannel", "multus", "sriov-device-plugin")
    },
}


def services_docs() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for f in sorted(SERVICES.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(f.read_text()) if d]
    return docs


@pytest.fixture(scope="module", params=["static", "kamaji"])
def sim(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    """The examples with one host (its DPU is not needed: the services live in the DPU cluster's API) and the
    services manifests, one sim for the module; once with the examples' static DPUCluster, once with
    docs/examples/kamaji's (same name), whose control plane the emulated Kamaji serves."""
    tmp = tmp_path_factory.mktemp(f"services-{request.param}")
    port = free_port()
    docs = [d for d in with_bfb_port(example_docs(), port)
            if d["kind"] != "Node" or d["metadata"]["name"] == "worker-1"]  # fmt: skip
    if request.param == "kamaji":
        docs = [d for d in docs if d["kind"] != "DPUCluster"]
        docs += [kamaji_dpucluster()]
    manifests = write_manifests(tmp / "manifests", docs + services_docs())
    sim = Sim(tmp / "sim", manifests, port, 1.0, extra=["--no-dpu-os"])
    sim.start()
    try:
        sim.wait_up()
        yield sim
    finally:
        sim.cleanup()


def dpu_kubeconfig(sim: Sim) -> Path:
    info = json.loads((sim.state / "sim.json").read_text())
    return Path(info["dpuClusters"][f"{NS}/{CLUSTER}"]["kubeconfig"])


def get(kubeconfig: Path, kind: str, name: str, ns: str = NS) -> dict[str, Any] | None:
    out = kubectl(kubeconfig, "get", kind, "-n", ns, name, "-o", "json")
    if out.returncode != 0:
        assert "NotFound" in out.stderr, out.stderr
        return None
    obj: dict[str, Any] = json.loads(out.stdout)
    return obj


def ready(obj: dict[str, Any] | None) -> bool:
    conds = ((obj or {}).get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)


def decoded(secret: dict[str, Any]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}


def applications_table(sim: Sim) -> dict[str, list[str]] | None:
    """`kubectl get applications -A` by name: [namespace, name, sync, health, age], once all are Synced."""
    out = kubectl(sim.kubeconfig, "get", "applications", "-A")
    assert out.returncode == 0, out.stderr
    rows = {cols[1]: cols for cols in (line.split() for line in out.stdout.splitlines()[1:]) if cols}
    if set(rows) != set(APPS) or any(r[2:4] != ["Synced", "Healthy"] for r in rows.values()):
        return None
    return rows


def test_the_manifests_become_dpfs_argocd_objects_generated_objects_and_secrets(sim: Sim) -> None:
    wait_for(lambda: applications_table(sim), 40, f"{len(APPS)} Applications Synced and Healthy")
    for app_name, (service, cluster, project) in APPS.items():
        app = get(sim.kubeconfig, "application", app_name)
        assert app is not None
        labels = app["metadata"]["labels"]
        assert labels["dpu.nvidia.com/cluster"] == cluster
        assert labels["dpu.nvidia.com/dpuservice-name"] == service
        assert labels["dpu.nvidia.com/dpuservice-namespace"] == NS
        assert app["metadata"]["finalizers"] == ["resources-finalizer.argocd.argoproj.io"]
        assert app["spec"]["destination"] == {"name": cluster, "namespace": NS}
        assert app["spec"]["project"] == project
        assert app["spec"]["syncPolicy"] == {"automated": {"prune": True, "selfHeal": True}}
        assert app["status"]["sync"]["revision"] == app["spec"]["source"]["targetRevision"]

    dummy = get(sim.kubeconfig, "application", f"{CLUSTER}-dummydpuservice")
    assert dummy is not None
    source = dummy["spec"]["source"]
    assert (source["repoURL"], source["chart"], source["targetRevision"]) == ("ghcr.io/nvidia", "dummydpuservice",
                                                                              "0.1.0")  # fmt: skip
    # serviceDaemonSet with the serviceID label, deep-merged with the user's values.
    values = source["helm"]["valuesObject"]
    assert values["serviceDaemonSet"]["labels"] == {"app": "dummydpuservice",
                                                    "svc.dpu.nvidia.com/service": "dummydpuservice"}  # fmt: skip
    assert values["serviceDaemonSet"]["annotations"] == {"example.com/owner": "platform-team"}
    assert values["serviceDaemonSet"]["updateStrategy"]["type"] == "RollingUpdate"

    projects = kubectl_json(sim.kubeconfig, "get", "appprojects", "-n", NS)["items"]
    by_name = {p["metadata"]["name"]: p for p in projects}
    assert set(by_name) == {"doca-platform-project-dpu", "doca-platform-project-host"}
    assert by_name["doca-platform-project-dpu"]["spec"]["destinations"] == [{"name": CLUSTER, "namespace": "*"}]
    assert by_name["doca-platform-project-host"]["spec"]["destinations"] == [{"name": "in-cluster", "namespace": "*"}]

    # The ArgoCD cluster Secret: named <namespace>-<DPUCluster>, the cluster named as the Applications name it.
    argo = kubectl_json(sim.kubeconfig, "get", "secrets", "-n", NS, "-l", "argocd.argoproj.io/secret-type=cluster")
    (secret,) = argo["items"]
    assert secret["metadata"]["name"] == f"{NS}-{CLUSTER}"
    data = decoded(secret)
    dpu_config = yaml.safe_load(dpu_kubeconfig(sim).read_text())
    assert data["name"] == CLUSTER
    assert data["server"] == dpu_config["clusters"][0]["cluster"]["server"]
    assert json.loads(data["config"])["tlsClientConfig"]["caData"]

    # The DPUDeployment's objects, with DPF's names and owner label.
    owner = f"{NS}_hbn-deployment"
    for kind, name in (("dpuset", "hbn-deployment-pool"), ("dpuservice", "hbn-deployment-hbn"),
                       ("dpuserviceinterface", "hbn-deployment-hbn-p0-if"), ("dpuservicechain", "hbn-deployment")):  # fmt: skip
        obj = get(sim.kubeconfig, kind, name)
        assert obj is not None, f"{kind} {name}"
        assert obj["metadata"]["labels"]["svc.dpu.nvidia.com/owned-by-dpudeployment"] == owner, kind
    hbn = get(sim.kubeconfig, "dpuservice", "hbn-deployment-hbn")
    assert hbn is not None and hbn["spec"]["serviceID"] == "dpudeployment_hbn-deployment_hbn"
    assert hbn["spec"]["helmChart"]["values"]["configuration"] == {"bgpAutonomousSystem": 65111}  # the config's
    assert hbn["spec"]["helmChart"]["values"]["image"]["tag"] == "2.4.1-doca2.9.1"  # the template's
    wait_for(lambda: ready(get(sim.kubeconfig, "dpudeployment", "hbn-deployment")), 30, "the DPUDeployment Ready")

    # Every DPUService turns Ready once ArgoCD synced its Applications.
    for name in ("dummydpuservice", "host-telemetry", "hbn-deployment-hbn"):
        wait_for(lambda n=name: ready(get(sim.kubeconfig, "dpuservice", n)), 30, f"DPUService {name} Ready")

    # The credential Secret: a kubeconfig for the ServiceAccount in the DPU cluster, which the real kubectl uses.
    wait_for(lambda: get(sim.kubeconfig, "secret", "dummydpuservice-kubeconfig"), 30, "the credential Secret")
    cred = get(sim.kubeconfig, "secret", "dummydpuservice-kubeconfig")
    assert cred is not None and cred["metadata"]["labels"]["app"] == "dummydpuservice"
    config = yaml.safe_load(decoded(cred)["kubeconfig"])
    assert config["users"][0]["user"]["token"]
    assert config["clusters"][0]["cluster"]["server"] == data["server"]
    sa_config = sim.state.parent / "dummydpuservice.kubeconfig"
    sa_config.write_text(decoded(cred)["kubeconfig"])
    discovery = kubectl(sa_config, "get", "--raw", "/api")
    assert discovery.returncode == 0, discovery.stderr  # the DPU cluster's API took the requested token
    # ... as the ServiceAccount's (which no RBAC rule lets read Secrets there).
    refused = kubectl(sa_config, "get", "secrets", "-n", NS)
    assert refused.returncode != 0
    assert f'User "system:serviceaccount:{NS}:dummydpuservice" cannot list' in refused.stderr

    # In the DPU cluster: the namespace, the mirrored pull Secret and what ArgoCD deployed.
    dpu = dpu_kubeconfig(sim)
    pull = get(dpu, "secret", "dpf-pull-secret")
    assert pull is not None and "dpu.nvidia.com/image-pull-secret" in pull["metadata"]["labels"]
    daemonsets = kubectl_json(dpu, "get", "ds", "-A")["items"]
    by_instance = {d["metadata"]["labels"]["app.kubernetes.io/instance"]: d for d in daemonsets}
    assert set(by_instance) == {f"{CLUSTER}-dummydpuservice", f"{CLUSTER}-hbn-deployment-hbn", f"{CLUSTER}-flannel",
                                f"{CLUSTER}-multus", f"{CLUSTER}-sriov-device-plugin"}  # fmt: skip
    for name in ("flannel", "multus", "sriov-device-plugin"):  # the dpu-networking chart's enabled subchart
        assert by_instance[f"{CLUSTER}-{name}"]["metadata"]["name"] == name
    pod = by_instance[f"{CLUSTER}-dummydpuservice"]["spec"]["template"]
    assert pod["metadata"]["labels"]["svc.dpu.nvidia.com/service"] == "dummydpuservice"
    assert pod["spec"]["containers"][0]["image"] == "ghcr.io/nvidia/dummydpuservice:0.1.0"
    host_ds = get(sim.kubeconfig, "ds", "host-telemetry")
    assert host_ds is not None  # deployInCluster: into the host cluster


def test_a_changed_dpuservice_is_synced_again_and_a_deleted_one_waits_for_argocd_to_prune(sim: Sim) -> None:
    wait_for(lambda: applications_table(sim), 40, f"{len(APPS)} Applications Synced and Healthy")
    dpu = dpu_kubeconfig(sim)
    patch = {"spec": {"helmChart": {"source": {"version": "0.2.0"},
                                    "values": {"image": "ghcr.io/nvidia/dummydpuservice:0.2.0"}}}}  # fmt: skip
    out = kubectl(sim.kubeconfig, "patch", "dpuservice", "-n", NS, "dummydpuservice", "--type", "merge",
                  "-p", json.dumps(patch))  # fmt: skip
    assert out.returncode == 0, out.stderr

    def resynced() -> bool:
        app = get(sim.kubeconfig, "application", f"{CLUSTER}-dummydpuservice") or {}
        ds = get(dpu, "ds", "dummydpuservice") or {}
        image = ((ds.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers", [{}])[0].get("image")
        return (app.get("status") or {}).get("sync", {}).get("revision") == "0.2.0" and image.endswith(":0.2.0")

    wait_for(resynced, 30, "the Application synced at 0.2.0 and the DaemonSet on the new image")

    out = kubectl(sim.kubeconfig, "delete", "dpuservice", "-n", NS, "dummydpuservice", "--timeout=30s")
    assert out.returncode == 0, out.stderr
    # Gone only after ArgoCD pruned the DaemonSet and let its Application go.
    assert get(sim.kubeconfig, "dpuservice", "dummydpuservice") is None
    assert get(sim.kubeconfig, "application", f"{CLUSTER}-dummydpuservice") is None
    assert get(dpu, "ds", "dummydpuservice") is None
    assert get(dpu, "cm", "dummydpuservice-values") is None
    assert get(dpu, "ds", "doca-hbn") is not None  # the other service stays
    left = kubectl_json(sim.kubeconfig, "get", "applications", "-A")["items"]
    assert {a["metadata"]["name"] for a in left} == set(APPS) - {f"{CLUSTER}-dummydpuservice"}
