"""operator.dpu.nvidia.com/v1alpha1: DPFOperatorConfig (DPF v24.10), the one per-installation config."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final, Literal

from pydantic import Field

from dpfd.api.base import DPFModel, RuleProblem, StatusModel
from dpfd.api.conditions import Condition
from dpfd.api.meta import DPFObject, ObjectMeta
from dpfd.api.names import dns1123_subdomain_error
from dpfd.api.text import show

GROUP: Final = "operator.dpu.nvidia.com"
API_VERSION: Final = "operator.dpu.nvidia.com/v1alpha1"

MAX_MTU = 9216


class Overrides(DPFModel):
    paused: bool | None = Field(default=None, description="Stop reconciling the operator config.")


class Networking(DPFModel):
    controlPlaneMTU: int = Field(default=1500, ge=1280, le=MAX_MTU, description="MTU of the DPU control plane.")
    highSpeedMTU: int = Field(default=1500, ge=1280, le=MAX_MTU, description="MTU of the high-speed ports and VFs.")


class ComponentConfig(DPFModel):
    disable: bool | None = None
    image: str | None = Field(default=None, description="Overrides the component's container image.")


class HelmComponentConfig(ComponentConfig):
    helmChart: str | None = Field(default=None, description="Overrides the component's Helm chart.")


class ProvisioningControllerConfig(ComponentConfig):
    bfbPVCName: str = Field(min_length=1, description="The ReadWriteMany PVC where BFBs are stored.")
    dmsTimeout: int | None = Field(default=None, ge=1, description="Seconds a DMS call may take.")


class DPUDetectorCollectors(DPFModel):
    psID: bool | None = Field(default=None, description="Also label the DPU's PSID (needs flint).")


class DPUDetectorConfig(HelmComponentConfig):
    collectors: DPUDetectorCollectors | None = None


class DPFOperatorConfigSpec(DPFModel):
    overrides: Overrides | None = None
    networking: Networking = Field(default_factory=Networking)
    imagePullSecrets: list[str] | None = Field(
        default=None,
        description="Secrets in the operator namespace used to pull system and DPUService images.",
    )
    provisioningController: ProvisioningControllerConfig
    dpuServiceController: ComponentConfig | None = None
    kamajiClusterManager: ComponentConfig | None = None
    staticClusterManager: ComponentConfig | None = None
    serviceSetController: HelmComponentConfig | None = None
    flannel: HelmComponentConfig | None = None
    multus: HelmComponentConfig | None = None
    sriovDevicePlugin: HelmComponentConfig | None = None
    nvipam: HelmComponentConfig | None = None
    ovsCNI: HelmComponentConfig | None = None
    sfcController: HelmComponentConfig | None = None
    ovsHelper: HelmComponentConfig | None = None
    dpuDetector: DPUDetectorConfig | None = None

    def rules(self) -> Iterator[RuleProblem]:
        for i, name in enumerate(self.imagePullSecrets or []):
            err = dns1123_subdomain_error(name)
            if err is not None:
                yield f"imagePullSecrets[{i}]", f"Invalid value: {show(name)}: {err}"


class DPFOperatorConfigStatus(StatusModel):
    conditions: list[Condition] | None = None
    observedGeneration: int | None = None


class DPFOperatorConfig(DPFObject):
    """Which DPF components run, with which images, MTUs and pull secrets."""

    apiVersion: Literal["operator.dpu.nvidia.com/v1alpha1"] = API_VERSION
    kind: Literal["DPFOperatorConfig"] = "DPFOperatorConfig"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: DPFOperatorConfigSpec
    status: DPFOperatorConfigStatus | None = None
