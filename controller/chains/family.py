"""What differs between the two fan-outs (interfaces and chains): kinds, resources, finalizers, conditions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from controller.kube.resources import ResourceType

SVC_GROUP: Final = "svc.dpu.nvidia.com"

DPUSERVICEINTERFACES = ResourceType(
    SVC_GROUP, "v1alpha1", "dpuserviceinterfaces", "DPUServiceInterface", namespaced=True
)
DPUSERVICECHAINS = ResourceType(SVC_GROUP, "v1alpha1", "dpuservicechains", "DPUServiceChain", namespaced=True)
SERVICEINTERFACESETS = ResourceType(
    SVC_GROUP, "v1alpha1", "serviceinterfacesets", "ServiceInterfaceSet", namespaced=True
)
SERVICECHAINSETS = ResourceType(SVC_GROUP, "v1alpha1", "servicechainsets", "ServiceChainSet", namespaced=True)


@dataclass(frozen=True)
class Family:
    resource: ResourceType  # the host-cluster kind (DPUServiceInterface)
    child_kind: str  # what DPF creates per DPU Node, and the intents' kind (ServiceInterface)
    finalizer: str
    cond_reconciled: str  # DPF's ConditionServiceInterfaceSetReconciled
    cond_ready: str  # DPF's ConditionServiceInterfaceSetReady
    set_resource: ResourceType  # the set in each DPU cluster (ServiceInterfaceSet)
    set_finalizer: str  # DPF's ServiceInterfaceSetFinalizer: held until the set's children are released
    set_cond_reconciled: str  # DPF's ConditionServiceInterfacesReconciled (on the set)
    set_cond_ready: str  # DPF's ConditionServiceInterfacesReady (on the set)

    @property
    def kind(self) -> str:
        return self.resource.kind

    @property
    def set_kind(self) -> str:
        return self.set_resource.kind


INTERFACES = Family(
    resource=DPUSERVICEINTERFACES,
    child_kind="ServiceInterface",
    finalizer="svc.dpu.nvidia.com/dpuserviceinterface",
    cond_reconciled="ServiceInterfaceSetReconciled",
    cond_ready="ServiceInterfaceSetReady",
    set_resource=SERVICEINTERFACESETS,
    set_finalizer="dpu.nvidia.com/serviceinterfaceset",
    set_cond_reconciled="ServiceInterfacesReconciled",
    set_cond_ready="ServiceInterfacesReady",
)
CHAINS = Family(
    resource=DPUSERVICECHAINS,
    child_kind="ServiceChain",
    finalizer="svc.dpu.nvidia.com/dpuservicechain",
    cond_reconciled="ServiceChainSetReconciled",
    cond_ready="ServiceChainSetReady",
    set_resource=SERVICECHAINSETS,
    set_finalizer="dpu.nvidia.com/servicechainset",
    set_cond_reconciled="ServiceChainsReconciled",
    set_cond_ready="ServiceChainsReady",
)
FAMILIES: Final = (INTERFACES, CHAINS)
