"""svc.dpu.nvidia.com/v1alpha1 service function chaining: interfaces, chains and IPAM (DPF v24.10).

Host-side kinds (DPUServiceInterface, DPUServiceChain, DPUServiceIPAM) fan out to one set per
DPUCluster (ServiceInterfaceSet, ServiceChainSet), which fans out to one object per DPU node
(ServiceInterface, ServiceChain).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Final, Literal

from pydantic import Field

from dpfd.api.base import DPFModel, RuleProblem, StatusModel
from dpfd.api.conditions import Condition
from dpfd.api.meta import DPFObject, LabelSelector, NodeSelector, ObjectMeta, TemplateMeta
from dpfd.api.names import label_problems
from dpfd.api.text import show

GROUP: Final = "svc.dpu.nvidia.com"
API_VERSION: Final = "svc.dpu.nvidia.com/v1alpha1"

SvcApiVersion = Literal["svc.dpu.nvidia.com/v1alpha1"]


class SvcStatus(StatusModel):
    """The status every svc kind carries: a Ready summary condition plus detail conditions."""

    conditions: list[Condition] | None = None
    observedGeneration: int | None = None


class SetStatus(SvcStatus):
    numberApplied: int | None = None
    numberReady: int | None = None


# ---------------------------------------------------------------- chain ports


class IPAM(DPFModel):
    """Selects the DPUServiceIPAM pool a chain port takes its address from."""

    matchLabels: dict[str, str] = Field(min_length=1, max_length=50)
    defaultGateway: bool | None = None
    setDefaultRoute: bool | None = None

    def rules(self) -> Iterator[RuleProblem]:
        yield from (("matchLabels" + p, r) for p, r in label_problems(self.matchLabels))


class ServiceIfc(DPFModel):
    """Selects the ServiceInterface a chain port is, by its labels."""

    matchLabels: dict[str, str] = Field(min_length=1, max_length=50)
    ipam: IPAM | None = None

    def rules(self) -> Iterator[RuleProblem]:
        yield from (("matchLabels" + p, r) for p, r in label_problems(self.matchLabels))


# ---------------------------------------------------------------- ServiceInterface

InterfaceType = Literal["vlan", "physical", "pf", "vf", "ovn", "service"]


class Physical(DPFModel):
    interfaceName: str = Field(min_length=1)


class VLAN(DPFModel):
    vlanID: int = Field(ge=1, le=4094)
    parentInterfaceRef: str = Field(min_length=1)


class VF(DPFModel):
    vfID: int = Field(ge=0)
    pfID: int = Field(ge=0)
    parentInterfaceRef: str | None = None


class PF(DPFModel):
    pfID: int = Field(ge=0)


class ServiceDef(DPFModel):
    serviceID: str = Field(min_length=1)
    network: str = Field(min_length=1, description='NetworkAttachmentDefinition as "namespace/name" or "name".')
    interfaceName: str = Field(min_length=1, max_length=15)


class ServiceInterfaceSpec(DPFModel):
    node: str | None = Field(default=None, description="The DPU node this interface exists on.")
    interfaceType: InterfaceType
    physical: Physical | None = None
    vlan: VLAN | None = None
    vf: VF | None = None
    pf: PF | None = None
    service: ServiceDef | None = None

    def rules(self) -> Iterator[RuleProblem]:
        # DPF's CEL rule: the block named by interfaceType must be present (ovn has none).
        t = self.interfaceType
        if t != "ovn" and getattr(self, t) is None:
            yield t, f"Required value: for interfaceType={t}, {t} must be set"


class ServiceInterfaceSpecTemplate(DPFModel):
    metadata: TemplateMeta | None = None
    spec: ServiceInterfaceSpec


class ServiceInterfaceSetSpec(DPFModel):
    nodeSelector: LabelSelector | None = Field(default=None, description="DPU nodes that get a ServiceInterface.")
    template: ServiceInterfaceSpecTemplate


class ServiceInterfaceSetSpecTemplate(DPFModel):
    metadata: TemplateMeta | None = None
    spec: ServiceInterfaceSetSpec


class DPUServiceInterfaceSpec(DPFModel):
    clusterSelector: LabelSelector | None = Field(default=None, description="DPUClusters that get the set.")
    template: ServiceInterfaceSetSpecTemplate


class ServiceInterface(DPFObject):
    """An interface on one DPU node (on the DPU cluster)."""

    apiVersion: SvcApiVersion = API_VERSION
    kind: Literal["ServiceInterface"] = "ServiceInterface"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: ServiceInterfaceSpec
    status: SvcStatus | None = None


class ServiceInterfaceSet(DPFObject):
    """ServiceInterfaces for the selected DPU nodes of one DPU cluster."""

    apiVersion: SvcApiVersion = API_VERSION
    kind: Literal["ServiceInterfaceSet"] = "ServiceInterfaceSet"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: ServiceInterfaceSetSpec
    status: SetStatus | None = None


class DPUServiceInterface(DPFObject):
    """A ServiceInterfaceSet for every selected DPUCluster."""

    apiVersion: SvcApiVersion = API_VERSION
    kind: Literal["DPUServiceInterface"] = "DPUServiceInterface"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: DPUServiceInterfaceSpec
    status: SvcStatus | None = None


# ---------------------------------------------------------------- ServiceChain


class Port(DPFModel):
    serviceInterface: ServiceIfc


class Switch(DPFModel):
    """Ports joined by a MAC-learning switch on br-sfc."""

    ports: list[Port] = Field(min_length=1, max_length=50)


class ServiceChainSpec(DPFModel):
    node: str | None = Field(default=None, description="The DPU node this chain is programmed on.")
    switches: list[Switch] = Field(min_length=1, max_length=50)


class ServiceChainSpecTemplate(DPFModel):
    metadata: TemplateMeta | None = None
    spec: ServiceChainSpec


class ServiceChainSetSpec(DPFModel):
    nodeSelector: LabelSelector | None = None
    template: ServiceChainSpecTemplate


class ServiceChainSetSpecTemplate(DPFModel):
    metadata: TemplateMeta | None = None
    spec: ServiceChainSetSpec


class DPUServiceChainSpec(DPFModel):
    clusterSelector: LabelSelector | None = None
    template: ServiceChainSetSpecTemplate


class ServiceChain(DPFObject):
    """Switches between service interfaces on one DPU node."""

    apiVersion: SvcApiVersion = API_VERSION
    kind: Literal["ServiceChain"] = "ServiceChain"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: ServiceChainSpec
    status: SvcStatus | None = None


class ServiceChainSet(DPFObject):
    apiVersion: SvcApiVersion = API_VERSION
    kind: Literal["ServiceChainSet"] = "ServiceChainSet"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: ServiceChainSetSpec
    status: SetStatus | None = None


class DPUServiceChain(DPFObject):
    apiVersion: SvcApiVersion = API_VERSION
    kind: Literal["DPUServiceChain"] = "DPUServiceChain"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: DPUServiceChainSpec
    status: SvcStatus | None = None


# ---------------------------------------------------------------- DPUServiceIPAM


def ipv4_network(value: str) -> ipaddress.IPv4Network | None:
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError:
        return None
    return net if isinstance(net, ipaddress.IPv4Network) else None


def ipv4_address(value: str) -> ipaddress.IPv4Address | None:
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        return None
    return addr if isinstance(addr, ipaddress.IPv4Address) else None


class Route(DPFModel):
    dst: str = Field(description="Destination in CIDR notation.")


def _bad(value: object, why: str) -> str:
    return f"Invalid value: {show(value)}: {why}"


CIDR_HINT = 'must be an IPv4 network in CIDR notation like "10.0.0.0/16"'


def _route_problems(routes: list[Route] | None, default_gateway: bool | None) -> Iterator[RuleProblem]:
    for i, route in enumerate(routes or []):
        net = ipv4_network(route.dst)
        if net is None:
            yield f"routes[{i}].dst", _bad(route.dst, CIDR_HINT)
        elif default_gateway and net.prefixlen == 0:
            yield (
                f"routes[{i}].dst",
                _bad(route.dst, "must not be the default route when defaultGateway is true"),
            )


class IPV4Network(DPFModel):
    """A network split into one subnet per DPU node, each with its own gateway (nv-ipam CIDRPool)."""

    network: str = Field(description='The network to split, e.g. "10.0.0.0/16".')
    gatewayIndex: int | None = Field(default=None, ge=0, description="Index of the gateway in a node's subnet.")
    prefixSize: int = Field(ge=1, le=32, description="Prefix length of each node's subnet.")
    exclusions: list[str] | None = None
    allocations: dict[str, str] | None = Field(default=None, description="Fixed node -> subnet assignments.")
    defaultGateway: bool | None = None
    routes: list[Route] | None = None

    def rules(self) -> Iterator[RuleProblem]:
        net = ipv4_network(self.network)
        if net is None:
            yield "network", _bad(self.network, CIDR_HINT)
            return
        if self.prefixSize <= net.prefixlen:
            yield "prefixSize", _bad(self.prefixSize, f"must be longer than the network's /{net.prefixlen}")
            return
        size = 2 ** (32 - self.prefixSize)
        if self.gatewayIndex is not None and self.gatewayIndex >= size:
            yield (
                "gatewayIndex",
                _bad(self.gatewayIndex, f"must be less than {size}, the size of a /{self.prefixSize}"),
            )
        if self.defaultGateway and self.gatewayIndex is None:
            yield "gatewayIndex", "Required value: defaultGateway needs a gatewayIndex"
        for i, excluded in enumerate(self.exclusions or []):
            addr = ipv4_address(excluded)
            if addr is None or addr not in net:
                yield f"exclusions[{i}]", _bad(excluded, f"must be an IPv4 address within {net}")
        seen: dict[ipaddress.IPv4Network, str] = {}
        for node, subnet in (self.allocations or {}).items():
            sub = ipv4_network(subnet)
            if sub is None or sub.prefixlen != self.prefixSize or not sub.subnet_of(net):
                yield f"allocations[{node}]", _bad(subnet, f"must be a /{self.prefixSize} subnet of {net}")
            elif sub in seen:
                yield (
                    f"allocations[{node}]",
                    f"Duplicate value: {show(subnet)}: already allocated to {seen[sub]}",
                )
            else:
                seen[sub] = node
        yield from _route_problems(self.routes, self.defaultGateway)


class IPV4Subnet(DPFModel):
    """A subnet split into one block of addresses per DPU node, sharing one gateway (nv-ipam IPPool)."""

    subnet: str
    gateway: str
    perNodeIPCount: int = Field(ge=2, description="Addresses per node block.")
    defaultGateway: bool | None = None
    routes: list[Route] | None = None

    def rules(self) -> Iterator[RuleProblem]:
        net = ipv4_network(self.subnet)
        if net is None:
            yield "subnet", _bad(self.subnet, CIDR_HINT)
            return
        gw = ipv4_address(self.gateway)
        if gw is None or gw not in net:
            yield "gateway", _bad(self.gateway, f"must be an IPv4 address within {net}")
        elif net.prefixlen < 31 and gw in (net.network_address, net.broadcast_address):
            yield "gateway", _bad(self.gateway, "must not be the network or broadcast address")
        if self.perNodeIPCount > net.num_addresses:
            yield (
                "perNodeIPCount",
                _bad(self.perNodeIPCount, f"must not exceed the {net.num_addresses} addresses of {net}"),
            )
        yield from _route_problems(self.routes, self.defaultGateway)


class DPUServiceIPAMSpec(DPFModel):
    metadata: TemplateMeta | None = Field(default=None, description="Labels copied to the pool; chains select by them.")
    ipv4Network: IPV4Network | None = None
    ipv4Subnet: IPV4Subnet | None = None
    clusterSelector: LabelSelector | None = None
    nodeSelector: NodeSelector | None = None

    def rules(self) -> Iterator[RuleProblem]:
        if (self.ipv4Network is None) == (self.ipv4Subnet is None):
            yield "", "must set exactly one of ipv4Network, ipv4Subnet"


class DPUServiceIPAM(DPFObject):
    """An IP pool for chain ports, created in every selected DPUCluster."""

    apiVersion: SvcApiVersion = API_VERSION
    kind: Literal["DPUServiceIPAM"] = "DPUServiceIPAM"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: DPUServiceIPAMSpec
    status: SvcStatus | None = None
