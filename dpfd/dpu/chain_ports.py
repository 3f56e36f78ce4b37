"""Which ofport a ServiceChain port means on this DPU (DPF's servicechain controller, dpf-api-notes §4).

A chain port's `serviceInterface.matchLabels` must select exactly one ServiceInterface intent of this node in the
chain's namespace (by the intent's labels, the ServiceInterface's). Its port on br-sfc:
- physical, pf, vf, ovn: the port dpfd made for it (`desired_ports`; for ovn the br-sfc side of the patch pair),
  whose Interface carries `dpf-id=<ns>/<name>`;
- service: the port the SFC CNI made at ADD, `dpf-id=<podns>/<pod>/<interfaceName>`. DPF finds the pod by its
  `svc.dpu.nvidia.com/service=<serviceID>` label; dpfd sees no pods, so the pod is the intent's
  `context.pod` (`<podns>/<pod>`) when the controller resolved it, otherwise the one CNI port whose interface name
  is `interfaceName` (several: those whose pod name contains the serviceID; still several: unresolved).
Everything is read from the OVSDB replica (no round trip). Missing or ambiguous: PortUnresolved, saying why.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from dpfd.api.chains import ServiceInterfaceSpec
from dpfd.api.intents import Intent, ObjectRef
from dpfd.dpu.flows.model import Labels, PortUnresolved
from dpfd.dpu.ovs.connection import OvsdbConnection
from dpfd.dpu.ovs.ports import DPF_ID, PortError, PortSettings, desired_ports, owner_id


class ServiceInterfaceIndex:
    """The ServiceInterface intents of this node, as their reconciler last saw them."""

    def __init__(self) -> None:
        self._intents: dict[ObjectRef, Intent] = {}
        self._specs: dict[tuple[ObjectRef, int], ServiceInterfaceSpec] = {}
        self.on_change: Callable[[ObjectRef], None] = lambda ref: None

    def put(self, intent: Intent) -> None:
        old = self._intents.get(intent.ref)
        self._intents[intent.ref] = intent
        if old is not None and old.generation != intent.generation:
            self._specs.pop((intent.ref, old.generation), None)
        if old is None or old.generation != intent.generation or old.labels != intent.labels:
            self.on_change(intent.ref)

    def remove(self, ref: ObjectRef) -> None:
        old = self._intents.pop(ref, None)
        if old is not None:
            self._specs.pop((ref, old.generation), None)
            self.on_change(ref)

    def select(self, namespace: str, labels: Labels) -> list[Intent]:
        return [
            it
            for it in self._intents.values()
            if it.ref.namespace == namespace
            and not it.deleting
            and all(it.labels.get(k) == v for k, v in labels.items())
        ]

    def spec(self, intent: Intent) -> ServiceInterfaceSpec:
        key = (intent.ref, intent.generation)
        spec = self._specs.get(key)
        if spec is None:
            spec = self._specs[key] = ServiceInterfaceSpec.model_validate(intent.spec)
        return spec


class ChainPortLookup:
    """The ServiceChainReconciler's OfportLookup on a real DPU."""

    def __init__(self, index: ServiceInterfaceIndex, conn: OvsdbConnection, settings: PortSettings) -> None:
        self.index = index
        self.conn = conn
        self.settings = settings

    async def __call__(self, namespace: str, labels: Labels) -> int:
        found = self.index.select(namespace, labels)
        if not found:
            raise PortUnresolved(f"no ServiceInterface in {namespace} on this node has labels {dict(labels)}")
        if len(found) > 1:
            names = ", ".join(sorted(it.ref.name for it in found))
            raise PortUnresolved(f"{len(found)} ServiceInterfaces match {dict(labels)} in {namespace}: {names}")
        intent = found[0]
        try:
            spec = self.index.spec(intent)
        except ValidationError as e:
            raise PortUnresolved(f"ServiceInterface {namespace}/{intent.ref.name} is invalid: {e}") from None
        ifaces = self.conn.read_now(_interfaces)
        if ifaces is None:
            raise PortUnresolved("OVSDB is not connected yet")
        if spec.interfaceType == "service":
            assert spec.service is not None
            row = _service_port(ifaces, intent, spec.service.interfaceName, spec.service.serviceID)
        else:
            row = self._own_port(ifaces, intent, spec)
        ofport = row["ofport"]
        if ofport <= 0:
            raise PortUnresolved(f"port {row['name']} of {owner_id(namespace, intent.ref.name)} has no OpenFlow port")
        return int(ofport)

    def _own_port(self, ifaces: list[dict[str, Any]], intent: Intent, spec: ServiceInterfaceSpec) -> dict[str, Any]:
        owner = owner_id(intent.ref.namespace, intent.ref.name)
        try:
            names = [p.name for p in desired_ports(spec, self.settings) if p.bridge == self.settings.bridge]
        except PortError as e:
            raise PortUnresolved(f"ServiceInterface {owner}: {e}") from None
        for row in ifaces:
            if row["name"] in names and row["dpf_id"] == owner:
                return row
        raise PortUnresolved(f"the port of ServiceInterface {owner} ({', '.join(names)}) is not on OVS yet")


def _service_port(ifaces: list[dict[str, Any]], intent: Intent, ifname: str, service_id: str) -> dict[str, Any]:
    owner = owner_id(intent.ref.namespace, intent.ref.name)
    pod = intent.context.get("pod")
    if isinstance(pod, str) and pod:
        want = f"{pod}/{ifname}"
        for row in ifaces:
            if row["dpf_id"] == want:
                return row
        raise PortUnresolved(f"ServiceInterface {owner}: no CNI port dpf-id={want} (pod not attached yet)")
    rows = [r for r in ifaces if r["dpf_id"].count("/") == 2 and r["dpf_id"].rsplit("/", 1)[1] == ifname]
    if len(rows) > 1:
        rows = [r for r in rows if service_id in r["dpf_id"].split("/")[1]]
    if len(rows) == 1:
        return rows[0]
    if not rows:
        raise PortUnresolved(f"ServiceInterface {owner}: no CNI port for interface {ifname} (pod not attached yet)")
    ids = ", ".join(sorted(r["dpf_id"] for r in rows))
    raise PortUnresolved(f"ServiceInterface {owner}: several CNI ports for interface {ifname}: {ids}")


def _interfaces(tables: Any) -> list[dict[str, Any]]:
    out = []
    for row in tables["Interface"].rows.values():
        dpf_id = row.external_ids.get(DPF_ID, "")
        if dpf_id:
            ofport = row.ofport[0] if row.ofport else 0
            out.append({"name": row.name, "dpf_id": dpf_id, "ofport": int(ofport)})
    return out
