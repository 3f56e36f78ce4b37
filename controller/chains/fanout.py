"""The fan-out reconciler of one family (DPUServiceInterface or DPUServiceChain), in the controller-runtime
`Reconcile(key)` model: each run reads the object, the DPUClusters, their Nodes and the members from caches,
declares the object's complete set of child intents to the IntentPublisher and writes its status.

Deletion follows DPF's finalizer: the children are kept, marked deleting, until each DPU's dpfd reports them
released (phase Deleting, for this incarnation) or the DPU has no dpfd any more; then the finalizer goes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from controller.chains.desired import (
    ClusterNodes,
    FanoutStatus,
    Selection,
    child_intent,
    fanout_status,
    select,
    set_of_child,
)
from controller.chains.family import Family
from controller.dpucluster import DpuClusters
from controller.kube.client import ApiError, KubeClient
from controller.kube.informer import EventType, Informer
from controller.kube.objects import (
    Obj,
    ObjKey,
    describe,
    finalizer_patch,
    finalizers_of,
    generation_of,
    is_deleting,
    key_of,
)
from controller.members import MembersCache
from controller.publish import IntentPublisher
from controller.queue import DONE, Result, WorkQueue, run_workers
from controller.reconcilers.provisioning import status_only_change
from controller.refs import object_ref
from controller.reports import ReportCache
from dpfd.api.conditions import Condition, set_condition
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
    def __init__(self, family: Family, informer: Informer, deps: FanoutDeps) -> None:
        self.family = family
        self.informer = informer
        self.d = deps
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
        await self._write_status(obj, key, fanout_status(self.family, obj, sel, declared, self._report_of))
        return DONE

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
            return DONE  # their reports enqueue this object again
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
        try:
            await self.d.client.patch_no_result(
                self.family.resource, key.namespace, key.name, {"status": wanted}, subresource="status"
            )
        except ApiError as exc:
            if not exc.not_found:
                raise
            return
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


def status_patch(obj: Obj, conditions: list[Condition]) -> dict[str, Any] | None:
    """The status to write (conditions merged as Kubernetes controllers do), or None when it is already so."""
    current = obj.get("status") or {}
    merged: list[Condition] = []
    for raw in current.get("conditions") or []:
        try:
            merged.append(Condition.model_validate(raw))
        except ValidationError:
            continue  # not a condition we can keep
    for cond in conditions:
        merged = set_condition(merged, cond)
    wanted: dict[str, Any] = {
        "conditions": [c.model_dump(mode="json", exclude_none=True) for c in merged],
        "observedGeneration": generation_of(obj),
    }
    if all(current.get(k) == v for k, v in wanted.items()):
        return None
    return wanted
