"""What the installation's DPFOperatorConfig asks of this controller (pure): paused or not, which of our reconciler
families run, the MTUs the hosts apply.

DPF runs each component as its own Deployment or system DPUService; here they are reconciler families of one
controller, so a component switched off (`spec.<component>.disable: true`) stops the families that do its work:

=====================================  ==========================================================================
DPF component                          our families
=====================================  ==========================================================================
provisioningController                 provisioning (DPUSets, DPUs, intents), provisioning context (BFBs, node
                                       effects, DPUCluster health and joins, host discovery), DPU status
dpuServiceController                   dpuservices, dpudeployments, credentials, chains, ipam (DPF's
                                       dpuservice-controller-manager runs all of these kinds' controllers)
serviceSetController                   chains (our chains family also expands ServiceChainSets per DPU Node, the
                                       servicechainset-controller's work in the DPU cluster)
nvipam                                 ipam (the DPUServiceIPAM pools are nv-ipam's)
flannel, multus, sriovDevicePlugin     none: they are system DPUServices (system_services.py), deleted when off
kamajiClusterManager,                  none: DPUCluster types live in the provisioning context; dpfd does the
staticClusterManager, ovsCNI,          DPU-side CNI, flows, OVS and discovery work
sfcController, ovsHelper, dpuDetector
=====================================  ==========================================================================

Exactly one DPFOperatorConfig per installation: with none, or more than one, every family runs as before (the
families that need the operator namespace report the problem themselves) and nothing is taken from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from controller.kube.objects import Obj, namespace_of

PROVISIONING: Final = "provisioning"
DPUSERVICES: Final = "dpuservices"
DPUDEPLOYMENTS: Final = "dpudeployments"
CREDENTIALS: Final = "credentials"
CHAINS: Final = "chains"
IPAM: Final = "ipam"
FAMILIES: Final = frozenset({PROVISIONING, DPUSERVICES, DPUDEPLOYMENTS, CREDENTIALS, CHAINS, IPAM})

# A family runs only while none of the components it belongs to is disabled.
COMPONENTS_OF: Final[dict[str, tuple[str, ...]]] = {
    PROVISIONING: ("provisioningController",),
    DPUSERVICES: ("dpuServiceController",),
    DPUDEPLOYMENTS: ("dpuServiceController",),
    CREDENTIALS: ("dpuServiceController",),
    CHAINS: ("dpuServiceController", "serviceSetController"),
    IPAM: ("dpuServiceController", "nvipam"),
}
# Components with a `disable` switch that no family of ours carries out.
UNMAPPED: Final = (
    "kamajiClusterManager",
    "staticClusterManager",
    "flannel",
    "multus",
    "sriovDevicePlugin",
    "ovsCNI",
    "sfcController",
    "ovsHelper",
    "dpuDetector",
)
DEFAULT_MTU: Final = 1500  # DPF's CRD default for both MTUs


@dataclass(frozen=True)
class Plan:
    """The running shape of a leadership term's work. Equal plans: nothing to restart."""

    config: tuple[str, str] | None = None  # namespace and name of the one DPFOperatorConfig
    paused: bool = False
    families: frozenset[str] = FAMILIES
    high_speed_mtu: int | None = None  # None: no DPFOperatorConfig, the hosts keep their own default
    control_plane_mtu: int | None = None

    def runs(self, family: str) -> bool:
        return not self.paused and family in self.families

    @property
    def operator_namespace(self) -> str | None:
        return self.config[0] if self.config is not None else None


def spec_of(config: Obj) -> dict[str, Any]:
    spec = config.get("spec")
    return spec if isinstance(spec, dict) else {}


def is_paused(config: Obj) -> bool:
    """DPF's isPaused: spec.overrides.paused is true."""
    overrides = spec_of(config).get("overrides") or {}
    return isinstance(overrides, dict) and overrides.get("paused") is True


def disabled_components(config: Obj) -> list[str]:
    """The components whose `disable` is true, in the spec's order."""
    out: list[str] = []
    for name, value in spec_of(config).items():
        if isinstance(value, dict) and value.get("disable") is True:
            out.append(name)
    return out


def enabled_families(config: Obj) -> frozenset[str]:
    off = set(disabled_components(config))
    return frozenset(f for f, components in COMPONENTS_OF.items() if not off.intersection(components))


def _mtu(networking: dict[str, Any], key: str) -> int:
    value = networking.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else DEFAULT_MTU


def plan_of(configs: list[Obj]) -> Plan:
    """The plan from the DPFOperatorConfigs in the cache: only exactly one counts."""
    if len(configs) != 1:
        return Plan()
    config = configs[0]
    networking = spec_of(config).get("networking")
    networking = networking if isinstance(networking, dict) else {}
    metadata = config.get("metadata") or {}
    return Plan(
        config=(namespace_of(config), str(metadata.get("name") or "")),
        paused=is_paused(config),
        families=enabled_families(config),
        high_speed_mtu=_mtu(networking, "highSpeedMTU"),
        control_plane_mtu=_mtu(networking, "controlPlaneMTU"),
    )
