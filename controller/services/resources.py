"""The resources and well-known names the DPUService family reads and writes (DPF v24.10, ArgoCD v1alpha1)."""

from __future__ import annotations

from typing import Final

from controller.kube.resources import ResourceType

SVC_GROUP: Final = "svc.dpu.nvidia.com"
ARGO_GROUP: Final = "argoproj.io"

DPUSERVICES = ResourceType(SVC_GROUP, "v1alpha1", "dpuservices", "DPUService", namespaced=True)
APPLICATIONS = ResourceType(ARGO_GROUP, "v1alpha1", "applications", "Application", namespaced=True)
APPPROJECTS = ResourceType(ARGO_GROUP, "v1alpha1", "appprojects", "AppProject", namespaced=True)
DPFOPERATORCONFIGS = ResourceType(
    "operator.dpu.nvidia.com", "v1alpha1", "dpfoperatorconfigs", "DPFOperatorConfig", namespaced=True
)

# ArgoCD's names (internal/argocd/utils.go, dpuservice_controller.go).
APP_FINALIZER: Final = "resources-finalizer.argocd.argoproj.io"
PROJECT_DPU: Final = "doca-platform-project-dpu"
PROJECT_HOST: Final = "doca-platform-project-host"
IN_CLUSTER: Final = "in-cluster"
SECRET_TYPE_LABEL: Final = "argocd.argoproj.io/secret-type"
SECRET_TYPE_CLUSTER: Final = "cluster"
SKIP_RECONCILE: Final = "argocd.argoproj.io/skip-reconcile"
NETWORKS_ANNOTATION: Final = "k8s.v1.cni.cncf.io/networks"

# DPF's own.
COMPONENT_LABEL: Final = "dpu.nvidia.com/component"
COMPONENT: Final = "dpuservice-manager"
