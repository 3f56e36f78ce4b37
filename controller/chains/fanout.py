"""The fan-out reconciler of one family (DPUServiceInterface or DPUServiceChain), in the controller-runtime
`Reconcile(key)` model: each run reads the object, the DPUClusters, their Nodes and the members from caches,
declares the object's complete set of child intents to the IntentPublisher and writes its status.

Deletion follows DPF's finalizer: the children are kept, marked deleting, until each DPU's dpfd reports them
released (phase Deleting, for this incarnation) or the DPU has no dpfd any more; then the finalizer goes.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from dataclasses import dataclass

from pydantic import ValidationError

from controller.chains.desired import (
    ClusterNodes,
    FanoutStatus,
    Selection,
    SetNumbers,
    child_intent,
    fanout_status,
    select,
    set_of_child,
)
from controller.chains.family import Family
from controller.chains.sets import SetWriter
from controller.chains.status import status_patch as status_patch  # re-exported (IPAM writes its status so)
from controller.dpucluster import DpuClusters
from controller.kube.client import ApiError, KubeClient
from controller.kube.informer import EventType, Informer
from controller.kube.objects import (
    Obj,
    ObjKey,
    describe,
    finalizer_patch,
    finalizers_of,
    is_deleting,
    key_of,
    name_of,
)
from controller.members import MembersCache
from controller.publish import IntentPublisher
from controller.queue import DONE, Result, WorkQueue, run_workers
from controller.reconcilers.provisioning import status_only_change
from controller.refs import object_ref
from controller.reports import ReportCache
from dpfd.api.intents import Intent, ObjectRef, Report
from dpfd.api.validation import parse_object

log = logging.getLogger(__name__)

DPU_ROLE = "dpu"
PHASE_RELEASED = "Deleting"  # what a DPU dpfd reports once it removed a child's ports or flows


@dataclass
class FanoutDeps:
    client: KubeClient
    clusters: Informer  # DPUClusters (host cluster)
    cluster_access: DpuClusters | None  # their Nodes; None: no DPU cluster is reached, so no DPU is selected
    members: MembersCache
    reports: ReportCache
    publisher: IntentPublisher


def released(intent: Intent, report: Report | None) -> bool:
    return report is not None and report.uid == intent.uid and report.phase == PHASE_RELEASED


class FanoutReconciler:
    def __init__(self, family: Family, informer: Informer, deps: FanoutDeps, sets: SetWriter | None = None) -> None:
        self.family = family
        self.informer = informer
        self.d = deps
        self.sets = sets  # the sets in the DPU clusters; None: not kept (no DPU cluster access)
        self.queue: WorkQueue[ObjKey] = WorkQueue(family.kind)
        self.status_patches = 0

    def source(self, key: ObjKey) -> ObjectRef:
        return object_ref(self.family.kind, key.namespace, key.name)

    # -- inputs -------------------------------------------------------------------------------------
    def _cluster_nodes(self, key: ObjKey) -> ClusterNodes:
        access = self.d.cluster_access
        if access is None:
            return ClusterNodes(key, [])
        nodes = access.nodes(key)
        if nodes is None:
            return ClusterNodes(key, None, access.error(key) or "its Nodes are not known yet")
        return ClusterNodes(key, nodes)

    def _is_dpu_member(self, node: str) -> bool:
        return self.d.members.role(node) == DPU_ROLE

    def _report_of(self, intent: Intent) -> Report | None:
        return self.d.reports.latest(intent.node, intent.ref)

    # -- reconcile ----------------------------------------------------------------------------------
    async def reconcile(self, key: ObjKey) -> Result:
        source = self.source(key)
        obj = self.informer.get(key.namespace, key.name)
        if obj is None:
            self.d.publisher.declare(source, [])  # gone without our finalizer (or after it): so are its children
            return DONE
        if is_deleting(obj):
            return await self._finish_deletion(obj, key, source)
        if self.family.finalizer not in finalizers_of(obj):
            patch = finalizer_patch(obj, [*finalizers_of(obj), self.family.finalizer])
            obj = await self.d.client.patch(self.family.resource, key.namespace, key.name, patch)
        try:
            parse_object(obj)  # what DPF's CRD schema and webhooks would refuse
        except (ValueError, ValidationError) as exc:
            problem = f"invalid spec: {exc}"
            log.warning("leaving its children as they are", extra={"object": describe(self.family.kind, key),
                                                                   "error": problem})  # fmt: skip
            held = self.d.publisher.intents_of(source)
            await self._write_status(obj, key, fanout_status(self.family, obj, Selection(), held, self._report_of,
                                                             problem))  # fmt: skip
            return DONE
        sel = select(obj, self.d.clusters.list(), self._cluster_nodes, self._is_dpu_member)
        intents = {i.node: i for i in (child_intent(self.family, obj, n) for n in sel.all_nodes())}
        if sel.unknown:
            # A selected cluster's Nodes are not known (yet): keep the children of Nodes not seen elsewhere
            # rather than tear down their data plane; the cluster's Node list re-enqueues this object.
            for old in self.d.publisher.intents_of(source).values():
                if old.node not in intents and not any(old.node in names for names in sel.nodes.values()):
                    intents[old.node] = child_intent(self.family, obj, old.node)
        self.d.publisher.declare(source, intents.values())
        declared = self.d.publisher.intents_of(source)
        st = fanout_status(self.family, obj, sel, declared, self._report_of)
        errors = await self._sync_sets(obj, sel, st.numbers)
        if errors:
            st = fanout_status(self.family, obj, sel, declared, self._report_of, "; ".join(errors))
        await self._write_status(obj, key, st)
        return Result(requeue=True) if errors else DONE

    # -- the sets in the DPU clusters -------------------------------------------------------------
    async def _set_step(self, cluster: ObjKey, key: ObjKey, step: Awaitable[None]) -> str:
        """Run one set write; "" or what went wrong (the object's status says it, the reconcile is retried)."""
        try:
            await step
        except Exception as exc:  # ApiError, DpuClusterError, connection errors and timeouts: retried
            log.warning("cannot write the set", extra={"object": describe(self.family.set_kind, key),
                                                       "cluster": str(cluster), "error": str(exc)})  # fmt: skip
            return f"{self.family.set_kind} {key} in DPUCluster {cluster}: {exc}"
        return ""

    async def _sync_sets(self, obj: Obj, sel: Selection, numbers: dict[ObjKey, SetNumbers]) -> list[str]:
        """Each selected cluster gets the set with its numbers; reachable unselected clusters lose it."""
        if self.sets is None:
            return []
        key, errors, clusters = key_of(obj), [], self.sets.access.keys()
        for cluster in clusters:
            if cluster in sel.nodes:
                step = self.sets.apply(self.family, obj, cluster, numbers.get(cluster) or SetNumbers())
            elif cluster not in sel.unknown and self.sets.reachable(cluster):
                step = self.sets.remove(self.family, key, cluster)
            else:
                continue
            errors.append(await self._set_step(cluster, key, step))
        return [e for e in errors if e]

    async def _hold_sets(self, obj: Obj, waiting: list[Intent]) -> None:
        """While children are being released: each reachable cluster's set deleting, counting what it waits for."""
        if self.sets is None:
            return
        key, clusters = key_of(obj), self.sets.access.keys()
        for cluster in clusters:
            nodes = self.sets.access.nodes(cluster)
            if nodes is None:
                continue
            names = {name_of(n) for n in nodes}
            numbers = SetNumbers(numberApplied=sum(1 for i in waiting if i.node in names))
            await self._set_step(cluster, key, self.sets.apply(self.family, obj, cluster, numbers))

    async def _release_sets(self, key: ObjKey) -> bool:
        """Every reachable cluster's set gone; False if one could not be removed (retried)."""
        if self.sets is None:
            return True
        clusters = [c for c in self.sets.access.keys() if self.sets.reachable(c)]  # noqa: SIM118 (not a dict)
        errors = [await self._set_step(c, key, self.sets.remove(self.family, key, c)) for c in clusters]
        return not any(errors)

    async def _finish_deletion(self, obj: Obj, key: ObjKey, source: ObjectRef) -> Result:
        if self.family.finalizer not in finalizers_of(obj):
            self.d.publisher.declare(source, [])
            return DONE
        members_known = self.d.members.synced.is_set()
        waiting: list[Intent] = []
        for intent in self.d.publisher.intents_of(source).values():
            if released(intent, self._report_of(intent)):
                continue
            if members_known and not self.d.members.has(intent.node):
                continue  # no dpfd left to release it
            waiting.append(intent.model_copy(update={"deleting": True}))
        self.d.publisher.declare(source, waiting)
        if waiting:
            # Counted as one group: while deleting, the status says how many children are still held.
            sel = Selection(nodes={ObjKey(key.namespace, key.name): [i.node for i in waiting]})
            held = {i.node: i for i in waiting}
            await self._write_status(obj, key, fanout_status(self.family, obj, sel, held, self._report_of))
            await self._hold_sets(obj, waiting)
            return DONE  # their reports enqueue this object again
        if not await self._release_sets(key):
            return Result(requeue=True)
        await self.d.publisher.wait_flushed()  # the children's removal is in etcd before the object goes
        keep = [f for f in finalizers_of(obj) if f != self.family.finalizer]
        try:
            await self.d.client.patch_no_result(
                self.family.resource, key.namespace, key.name, finalizer_patch(obj, keep)
            )
        except ApiError as exc:
            if not exc.not_found:
                raise
        log.info("children released; finalizer removed", extra={"object": describe(self.family.kind, key)})
        return DONE

    async def _write_status(self, obj: Obj, key: ObjKey, st: FanoutStatus) -> None:
        wanted = status_patch(obj, st.conditions)
        if wanted is None:
            return
        if await self.d.client.patch_status(self.family.resource, key.namespace, key.name, wanted):
            self.status_patches += 1

    # -- cache events -------------------------------------------------------------------------------
    def on_object(self, event: EventType, obj: Obj, old: Obj | None) -> None:
        if event == "MODIFIED" and status_only_change(old, obj):
            return  # our own status write
        self.queue.add(key_of(obj))

    def on_report(self, node: str, ref: ObjectRef, report: Report | None) -> None:
        if ref.kind == self.family.child_kind and (owner := set_of_child(ref, node)) is not None:
            self.queue.add(owner)

    def enqueue_all(self) -> None:
        for key in self.informer.list_keys():
            self.queue.add(key)
        for ref in self.d.publisher.sources(self.family.kind):  # objects that vanished while nobody led
            self.queue.add(ObjKey(ref.namespace, ref.name))

    async def run(self, workers: int) -> None:
        try:
            await run_workers(self.queue, self.reconcile, workers, lambda k: describe(self.family.kind, k))
        finally:
            self.queue.shut_down()
