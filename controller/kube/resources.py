"""The Kubernetes resources the controller reads and writes, named the way the REST paths need them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ResourceType:
    group: str  # "" for the core group
    version: str
    plural: str
    kind: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None, subresource: str | None = None) -> str:
        """REST path; `namespace=None` on a namespaced resource means all namespaces (list and watch)."""
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        elif self.namespaced and name is not None:
            raise ValueError(f"{self.kind} {name!r}: a namespaced object needs a namespace")
        base += f"/{self.plural}"
        if name is not None:
            base += f"/{name}"
            if subresource:
                base += f"/{subresource}"
        return base


PROVISIONING_GROUP = "provisioning.dpu.nvidia.com"

# Built-in kinds more than one family reads or writes.
NODES = ResourceType("", "v1", "nodes", "Node", namespaced=False)
EVENTS = ResourceType("", "v1", "events", "Event", namespaced=True)
NAMESPACES = ResourceType("", "v1", "namespaces", "Namespace", namespaced=False)
SECRETS = ResourceType("", "v1", "secrets", "Secret", namespaced=True)
CONFIGMAPS = ResourceType("", "v1", "configmaps", "ConfigMap", namespaced=True)
SERVICES = ResourceType("", "v1", "services", "Service", namespaced=True)
SERVICE_ACCOUNTS = ResourceType("", "v1", "serviceaccounts", "ServiceAccount", namespaced=True)
PODS = ResourceType("", "v1", "pods", "Pod", namespaced=True)
DAEMONSETS = ResourceType("apps", "v1", "daemonsets", "DaemonSet", namespaced=True)
DPUSETS = ResourceType(PROVISIONING_GROUP, "v1alpha1", "dpusets", "DPUSet", namespaced=True)
DPUS = ResourceType(PROVISIONING_GROUP, "v1alpha1", "dpus", "DPU", namespaced=True)
BFBS = ResourceType(PROVISIONING_GROUP, "v1alpha1", "bfbs", "BFB", namespaced=True)
DPUFLAVORS = ResourceType(PROVISIONING_GROUP, "v1alpha1", "dpuflavors", "DPUFlavor", namespaced=True)
DPUCLUSTERS = ResourceType(PROVISIONING_GROUP, "v1alpha1", "dpuclusters", "DPUCluster", namespaced=True)
