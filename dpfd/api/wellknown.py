"""Label, annotation and finalizer names DPF v24.10 uses, so every component spells them the same way."""

from __future__ import annotations

from typing import Final

# Node labels written by DPF's detector and NodeFeatureRule (N is the DPU index on the host).
NODE_DPU_ENABLED: Final = "feature.node.kubernetes.io/dpu-enabled"
NODE_OOB_BRIDGE_CONFIGURED: Final = "feature.node.kubernetes.io/dpu-oob-bridge-configured"


def node_dpu_pci_address(index: int) -> str:
    """Value like "0000-03-00"."""
    return f"feature.node.kubernetes.io/dpu-{index}-pci-address"


def node_dpu_pf0_name(index: int) -> str:
    return f"feature.node.kubernetes.io/dpu-{index}-pf0-name"


def node_dpu_ps_id(index: int) -> str:
    return f"feature.node.kubernetes.io/dpu-{index}-ps-id"


# Labels the DPUSet controller puts on the DPUs it creates.
DPUSET_NAME: Final = "provisioning.dpu.nvidia.com/dpuset-name"
DPUSET_NAMESPACE: Final = "provisioning.dpu.nvidia.com/dpuset-namespace"
DPU_PCI_ADDRESS: Final = "provisioning.dpu.nvidia.com/dpu-pciAddress"
DPU_PF_NAME: Final = "provisioning.dpu.nvidia.com/dpu-pf-name"
DPU_HOST_IP: Final = "provisioning.dpu.nvidia.com/dpu-host-ip"

# Labels on the DPU's Node in its DPUCluster after installation.
DPU_NODE_BFB_VERSION: Final = "provisioning.dpu.nvidia.com/DOCA-BFB-version"
DPU_NODE_HOST: Final = "provisioning.dpu.nvidia.com/host"

# Host reboot control.
ANNOTATION_HOST_POWER_CYCLE_REQUIRED: Final = "provisioning.dpu.nvidia.com/host-power-cycle-required"
ANNOTATION_POWERCYCLE_COMMAND: Final = "provisioning.dpu.nvidia.com/powercycle-command"
ANNOTATION_REBOOT_COMMAND: Final = "provisioning.dpu.nvidia.com/reboot-command"

# Finalizers.
FINALIZER_BFB: Final = "provisioning.dpu.nvidia.com/bfb-protection"
FINALIZER_DPUSET: Final = "provisioning.dpu.nvidia.com/dpuset-protection"
FINALIZER_DPU: Final = "provisioning.dpu.nvidia.com/dpu-protection"
FINALIZER_DPUCLUSTER: Final = "provisioning.dpu.nvidia.com/cluster-manager-clean-up"
FINALIZER_DPUCLUSTER_INTERNAL: Final = "provisioning.dpu.nvidia.com/cluster-manager-internal-clean-up"
FINALIZER_DPUSERVICE: Final = "dpu.nvidia.com/dpuservice"

# Service labels and annotations.
DPUCLUSTER_LABEL: Final = "dpu.nvidia.com/cluster"
DPUSERVICE_NAME: Final = "dpu.nvidia.com/dpuservice-name"
DPUSERVICE_NAMESPACE: Final = "dpu.nvidia.com/dpuservice-namespace"
SERVICE_ID_LABEL: Final = "svc.dpu.nvidia.com/service"
INTERFACE_LABEL: Final = "svc.dpu.nvidia.com/interface"
IMAGE_PULL_SECRET_LABEL: Final = "dpu.nvidia.com/image-pull-secret"
CONSUMED_BY_ANNOTATION: Final = "dpu.nvidia.com/consumed-by"
OWNED_BY_DPUDEPLOYMENT: Final = "svc.dpu.nvidia.com/owned-by-dpudeployment"
