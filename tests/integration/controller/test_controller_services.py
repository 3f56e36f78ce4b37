"""The DPU-services families run in the controller itself: a real replica (leader election, informers, its terms)
turns a DPUDeployment into its DPUSet, DPUService, DPUServiceInterface and DPUServiceChain, and takes the generated
DPUService in hand for ArgoCD (its finalizer, one Application per DPU cluster, conditions)."""

from __future__ import annotations

from typing import Any

from controller_harness import KubeEnv, kube, start_replica, store, wait_until

from tests.fixtures.argocd.crds import argocd_crds

__all__ = ["kube", "store"]  # fixtures

NS = "dpf-operator-system"
SVC = "svc.dpu.nvidia.com/v1alpha1"
PROV = "provisioning.dpu.nvidia.com/v1alpha1"


def obj(api: str, kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": NS}, "spec": spec}


def manifests() -> list[dict[str, Any]]:
    return [
        obj("operator.dpu.nvidia.com/v1alpha1", "DPFOperatorConfig", "dpfoperatorconfig",
            {"provisioningController": {"bfbPVCName": "bfb-pvc"}}),
        obj(PROV, "BFB", "bf-bundle", {"url": "http://example.com/bf-bundle.bfb"}),
        obj(PROV, "DPUFlavor", "hbn-flavor", {"dpuResources": {"cpu": "16", "memory": "16Gi"}}),
        obj(SVC, "DPUServiceTemplate", "hbn-t", {
            "deploymentServiceName": "hbn",
            "helmChart": {"source": {"repoURL": "oci://example.com/charts", "chart": "hbn", "version": "1.0.0"}},
            "resourceRequirements": {"cpu": "2"},
        }),
        obj(SVC, "DPUServiceConfiguration", "hbn-c", {
            "deploymentServiceName": "hbn",
            "serviceConfiguration": {"helmChart": {"values": {"image": {"tag": "2"}}}},
            "interfaces": [{"name": "p0_if", "network": "mybrsfc"}],
        }),
        obj(SVC, "DPUDeployment", "dd", {
            "dpus": {"bfb": "bf-bundle", "flavor": "hbn-flavor", "dpuSets": [{"nameSuffix": "dpuset1"}]},
            "services": {"hbn": {"serviceTemplate": "hbn-t", "serviceConfiguration": "hbn-c"}},
            "serviceChains": [{"ports": [{"service": {"name": "hbn", "interface": "p0_if"}},
                                         {"serviceInterface": {"matchLabels": {"uplink": "p0"}}}]}],
        }),
    ]  # fmt: skip


async def test_a_dpudeployment_becomes_its_objects_and_its_dpuservice_is_taken_in_hand(
    kube: KubeEnv, etcd_endpoints: list[str]
) -> None:
    await kube.server.register_crds(argocd_crds())
    replica = await start_replica(kube, etcd_endpoints)
    try:
        for m in manifests():
            await kube.server.apply_object(m)
        get = kube.server.get_object
        await wait_until(lambda: get(PROV, "DPUSet", "dd-dpuset1", NS), within=20, what="the DPUSet")
        await wait_until(lambda: get(SVC, "DPUServiceInterface", "dd-hbn-p0-if", NS), within=20, what="the interface")
        await wait_until(lambda: get(SVC, "DPUServiceChain", "dd", NS), within=20, what="the chain")
        service = await wait_until(lambda: get(SVC, "DPUService", "dd-hbn", NS), within=20, what="the DPUService")
        assert service["spec"]["serviceID"] == "dpudeployment_dd_hbn"

        def taken_in_hand() -> dict[str, Any] | None:
            svc = get(SVC, "DPUService", "dd-hbn", NS) or {}
            conditions = {c["type"] for c in (svc.get("status") or {}).get("conditions") or []}
            in_hand = "dpu.nvidia.com/dpuservice" in svc["metadata"].get("finalizers", []) and "Ready" in conditions
            return svc if in_hand else None

        await wait_until(taken_in_hand, within=20, what="the DPUService's finalizer and conditions")
    finally:
        await replica.stop()


async def test_a_credential_request_gets_its_service_account_token_secret(
    kube: KubeEnv, etcd_endpoints: list[str]
) -> None:
    replica = await start_replica(kube, etcd_endpoints)
    try:
        await kube.server.apply_object({
            "apiVersion": SVC, "kind": "DPUServiceCredentialRequest",
            "metadata": {"name": "ovn", "namespace": NS},
            "spec": {"serviceAccount": {"name": "ovn-dpu", "namespace": NS}, "type": "tokenFile", "duration": "10m",
                     "secret": {"name": "ovn-dpu-credentials", "namespace": NS}},
        })  # fmt: skip
        secret = await wait_until(lambda: kube.server.get_object("v1", "Secret", "ovn-dpu-credentials", NS),
                                  within=20, what="the credential Secret")  # fmt: skip
        assert {"TOKEN_FILE", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"} <= set(secret["data"])
        assert kube.server.get_object("v1", "ServiceAccount", "ovn-dpu", NS) is not None
    finally:
        await replica.stop()
