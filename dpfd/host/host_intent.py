"""Host role, kind Host: what discovery finds on this host, for the controller to turn into DPF's Node labels.

The intent (namespace "_", name = the node) asks for nothing; the report (phase Ready) carries the labels DPF's
detector and NodeFeatureRule would set and the DPUs found. Re-scanned every `interval` seconds, as DPF's
detector does every 60 s, so a bridge that comes up or a DPU that appears shows without a restart.
"""

from __future__ import annotations

from typing import Any

from dpfd.agent.reconciler import AgentLink, Kick
from dpfd.api.conditions import Condition
from dpfd.api.intents import Intent, ObjectRef, Report
from dpfd.host.discovery import node_labels
from dpfd.host.provisioning.wiring import DiscoveryInventory

KIND = "Host"
PHASE_READY = "Ready"
COND_DISCOVERED = "Discovered"


class HostReconciler:
    kind = KIND

    def __init__(self, node: str, inventory: DiscoveryInventory, *, interval: float = 30.0) -> None:
        self.node = node
        self.inventory = inventory
        self.interval = interval
        self._kick: Kick = lambda ref, delay: None

    def bind(self, link: AgentLink) -> None:
        self._kick = link.kick

    async def reconcile(self, ref: ObjectRef, intent: Intent | None) -> Report | None:
        if intent is None:
            return None
        found = await self.inventory.discovery()
        self._kick(ref, self.interval)
        dpus: list[dict[str, Any]] = [
            {"pciAddress": d.pci_address, "pf0Name": d.pf0_name, "deviceId": d.device_id, "model": d.model}
            for d in found.dpus
        ]
        details: dict[str, Any] = {"labels": node_labels(found), "dpus": dpus}
        if found.problems:
            details["problems"] = found.problems
        bridge = found.bridge
        cond = Condition(
            type=COND_DISCOVERED,
            status="True",
            reason="Scanned",
            message=f"{len(dpus)} BlueField(s); bridge {bridge.name}: {bridge.problem or 'configured'}",
            observedGeneration=intent.generation,
        )
        return Report(node=self.node, ref=ref, uid=intent.uid, observedGeneration=intent.generation,
                      phase=PHASE_READY, conditions=[cond], details=details)  # fmt: skip

    async def close(self) -> None:
        return None
