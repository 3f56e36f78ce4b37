"""A kamaji DPUCluster's control plane, as DPF's kamaji cluster manager (internal/clustermanager/kamaji) sets it up.

For each kamaji DPUCluster, in this order:
1. a NodePort Service named after it (port `kube-apiserver`), so the API server allocates the node port the control
   plane will be reached on; Kamaji later takes the Service over for the TenantControlPlane of the same name;
2. a Kamaji TenantControlPlane named after it: 3 API server replicas on control-plane nodes, NodePort service, the
   DPUCluster's Kubernetes version, CoreDNS and kube-proxy addons; with spec.clusterEndpoint.keepalived its
   networkProfile is VIP:nodePort, so DPUs reach the API through the VIP wherever it runs;
3. with keepalived, once the node port is known, a ConfigMap and DaemonSet `<name>-keepalived` holding the VIP on
   the selected host nodes (keepalived checks the local API on the node port).
Kamaji writes the admin kubeconfig Secret `<name>-admin-kubeconfig` (key "admin.conf"); once the TenantControlPlane
reports its version Ready, spec.kubeconfig is set to that Secret and the DPUCluster is used exactly like a static one.

Everything carries an ownerReference to the DPUCluster, so deleting the DPUCluster deletes it (DPF leaves the
Service without one; here it goes with the DPUCluster even if Kamaji never adopted it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from controller.kube.client import ApiError, KubeClient
from controller.kube.objects import Obj, controller_owner_ref, name_of, namespace_of
from controller.kube.resources import CONFIGMAPS, DAEMONSETS, SERVICES, ResourceType

TENANT_CONTROL_PLANES = ResourceType("kamaji.clastix.io", "v1alpha1", "tenantcontrolplanes", "TenantControlPlane",
                                     namespaced=True)  # fmt: skip
DPUCLUSTER_API_VERSION = "provisioning.dpu.nvidia.com/v1alpha1"
API_PORT_NAME = "kube-apiserver"
API_PORT = 6443  # any value: Kamaji sets the Service's port once the TenantControlPlane exists
TENANT_LABEL = "tenant.clastix.io"
KAMAJI_NAME_LABEL = "kamaji.clastix.io/name"  # Kamaji's selector for a TenantControlPlane's pods
KEEPALIVED_IMAGE = "osixia/keepalived:2.0.20"
CONF_IMAGE = "alpine:3.20.3"
CONTROL_PLANE_REPLICAS = 3
TCP_READY = "Ready"  # status.kubernetesResources.version.status once Kamaji has the control plane up
CONTROL_PLANE_ROLES = ("node-role.kubernetes.io/master", "node-role.kubernetes.io/control-plane")
TOLERATIONS = [{"key": role, "operator": "Exists", "effect": "NoSchedule"} for role in CONTROL_PLANE_ROLES]
# keepalived.conf with the node's values put in by the DaemonSet's init container (sed on the upper-case words);
# the VIP follows whichever node's local API answers on the node port.
KEEPALIVED_CONF_TEMPLATE = """vrrp_script chk-control-plane {
  script "/usr/bin/curl -k https://localhost:NODE_PORT"
  interval 2
  rise 3
  fall 2
  weight 0
}

vrrp_instance dpu-cluster-control-plane {
  state BACKUP
  interface INTERFACE
  virtual_router_id VIRTUAL_ROUTER_ID
  priority PRIORITY
  virtual_ipaddress {
    VIRTUAL_IP
  }
  track_script {
    chk-control-plane
  }
}
"""
RENDER_CONF = (
    "PRIORITY=$(echo ${NODE_IP} | cut -d. -f4)\n"
    'sed "s/INTERFACE/${INTERFACE}/g; s/VIRTUAL_ROUTER_ID/${VIRTUAL_ROUTER_ID}/g; s/PRIORITY/${PRIORITY}/g; '
    's/NODE_PORT/${NODE_PORT}/g; s/VIRTUAL_IP/${VIRTUAL_IP}/g" /conf-template/keepalived.conf.tmpl > /conf/keepalived.conf\n'
)


class KamajiError(Exception):
    """What stops a kamaji DPUCluster's control plane from being asked for (retried)."""


class KamajiNotInstalled(KamajiError):
    """The host API does not serve TenantControlPlanes: no Kamaji to ask for a control plane."""


def admin_secret_name(cluster: Obj) -> str:
    """The Secret Kamaji writes the TenantControlPlane's admin kubeconfig into."""
    return f"{name_of(cluster)}-admin-kubeconfig"


def keepalived_spec(cluster: Obj) -> dict[str, Any] | None:
    endpoint = (cluster.get("spec") or {}).get("clusterEndpoint") or {}
    keepalived = endpoint.get("keepalived")
    return keepalived if isinstance(keepalived, dict) else None


def _owned(cluster: Obj, name: str, labels: dict[str, str] | None = None) -> Obj:
    meta: Obj = {
        "name": name,
        "namespace": namespace_of(cluster),
        "ownerReferences": [controller_owner_ref(cluster, DPUCLUSTER_API_VERSION, "DPUCluster")],
    }
    if labels:
        meta["labels"] = labels
    return meta


def api_service(cluster: Obj) -> Obj:
    """The NodePort Service DPF creates first: the API server gives it the node port the control plane is reached on.
    Not a controller reference: Kamaji takes the Service over for the TenantControlPlane."""
    meta = _owned(cluster, name_of(cluster))
    meta["ownerReferences"] = [{**ref, "controller": False} for ref in meta["ownerReferences"]]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": {
            "type": "NodePort",
            "ports": [{"name": API_PORT_NAME, "protocol": "TCP", "port": API_PORT}],
            "selector": {KAMAJI_NAME_LABEL: name_of(cluster)},
        },
    }


def node_port_of(service: Obj) -> int | None:
    for port in (service.get("spec") or {}).get("ports") or []:
        if port.get("name") == API_PORT_NAME and port.get("nodePort"):
            return int(port["nodePort"])
    return None


def tenant_control_plane(cluster: Obj, node_port: int) -> Obj:
    """The TenantControlPlane DPF asks Kamaji for."""
    spec = cluster.get("spec") or {}
    name = name_of(cluster)
    labels = {TENANT_LABEL: name}
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": role, "operator": "Exists"}]} for role in CONTROL_PLANE_ROLES
    ]}}}  # fmt: skip
    tcp: Obj = {
        "apiVersion": TENANT_CONTROL_PLANES.api_version,
        "kind": "TenantControlPlane",
        "metadata": _owned(cluster, name, labels),
        "spec": {
            "dataStore": "default",
            "controlPlane": {
                "deployment": {
                    "replicas": CONTROL_PLANE_REPLICAS,
                    "affinity": affinity,
                    "tolerations": TOLERATIONS,
                    "additionalMetadata": {"labels": labels},
                    "resources": {
                        "apiServer": {"requests": {"cpu": "250m", "memory": "512Mi"}},
                        "controllerManager": {"requests": {"cpu": "125m", "memory": "256Mi"}},
                        "scheduler": {"requests": {"cpu": "125m", "memory": "256Mi"}},
                    },
                },
                "service": {"additionalMetadata": {"labels": labels}, "serviceType": "NodePort"},
            },
            "kubernetes": {
                "version": str(spec.get("version", "")),
                "kubelet": {"cgroupfs": "systemd"},
                "admissionControllers": ["ResourceQuota", "LimitRanger"],
            },
            "addons": {"coreDNS": {}, "kubeProxy": {}},
        },
    }
    keepalived = keepalived_spec(cluster)
    if keepalived is not None:
        tcp["spec"]["networkProfile"] = {"address": str(keepalived.get("vip", "")), "port": node_port}
    return tcp


def keepalived_objects(cluster: Obj, node_port: int) -> list[Obj]:
    """The ConfigMap and DaemonSet holding the DPUCluster's VIP on the selected host nodes ([] without keepalived)."""
    keepalived = keepalived_spec(cluster)
    if keepalived is None:
        return []
    name = f"{name_of(cluster)}-keepalived"
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _owned(cluster, name),
                  "data": {"keepalived.conf.tmpl": KEEPALIVED_CONF_TEMPLATE}}  # fmt: skip
    env = [
        {"name": "NODE_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
        {"name": "INTERFACE", "value": str(keepalived.get("interface", ""))},
        {"name": "VIRTUAL_ROUTER_ID", "value": str(keepalived.get("virtualRouterID", ""))},
        {"name": "NODE_PORT", "value": str(node_port)},
        {"name": "VIRTUAL_IP", "value": str(keepalived.get("vip", ""))},
    ]
    pod_spec: dict[str, Any] = {
        "hostNetwork": True,
        "dnsPolicy": "ClusterFirstWithHostNet",
        "restartPolicy": "Always",
        "tolerations": TOLERATIONS,
        "initContainers": [{"name": "create-conf", "image": CONF_IMAGE, "imagePullPolicy": "IfNotPresent",
                            "command": ["/bin/sh", "-c", RENDER_CONF], "env": env,
                            "volumeMounts": [{"mountPath": "/conf-template", "name": "conf-template",
                                              "readOnly": True}, {"mountPath": "/conf", "name": "conf"}]}],
        "containers": [{"name": "keepalived", "image": KEEPALIVED_IMAGE, "imagePullPolicy": "IfNotPresent",
                        "resources": {"limits": {"memory": "512Mi"}, "requests": {"cpu": "5m", "memory": "64Mi"}},
                        "securityContext": {"privileged": True},
                        "volumeMounts": [{"mountPath": "/usr/local/etc/keepalived", "name": "conf"}]}],
        "volumes": [{"name": "conf", "emptyDir": {"sizeLimit": "50Mi"}},
                    {"name": "conf-template", "configMap": {"name": name, "defaultMode": 420}}],
    }  # fmt: skip
    if keepalived.get("nodeSelector"):
        pod_spec["nodeSelector"] = dict(keepalived["nodeSelector"])
    selector = {"app.kubernetes.io/name": name}
    daemon_set = {
        "apiVersion": DAEMONSETS.api_version,
        "kind": "DaemonSet",
        "metadata": _owned(cluster, name),
        "spec": {"selector": {"matchLabels": selector},
                 "template": {"metadata": {"labels": selector}, "spec": pod_spec}},
    }  # fmt: skip
    return [config_map, daemon_set]


@dataclass(frozen=True)
class KamajiProgress:
    """Where a kamaji DPUCluster's control plane is: `kubeconfig` is the admin Secret once Kamaji has it Ready."""

    tcp_status: str  # status.kubernetesResources.version.status ("" before Kamaji reports)
    kubeconfig: str | None
    keepalived: bool  # the keepalived ConfigMap and DaemonSet are deployed (DPF's KeepalivedReady)


async def _get(client: KubeClient, rt: ResourceType, cluster: Obj) -> Obj | None:
    try:
        return await client.get(rt, namespace_of(cluster), name_of(cluster))
    except ApiError as e:
        if e.not_found:
            return None
        raise


async def _create(client: KubeClient, rt: ResourceType, obj: Obj) -> Obj:
    """Create `obj`, or get it when it is already there (created meanwhile)."""
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
    """Create what the DPUCluster's control plane needs, in DPF's order (idempotent), and report how far Kamaji has
    got. Raises KamajiError (KamajiNotInstalled among them), or ApiError."""
    service = await _get(client, SERVICES, cluster)
    tcp = await _get(client, TENANT_CONTROL_PLANES, cluster)
    if service is None and tcp is None:
        service = await _create(client, SERVICES, api_service(cluster))
    if tcp is None:
        node_port = node_port_of(service or {})
        if node_port is None:
            raise KamajiError(f"Service {namespace_of(cluster)}/{name_of(cluster)} has no node port "
                              f"for {API_PORT_NAME}")  # fmt: skip
        tcp = await _create(client, TENANT_CONTROL_PLANES, tenant_control_plane(cluster, node_port))
    else:
        profile = (tcp.get("spec") or {}).get("networkProfile") or {}
        node_port = profile.get("port") or node_port_of(service or {})
    keepalived = False
    if node_port and keepalived_spec(cluster) is not None:
        for obj in keepalived_objects(cluster, int(node_port)):
            rt = CONFIGMAPS if obj["kind"] == "ConfigMap" else DAEMONSETS
            if await _get(client, rt, obj) is None:
                await _create(client, rt, obj)
        keepalived = True
    version_status = tcp_version_status(tcp)
    kubeconfig = admin_secret_name(cluster) if version_status == TCP_READY else None
    return KamajiProgress(version_status, kubeconfig, keepalived)
