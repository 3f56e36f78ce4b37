"""The system DPUServices a DPFOperatorConfig asks for (pure): the DPU-cluster components DPF's operator deploys as
DPUServices (internal/operator/inventory, fromDPUService), for the components dpfd does not do itself.

DPF deploys seven; here three, because dpfd on each DPU does the work of the other four:

=====================  ======================  ==================================================================
config field           DPUService              here
=====================  ======================  ==================================================================
flannel                flannel                 deployed: the DPU cluster's pod network
multus                 multus                  deployed: attaches service pods to the interfaces of DPUServices
sriovDevicePlugin      sriov-device-plugin     deployed: advertises the DPU's SFs/VFs to service pods
ovsCNI                 (ovs-cni)               dpfd's dpf-sfc-cni attaches service pods to br-sfc
nvipam                 (nvidia-k8s-ipam)       dpfd's IPAM (DPUServiceIPAM ranges in etcd)
sfcController          (sfc-controller)        dpfd's flows on br-sfc
serviceSetController   (servicechainset-...)   this controller's chains family and dpfd
=====================  ======================  ==================================================================

Each is a DPUService named as DPF names it, in the config's namespace, labelled dpu.nvidia.com/component=<name>,
owned by the config. Its chart is the component's `helmChart` ("<repo>/<chart>:<version>", parsed as DPF does) or
the release's dpu-networking chart, whose values switch the component on (`<name>.enabled: true`); the config's
imagePullSecrets become `imagePullSecrets: [{name}]`. A disabled component has no DPUService.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from controller.kube.objects import Obj, controller_owner_ref, name_of, namespace_of
from controller.operatorconfig.plan import spec_of
from controller.services.resources import COMPONENT_LABEL, DPUSERVICES

DEFAULT_DPU_NETWORKING_CHART: Final = "oci://ghcr.io/nvidia/dpu-networking:v24.10.0"
OPERATOR_API_VERSION: Final = "operator.dpu.nvidia.com/v1alpha1"


@dataclass(frozen=True)
class SystemService:
    field: str  # the DPFOperatorConfig's spec field
    name: str  # the DPUService's name, DPF's component name
    values: dict[str, Any]  # DPF's base values for it


SYSTEM_SERVICES: Final = (
    SystemService("flannel", "flannel", {"podCidr": "10.36.0.0/16"}),
    SystemService("multus", "multus", {}),
    SystemService("sriovDevicePlugin", "sriov-device-plugin", {}),
)
SYSTEM_SERVICE_NAMES: Final = frozenset(s.name for s in SYSTEM_SERVICES)


class ChartError(ValueError):
    """A component's helmChart that is not "<repo>/<chart>:<version>"."""


def parse_helm_chart(text: str) -> dict[str, str]:
    """DPF's ParseHelmChartString: the version after the last ':', the chart after the last '/' before it."""
    repo_chart, sep, version = text.rpartition(":")
    repo, slash, chart = repo_chart.rpartition("/")
    if not sep or not slash or not version or not chart or not repo or "/" in version:
        raise ChartError(f"failed to parse helm chart source: invalid format {text}")
    return {"repoURL": repo, "chart": chart, "version": version}


def _component(config: Obj, field: str) -> dict[str, Any]:
    value = spec_of(config).get(field)
    return value if isinstance(value, dict) else {}


def system_dpuservices(config: Obj, default_chart: str = DEFAULT_DPU_NETWORKING_CHART) -> list[Obj]:
    """The DPUServices the config asks for. Raises ChartError naming the field of a malformed helmChart."""
    pull_secrets = [{"name": n} for n in spec_of(config).get("imagePullSecrets") or [] if isinstance(n, str) and n]
    out = []
    for service in SYSTEM_SERVICES:
        component = _component(config, service.field)
        if component.get("disable") is True:
            continue
        chart = component.get("helmChart")
        try:
            source = parse_helm_chart(chart if isinstance(chart, str) and chart else default_chart)
        except ChartError as e:
            raise ChartError(f"spec.{service.field}.helmChart: {e}") from None
        values: dict[str, Any] = {**service.values, service.name: {"enabled": True}}
        if pull_secrets:
            values["imagePullSecrets"] = pull_secrets
        out.append({
            "apiVersion": DPUSERVICES.api_version,
            "kind": DPUSERVICES.kind,
            "metadata": {
                "name": service.name,
                "namespace": namespace_of(config),
                "labels": {COMPONENT_LABEL: service.name},
                "ownerReferences": [controller_owner_ref(config, OPERATOR_API_VERSION, "DPFOperatorConfig")],
            },
            "spec": {"helmChart": {"source": source, "values": values}},
        })  # fmt: skip
    return out


def is_system_service(obj: Obj) -> bool:
    """One of ours: a system DPUService's name, labelled with it as its component."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return name_of(obj) in SYSTEM_SERVICE_NAMES and labels.get(COMPONENT_LABEL) == name_of(obj)
