"""Services as the API server keeps them: a cluster IP from the service CIDR and, for NodePort and LoadBalancer
Services, a node port per port from 30000-32767, allocated on create and kept across updates that leave them out
(what DPF's kamaji cluster manager relies on: it creates a NodePort Service and reads the port back). Nothing routes
to these addresses: there is no kube-proxy here.

The functions return (field, message) causes for a 422 Invalid, in the API server's words; an empty list is "ok".
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any, Final

Obj = dict[str, Any]
Cause = tuple[str, str]

SERVICES: Final = ("", "services")
NODE_PORTS: Final = range(30000, 32768)
SERVICE_CIDR: Final = ipaddress.ip_network("10.96.0.0/12")
NODE_PORT_TYPES: Final = frozenset({"NodePort", "LoadBalancer"})
TYPES: Final = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")


def _ports(svc: Obj) -> list[Obj]:
    ports = (svc.get("spec") or {}).get("ports")
    return [p for p in ports if isinstance(p, dict)] if isinstance(ports, list) else []


def node_ports_in_use(services: Iterable[Obj]) -> set[int]:
    return {int(p["nodePort"]) for s in services for p in _ports(s) if isinstance(p.get("nodePort"), int)}


def cluster_ips_in_use(services: Iterable[Obj]) -> set[str]:
    return {str(ip) for s in services for ip in [(s.get("spec") or {}).get("clusterIP")] if ip and ip != "None"}


def _defaults(svc: Obj) -> Obj:
    spec: Obj = svc.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    for port in _ports(svc):
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port.get("port"))
    return spec


def _check(spec: Obj, ports: list[Obj]) -> list[Cause]:
    causes: list[Cause] = []
    kind = spec.get("type")
    if kind not in TYPES:
        supported = ", ".join(f'"{t}"' for t in TYPES)
        causes.append(("spec.type", f'Unsupported value: "{kind}": supported values: {supported}'))
    if kind != "ExternalName" and not ports:
        causes.append(("spec.ports", "Required value"))
    for i, port in enumerate(ports):
        number = port.get("port")
        if not isinstance(number, int) or not 1 <= number <= 65535:
            causes.append((f"spec.ports[{i}].port", f"Invalid value: {number}: must be between 1 and 65535, inclusive"))
        node_port = port.get("nodePort")
        if node_port is None:
            continue
        if kind not in NODE_PORT_TYPES:
            causes.append((f"spec.ports[{i}].nodePort", f"Forbidden: may not be used when `type` is '{kind}'"))
        elif not isinstance(node_port, int) or node_port not in NODE_PORTS:
            causes.append((f"spec.ports[{i}].nodePort", f"Invalid value: {node_port}: provided port is not in the "
                           f"valid range. The range of valid ports is {NODE_PORTS.start}-{NODE_PORTS.stop - 1}"))  # fmt: skip
    return causes


def _allocate(spec: Obj, ports: list[Obj], node_ports: set[int], cluster_ips: set[str]) -> list[Cause]:
    """Give the Service what it lacks: a cluster IP, and a node port for each port of a NodePort Service."""
    causes: list[Cause] = []
    if spec["type"] != "ExternalName" and not spec.get("clusterIP"):
        ip = next((str(a) for a in SERVICE_CIDR.hosts() if str(a) not in cluster_ips and a.packed[-1] != 1), None)
        if ip is None:
            return [("spec.clusterIPs", "Internal error: failed to allocate a serviceIP: range is full")]
        spec["clusterIP"] = ip
    if spec.get("clusterIP"):
        spec["clusterIPs"] = [spec["clusterIP"]]
    taken = set(node_ports)
    for i, port in enumerate(ports):
        if spec["type"] not in NODE_PORT_TYPES:
            continue
        wanted = port.get("nodePort")
        if wanted is not None:
            if wanted in taken:
                causes.append((f"spec.ports[{i}].nodePort", f"Invalid value: {wanted}: provided port is already allocated"))  # fmt: skip
            taken.add(wanted)
            continue
        free = next((p for p in NODE_PORTS if p not in taken), None)
        if free is None:
            return [(f"spec.ports[{i}].nodePort", "Internal error: failed to allocate a nodePort: range is full")]
        port["nodePort"] = free
        taken.add(free)
    return causes


def prepare_create(svc: Obj, others: list[Obj]) -> list[Cause]:
    """Default, check and allocate a new Service against the Services that exist (`others`)."""
    spec = _defaults(svc)
    ports = _ports(svc)
    causes = _check(spec, ports)
    if causes:
        return causes
    svc["status"] = {"loadBalancer": {}}
    return _allocate(spec, ports, node_ports_in_use(others), cluster_ips_in_use(others))


def prepare_update(old: Obj, new: Obj, others: list[Obj]) -> list[Cause]:
    """As the API server's update: the cluster IP may not change, and a port that leaves its node port out keeps the
    one it had (matched by port number and protocol), so a PUT of the original manifest does not move it."""
    spec = _defaults(new)
    old_spec = old.get("spec") or {}
    old_ip = old_spec.get("clusterIP")
    if old_ip and spec.get("clusterIP") not in (None, "", old_ip) and spec.get("type") != "ExternalName":
        return [("spec.clusterIPs[0]", f'Invalid value: ["{spec.get("clusterIP")}"]: may not change once set')]
    if old_ip and not spec.get("clusterIP") and spec.get("type") != "ExternalName":
        spec["clusterIP"] = old_ip
    ports = _ports(new)
    if spec.get("type") in NODE_PORT_TYPES and old_spec.get("type") in NODE_PORT_TYPES:
        had = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort") for p in _ports(old)}
        for port in ports:
            if port.get("nodePort") is None and had.get((port.get("port"), port.get("protocol"))) is not None:
                port["nodePort"] = had[(port.get("port"), port.get("protocol"))]
    causes = _check(spec, ports)
    if causes:
        return causes
    return _allocate(spec, ports, node_ports_in_use(others), cluster_ips_in_use(others))
