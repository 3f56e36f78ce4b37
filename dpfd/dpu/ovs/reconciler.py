"""ServiceInterface intents -> ports on br-sfc (and br-ovn), as DPF's sfc-controller makes them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any, Protocol

from pydantic import ValidationError

from dpfd.api.chains import ServiceInterfaceSpec
from dpfd.api.conditions import Condition
from dpfd.api.intents import Intent, ObjectRef, Report
from dpfd.dpu.ovs.connection import OvsdbConnection, OvsdbError, snapshot
from dpfd.dpu.ovs.ports import DPF_ID, PortError, PortSettings, PortSpec, desired_ports, is_interface_owner, owner_id
from dpfd.dpu.ovs.stale import CollectStalePorts, Declared
from dpfd.dpu.ovs.sync import SyncOwnedPorts, SyncResult

log = logging.getLogger(__name__)

KIND = "ServiceInterface"


class IntentIndex(Protocol):
    def put(self, intent: Intent) -> None: ...

    def remove(self, ref: ObjectRef) -> None: ...


COND_READY = "Ready"
PHASE_READY = "Ready"
PHASE_PENDING = "Pending"
PHASE_FAILED = "Failed"
PHASE_DELETING = "Deleting"


class ServiceInterfaceReconciler:
    """Reconciler (and LocalStateReconciler) for kind ServiceInterface.

    All port changes of one reconcile are one OVSDB transaction. The report is Ready once ovs-vswitchd has
    applied the transaction and every port has an OpenFlow port number; an interface OVS reports an error for
    makes it not Ready with that error. Ports carrying a ServiceInterface dpf-id (`<ns>/<name>`) are this
    reconciler's: `local_refs` names them, so ports of intents deleted while dpfd was away are removed.
    """

    kind = KIND

    def __init__(self, conn: OvsdbConnection, node: str, settings: PortSettings | None = None,
                 apply_timeout: float = 10.0, index: IntentIndex | None = None) -> None:  # fmt: skip
        self.conn = conn
        self.index = index  # told every intent seen and every one released (the chains' port lookup reads it)
        self.node = node
        self.settings = settings or PortSettings()
        self.apply_timeout = apply_timeout
        # Port names on the bridge each intent reconciled so far declares (stale-port collection keeps them).
        self._declared: dict[ObjectRef, frozenset[str]] = {}
        self._reconciled = asyncio.Condition()

    async def reconcile(self, ref: ObjectRef, intent: Intent | None) -> Report | None:
        try:
            return await self._reconcile(ref, intent)
        finally:
            async with self._reconciled:
                self._reconciled.notify_all()

    async def _reconcile(self, ref: ObjectRef, intent: Intent | None) -> Report | None:
        owner = owner_id(ref.namespace, ref.name)
        if intent is None or intent.deleting:
            if self.index is not None:
                self.index.remove(ref)
            await self._sync(owner, [])
            self._declared[ref] = frozenset()
            if intent is None:
                return None
            return self._report(intent, PHASE_DELETING, False, "Deleting", "ports removed")
        try:
            spec = ServiceInterfaceSpec.model_validate(intent.spec)
            wanted = desired_ports(spec, self.settings)
        except ValidationError as e:
            self._declared[ref] = frozenset()
            return self._report(intent, PHASE_FAILED, False, "InvalidSpec", str(e).replace("\n", " "))
        except PortError as e:
            self._declared[ref] = frozenset()
            return self._report(intent, PHASE_FAILED, False, "Unsupported", str(e))
        self._declared[ref] = frozenset(p.name for p in wanted if p.bridge == self.settings.bridge)
        try:
            await self._sync(owner, wanted)
        except PortError as e:
            return self._report(intent, PHASE_FAILED, False, "PortConflict", str(e))
        if self.index is not None:
            self.index.put(intent)  # after its ports exist: chains waiting for them look again
        if not wanted:
            return self._report(intent, PHASE_READY, True, "NothingToCreate",
                                f"interfaceType {spec.interfaceType}: the port is added at CNI ADD")  # fmt: skip
        state = await self.conn.read(lambda t: _interfaces(t, {p.name for p in wanted}))
        details = {
            "ports": [{"bridge": p.bridge, "name": p.name, "ofport": _ofport(state.get(p.name))} for p in wanted]
        }
        errors = [
            f"{p.name}: {state[p.name]['error'][0]}" for p in wanted if p.name in state and state[p.name]["error"]
        ]
        if errors:
            return self._report(intent, PHASE_FAILED, False, "PortError", "; ".join(errors), details)
        missing = [p.name for p in wanted if _ofport(state.get(p.name)) <= 0]
        if missing:
            return self._report(intent, PHASE_PENDING, False, "NoOpenFlowPort",
                                f"ovs-vswitchd has not given {', '.join(missing)} an OpenFlow port", details)  # fmt: skip
        names = ", ".join(f"{p.bridge}/{p.name}" for p in wanted)
        return self._report(intent, PHASE_READY, True, "PortsReady", f"ports {names} are on OVS", details)

    def local_refs(self) -> Iterable[ObjectRef]:
        """ServiceInterfaces that have ports on OVS (read from the IDL's replica, without a round trip)."""
        conn = self.conn._conn
        if conn is None:
            return []
        with conn.lock:
            ids = {i.external_ids.get(DPF_ID, "") for i in self.conn.api.tables["Interface"].rows.values()}
        refs = []
        for dpf_id in sorted(i for i in ids if is_interface_owner(i)):
            ns, name = dpf_id.split("/")
            refs.append(ObjectRef(kind=KIND, namespace=ns, name=name))
        return refs

    async def collect_stale_ports(self, refs: Iterable[ObjectRef], within: float = 60.0) -> list[str]:
        """Remove the ports on the bridge that no ServiceInterface in `refs` (this node's intents, as listed)
        declares and that are not physical, the vswitchd canary, CNI-owned or the bridge's own (ovs/stale.py);
        the names removed. Waits until each of `refs` has been reconciled once (so ports an intent is about to
        adopt are known); TimeoutError if that takes longer than `within` seconds (nothing removed)."""
        wanted = set(refs)
        async with self._reconciled:
            await asyncio.wait_for(self._reconciled.wait_for(lambda: wanted <= self._declared.keys()), within)
        names = frozenset().union(*(self._declared[r] for r in wanted))
        declared = Declared(owners=frozenset(owner_id(r.namespace, r.name) for r in wanted), names=names)
        cmd = CollectStalePorts(self.conn.api, self.settings.bridge, declared)
        await self.conn.execute(cmd)
        if cmd.result:
            log.info("stale ports removed from %s: %s", self.settings.bridge, ", ".join(cmd.result))
        if cmd.next_cfg is not None and not await self.conn.wait_applied(cmd.next_cfg, self.apply_timeout):
            raise OvsdbError(f"ovs-vswitchd has not applied the removal of stale ports {', '.join(cmd.result)} "
                             f"within {self.apply_timeout:g}s (is it running?)")  # fmt: skip
        return list(cmd.result)

    async def _sync(self, owner: str, wanted: list[PortSpec]) -> SyncResult:
        [result] = await self.conn.execute(SyncOwnedPorts(self.conn.api, owner, wanted))
        assert isinstance(result, SyncResult)
        if result.changed:
            log.info("ports of %s: created %s updated %s deleted %s", owner, result.created, result.updated,
                     result.deleted)  # fmt: skip
        if result.next_cfg is not None and not await self.conn.wait_applied(result.next_cfg, self.apply_timeout):
            raise OvsdbError(f"ovs-vswitchd has not applied the ports of {owner} within {self.apply_timeout:g}s "
                             "(is it running?)")  # fmt: skip
        return result

    def _report(self, intent: Intent, phase: str, ready: bool, reason: str, message: str,
                details: dict[str, Any] | None = None) -> Report:  # fmt: skip
        cond = Condition(type=COND_READY, status="True" if ready else "False", reason=reason,
                         message=message[:32768], observedGeneration=intent.generation)  # fmt: skip
        return Report(node=self.node, ref=intent.ref, uid=intent.uid, observedGeneration=intent.generation,
                      phase=phase, conditions=[cond], details=details or {})  # fmt: skip


def _interfaces(tables: Any, names: set[str]) -> dict[str, dict[str, Any]]:
    return {row.name: snapshot(row, ("ofport", "error", "type"))
            for row in tables["Interface"].rows.values() if row.name in names}  # fmt: skip


def _ofport(state: dict[str, Any] | None) -> int:
    if not state or not state.get("ofport"):
        return 0
    return int(state["ofport"][0])
