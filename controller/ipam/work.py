"""One leadership term's DPUServiceIPAM work: a controller-runtime style reconciler per object that selects
DPU Nodes (controller.ipam.selection), has IpamReconciler commit the pool's per-node ranges to etcd and writes
the object's status; re-run when a DPUCluster or a DPU Node's labels change.

The pool is named after the object (what the SFC CNI passes as the network name). DPF keeps DPUServiceIPAMs in
one namespace; should two namespaces hold one name, the older object owns the pool and the other is told so.
Deletion follows DPF's finalizer: the pool (ranges and allocations) goes, then the finalizer.
"""

from __future__ import annotations

import logging

from pydantic import ValidationError

from controller.chains.desired import ClusterNodes, Selection
from controller.chains.fanout import status_patch
from controller.dpucluster import DpuClusters
from controller.dpucluster.node_labels import NodeLabelChanges
from controller.ipam.plan import PoolExhausted
from controller.ipam.reconciler import IpamReconciler
from controller.ipam.selection import (
    DPUSERVICEIPAMS,
    FINALIZER,
    REASON_EXHAUSTED,
    ipam_conditions,
    select_nodes,
)
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
    meta,
)
from controller.object_work import ObjectWork
from controller.queue import DONE, Result
from controller.reconcilers.provisioning import status_only_change
from dpfd.api.chains import DPUServiceIPAM
from dpfd.api.conditions import Condition
from dpfd.api.validation import parse_object
from dpfd.store.client import Store
from dpfd.store.ipam_ranges import PoolRanges
from dpfd.store.ipam_types import IpamError

log = logging.getLogger(__name__)
KIND = DPUSERVICEIPAMS.kind


class IpamWork(ObjectWork):
    def __init__(
        self,
        client: KubeClient,
        store: Store,
        informer: Informer,
        clusters: Informer,
        cluster_access: DpuClusters | None,
        *,
        workers: int = 2,
    ) -> None:
        self.client = client
        self.informer = informer
        self.clusters = clusters
        self.access = cluster_access
        self.pools = IpamReconciler(store)
        self.ranges = PoolRanges(store)
        super().__init__(KIND, workers)
        self.status_patches = 0
        self._node_changes = NodeLabelChanges(self.access)

    # -- inputs -------------------------------------------------------------------------------------
    def _cluster_nodes(self, key: ObjKey) -> ClusterNodes:
        if self.access is None:
            return ClusterNodes(key, [])
        nodes = self.access.nodes(key)
        if nodes is None:
            return ClusterNodes(key, None, self.access.error(key) or "its Nodes are not known yet")
        return ClusterNodes(key, nodes)

    def _same_name(self, name: str) -> list[Obj]:
        return [o for o in self.informer.list() if meta(o).get("name") == name]

    def _pool_owner(self, name: str) -> ObjKey | None:
        """Of the objects named `name`, the one whose pool it is: the oldest not being deleted, else the oldest."""
        objs = self._same_name(name)
        if not objs:
            return None
        live = [o for o in objs if not is_deleting(o)] or objs
        oldest = min(live, key=lambda o: (str(meta(o).get("creationTimestamp") or ""), key_of(o).namespace))
        return key_of(oldest)

    # -- reconcile ----------------------------------------------------------------------------------
    async def reconcile(self, key: ObjKey) -> Result:
        obj = self.informer.get(key.namespace, key.name)
        if obj is None:
            return DONE  # its finalizer deleted the pool (an object never given one leaves its pool behind)
        if is_deleting(obj):
            return await self._finish_deletion(obj, key)
        if FINALIZER not in finalizers_of(obj):
            obj = await self.client.patch(DPUSERVICEIPAMS, key.namespace, key.name,
                                          finalizer_patch(obj, [*finalizers_of(obj), FINALIZER]))  # fmt: skip
        owner = self._pool_owner(key.name)
        if owner is not None and owner != key:
            problem = f"pool {key.name} belongs to DPUServiceIPAM {owner}, an older object of the same name"
            await self._write_status(obj, key, ipam_conditions(obj, Selection(), 0, problem=problem))
            return DONE
        try:
            ipam = parse_object(obj)  # what DPF's CRD schema and webhooks would refuse
        except (ValueError, ValidationError) as exc:
            problem = f"invalid spec: {exc}"
            log.warning("leaving its pool as it is", extra={"object": describe(KIND, key), "error": problem})
            await self._write_status(obj, key, ipam_conditions(obj, Selection(), 0, problem=problem))
            return DONE
        assert isinstance(ipam, DPUServiceIPAM)
        sel = select_nodes(obj, self.clusters.list(), self._cluster_nodes)
        nodes = set(sel.all_nodes())
        if sel.unknown:
            # A selected cluster's Nodes are not known (yet): keep the ranges the pool has rather than take
            # addresses away from running pods; the cluster's Node list re-enqueues this object.
            nodes |= set((await self.ranges.read(key.name)).ranges)
        try:
            plan = await self.pools.reconcile(key.name, ipam.spec, sorted(nodes))
        except PoolExhausted as exc:
            conds = ipam_conditions(obj, sel, 0, problem=str(exc), reason=REASON_EXHAUSTED)
            log.warning("pool exhausted", extra={"object": describe(KIND, key), "error": str(exc)})
        except IpamError as exc:
            conds = ipam_conditions(obj, sel, 0, problem=str(exc))
            log.warning("pool not reconciled", extra={"object": describe(KIND, key), "error": str(exc)})
        else:
            conds = ipam_conditions(obj, sel, len(plan.ranges))
        await self._write_status(obj, key, conds)
        return DONE

    async def _finish_deletion(self, obj: Obj, key: ObjKey) -> Result:
        if FINALIZER not in finalizers_of(obj):
            return DONE
        if self._pool_owner(key.name) == key:
            await self.pools.reconcile(key.name, None, [])
        for other in self._same_name(key.name):
            if key_of(other) != key:
                self.queue.add(key_of(other))  # the pool may be theirs now
        keep = [f for f in finalizers_of(obj) if f != FINALIZER]
        try:
            await self.client.patch_no_result(DPUSERVICEIPAMS, key.namespace, key.name, finalizer_patch(obj, keep))
        except ApiError as exc:
            if not exc.not_found:
                raise
        log.info("pool deleted; finalizer removed", extra={"object": describe(KIND, key)})
        return DONE

    async def _write_status(self, obj: Obj, key: ObjKey, conditions: list[Condition]) -> None:
        wanted = status_patch(obj, conditions)
        if wanted is None:
            return
        if await self.client.patch_status(DPUSERVICEIPAMS, key.namespace, key.name, wanted):
            self.status_patches += 1

    # -- cache events -------------------------------------------------------------------------------
    def on_object(self, event: EventType, obj: Obj, old: Obj | None) -> None:
        if event == "MODIFIED" and status_only_change(old, obj):
            return  # our own status write
        self.queue.add(key_of(obj))

    def _requeue_everything(self) -> None:
        for key in self.informer.list_keys():
            self.queue.add(key)

    def on_cluster(self, event: EventType, obj: Obj, old: Obj | None) -> None:
        self._requeue_everything()  # its labels may now match other clusterSelectors, or its Nodes went

    def on_cluster_node(self, cluster: ObjKey, node: str) -> None:
        if self._node_changes.changed(cluster, node):  # not its status heartbeats
            self._requeue_everything()

    def enqueue_all(self) -> None:
        self._requeue_everything()
