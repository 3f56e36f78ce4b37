"""A DPUService becomes what DPF's DPUService controller writes, with the emulated host API, two emulated TLS DPU
clusters and the test playing ArgoCD: one Application `<cluster>-<dpuservice>` per DPU cluster (labels, finalizer,
source without oci://, values with serviceDaemonSet, the serviceID label and the interfaces' Multus networks),
ArgoCD cluster Secrets, AppProjects, the namespace and labelled pull Secrets in each DPU cluster; Ready follows
the Applications' Synced+Healthy; paused marks them skip-reconcile; a removed DPUCluster's Application goes;
deletion waits for ArgoCD to let the Applications go. The real kubectl shows the Applications."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from typing import Any

from services_harness import ARGO, OP_NS, SVC, ServiceEnv, env, in_cluster, operator_config

from tests.waiting import eventually

__all__ = ["env"]  # fixture

TENANT = "tenant-a"
PULL_LABEL = "dpu.nvidia.com/image-pull-secret"
NAMESPACE = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": TENANT}}


def dpuservice(name: str = "dummy", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "helmChart": {
            "source": {"repoURL": "oci://ghcr.io/nvidia/dpf", "chart": "dummydpuservice", "version": "0.1.0"},
            "values": {"image": {"tag": "v1"}, "serviceDaemonSet": {"labels": {"team": "user"}}},
        },
        "serviceID": "dummy-svc",
        "serviceDaemonSet": {"labels": {"team": "dpf", "tier": "edge"}},
        "interfaces": ["p0"],
    }
    body.update(spec)
    return {"apiVersion": SVC, "kind": "DPUService", "metadata": {"name": name, "namespace": TENANT}, "spec": body}


def service_interface(name: str = "p0") -> dict[str, Any]:
    inner = {"interfaceType": "service",
             "service": {"serviceID": "dummy-svc", "network": "mybrsfc", "interfaceName": "net1"}}  # fmt: skip
    return {"apiVersion": SVC, "kind": "DPUServiceInterface", "metadata": {"name": name, "namespace": TENANT},
            "spec": {"template": {"spec": {"template": {"spec": inner}}}}}  # fmt: skip


def pull_secret(name: str, labelled: bool = True) -> dict[str, Any]:
    labels = {PULL_LABEL: ""} if labelled else {}
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
            "metadata": {"name": name, "namespace": TENANT, "labels": labels},
            "data": {".dockerconfigjson": base64.b64encode(b"{}").decode()}}  # fmt: skip


def decoded(secret: dict[str, Any]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}


async def kubectl(env: ServiceEnv, *args: str) -> str:
    home = env.kubeconfig.parent
    proc = await asyncio.create_subprocess_exec(
        "kubectl", "--kubeconfig", str(env.kubeconfig), *args,
        env={**os.environ, "HOME": str(home), "KUBECACHEDIR": str(home / "kube-cache")},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, f"kubectl {' '.join(args)} failed: {err.decode()}"
    return out.decode()


async def test_dpuservice_becomes_dpfs_applications_secrets_and_projects_and_follows_argocd(env: ServiceEnv) -> None:
    host, dc1, dc2 = env.host, env.dpu["dc1"], env.dpu["dc2"]
    await host.apply_object(NAMESPACE)
    await host.apply_object(operator_config())
    await env.add_cluster("dc1")
    await env.add_cluster("dc2")
    await host.apply_object(pull_secret("regcred"))
    await host.apply_object(pull_secret("not-for-dpus", labelled=False))
    await host.apply_object(service_interface())
    await host.apply_object(dpuservice())

    apps = await eventually(lambda: len(env.apps()) == 2 and env.apps(), 15, "an Application per DPU cluster")
    assert [a["metadata"]["name"] for a in apps] == ["dc1-dummy", "dc2-dummy"]
    app = apps[0]
    assert app["metadata"]["labels"] == {
        "dpu.nvidia.com/cluster": "dc1",
        "dpu.nvidia.com/dpuservice-name": "dummy",
        "dpu.nvidia.com/dpuservice-namespace": TENANT,
        "dpu.nvidia.com/component": "dpuservice-manager",
    }
    assert app["metadata"]["finalizers"] == ["resources-finalizer.argocd.argoproj.io"]
    spec = app["spec"]
    assert spec["project"] == "doca-platform-project-dpu"
    assert spec["destination"] == {"name": "dc1", "namespace": TENANT}
    assert spec["syncPolicy"] == {"automated": {"prune": True, "selfHeal": True}}
    assert {k: v for k, v in spec["source"].items() if k != "helm"} == {
        "repoURL": "ghcr.io/nvidia/dpf", "chart": "dummydpuservice", "targetRevision": "0.1.0"}  # fmt: skip
    values = spec["source"]["helm"]["valuesObject"]
    assert values["image"] == {"tag": "v1"}
    daemonset = values["serviceDaemonSet"]
    assert daemonset["labels"] == {"team": "user", "tier": "edge", "svc.dpu.nvidia.com/service": "dummy-svc"}
    assert json.loads(daemonset["annotations"]["k8s.v1.cni.cncf.io/networks"]) == [
        {"name": "mybrsfc", "interface": "net1"}
    ]
    svc = env.service("dummy", TENANT)
    assert svc is not None and "dpu.nvidia.com/dpuservice" in svc["metadata"]["finalizers"]
    dsi = host.get_object(SVC, "DPUServiceInterface", "p0", TENANT)
    assert dsi is not None and dsi["metadata"]["annotations"]["dpu.nvidia.com/consumed-by"] == "dummy"

    # ArgoCD cluster Secrets and AppProjects in the operator's namespace, owned by the DPFOperatorConfig.
    operator = host.get_object("operator.dpu.nvidia.com/v1alpha1", "DPFOperatorConfig", "dpfoperatorconfig", OP_NS)
    assert operator is not None
    secret = host.get_object("v1", "Secret", f"{OP_NS}-dc1", OP_NS)
    assert secret is not None
    assert secret["metadata"]["labels"] == {"argocd.argoproj.io/secret-type": "cluster",
                                            "dpu.nvidia.com/cluster": f"{OP_NS}-dc1",
                                            "dpu.nvidia.com/component": "dpuservice-manager"}  # fmt: skip
    assert [o["uid"] for o in secret["metadata"]["ownerReferences"]] == [operator["metadata"]["uid"]]
    data = decoded(secret)
    admin = dc1.kubeconfig()
    assert data["server"] == dc1.url and data["name"] == admin["clusters"][0]["name"]
    assert json.loads(data["config"]) == {
        "tlsClientConfig": {"caData": admin["clusters"][0]["cluster"]["certificate-authority-data"]},
        "bearerToken": admin["users"][0]["user"]["token"],
    }
    project = host.get_object(ARGO, "AppProject", "doca-platform-project-dpu", OP_NS)
    assert project is not None and project["spec"]["destinations"] == [
        {"name": "dc1", "namespace": "*"}, {"name": "dc2", "namespace": "*"}]  # fmt: skip
    assert host.get_object(ARGO, "AppProject", "doca-platform-project-host", OP_NS) is not None

    # In each DPU cluster: the DPUService's namespace and the labelled pull Secret (not the other one).
    for dc in (dc1, dc2):
        assert in_cluster(dc, "v1", "Namespace", TENANT, None) is not None
        mirrored = in_cluster(dc, "v1", "Secret", "regcred", TENANT)
        assert mirrored is not None and mirrored["type"] == "kubernetes.io/dockerconfigjson"
        assert mirrored["metadata"]["labels"] == {PULL_LABEL: ""}
        assert in_cluster(dc, "v1", "Secret", "not-for-dpus", TENANT) is None

    # Not ready until ArgoCD reports both Applications Synced and Healthy.
    ready = await eventually(lambda: env.condition("dummy", TENANT, "ApplicationsReady"), 10, "ApplicationsReady")
    assert ready["status"] == "False" and ready["reason"] == "Pending" and "not yet deployed" in ready["message"]
    for c in ("DPUServiceInterfaceReconciled", "ApplicationPrereqsReconciled", "ApplicationsReconciled"):
        assert env.condition("dummy", TENANT, c)["status"] == "True", c
    await env.argocd_reports("dc1-dummy", "Synced", "Healthy")
    await env.argocd_reports("dc2-dummy", "OutOfSync", "Progressing")
    await eventually(lambda: "Sync: OutOfSync, Health: Progressing"
                     in env.condition("dummy", TENANT, "ApplicationsReady").get("message", ""), 10, "dc2 not ready")  # fmt: skip
    assert env.condition("dummy", TENANT, "Ready")["status"] == "False"
    await env.argocd_reports("dc2-dummy", "Synced", "Healthy")
    await eventually(lambda: env.condition("dummy", TENANT, "Ready").get("status") == "True", 10, "Ready")
    out = await kubectl(env, "get", "applications", "-n", OP_NS)
    assert "SYNC STATUS" in out and "HEALTH STATUS" in out
    assert any(line.split()[:3] == ["dc1-dummy", "Synced", "Healthy"] for line in out.splitlines()), out

    # A pull Secret that loses its label (or goes) leaves the DPU clusters.
    await host.delete_object("v1", "Secret", "regcred", TENANT)
    await eventually(lambda: all(in_cluster(dc, "v1", "Secret", "regcred", TENANT) is None for dc in (dc1, dc2)),
                     10, "orphaned pull Secrets removed")  # fmt: skip
    await host.apply_object(pull_secret("regcred2"))
    await eventually(lambda: in_cluster(dc2, "v1", "Secret", "regcred2", TENANT), 10, "a new pull Secret mirrored")

    # paused: ArgoCD is told to leave the Applications alone; unpaused, the change reaches them.
    await host.apply_object({**dpuservice(), "spec": {**dpuservice()["spec"], "paused": True}})
    await eventually(lambda: all((a["metadata"].get("annotations") or {}).get("argocd.argoproj.io/skip-reconcile")
                                 == "true" for a in env.apps()), 10, "Applications paused")  # fmt: skip
    changed = dpuservice()
    changed["spec"]["helmChart"]["values"] = {"image": {"tag": "v2"}}
    changed["spec"]["paused"] = False
    await host.apply_object(changed)

    def unpaused_on_v2() -> list[str]:
        return [a["metadata"]["name"] for a in env.apps()
                if "argocd.argoproj.io/skip-reconcile" not in (a["metadata"].get("annotations") or {})
                and a["spec"]["source"]["helm"]["valuesObject"]["image"] == {"tag": "v2"}]  # fmt: skip

    # The change rolls one DPU cluster at a time (the default budget): dc2 waits, unpaused, for dc1 to be healthy.
    assert await eventually(unpaused_on_v2, 10, "dc1 unpaused and updated") == ["dc1-dummy"]
    await eventually(lambda: "argocd.argoproj.io/skip-reconcile" not in (env.app("dc2-dummy") or {})
                     .get("metadata", {}).get("annotations", {}), 10, "dc2 unpaused on its previous spec")  # fmt: skip
    assert unpaused_on_v2() == ["dc1-dummy"]
    await env.argocd_reports("dc1-dummy", "Synced", "Healthy")
    await eventually(lambda: len(unpaused_on_v2()) == 2, 10, "dc2 updated after dc1 is healthy")

    # A DPUCluster that goes takes its Application with it (ArgoCD finishes the deletion).
    await host.delete_object("provisioning.dpu.nvidia.com/v1alpha1", "DPUCluster", "dc2", OP_NS)
    await eventually(lambda: (env.app("dc2-dummy") or {}).get("metadata", {}).get("deletionTimestamp"), 10,
                     "dc2's Application deleted")  # fmt: skip
    await env.argocd_finishes_deletion("dc2-dummy")
    await eventually(lambda: env.app("dc2-dummy") is None, 10, "dc2's Application gone")
    await env.argocd_reports("dc1-dummy", "Synced", "Healthy")
    await eventually(lambda: env.condition("dummy", TENANT, "Ready").get("status") == "True", 10, "Ready on dc1 only")

    # Deletion waits for ArgoCD to let the Application go, then releases the interface and the pull Secrets.
    await host.delete_object(SVC, "DPUService", "dummy", TENANT)
    await eventually(lambda: (env.app("dc1-dummy") or {}).get("metadata", {}).get("deletionTimestamp"), 10,
                     "Application deleted")  # fmt: skip
    waiting = await eventually(
        lambda: env.condition("dummy", TENANT, "ApplicationsReconciled").get("reason") == "AwaitingDeletion"
        and env.condition("dummy", TENANT, "ApplicationsReconciled"), 10, "AwaitingDeletion")  # fmt: skip
    assert f"{OP_NS}/dc1-dummy.argoproj.io" in waiting["message"]
    assert env.service("dummy", TENANT) is not None  # held by its finalizer
    await env.argocd_finishes_deletion("dc1-dummy")
    await eventually(lambda: env.service("dummy", TENANT) is None, 10, "the DPUService gone")
    dsi = host.get_object(SVC, "DPUServiceInterface", "p0", TENANT)
    assert dsi is not None and "dpu.nvidia.com/consumed-by" not in (dsi["metadata"].get("annotations") or {})
    assert in_cluster(dc1, "v1", "Secret", "regcred2", TENANT) is None


async def test_deploy_in_cluster_problems_and_operator_config(env: ServiceEnv) -> None:
    host = env.host
    await host.apply_object(NAMESPACE)
    await env.add_cluster("dc1")
    await host.apply_object(dpuservice("hostsvc", interfaces=None, deployInCluster=True))
    # No DPFOperatorConfig yet: DPF refuses to go on.
    prereqs = await eventually(lambda: env.condition("hostsvc", TENANT, "ApplicationPrereqsReconciled"), 10,
                               "ApplicationPrereqsReconciled")  # fmt: skip
    assert prereqs["status"] == "False" and "exactly one DPFOperatorConfig" in prereqs["message"]
    assert env.apps() == []
    await host.apply_object(operator_config())
    app = await eventually(lambda: env.app("in-cluster-hostsvc"), 10, "the in-cluster Application")
    assert app["spec"]["project"] == "doca-platform-project-host"
    assert app["spec"]["destination"] == {"name": "in-cluster", "namespace": TENANT}
    assert "dpu.nvidia.com/cluster" in app["metadata"]["labels"]
    assert [a["metadata"]["name"] for a in env.apps()] == ["in-cluster-hostsvc"]
    assert in_cluster(env.dpu["dc1"], "v1", "Namespace", TENANT, None) is None  # nothing in the DPU cluster
    await env.argocd_reports("in-cluster-hostsvc", "Synced", "Healthy")
    await eventually(lambda: env.condition("hostsvc", TENANT, "Ready").get("status") == "True", 10, "Ready")

    # An interface that is not a service interface: DPF's reason, no Application.
    bad = service_interface("p1")
    bad["spec"]["template"]["spec"]["template"]["spec"] = {"interfaceType": "physical",
                                                            "physical": {"interfaceName": "p1"}}  # fmt: skip
    await host.apply_object(bad)
    await host.apply_object(dpuservice("needs-p1", interfaces=["p1"]))
    cond = await eventually(lambda: env.condition("needs-p1", TENANT, "DPUServiceInterfaceReconciled"), 10,
                            "DPUServiceInterfaceReconciled")  # fmt: skip
    assert cond["status"] == "False"
    assert cond["message"] == "Unable to reconcile interfaces for wrong service definition in DPUServiceInterface p1"
    assert env.condition("needs-p1", TENANT, "Ready")["status"] == "False"
    assert env.app("dc1-needs-p1") is None

    # A DPUCluster whose admin kubeconfig cannot be read stops the prerequisites, saying which and why (as DPF).
    await host.apply_object({"apiVersion": "provisioning.dpu.nvidia.com/v1alpha1", "kind": "DPUCluster",
                             "metadata": {"name": "broken", "namespace": OP_NS},
                             "spec": {"type": "static", "version": "v1.30.0", "kubeconfig": "no-such-secret"}})  # fmt: skip

    def prereqs_failed() -> dict[str, Any]:
        c = env.condition("hostsvc", TENANT, "ApplicationPrereqsReconciled")
        return c if c.get("status") == "False" else {}

    failed = await eventually(prereqs_failed, 10, "prerequisites failing on the broken cluster")
    assert "ArgoSecrets: cluster broken" in failed["message"] and "no-such-secret" in failed["message"]
    assert env.condition("hostsvc", TENANT, "Ready")["status"] == "False"


async def test_an_interface_serves_one_dpuservice(env: ServiceEnv) -> None:
    host = env.host
    await host.apply_object(NAMESPACE)
    await host.apply_object(operator_config())
    await host.apply_object(service_interface())
    await host.apply_object(dpuservice("first"))
    await host.apply_object(dpuservice("second"))

    def verdicts() -> dict[str, str] | None:
        got = {
            n: env.condition(n, TENANT, "DPUServiceInterfaceReconciled").get("status", "") for n in ("first", "second")
        }
        return got if sorted(got.values()) == ["False", "True"] else None

    got = await eventually(verdicts, 10, "one DPUService holding p0, the other refused")
    winner, loser = sorted(got, key=lambda n: got[n] != "True")
    dsi = host.get_object(SVC, "DPUServiceInterface", "p0", TENANT)
    assert dsi is not None and dsi["metadata"]["annotations"]["dpu.nvidia.com/consumed-by"] == winner
    refused = env.condition(loser, TENANT, "DPUServiceInterfaceReconciled")
    assert (
        refused["message"]
        == "Unable to reconcile interfaces for dpuServiceInterface p0 is in use by another DPUService"
    )
