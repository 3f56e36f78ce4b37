"""provisioning.dpu.nvidia.com/v1alpha1: BFB, DPUFlavor, DPUSet, DPU, DPUCluster (DPF v24.10)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Annotated, Final, Literal

from pydantic import Field

from dpfd.api.base import DPFModel, IntOrString, ResourceList, RuleProblem, StatusModel
from dpfd.api.conditions import Condition
from dpfd.api.meta import DPFObject, LabelSelector, ObjectMeta, Taint
from dpfd.api.names import dns1123_subdomain_error, label_problems
from dpfd.api.quantity import parse_quantity
from dpfd.api.text import show

GROUP: Final = "provisioning.dpu.nvidia.com"
API_VERSION: Final = "provisioning.dpu.nvidia.com/v1alpha1"

# ---------------------------------------------------------------- BFB

BFBPhase = Literal["Initializing", "Downloading", "Ready", "Deleting", "Error"]
BFB_URL_PATTERN = r"^(http|https)://.+\.bfb$"
BFB_FILE_NAME_PATTERN = r"^[A-Za-z0-9_\-.]+\.bfb$"


class BFBSpec(DPFModel):
    """Where to download a BlueField bootstream from. Immutable."""

    url: str = Field(pattern=BFB_URL_PATTERN, description="The http(s) URL of the .bfb image to download.")
    fileName: str | None = Field(
        default=None,
        pattern=BFB_FILE_NAME_PATTERN,
        description="File name on the BFB volume; defaults to <namespace>-<name>.bfb.",
    )


class BFBStatus(StatusModel):
    phase: BFBPhase | None = None
    fileName: str | None = None
    observedGeneration: int | None = None
    conditions: list[Condition] | None = None


class BFB(DPFObject):
    """A BlueField bootstream (.bfb) image, downloaded once to shared storage."""

    apiVersion: Literal["provisioning.dpu.nvidia.com/v1alpha1"] = API_VERSION
    kind: Literal["BFB"] = "BFB"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: BFBSpec
    status: BFBStatus | None = None


# ---------------------------------------------------------------- DPUFlavor

NVCONFIG_PARAMETER_PATTERN = r"^[^=\s]+=[^\s]*$"


class DPUFlavorGrub(DPFModel):
    kernelParameters: list[str] | None = None


class DPUFlavorSysctl(DPFModel):
    parameters: list[str] | None = None


class NVConfig(DPFModel):
    """mlxconfig parameters for the DPU's NIC firmware."""

    device: str | None = Field(default=None, description='Only "*" (all devices) is supported.')
    parameters: list[Annotated[str, Field(pattern=NVCONFIG_PARAMETER_PATTERN)]] | None = None
    hostPowerCycleRequired: bool | None = None


class DPUFlavorOVS(DPFModel):
    rawConfigScript: str | None = None


class ConfigFile(DPFModel):
    """A file written on the DPU at first boot."""

    path: str = Field(min_length=1)
    operation: Literal["override", "append"] | None = None
    raw: str | None = None
    permissions: str | None = Field(default=None, pattern=r"^0?[0-7]{3}$", description='Octal mode, e.g. "0644".')

    def rules(self) -> Iterator[RuleProblem]:
        # Our own safety rule: the file lands on the DPU's root file system.
        if not self.path.startswith("/"):
            yield "path", f"Invalid value: {show(self.path)}: must be an absolute path"
        elif ".." in self.path.split("/"):
            yield "path", f"Invalid value: {show(self.path)}: must not contain '..' segments"


class ContainerdConfig(DPFModel):
    registryEndpoint: str | None = None


class DPUFlavorSpec(DPFModel):
    """What goes into a DPU's bf.cfg: kernel, sysctl, firmware, OVS and file settings. Immutable."""

    grub: DPUFlavorGrub | None = None
    sysctl: DPUFlavorSysctl | None = None
    nvconfig: list[NVConfig] | None = None
    ovs: DPUFlavorOVS | None = None
    bfcfgParameters: list[str] | None = None
    configFiles: list[ConfigFile] | None = None
    containerdConfig: ContainerdConfig | None = None
    dpuResources: ResourceList | None = None
    systemReservedResources: ResourceList | None = None

    def rules(self) -> Iterator[RuleProblem]:
        nvconfig = self.nvconfig or []
        if len(nvconfig) > 1:
            yield (
                "nvconfig",
                f"Too many: {len(nvconfig)}: must have at most 1 entry (it applies to all devices)",
            )
        for i, nv in enumerate(nvconfig):
            if nv.device is not None and nv.device.strip() != "*":
                yield f"nvconfig[{i}].device", f'Unsupported value: {show(nv.device)}: supported values: "*"'
        yield from self._reserved_rules()

    def _reserved_rules(self) -> Iterator[RuleProblem]:
        if self.systemReservedResources is None:
            return
        if self.dpuResources is None:
            yield "systemReservedResources", "Forbidden: may only be set together with dpuResources"
            return
        for name, reserved in self.systemReservedResources.items():
            if name not in self.dpuResources:
                yield f"systemReservedResources[{name}]", f"Forbidden: dpuResources has no {show(name)}"
            elif parse_quantity(reserved) > parse_quantity(self.dpuResources[name]):
                yield (
                    f"systemReservedResources[{name}]",
                    (
                        f"Invalid value: {show(reserved)}: must not exceed dpuResources[{name}] "
                        f"({show(self.dpuResources[name])})"
                    ),
                )


class DPUFlavor(DPFObject):
    """A named, immutable DPU configuration referenced by DPUSets and DPUs."""

    apiVersion: Literal["provisioning.dpu.nvidia.com/v1alpha1"] = API_VERSION
    kind: Literal["DPUFlavor"] = "DPUFlavor"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: DPUFlavorSpec = Field(default_factory=DPUFlavorSpec)


# ---------------------------------------------------------------- node effect (shared by DPUSet and DPU)


class Drain(DPFModel):
    automaticNodeReboot: bool = Field(default=True, description="Reboot the host once the node is drained.")


class NodeEffect(DPFModel):
    """What happens to the host Node while its DPU is provisioned: exactly one of these."""

    taint: Taint | None = None
    noEffect: bool | None = None
    customLabel: dict[str, str] | None = None
    drain: Drain | None = None

    def kinds(self) -> list[str]:
        chosen = [
            ("noEffect", bool(self.noEffect)),
            ("taint", self.taint is not None),
            ("customLabel", bool(self.customLabel)),
            ("drain", self.drain is not None),
        ]
        return [name for name, on in chosen if on]

    def rules(self) -> Iterator[RuleProblem]:
        kinds = self.kinds()
        if len(kinds) != 1:
            got = ", ".join(kinds) if kinds else "none"
            yield "", f"must set exactly one of noEffect, taint, customLabel, drain; got {got}"
        yield from (("customLabel" + p, r) for p, r in label_problems(self.customLabel))


def default_node_effect() -> NodeEffect:
    return NodeEffect(drain=Drain(automaticNodeReboot=True))


# ---------------------------------------------------------------- DPUSet

StrategyType = Literal["Recreate", "RollingUpdate"]


def max_unavailable_problem(value: int | str) -> str | None:
    """DPF's webhook rule: an integer > 0, or a percentage > 0% and <= 100%."""
    out_of_range = f"must be > 0 and <= 100%, got {show(value)}"
    if isinstance(value, int):
        return out_of_range if value <= 0 else None
    digits = value.removesuffix("%")
    if not digits.isdigit():
        return f'must be an integer or a percentage like "25%", got {show(value)}'
    if not 0 < int(digits) <= 100:
        return out_of_range
    if not value.endswith("%"):
        return f'must be an integer or a percentage like "25%", got {show(value)}'
    return None


class RollingUpdateDPU(DPFModel):
    maxUnavailable: IntOrString | None = Field(
        default=None,
        description='How many DPUs may be unavailable at once: an integer or a percentage like "25%".',
    )

    def rules(self) -> Iterator[RuleProblem]:
        if self.maxUnavailable is not None:
            problem = max_unavailable_problem(self.maxUnavailable)
            if problem is not None:
                yield "maxUnavailable", problem


class DPUSetStrategy(DPFModel):
    type: StrategyType = "Recreate"
    rollingUpdate: RollingUpdateDPU | None = None


class BFBReference(DPFModel):
    name: str = Field(min_length=1, description="Name of a BFB in the DPUSet's namespace.")


class ClusterSpec(DPFModel):
    nodeLabels: dict[str, str] | None = Field(default=None, description="Labels put on the DPU's Node.")

    def rules(self) -> Iterator[RuleProblem]:
        yield from (("nodeLabels" + p, r) for p, r in label_problems(self.nodeLabels))


class DPUTemplateSpec(DPFModel):
    bfb: BFBReference
    nodeEffect: NodeEffect = Field(default_factory=default_node_effect)
    cluster: ClusterSpec | None = None
    dpuFlavor: str = Field(min_length=1, description="Name of a DPUFlavor in the DPUSet's namespace.")
    automaticNodeReboot: bool = True


class DPUTemplate(DPFModel):
    annotations: dict[str, str] | None = None
    spec: DPUTemplateSpec


class DPUSetSpec(DPFModel):
    """Which hosts get a DPU object, and what the DPU objects look like."""

    strategy: DPUSetStrategy | None = None
    nodeSelector: LabelSelector | None = Field(default=None, description="Selects host Nodes by their labels.")
    dpuSelector: dict[str, str] | None = Field(
        default=None,
        description="Node labels feature.node.kubernetes.io/dpu-<N>-... pick DPU index N (default 0).",
    )
    dpuTemplate: DPUTemplate

    def rules(self) -> Iterator[RuleProblem]:
        yield from (("dpuSelector" + p, r) for p, r in label_problems(self.dpuSelector))


class DPUSetStatus(StatusModel):
    dpuStatistics: dict[str, int] | None = None


class DPUSet(DPFObject):
    """Creates a DPU object for every selected host's DPU and rolls out changes to them."""

    apiVersion: Literal["provisioning.dpu.nvidia.com/v1alpha1"] = API_VERSION
    kind: Literal["DPUSet"] = "DPUSet"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: DPUSetSpec
    status: DPUSetStatus | None = None


# ---------------------------------------------------------------- DPU

DPUPhase = Literal[
    "Initializing",
    "Node Effect",
    "Pending",
    "DMS Deployment",
    "OS Installing",
    "DPU Cluster Config",
    "Host Network Configuration",
    "Ready",
    "Error",
    "Deleting",
    "Rebooting",
]


class K8sCluster(DPFModel):
    """The DPUCluster the DPU joins; empty name lets the allocator choose one."""

    name: str | None = None
    namespace: str | None = None
    nodeLabels: dict[str, str] | None = None

    def rules(self) -> Iterator[RuleProblem]:
        yield from (("nodeLabels" + p, r) for p, r in label_problems(self.nodeLabels))


class DPUSpec(DPFModel):
    nodeName: str = Field(min_length=1, description="The host Node this DPU is attached to. Immutable.")
    bfb: str = Field(min_length=1, description="Name of the BFB to install.")
    pciAddress: str | None = Field(default=None, description='PCI address of the DPU on its host, e.g. "0000-03-00".')
    nodeEffect: NodeEffect = Field(default_factory=default_node_effect)
    cluster: K8sCluster | None = None
    dpuFlavor: str = Field(min_length=1)
    automaticNodeReboot: bool = True


class Firmware(StatusModel):
    bmc: str | None = None
    nic: str | None = None
    uefi: str | None = None


class DPUStatus(StatusModel):
    phase: DPUPhase | None = None
    conditions: list[Condition] | None = None
    observedGeneration: int | None = None
    bfbVersion: str | None = None
    pciDevice: str | None = None
    requiredReset: bool | None = None
    firmware: Firmware | None = None


class DPU(DPFObject):
    """One BlueField DPU on one host, provisioned through the DPU phases."""

    apiVersion: Literal["provisioning.dpu.nvidia.com/v1alpha1"] = API_VERSION
    kind: Literal["DPU"] = "DPU"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: DPUSpec
    status: DPUStatus | None = None


# ---------------------------------------------------------------- DPUCluster

DPUClusterPhase = Literal["Pending", "Creating", "Ready", "NotReady", "Failed"]


class KeepalivedSpec(DPFModel):
    vip: str = Field(description="The virtual IP of the DPU cluster's API server.")
    virtualRouterID: int = Field(ge=1, le=255)
    interface: str = Field(min_length=1)
    nodeSelector: dict[str, str] | None = None

    def rules(self) -> Iterator[RuleProblem]:
        try:
            ipaddress.ip_address(self.vip)
        except ValueError:
            yield "vip", f"Invalid value: {show(self.vip)}: must be an IP address"


class ClusterEndpointSpec(DPFModel):
    keepalived: KeepalivedSpec | None = None


class DPUClusterSpec(DPFModel):
    type: str = Field(
        pattern=r"^(static|kamaji|[^/]+/.+)$",
        description='"static" (user-provided), "kamaji" (DPF-managed) or "<vendor>/<type>".',
    )
    maxNodes: int = Field(default=1000, ge=1, le=1000)
    version: str = Field(min_length=1, description="Kubernetes version of the cluster's control plane.")
    kubeconfig: str | None = Field(
        default=None, description='Name of the Secret holding the admin kubeconfig (key "admin.conf").'
    )
    clusterEndpoint: ClusterEndpointSpec | None = None

    def rules(self) -> Iterator[RuleProblem]:
        if self.kubeconfig is not None:
            err = dns1123_subdomain_error(self.kubeconfig)
            if err is not None:
                yield "kubeconfig", f"Invalid value: {show(self.kubeconfig)}: {err}"
        elif self.type == "static":
            yield (
                "kubeconfig",
                "Required value: a static DPUCluster needs the Secret holding its admin kubeconfig",
            )


class DPUClusterStatus(StatusModel):
    phase: DPUClusterPhase | None = None
    conditions: list[Condition] | None = None


class DPUCluster(DPFObject):
    """A Kubernetes cluster whose Nodes are DPUs."""

    apiVersion: Literal["provisioning.dpu.nvidia.com/v1alpha1"] = API_VERSION
    kind: Literal["DPUCluster"] = "DPUCluster"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: DPUClusterSpec
    status: DPUClusterStatus | None = None
