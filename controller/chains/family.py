"""What differs between the two fan-outs (interfaces and chains): kinds, resource, finalizer, conditions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from controller.kube.resources import ResourceType

SVC_GROUP: Final = "svc.dpu.nvidia.com"

DPUSERVICEINTERFACES = ResourceType(
    SVC_GROUP, "v1alpha1", "dpuserviceinterfaces", "DPUServiceInterface", namespaced=True
)
DPUSERVICECHAINS = ResourceType(SVC_GROUP, "v1alpha1", "dpuservicechains", "DPUServiceChain", namespaced=True)


@dataclass(frozen=True)
class Family:
    resource: ResourceType  # the host-cluster kind (DPUServiceInterface)
    set_kind: str  # what DPF creates per DPU cluster (ServiceInterfaceSet)
    child_kind: str  # what DPF creates per DPU Node, and the intents' kind (ServiceInterface)
    finalizer: str
    cond_reconciled: str  # DPF's ConditionServiceInterfaceSetReconciled
    cond_ready: str  # DPF's ConditionServiceInterfaceSetReady

    @property
    def kind(self) -> str:
        return self.resource.kind


INTERFACES = Family(
    resource=DPUSERVICEINTERFACES,
    set_kind="ServiceInterfaceSet",
    child_kind="ServiceInterface",
    finalizer="svc.dpu.nvidia.com/dpuserviceinterface",
    cond_reconciled="ServiceInterfaceSetReconciled",
    cond_ready="ServiceInterfaceSetReady",
)
CHAINS = Family(
    resource=DPUSERVICECHAINS,
    set_kind="ServiceChainSet",
    child_kind="ServiceChain",
    finalizer="svc.dpu.nvidia.com/dpuservicechain",
    cond_reconciled="ServiceChainSetReconciled",
    cond_ready="ServiceChainSetReady",
)
FAMILIES: Final = (INTERFACES, CHAINS)
