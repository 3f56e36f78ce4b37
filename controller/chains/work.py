"""One leadership term's chaining work: the DPUServiceInterface and DPUServiceChain fan-outs (with the sets they
keep in the DPU clusters), and the cache events that feed them (a DPUCluster or DPU Node changing, a dpfd
joining or leaving, a child's report)."""

from __future__ import annotations

import asyncio

from controller.chains.family import CHAINS, INTERFACES
from controller.chains.fanout import FanoutDeps, FanoutReconciler
from controller.chains.sets import SetWriter
from controller.dpucluster.node_labels import NodeLabelChanges
from controller.kube.informer import EventType, Informer
from controller.kube.objects import Obj, ObjKey
from dpfd.api.intents import ObjectRef, Report


class ChainWork:
    def __init__(self, deps: FanoutDeps, interfaces: Informer, chains: Informer, *, workers: int = 2) -> None:
        self.sets = SetWriter(deps.cluster_access, self._on_set) if deps.cluster_access is not None else None
        self.interfaces = FanoutReconciler(INTERFACES, interfaces, deps, self.sets)
        self.chains = FanoutReconciler(CHAINS, chains, deps, self.sets)
        self.all = (self.interfaces, self.chains)
        self.workers = workers
        self.access = deps.cluster_access
        self._node_changes = NodeLabelChanges(self.access)

    def enqueue_all(self) -> None:
        for r in self.all:
            r.enqueue_all()

    def _requeue_everything(self) -> None:
        for r in self.all:
            for key in r.informer.list_keys():
                r.queue.add(key)

    def on_interface(self, event: EventType, obj: Obj, old: Obj | None) -> None:
        self.interfaces.on_object(event, obj, old)

    def on_chain(self, event: EventType, obj: Obj, old: Obj | None) -> None:
        self.chains.on_object(event, obj, old)

    def on_cluster(self, event: EventType, obj: Obj, old: Obj | None) -> None:
        self._requeue_everything()  # its labels may now match other clusterSelectors

    def on_cluster_node(self, cluster: ObjKey, node: str) -> None:
        if self._node_changes.changed(cluster, node):  # not its status heartbeats
            self._requeue_everything()

    def on_member(self, node: str, present: bool) -> None:
        self._requeue_everything()

    def _on_set(self, kind: str, key: ObjKey) -> None:
        """A set changed or deleted in a DPU cluster by someone else: its parent puts it right."""
        for r in self.all:
            if r.family.set_kind == kind:
                r.queue.add(key)

    def on_report(self, node: str, ref: ObjectRef, report: Report | None) -> None:
        for r in self.all:
            r.on_report(node, ref, report)

    def busy(self) -> bool:
        return not all(r.queue.idle() for r in self.all)

    async def run(self) -> None:
        try:
            async with asyncio.TaskGroup() as tg:
                for r in self.all:
                    tg.create_task(r.run(self.workers), name=f"fanout-{r.family.kind}")
        finally:
            self.shut_down()
            if self.sets is not None:
                await self.sets.close()

    def shut_down(self) -> None:
        for r in self.all:
            r.queue.shut_down()
