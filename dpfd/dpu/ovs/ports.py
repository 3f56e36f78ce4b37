"""DPF's port rules: which OVS ports a ServiceInterface is (serviceinterface_controller.go), as plain data."""

from __future__ import annotations

from dataclasses import dataclass, field

from dpfd.api.chains import ServiceInterfaceSpec

DPF_ID = "dpf-id"  # Interface external_ids key: "<ns>/<name>" for ServiceInterface ports, 3 parts for CNI ports
DPF_TYPE = "dpf-type"  # Port external_ids key: "physical" for uplinks
OVN_PATCH_SFC = "puplinkbrsfc"  # on br-sfc, peer of ...
OVN_PATCH_OVN = "puplinkbrovn"  # ... on br-ovn


class PortError(Exception):
    """A ServiceInterface cannot be made into ports; the message says why (it goes into the report)."""


@dataclass(frozen=True)
class PortSettings:
    """Where and how ServiceInterface ports are made. Defaults are DPF's on a real DPU."""

    bridge: str = "br-sfc"
    ovn_bridge: str = "br-ovn"
    # Interface type of physical, pf and vf ports. DPF uses dpdk (representors through DOCA/DPDK); where dpdk
    # cannot exist (a userspace datapath without DPDK, as in tests and dpf-sim) use e.g. "internal" or "system".
    port_type: str = "dpdk"


@dataclass(frozen=True)
class PortSpec:
    """One OVS port (with its single interface) a ServiceInterface owns."""

    bridge: str
    name: str
    type: str
    options: dict[str, str] = field(default_factory=dict)
    port_external_ids: dict[str, str] = field(default_factory=dict)
    # An existing port of this name is taken over as it is (type and options kept): uplinks made by the flavor script.
    adopt: bool = False


def owner_id(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


def is_interface_owner(dpf_id: str) -> bool:
    """A ServiceInterface's dpf-id (namespace/name), not a CNI port's (podns/pod/ifname)."""
    parts = dpf_id.split("/")
    return len(parts) == 2 and all(parts)


def desired_ports(spec: ServiceInterfaceSpec, settings: PortSettings) -> list[PortSpec]:
    """The ports DPF makes for `spec`; [] for service interfaces (their port comes at CNI ADD)."""
    t = spec.interfaceType
    if t == "physical":
        assert spec.physical is not None
        return [PortSpec(settings.bridge, spec.physical.interfaceName, settings.port_type,
                         port_external_ids={DPF_TYPE: "physical"}, adopt=True)]  # fmt: skip
    if t == "pf":
        assert spec.pf is not None
        return [PortSpec(settings.bridge, f"pf{spec.pf.pfID}hpf", settings.port_type)]
    if t == "vf":
        assert spec.vf is not None
        return [PortSpec(settings.bridge, f"pf{spec.vf.pfID}vf{spec.vf.vfID}", settings.port_type)]
    if t == "ovn":
        return [
            PortSpec(settings.bridge, OVN_PATCH_SFC, "patch", {"peer": OVN_PATCH_OVN}),
            PortSpec(settings.ovn_bridge, OVN_PATCH_OVN, "patch", {"peer": OVN_PATCH_SFC}),
        ]
    if t == "service":
        return []
    raise PortError(f"interfaceType {t} is not implemented (as in DPF)")
