"""A kamaji DPUCluster's control plane, as DPF's kamaji cluster manager sets it up.

DPF (internal/clustermanager/kamaji) gives each kamaji DPUCluster a Kamaji TenantControlPlane named after it (3 API
server replicas, NodePort service, the DPUCluster's Kubernetes version, CoreDNS and kube-proxy addons) and, when
spec.clusterEndpoint.keepalived is set, a keepalived DaemonSet holding the VIP on the chosen host nodes. Kamaji then
writes the admin kubeconfig Secret `<tcp>-admin-kubeconfig` (key "admin.conf"); once the TenantControlPlane reports
its version Ready, spec.kubeconfig is set to that Secret and the DPUCluster is used exactly like a static one.

Both objects carry a controller ownerReference to the DPUCluster, so deleting the DPUCluster deletes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from controller.kube.client import ApiError, KubeClient
from controller.kube.objects import Obj, controller_owner_ref, name_of, namespace_of
from controller.kube.resources import ResourceType

TENANT_CONTROL_PLANES = ResourceType("kamaji.clastix.io", "v1alpha1", "tenantcontrolplanes", "TenantControlPlane",
                                     namespaced=True)  # fmt: skip
DAEMONSETS = ResourceType("apps", "v1", "daemonsets", "DaemonSet", namespaced=True)
DPUCLUSTER_API_VERSION = "provisioning.dpu.nvidia.com/v1alpha1"
CLUSTER_LABEL = "dpu.nvidia.com/cluster"
KEEPALIVED_IMAGE = "osixia/keepalived:2.0.20"
CONTROL_PLANE_REPLICAS = 3
DEFAULT_API_PORT = 6443
TCP_READY = "Ready"  # status.kubernetesResources.version.status once Kamaji has the control plane up


def admin_secret_name(cluster: Obj) -> str:
    """The Secret Kamaji writes the TenantControlPlane's admin kubeconfig into."""
    return f"{name_of(cluster)}-admin-kubeconfig"


def keepalived_spec(cluster: Obj) -> dict[str, Any] | None:
    endpoint = (cluster.get("spec") or {}).get("clusterEndpoint") or {}
    keepalived = endpoint.get("keepalived")
    return keepalived if isinstance(keepalived, dict) else None


def _owned(cluster: Obj, name: str, labels: dict[str, str] | None = None) -> Obj:
    return {
        "name": name,
        "namespace": namespace_of(cluster),
        "labels": {CLUSTER_LABEL: name_of(cluster), **(labels or {})},
        "ownerReferences": [controller_owner_ref(cluster, DPUCLUSTER_API_VERSION, "DPUCluster")],
    }


def tenant_control_plane(cluster: Obj) -> Obj:
    """The TenantControlPlane DPF asks Kamaji for: replicas on control-plane nodes, NodePort, the DPUCluster's
    version; with keepalived the advertised address is the VIP, so DPUs reach the API wherever it runs."""
    spec = cluster.get("spec") or {}
    keepalived = keepalived_spec(cluster)
    network: dict[str, Any] = {"port": DEFAULT_API_PORT}
    if keepalived is not None:
        network["address"] = str(keepalived.get("vip", ""))
        network["certSANs"] = [str(keepalived.get("vip", ""))]
    return {
        "apiVersion": TENANT_CONTROL_PLANES.api_version,
        "kind": "TenantControlPlane",
        "metadata": _owned(cluster, name_of(cluster)),
        "spec": {
            "dataStore": "default",
            "controlPlane": {
                "deployment": {
                    "replicas": CONTROL_PLANE_REPLICAS,
                    "nodeSelector": {"node-role.kubernetes.io/control-plane": ""},
                    "tolerations": [
                        {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}
                    ],
                },
                "service": {"serviceType": "NodePort"},
            },
            "kubernetes": {
                "version": str(spec.get("version", "")),
                "kubelet": {"cgroupfs": "systemd"},
                "admissionControllers": ["ResourceQuota", "LimitRanger"],
            },
            "networkProfile": network,
            "addons": {"coreDNS": {}, "kubeProxy": {}},
        },
    }


def keepalived_daemonset(cluster: Obj) -> Obj | None:
    """The keepalived DaemonSet holding the DPUCluster's VIP on the selected host nodes (None without keepalived)."""
    keepalived = keepalived_spec(cluster)
    if keepalived is None:
        return None
    name = f"{name_of(cluster)}-keepalived"
    selector = {"app.kubernetes.io/name": "keepalived", CLUSTER_LABEL: name_of(cluster)}
    env = [
        {"name": "KEEPALIVED_INTERFACE", "value": str(keepalived.get("interface", ""))},
        {"name": "KEEPALIVED_VIRTUAL_IPS", "value": str(keepalived.get("vip", ""))},
        {"name": "KEEPALIVED_ROUTER_ID", "value": str(keepalived.get("virtualRouterID", ""))},
    ]
    pod_spec: dict[str, Any] = {
        "hostNetwork": True,
        "containers": [{"name": "keepalived", "image": KEEPALIVED_IMAGE, "env": env,
                        "securityContext": {"capabilities": {"add": ["NET_ADMIN", "NET_BROADCAST", "NET_RAW"]}}}],
    }  # fmt: skip
    if keepalived.get("nodeSelector"):
        pod_spec["nodeSelector"] = dict(keepalived["nodeSelector"])
    return {
        "apiVersion": DAEMONSETS.api_version,
        "kind": "DaemonSet",
        "metadata": _owned(cluster, name, {"app.kubernetes.io/name": "keepalived"}),
        "spec": {"selector": {"matchLabels": selector},
                 "template": {"metadata": {"labels": selector}, "spec": pod_spec}},
    }  # fmt: skip


@dataclass(frozen=True)
class KamajiProgress:
    """Where a kamaji DPUCluster's control plane is: `kubeconfig` is the admin Secret once Kamaji has it Ready."""

    tcp_status: str  # status.kubernetesResources.version.status ("" before Kamaji reports)
    kubeconfig: str | None
    keepalived: bool | None  # whether the keepalived DaemonSet exists; None when the cluster has no keepalived

    @property
    def ready(self) -> bool:
        return self.kubeconfig is not None


class KamajiNotInstalled(Exception):
    """The host API does not serve TenantControlPlanes: no Kamaji to ask for a control plane."""


async def _get_or_create(client: KubeClient, rt: ResourceType, obj: Obj) -> Obj:
    try:
        return await client.get(rt, namespace_of(obj), name_of(obj))
    except ApiError as e:
        if not e.not_found:
            raise
    try:
        return await client.create(rt, obj)
    except ApiError as e:
        if e.not_found and rt == TENANT_CONTROL_PLANES:  # the DPUCluster's namespace exists: the kind is not served
            raise KamajiNotInstalled(
                f"the host API does not serve {rt.kind} ({rt.api_version}): is Kamaji installed?"
            ) from e
        if not e.already_exists:
            raise
        return await client.get(rt, namespace_of(obj), name_of(obj))


def tcp_version_status(tcp: Obj) -> str:
    status = tcp.get("status") or {}
    return str(((status.get("kubernetesResources") or {}).get("version") or {}).get("status") or "")


async def ensure_control_plane(client: KubeClient, cluster: Obj) -> KamajiProgress:
    """Create what the DPUCluster's control plane needs (idempotent) and report how far Kamaji has got.
    Raises KamajiNotInstalled, or ApiError."""
    tcp = await _get_or_create(client, TENANT_CONTROL_PLANES, tenant_control_plane(cluster))
    keepalived: bool | None = None
    daemonset = keepalived_daemonset(cluster)
    if daemonset is not None:
        await _get_or_create(client, DAEMONSETS, daemonset)
        keepalived = True
    version_status = tcp_version_status(tcp)
    kubeconfig = admin_secret_name(cluster) if version_status == TCP_READY else None
    return KamajiProgress(version_status, kubeconfig, keepalived)
