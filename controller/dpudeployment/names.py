"""The names, labels, finalizer and condition types DPF's DPUDeployment controller uses (v24.10)."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Final

from controller.chains.family import DPUSERVICECHAINS, DPUSERVICEINTERFACES, SVC_GROUP
from controller.kube.objects import ObjKey
from controller.kube.resources import BFBS, DPUFLAVORS, DPUSETS, ResourceType
from controller.services.resources import DPUSERVICES as DPUSERVICES  # re-exported: one definition
from dpfd.api.wellknown import INTERFACE_LABEL, OWNED_BY_DPUDEPLOYMENT, SERVICE_ID_LABEL

DPUDEPLOYMENTS = ResourceType(SVC_GROUP, "v1alpha1", "dpudeployments", "DPUDeployment", namespaced=True)
DPUSERVICETEMPLATES = ResourceType(SVC_GROUP, "v1alpha1", "dpuservicetemplates", "DPUServiceTemplate", namespaced=True)
DPUSERVICECONFIGURATIONS = ResourceType(
    SVC_GROUP, "v1alpha1", "dpuserviceconfigurations", "DPUServiceConfiguration", namespaced=True
)
# The kinds a DPUDeployment creates, in the order its deletion removes them (DPU clusters' controllers must still
# run while the services and chains go, so the DPUSets go last).
CHILD_KINDS: Final = (DPUSERVICECHAINS, DPUSERVICEINTERFACES, DPUSERVICES, DPUSETS)
# What it reads and marks as consumed.
DEPENDENCY_KINDS: Final = (DPUSERVICECONFIGURATIONS, DPUSERVICETEMPLATES, BFBS, DPUFLAVORS)

FINALIZER: Final = "dpu.nvidia.com/dpudeployment"  # on the DPUDeployment and on the objects it consumes
OWNER_LABEL: Final = OWNED_BY_DPUDEPLOYMENT  # on every child, value <namespace>_<name>
CONSUMED_BY_LABEL: Final = "dpu.nvidia.com/consumed-by-dpudeployment-name"  # on dependencies, value <name>
CHAIN_VERSION_LABEL: Final = "svc.dpu.nvidia.com/dpuservicechain-version"
SERVICE_LABEL: Final = SERVICE_ID_LABEL  # svc.dpu.nvidia.com/service = serviceID, on each ServiceInterface
INTERFACE_NAME_LABEL: Final = INTERFACE_LABEL  # svc.dpu.nvidia.com/interface = interface name
FIELD_MANAGER: Final = "dpudeploymentcontroller"

# Condition types (api/dpuservice/v1alpha1/dpudeployment_types.go), in DPF's order.
COND_READY: Final = "Ready"
COND_PREREQS: Final = "PrerequisitesReady"
COND_FITTING: Final = "ResourceFittingReady"
COND_DPUSETS_RECONCILED: Final = "DPUSetsReconciled"
COND_DPUSETS_READY: Final = "DPUSetsReady"
COND_SERVICES_RECONCILED: Final = "DPUServicesReconciled"
COND_SERVICES_READY: Final = "DPUServicesReady"
COND_CHAINS_RECONCILED: Final = "DPUServiceChainsReconciled"
COND_CHAINS_READY: Final = "DPUServiceChainsReady"
COND_INTERFACES_RECONCILED: Final = "DPUServiceInterfacesReconciled"
COND_INTERFACES_READY: Final = "DPUServiceInterfacesReady"
CONDITION_TYPES: Final = (
    COND_READY,
    COND_PREREQS,
    COND_FITTING,
    COND_DPUSETS_RECONCILED,
    COND_DPUSETS_READY,
    COND_SERVICES_RECONCILED,
    COND_SERVICES_READY,
    COND_CHAINS_RECONCILED,
    COND_CHAINS_READY,
    COND_INTERFACES_RECONCILED,
    COND_INTERFACES_READY,
)
# Per child kind: the conditions saying it was written, and that the written objects are Ready.
CHILD_CONDITIONS: Final = {
    DPUSETS.kind: (COND_DPUSETS_RECONCILED, COND_DPUSETS_READY),
    DPUSERVICES.kind: (COND_SERVICES_RECONCILED, COND_SERVICES_READY),
    DPUSERVICECHAINS.kind: (COND_CHAINS_RECONCILED, COND_CHAINS_READY),
    DPUSERVICEINTERFACES.kind: (COND_INTERFACES_RECONCILED, COND_INTERFACES_READY),
}

# DPF's internal/conditions reasons.
REASON_SUCCESS: Final = "Success"
REASON_PENDING: Final = "Pending"
REASON_ERROR: Final = "Error"
REASON_FAILURE: Final = "Failure"
REASON_AWAITING_DELETION: Final = "AwaitingDeletion"


def owner_value(dd: ObjKey) -> str:
    return f"{dd.namespace}_{dd.name}"


def service_id(dd: ObjKey, service: str) -> str:
    return f"dpudeployment_{dd.name}_{service}"


def dpuset_name(dd: ObjKey, suffix: str) -> str:
    return f"{dd.name}-{suffix}"


def dpuservice_name(dd: ObjKey, service: str) -> str:
    return f"{dd.name}-{service}"


def interface_name(dd: ObjKey, service: str, interface: str) -> str:
    # Interface names may hold "_", object names may not.
    return f"{dd.name}-{service}-{interface.replace('_', '-')}"


def chain_name(dd: ObjKey) -> str:
    return dd.name


def service_version_label(service: str) -> str:
    return f"svc.dpu.nvidia.com/dpuservice-{service}-version"


def digest(*parts: Any) -> str:
    """A short stable digest of JSON values: the version a label carries (10 hex digits, as DPF's)."""
    data = json.dumps(parts, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(data).hexdigest()[:10]
