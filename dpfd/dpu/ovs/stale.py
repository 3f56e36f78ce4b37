"""Stale ports on br-sfc, collected as DPF's sfc-controller does (stale.go, dpf-api-notes §4).

A port on the bridge is stale unless something declares it:
- a ServiceInterface of this node: its interface carries the intent's `dpf-id=<ns>/<name>`, or it is a port such an
  intent makes or adopts (its name is declared even before the intent's reconcile put the dpf-id on it);
- the node itself: uplinks (Port `dpf-type=physical`, as the flavor's OVS script marks p0), dpfd's vswitchd canary
  (Port `dpf-type=monitor`), the bridge's own internal port;
- the SFC CNI: its ports' interfaces carry `dpf-cni` (pods come and go without intents).
Everything else (a port of a ServiceInterface deleted while dpfd was away whose dpf-id it no longer names, a
leftover representor) is removed, in one OVSDB transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from ovsdbapp.backend.ovs_idl import command

from dpfd.dpu.ovs.ports import DPF_ID, DPF_TYPE, PortError

CNI_OWNER: Final = "dpf-cni"  # Interface external_ids key the SFC CNI puts on its ports
KEPT_TYPES: Final = frozenset({"physical", "monitor"})  # Port external_ids dpf-type values that are never stale


@dataclass(frozen=True)
class Declared:
    """What this node declares on the bridge: ServiceInterface owners (`<ns>/<name>`) and port names."""

    owners: frozenset[str] = field(default_factory=frozenset)
    names: frozenset[str] = field(default_factory=frozenset)


def port_is_kept(bridge: str, name: str, port_ids: dict[str, str], iface_ids: Iterable[dict[str, str]],
                 declared: Declared) -> bool:  # fmt: skip
    """Whether a port (its Port external_ids and its interfaces' external_ids) is declared by anything."""
    if name == bridge or name in declared.names or port_ids.get(DPF_TYPE) in KEPT_TYPES:
        return True
    return any(CNI_OWNER in ids or ids.get(DPF_ID) in declared.owners for ids in iface_ids)


class CollectStalePorts(command.BaseCommand):  # type: ignore[misc]
    """Removes the ports of `bridge` nothing declares; `result` names them. Bumps next_cfg when it removed any."""

    def __init__(self, api: Any, bridge: str, declared: Declared) -> None:
        super().__init__(api)
        self.bridge = bridge
        self.declared = declared
        self.result: list[str] = []
        self.next_cfg: int | None = None

    def run_idl(self, txn: Any) -> None:
        self.result = []
        bridge = next((b for b in self.api.tables["Bridge"].rows.values() if b.name == self.bridge), None)
        if bridge is None:
            raise PortError(f"bridge {self.bridge} does not exist")
        for port in list(bridge.ports):
            name = str(port.name)
            ifaces = [dict(i.external_ids) for i in port.interfaces]
            if port_is_kept(self.bridge, name, dict(port.external_ids), ifaces, self.declared):
                continue
            bridge.delvalue("ports", port)
            port.delete()
            self.result.append(name)
        if self.result:
            self.api._ovs.increment("next_cfg")

    def post_commit(self, txn: Any) -> None:
        if self.result:
            self.next_cfg = txn.get_increment_new_value()
