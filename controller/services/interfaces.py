"""A DPUService's interfaces as DPF turns them into Multus network annotations (pure).

Each name in spec.interfaces must be a `service` DPUServiceInterface of the DPUService's namespace, with the same
serviceID, not claimed (annotation dpu.nvidia.com/consumed-by) by another DPUService. Each becomes a Multus
NetworkSelectionElement `{name, namespace, interface}` in serviceDaemonSet.annotations["k8s.v1.cni.cncf.io/networks"];
entries the user wrote there for the same interface win, field by field; the list is sorted by name, then interface.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from controller.kube.objects import Obj, annotations_of, name_of
from controller.services.argocd import JSON, spec_of
from controller.services.resources import NETWORKS_ANNOTATION
from dpfd.api.wellknown import CONSUMED_BY_ANNOTATION


class InterfaceProblem(ValueError):
    """The DPUService's interfaces cannot be used; the message says which and why (DPF's wording)."""


def service_section(interface: Obj) -> tuple[str, JSON | None]:
    """(interfaceType, service) of a DPUServiceInterface's ServiceInterface template."""
    tmpl = ((spec_of(interface).get("template") or {}).get("spec") or {}).get("template") or {}
    spec = tmpl.get("spec") or {}
    service = spec.get("service")
    return str(spec.get("interfaceType") or ""), service if isinstance(service, dict) else None


def network_selection(service: Mapping[str, Any]) -> JSON:
    """DPF's newNetworkSelectionElement: network "ns/name" (or "name") and the interface name."""
    network = str(service.get("network") or "")
    namespace, _, name = network.rpartition("/")
    element: JSON = {"name": name}
    if namespace:
        element["namespace"] = namespace
    if service.get("interfaceName"):
        element["interface"] = service["interfaceName"]
    return element


def merge_networks(wanted: Mapping[str, JSON], existing: list[JSON]) -> list[JSON]:
    """DPF's mergeIntoSlice: the user's entries kept, their non-empty fields winning over ours for the same
    interface; ours added for the other interfaces; sorted by (name, interface)."""
    left = dict(wanted)
    out: list[JSON] = []
    for entry in existing:
        ours = left.pop(str(entry.get("interface") or ""), None)
        if ours is None:
            out.append(dict(entry))
        else:
            out.append({**ours, **{k: v for k, v in entry.items() if v not in (None, "", [], {})}})
    out.extend(left.values())
    return sorted(out, key=lambda e: (str(e.get("name") or ""), str(e.get("interface") or "")))


@dataclass
class InterfacePlan:
    service_daemonset: JSON | None  # serviceDaemonSet values with the networks annotation (as given without interfaces)
    to_claim: list[str] = field(default_factory=list)  # DPUServiceInterfaces to annotate as consumed by the service


def plan_interfaces(service: Obj, get_interface: Callable[[str], Obj | None]) -> InterfacePlan:
    """What the DPUService's interfaces make of its serviceDaemonSet; raises InterfaceProblem."""
    spec = spec_of(service)
    daemonset = spec.get("serviceDaemonSet")
    names = spec.get("interfaces")
    if names is None:
        return InterfacePlan(dict(daemonset) if isinstance(daemonset, dict) else None)
    service_id = spec.get("serviceID")
    wanted: dict[str, JSON] = {}
    to_claim: list[str] = []
    for name in names:
        dsi = get_interface(name)
        if dsi is None:
            raise InterfaceProblem(f'dpuserviceinterfaces.svc.dpu.nvidia.com "{name}" not found')
        kind, section = service_section(dsi)
        if section is None or kind != "service":
            raise InterfaceProblem(f"wrong service definition in DPUServiceInterface {name}")
        if service_id and section.get("serviceID") != service_id:
            raise InterfaceProblem(f"conflicting ServiceID in DPUServiceInterface {name}")
        claimed_by = annotations_of(dsi).get(CONSUMED_BY_ANNOTATION)
        if claimed_by is not None and claimed_by != name_of(service):
            raise InterfaceProblem(f"dpuServiceInterface {name} is in use by another DPUService")
        if claimed_by is None:
            to_claim.append(name)
        element = network_selection(section)
        wanted[str(element.get("interface") or "")] = element
    out: JSON = dict(daemonset) if isinstance(daemonset, dict) else {}
    annotations = dict(out.get("annotations") or {})
    if wanted:
        existing: list[JSON] = []
        if NETWORKS_ANNOTATION in annotations:
            try:
                parsed = json.loads(annotations[NETWORKS_ANNOTATION])
            except ValueError as exc:
                parsed = exc
            if not isinstance(parsed, list) or not all(isinstance(e, dict) for e in parsed):
                raise InterfaceProblem(
                    f"failed to unmarshal existing networks: {parsed}, expected format is a list of objects"
                )
            existing = parsed
        networks = merge_networks(wanted, existing)
        annotations[NETWORKS_ANNOTATION] = json.dumps(networks, separators=(",", ":"))
    out["annotations"] = annotations
    return InterfacePlan(out, to_claim)
