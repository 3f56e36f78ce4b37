"""The objects a DPUDeployment generates, as DPF v24.10 writes them (pure: no I/O).

    desired = generate(dd_obj, templates, configurations)   # templates/configurations keyed by service name

DPUSet `<dd>-<nameSuffix>` (RollingUpdate; its DPU Nodes get the owner label and one version label per DPU-cluster
service plus the chain's), DPUService `<dd>-<svc>` (serviceID `dpudeployment_<dd>_<svc>`, configuration values
merged over the template's, its DaemonSet pinned to Nodes carrying its version label), DPUServiceInterface
`<dd>-<svc>-<iface>` (a `service` interface whose ServiceInterfaces carry the serviceID and interface labels the
chain's ports match), and DPUServiceChain `<dd>`. Every object carries the owner label
`svc.dpu.nvidia.com/owned-by-dpudeployment=<ns>_<dd>` and a controller ownerReference to the DPUDeployment.

A version is a digest of what the object is made of, so a change of a service's template or configuration moves
only that service's label on the DPU Nodes (and the DaemonSet follows it), as DPF's upgrade logic expects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from controller.chains.family import DPUSERVICECHAINS, DPUSERVICEINTERFACES
from controller.dpudeployment.names import (
    CHAIN_VERSION_LABEL,
    DPUDEPLOYMENTS,
    DPUSERVICES,
    INTERFACE_NAME_LABEL,
    OWNER_LABEL,
    SERVICE_LABEL,
    chain_name,
    digest,
    dpuservice_name,
    dpuset_name,
    interface_name,
    owner_value,
    service_id,
    service_version_label,
)
from controller.dpudeployment.values import merge_values
from controller.kube.objects import Obj, ObjKey, controller_owner_ref, key_of
from controller.kube.resources import DPUSETS, ResourceType
from dpfd.api.services import (
    DPUDeployment,
    DPUDeploymentSwitch,
    DPUServiceConfiguration,
    DPUServiceTemplate,
)


@dataclass
class Desired:
    """Every object the DPUDeployment should have, by kind, and the labels its DPU Nodes get."""

    dpusets: list[Obj] = field(default_factory=list)
    services: list[Obj] = field(default_factory=list)
    interfaces: list[Obj] = field(default_factory=list)
    chains: list[Obj] = field(default_factory=list)
    node_labels: dict[str, str] = field(default_factory=dict)

    def by_kind(self) -> list[tuple[ResourceType, list[Obj]]]:
        """In the order they are written: what DPU Nodes select on comes before the DPUSets that label them."""
        return [
            (DPUSERVICEINTERFACES, self.interfaces),
            (DPUSERVICES, self.services),
            (DPUSERVICECHAINS, self.chains),
            (DPUSETS, self.dpusets),
        ]


def _dump(model: Any) -> Any:
    return model.model_dump(mode="json", exclude_none=True) if model is not None else None


def _meta(dd: Obj, name: str) -> dict[str, Any]:
    key = key_of(dd)
    return {
        "name": name,
        "namespace": key.namespace,
        "labels": {OWNER_LABEL: owner_value(key)},
        "ownerReferences": [controller_owner_ref(dd, DPUDEPLOYMENTS.api_version, DPUDEPLOYMENTS.kind)],
    }


def _version_label_selector(dd: ObjKey, label: str, version: str) -> dict[str, Any]:
    """The LabelSelector a set's DPU Nodes must match: this version of this DPUDeployment."""
    return {"matchLabels": {label: version, OWNER_LABEL: owner_value(dd)}}


def _version_node_selector(dd: ObjKey, label: str, version: str) -> dict[str, Any]:
    """The same as a corev1 NodeSelector, for the DPUService's DaemonSet."""
    return {
        "nodeSelectorTerms": [
            {
                "matchExpressions": [
                    {"key": label, "operator": "In", "values": [version]},
                    {"key": OWNER_LABEL, "operator": "In", "values": [owner_value(dd)]},
                ]
            }
        ]
    }


def service_version(config: DPUServiceConfiguration, template: DPUServiceTemplate, interfaces: list[str]) -> str:
    return digest(_dump(config.spec), _dump(template.spec), interfaces)


def chain_version(switches: list[DPUDeploymentSwitch]) -> str:
    return digest([_dump(s) for s in switches])


def _service(
    dd: Obj,
    svc: str,
    config: DPUServiceConfiguration,
    template: DPUServiceTemplate,
    interfaces: list[str],
    version: str,
) -> Obj:
    key = key_of(dd)
    conf = config.spec.serviceConfiguration
    conf_values = conf.helmChart.values if conf is not None and conf.helmChart is not None else None
    values = merge_values(conf_values, template.spec.helmChart.values)
    helm: dict[str, Any] = {"source": _dump(template.spec.helmChart.source)}
    if values:
        helm["values"] = values
    spec: dict[str, Any] = {"helmChart": helm, "serviceID": service_id(key, svc)}
    in_cluster = conf is not None and conf.deployInCluster is True
    if conf is not None and conf.deployInCluster is not None:
        spec["deployInCluster"] = conf.deployInCluster
    if interfaces:
        spec["interfaces"] = interfaces
    daemonset: dict[str, Any] = {}
    if conf is not None and conf.serviceDaemonSet is not None:
        daemonset = _dump(conf.serviceDaemonSet)
    if not in_cluster:  # in-cluster services run on the host cluster: no DPU Node label to pin them to
        daemonset["nodeSelector"] = _version_node_selector(key, service_version_label(svc), version)
    if daemonset:
        spec["serviceDaemonSet"] = daemonset
    return {
        "apiVersion": DPUSERVICES.api_version,
        "kind": DPUSERVICES.kind,
        "metadata": _meta(dd, dpuservice_name(key, svc)),
        "spec": spec,
    }


def _interface(dd: Obj, svc: str, iface: str, network: str, version: str) -> Obj:
    key = key_of(dd)
    sid = service_id(key, svc)
    return {
        "apiVersion": DPUSERVICEINTERFACES.api_version,
        "kind": DPUSERVICEINTERFACES.kind,
        "metadata": _meta(dd, interface_name(key, svc, iface)),
        "spec": {
            "template": {
                "spec": {
                    "nodeSelector": _version_label_selector(key, service_version_label(svc), version),
                    "template": {
                        "metadata": {"labels": {SERVICE_LABEL: sid, INTERFACE_NAME_LABEL: iface}},
                        "spec": {
                            "interfaceType": "service",
                            "service": {"serviceID": sid, "network": network, "interfaceName": iface},
                        },
                    },
                }
            }
        },
    }


def _switches(dd: ObjKey, switches: list[DPUDeploymentSwitch]) -> list[dict[str, Any]]:
    """A service port becomes the ServiceInterface of that service and interface, found by its labels."""
    out = []
    for switch in switches:
        ports = []
        for port in switch.ports:
            if port.service is not None:
                ifc: dict[str, Any] = {
                    "matchLabels": {
                        SERVICE_LABEL: service_id(dd, port.service.name),
                        INTERFACE_NAME_LABEL: port.service.interface,
                    }
                }
                if port.service.ipam is not None:
                    ifc["ipam"] = _dump(port.service.ipam)
                ports.append({"serviceInterface": ifc})
            else:
                ports.append({"serviceInterface": _dump(port.serviceInterface)})
        out.append({"ports": ports})
    return out


def _chain(dd: Obj, switches: list[DPUDeploymentSwitch], version: str) -> Obj:
    key = key_of(dd)
    return {
        "apiVersion": DPUSERVICECHAINS.api_version,
        "kind": DPUSERVICECHAINS.kind,
        "metadata": _meta(dd, chain_name(key)),
        "spec": {
            "template": {
                "spec": {
                    "nodeSelector": _version_label_selector(key, CHAIN_VERSION_LABEL, version),
                    "template": {"spec": {"switches": _switches(key, switches)}},
                }
            }
        },
    }


def _dpuset(dd: Obj, spec: DPUDeployment, index: int, node_labels: dict[str, str]) -> Obj:
    key = key_of(dd)
    settings = (spec.spec.dpus.dpuSets or [])[index]
    template: dict[str, Any] = {
        "spec": {
            "bfb": {"name": spec.spec.dpus.bfb},
            "dpuFlavor": spec.spec.dpus.flavor,
            "cluster": {"nodeLabels": {OWNER_LABEL: owner_value(key), **node_labels}},
        }
    }
    if settings.dpuAnnotations:
        template["annotations"] = dict(settings.dpuAnnotations)
    set_spec: dict[str, Any] = {"strategy": {"type": "RollingUpdate"}, "dpuTemplate": template}
    if settings.nodeSelector is not None:
        set_spec["nodeSelector"] = _dump(settings.nodeSelector)
    if settings.dpuSelector:
        set_spec["dpuSelector"] = dict(settings.dpuSelector)
    return {
        "apiVersion": DPUSETS.api_version,
        "kind": DPUSETS.kind,
        "metadata": _meta(dd, dpuset_name(key, settings.nameSuffix)),
        "spec": set_spec,
    }


def generate(
    dd: Obj,
    templates: dict[str, DPUServiceTemplate],
    configurations: dict[str, DPUServiceConfiguration],
) -> Desired:
    """Every object of `dd` (a DPUDeployment as the API returns it, with uid). `templates` and `configurations`
    hold one entry for each key of spec.services (PrerequisitesReady checks that before)."""
    spec = DPUDeployment.model_validate(dd)
    key = key_of(dd)
    out = Desired()
    for svc in sorted(spec.spec.services):
        config, template = configurations[svc], templates[svc]
        ifaces = config.spec.interfaces or []
        names = [interface_name(key, svc, i.name) for i in ifaces]
        version = service_version(config, template, names)
        out.services.append(_service(dd, svc, config, template, names, version))
        for iface in ifaces:
            out.interfaces.append(_interface(dd, svc, iface.name, iface.network, version))
        conf = config.spec.serviceConfiguration
        if not (conf is not None and conf.deployInCluster is True):
            out.node_labels[service_version_label(svc)] = version
    switches = spec.spec.serviceChains or []
    if switches:  # a chain needs at least one switch; without any there is nothing to chain
        version = chain_version(switches)
        out.chains.append(_chain(dd, switches, version))
        out.node_labels[CHAIN_VERSION_LABEL] = version
    for i in range(len(spec.spec.dpus.dpuSets or [])):
        out.dpusets.append(_dpuset(dd, spec, i, out.node_labels))
    return out
