"""svc.dpu.nvidia.com/v1alpha1 services: DPUService, DPUServiceTemplate, DPUServiceConfiguration,
DPUDeployment and DPUServiceCredentialRequest (DPF v24.10)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Literal

from pydantic import Field

from dpfd.api.base import DPFModel, FreeForm, IntOrString, ResourceList, RuleProblem, StatusModel
from dpfd.api.chains import API_VERSION, IPAM, ServiceIfc, SvcApiVersion, SvcStatus
from dpfd.api.conditions import Condition
from dpfd.api.meta import DPFObject, LabelSelector, NodeSelector, ObjectMeta, TemplateMeta
from dpfd.api.names import label_problems
from dpfd.api.quantity import DURATION_PATTERN, parse_duration
from dpfd.api.text import show

# ---------------------------------------------------------------- Helm chart and daemon set values


class ApplicationSource(DPFModel):
    repoURL: str = Field(pattern=r"^(oci://|https://).+$", description="An oci:// registry or https:// repository.")
    path: str | None = Field(default=None, description="Location of the chart inside a git repository.")
    version: str = Field(min_length=1, description="The chart version (Argo targetRevision).")
    chart: str | None = None
    releaseName: str | None = None


class HelmChart(DPFModel):
    source: ApplicationSource
    values: FreeForm | None = Field(default=None, description="Helm values; take precedence over chart defaults.")


def _daemonset_budget_problem(value: int | str) -> str | None:
    """apps/v1 rules: a non-negative integer or a percentage from 0% to 100%."""
    if isinstance(value, int):
        return f"Invalid value: {value}: must be greater than or equal to 0" if value < 0 else None
    digits = value.removesuffix("%")
    if not value.endswith("%") or not digits.isdigit() or int(digits) > 100:
        return f'Invalid value: {show(value)}: must be an integer or a percentage from 0% to 100%, like "25%"'
    return None


class RollingUpdateDaemonSet(DPFModel):
    maxUnavailable: IntOrString | None = None
    maxSurge: IntOrString | None = None

    def rules(self) -> Iterator[RuleProblem]:
        for name in ("maxUnavailable", "maxSurge"):
            value = getattr(self, name)
            problem = None if value is None else _daemonset_budget_problem(value)
            if problem is not None:
                yield name, problem
        if self.maxUnavailable in (0, "0%") and self.maxSurge in (None, 0, "0%"):
            yield "maxUnavailable", "Invalid value: may not be 0 when maxSurge is 0"


class DaemonSetUpdateStrategy(DPFModel):
    type: Literal["RollingUpdate", "OnDelete"] | None = None
    rollingUpdate: RollingUpdateDaemonSet | None = None


def _meta_problems(labels: dict[str, str] | None) -> Iterator[RuleProblem]:
    yield from (("labels" + p, r) for p, r in label_problems(labels))


class ServiceDaemonSetValues(DPFModel):
    """Passed to the chart as `serviceDaemonSet.*` values."""

    nodeSelector: NodeSelector | None = None
    updateStrategy: DaemonSetUpdateStrategy | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None

    def rules(self) -> Iterator[RuleProblem]:
        yield from _meta_problems(self.labels)


# ---------------------------------------------------------------- DPUService


class DPUServiceSpec(DPFModel):
    helmChart: HelmChart
    serviceID: str | None = Field(default=None, description="Identifies the service's pods and its interfaces.")
    serviceDaemonSet: ServiceDaemonSetValues | None = None
    deployInCluster: bool | None = Field(
        default=None, description="Deploy to the host cluster instead of DPU clusters."
    )
    interfaces: list[str] | None = Field(
        default=None,
        min_length=1,
        max_length=50,
        description="DPUServiceInterface names used by the service.",
    )
    paused: bool | None = None

    def rules(self) -> Iterator[RuleProblem]:
        if self.interfaces and not self.serviceID:
            yield "serviceID", "Required value: serviceID must be provided when interfaces are provided"


class DPUService(DPFObject):
    """A Helm chart deployed to every DPU cluster (one Argo CD Application each)."""

    apiVersion: SvcApiVersion = API_VERSION
    kind: Literal["DPUService"] = "DPUService"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: DPUServiceSpec
    status: SvcStatus | None = None


# ---------------------------------------------------------------- DPUServiceTemplate


class DPUServiceTemplateSpec(DPFModel):
    deploymentServiceName: str = Field(min_length=1, description="The service name a DPUDeployment uses for it.")
    helmChart: HelmChart
    resourceRequirements: ResourceList | None = Field(
        default=None, description="What the service consumes on each DPU; checked against the flavor."
    )


class DPUServiceTemplate(DPFObject):
    apiVersion: SvcApiVersion = API_VERSION
    kind: Literal["DPUServiceTemplate"] = "DPUServiceTemplate"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: DPUServiceTemplateSpec
    status: SvcStatus | None = None


# ---------------------------------------------------------------- DPUServiceConfiguration


class ServiceConfigurationHelmChart(DPFModel):
    values: FreeForm | None = None


class ServiceConfigurationDaemonSet(DPFModel):
    updateStrategy: DaemonSetUpdateStrategy | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None

    def rules(self) -> Iterator[RuleProblem]:
        yield from _meta_problems(self.labels)


class ServiceConfiguration(DPFModel):
    helmChart: ServiceConfigurationHelmChart | None = None
    serviceDaemonSet: ServiceConfigurationDaemonSet | None = None
    deployInCluster: bool | None = None


class ServiceInterfaceTemplate(DPFModel):
    name: str = Field(min_length=1, max_length=15, description="Interface name inside the service's pods.")
    network: str = Field(min_length=1, description="NetworkAttachmentDefinition to attach it with.")


class DPUServiceConfigurationSpec(DPFModel):
    deploymentServiceName: str = Field(min_length=1)
    serviceConfiguration: ServiceConfiguration | None = None
    interfaces: list[ServiceInterfaceTemplate] | None = None

    def rules(self) -> Iterator[RuleProblem]:
        seen: set[str] = set()
        for i, iface in enumerate(self.interfaces or []):
            if iface.name in seen:
                yield f"interfaces[{i}].name", f"Duplicate value: {show(iface.name)}"
            seen.add(iface.name)


class DPUServiceConfiguration(DPFObject):
    apiVersion: SvcApiVersion = API_VERSION
    kind: Literal["DPUServiceConfiguration"] = "DPUServiceConfiguration"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: DPUServiceConfigurationSpec
    status: SvcStatus | None = None


# ---------------------------------------------------------------- DPUDeployment


class DPUDeploymentDPUSet(DPFModel):
    nameSuffix: str = Field(min_length=1, description="The DPUSet is named <dpudeployment>-<nameSuffix>.")
    nodeSelector: LabelSelector | None = None
    dpuSelector: dict[str, str] | None = None
    dpuAnnotations: dict[str, str] | None = None


class DPUs(DPFModel):
    bfb: str = Field(min_length=1)
    flavor: str = Field(min_length=1)
    dpuSets: list[DPUDeploymentDPUSet] | None = None

    def rules(self) -> Iterator[RuleProblem]:
        seen: set[str] = set()
        for i, dpu_set in enumerate(self.dpuSets or []):
            if dpu_set.nameSuffix in seen:
                yield f"dpuSets[{i}].nameSuffix", f"Duplicate value: {show(dpu_set.nameSuffix)}"
            seen.add(dpu_set.nameSuffix)


class DPUDeploymentServiceConfiguration(DPFModel):
    serviceTemplate: str = Field(min_length=1)
    serviceConfiguration: str = Field(min_length=1)


class DPUDeploymentService(DPFModel):
    name: str = Field(min_length=1, description="A key of spec.services.")
    interface: str = Field(min_length=1, max_length=15, description="An interface of that service's configuration.")
    ipam: IPAM | None = None


class DPUDeploymentPort(DPFModel):
    service: DPUDeploymentService | None = None
    serviceInterface: ServiceIfc | None = None

    def rules(self) -> Iterator[RuleProblem]:
        if (self.service is None) == (self.serviceInterface is None):
            yield "", "either service or serviceInterface must be specified"


class DPUDeploymentSwitch(DPFModel):
    ports: list[DPUDeploymentPort] = Field(min_length=1, max_length=50)


class DPUDeploymentSpec(DPFModel):
    dpus: DPUs
    services: dict[str, DPUDeploymentServiceConfiguration] = Field(min_length=1, max_length=50)
    serviceChains: list[DPUDeploymentSwitch] | None = None

    def rules(self) -> Iterator[RuleProblem]:
        for i, switch in enumerate(self.serviceChains or []):
            for j, port in enumerate(switch.ports):
                if port.service is not None and port.service.name not in self.services:
                    yield (
                        f"serviceChains[{i}].ports[{j}].service.name",
                        (f"Not found: {show(port.service.name)}: must be a key of spec.services"),
                    )


class DPUDeployment(DPFObject):
    """DPUSets, DPUServices, their interfaces and one chain, deployed and upgraded together."""

    apiVersion: SvcApiVersion = API_VERSION
    kind: Literal["DPUDeployment"] = "DPUDeployment"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: DPUDeploymentSpec
    status: SvcStatus | None = None


# ---------------------------------------------------------------- DPUServiceCredentialRequest

MIN_CREDENTIAL_DURATION = Decimal(600)


class NamespacedName(DPFModel):
    name: str = Field(min_length=1)
    namespace: str | None = None


class DPUServiceCredentialRequestSpec(DPFModel):
    serviceAccount: NamespacedName
    duration: str | None = Field(
        default=None, pattern=DURATION_PATTERN, description='Token lifetime, at least 10 minutes, e.g. "1h".'
    )
    targetCluster: NamespacedName | None = Field(default=None, description="A DPUCluster; absent means the host.")
    type: Literal["kubeconfig", "tokenFile"]
    secret: NamespacedName
    metadata: TemplateMeta | None = Field(default=None, description="Labels and annotations of the Secret.")

    def rules(self) -> Iterator[RuleProblem]:
        if self.duration is not None and parse_duration(self.duration) < MIN_CREDENTIAL_DURATION:
            yield "duration", f"Invalid value: {show(self.duration)}: must be at least 10m"


class DPUServiceCredentialRequestStatus(StatusModel):
    conditions: list[Condition] | None = None
    observedGeneration: int | None = None
    serviceAccount: str | None = None
    targetCluster: str | None = None
    expirationTimestamp: str | None = None
    issuedAt: str | None = None
    secret: str | None = None


class DPUServiceCredentialRequest(DPFObject):
    """A ServiceAccount token, delivered as a kubeconfig or token-file Secret and rotated."""

    apiVersion: SvcApiVersion = API_VERSION
    kind: Literal["DPUServiceCredentialRequest"] = "DPUServiceCredentialRequest"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: DPUServiceCredentialRequestSpec
    status: DPUServiceCredentialRequestStatus | None = None
