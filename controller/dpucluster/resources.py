"""The resources DPU-cluster access reads and writes (kept here so this package stands on its own)."""

from __future__ import annotations

from controller.kube.resources import PROVISIONING_GROUP, ResourceType

DPUCLUSTERS = ResourceType(PROVISIONING_GROUP, "v1alpha1", "dpuclusters", "DPUCluster", namespaced=True)
