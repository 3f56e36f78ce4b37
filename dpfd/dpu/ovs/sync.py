"""The ovsdbapp command that makes one owner's ports on OVS exactly `desired`, inside one transaction.

It compares against the IDL's current rows when the transaction runs (and again if OVSDB answers TRY_AGAIN), so
a concurrent change elsewhere cannot be undone by a stale diff. When it changes anything it bumps next_cfg, so
the caller can wait for ovs-vswitchd to have applied it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ovsdbapp.backend.ovs_idl import command

from dpfd.dpu.ovs.ports import DPF_ID, PortError, PortSpec


@dataclass
class SyncResult:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    next_cfg: int | None = None  # set when something changed

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.deleted)


def _by_name(tables: Any, table: str) -> dict[str, Any]:
    return {row.name: row for row in tables[table].rows.values()}


class SyncOwnedPorts(command.BaseCommand):  # type: ignore[misc]
    """Ports whose interface carries external_ids `key`=`owner` (dpf-id) become exactly `desired` (none: all removed)."""

    def __init__(self, api: Any, owner: str, desired: list[PortSpec], key: str = DPF_ID) -> None:
        super().__init__(api)
        self.owner = owner
        self.key = key
        self.desired = desired
        self.result = SyncResult()

    def run_idl(self, txn: Any) -> None:
        res = self.result = SyncResult()
        tables = self.api.tables
        bridges = _by_name(tables, "Bridge")
        ports = _by_name(tables, "Port")
        bridge_of = {p.uuid: b for b in bridges.values() for p in b.ports}
        owned = {
            p.name: p for p in ports.values() if any(i.external_ids.get(self.key) == self.owner for i in p.interfaces)
        }
        for spec in self.desired:
            bridge = bridges.get(spec.bridge)
            if bridge is None:
                raise PortError(f"bridge {spec.bridge} does not exist (port {spec.name})")
            port = ports.get(spec.name)
            if port is not None and bridge_of.get(port.uuid) is not bridge:
                raise PortError(f"port {spec.name} is on bridge {_name(bridge_of.get(port.uuid))}, not {spec.bridge}")
            if port is None:
                self._create(txn, bridge, spec)
                res.created.append(spec.name)
            elif self._update(port, spec):
                res.updated.append(spec.name)
        wanted = {s.name for s in self.desired}
        for name, port in owned.items():
            if name not in wanted:
                br = bridge_of.get(port.uuid)
                if br is not None:
                    br.delvalue("ports", port)
                port.delete()
                res.deleted.append(name)
        if res.changed:
            self.api._ovs.increment("next_cfg")

    def post_commit(self, txn: Any) -> None:
        if self.result.changed:
            self.result.next_cfg = txn.get_increment_new_value()

    def _create(self, txn: Any, bridge: Any, spec: PortSpec) -> None:
        iface = txn.insert(self.api.tables["Interface"])
        iface.name = spec.name
        iface.type = spec.type
        iface.options = dict(spec.options)
        iface.external_ids = {self.key: self.owner}
        port = txn.insert(self.api.tables["Port"])
        port.name = spec.name
        port.interfaces = [iface]
        port.external_ids = dict(spec.port_external_ids)
        bridge.addvalue("ports", port)

    def _update(self, port: Any, spec: PortSpec) -> bool:
        ifaces = list(port.interfaces)
        if len(ifaces) != 1:
            raise PortError(f"port {spec.name} is a bond of {len(ifaces)} interfaces")
        iface = ifaces[0]
        holder = iface.external_ids.get(self.key)
        if holder not in (None, self.owner):
            raise PortError(f"port {spec.name} already belongs to {holder}")
        changed = False
        if holder is None:
            if not spec.adopt:
                raise PortError(f"port {spec.name} exists and was not made by dpf")
            iface.setkey("external_ids", self.key, self.owner)
            changed = True
        elif not spec.adopt:
            if iface.type != spec.type:
                iface.type = spec.type
                changed = True
            if dict(iface.options) != spec.options:
                iface.options = dict(spec.options)
                changed = True
        for k, v in spec.port_external_ids.items():
            if port.external_ids.get(k) != v:
                port.setkey("external_ids", k, v)
                changed = True
        return changed


def _name(row: Any) -> str:
    return str(row.name) if row is not None else "no bridge"
