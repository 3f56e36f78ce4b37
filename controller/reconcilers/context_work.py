"""One leadership term's provisioning context work, and the cache events that drive it.

Beside the DPUSet and DPU reconcilers (provisioning.py) this runs: the DPU intents' context (dpu_context.py)
and DPUCluster assignment (cluster_alloc.py), node effects (node_effects.py), BFB intents and status (bfb.py),
host discovery (host_discovery.py), and the DPU cluster answers (cluster_nodes.py). Each has its own work queue,
so a slow drain or an unreachable DPU cluster never holds up another kind of work.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from controller.dpucluster import DpuClusters, DpuClusterStatusReconciler
from controller.dpucluster.status import HEALTH_PERIOD
from controller.kube.client import ApiError, KubeClient
from controller.kube.events import EventRecorder
from controller.kube.informer import EventType, Informer
from controller.kube.objects import Obj, ObjKey, annotations_of, describe, is_deleting, key_of, labels_of, name_of
from controller.kube.resources import DPUS
from controller.members import MembersCache
from controller.nodeeffect import NodeEffectApplier, NodeEffectOptions
from controller.publish import IntentPublisher
from controller.reconcilers.bfb import BFB_INDEX, BFBReconciler, index_bfb_users
from controller.reconcilers.cluster_alloc import ClusterAllocator, NoClusterAvailable
from controller.reconcilers.cluster_nodes import CLUSTER_INDEX, ClusterNodeWorker, index_dpus_by_cluster
from controller.reconcilers.dpu_context import Answers, ContextSource, cluster_ref_of
from controller.reconcilers.host_discovery import HOST_KIND, HostReconciler, KnownHosts
from controller.reconcilers.node_effects import NodeEffectWorker
from controller.reports import ReportCache
from dpfd.api.intents import ObjectRef, Report

log = logging.getLogger(__name__)

BFB_COALESCE = 0.5  # seconds a BFB's reports may gather before its status is written
FLAVOR_INDEX = "dpuflavor"  # DPUs by "<namespace>/<flavor name>"
NODE_INDEX = "node"  # DPUs by spec.nodeName (registered by provisioning.index_dpus)


def index_context_users(dpus: Informer, dpusets: Informer) -> None:
    """The DPU (and DPUSet) cache indexes the context work looks things up by."""
    index_bfb_users(dpus, dpusets)
    index_dpus_by_cluster(dpus)

    def of_flavor(o: Obj) -> list[str]:
        name = (o.get("spec") or {}).get("dpuFlavor")
        ns = (o.get("metadata") or {}).get("namespace") or ""
        return [f"{ns}/{name}"] if name else []

    dpus.add_index(FLAVOR_INDEX, of_flavor)


def seed_answers(publisher: IntentPublisher) -> Answers:
    """The answers the intents in etcd carry: a new leader starts from its predecessor's, not from nothing
    (a host waiting in Node Effect must not see its answer vanish for a moment)."""
    answers = Answers()
    for ref in publisher.sources(DPUS.kind):
        key = ObjKey(ref.namespace, ref.name)
        for intent in publisher.intents_of(ref).values():
            ctx = intent.context
            if isinstance(ctx.get("nodeEffect"), dict):
                answers.node_effect[key] = dict(ctx["nodeEffect"])
            if isinstance(ctx.get("clusterNodeReady"), bool):
                answers.cluster_node_ready[key] = ctx["clusterNodeReady"]
            cluster = ctx.get("cluster") or {}
            if cluster.get("joinCommand") and cluster.get("name"):
                ckey = ObjKey(str(cluster.get("namespace") or ref.namespace), str(cluster["name"]))
                answers.join_commands[ckey] = str(cluster["joinCommand"])
    return answers


@dataclass
class ContextDeps:
    client: KubeClient
    nodes: Informer
    dpus: Informer
    dpusets: Informer
    bfbs: Informer
    flavors: Informer
    clusters: Informer
    reports: ReportCache
    members: MembersCache
    publisher: IntentPublisher
    enqueue_dpu: Callable[[ObjKey], None]  # the DPU reconciler's queue: re-publish that DPU's intent
    cluster_access: DpuClusters | None = None
    node_effect_options: NodeEffectOptions | None = None
    events: EventRecorder | None = None
    cluster_health_interval: float = HEALTH_PERIOD


class ContextWork:
    def __init__(self, deps: ContextDeps) -> None:
        self.d = deps
        self.answers = seed_answers(deps.publisher)
        self.hosts = KnownHosts(deps.members, deps.nodes, deps.publisher)
        self.allocator = ClusterAllocator(deps.client, deps.clusters, deps.dpus)
        self.node_effects = NodeEffectWorker(
            NodeEffectApplier(deps.client, deps.node_effect_options),
            deps.nodes,
            deps.dpus,
            deps.reports,
            self.answers,
            deps.enqueue_dpu,
        )
        self.bfb = BFBReconciler(
            deps.client, deps.bfbs, deps.dpus, deps.dpusets, deps.reports, deps.publisher, self.hosts
        )
        self.host = HostReconciler(deps.client, deps.nodes, deps.members, deps.reports, deps.publisher, self.hosts)
        self.cluster_nodes = (
            ClusterNodeWorker(deps.cluster_access, deps.clusters, deps.dpus, self.answers, deps.enqueue_dpu)
            if deps.cluster_access is not None
            else None
        )
        # controller/dpucluster's: DPUCluster phase and conditions from its health checks (it registers its own
        # DPUCluster handler, removed again at the end of the term)
        self.cluster_status = (
            DpuClusterStatusReconciler(
                deps.client, deps.clusters, deps.cluster_access, health_period=deps.cluster_health_interval
            )
            if deps.cluster_access is not None
            else None
        )
        self.source = ContextSource(
            deps.nodes, deps.bfbs, deps.flavors, self.answers, on_missing_join=self._want_join_command
        )
        self._unassigned_noted: set[ObjKey] = set()

    # -- hooks of the DPU reconciler -----------------------------------------------------------------
    def context_of(self, dpu: Obj) -> dict[str, Any]:
        return self.source.context_of(dpu)

    async def release(self, dpu: Obj) -> None:
        """Delete the DPU's Node from its DPU cluster, as DPF does when a DPU is deleted: a DPU of the same name
        (a rollout recreates DPUs under their names) must not find the old Node Ready before it has joined."""
        ref = cluster_ref_of(dpu)
        if ref is None or self.d.cluster_access is None:
            return
        cluster_key = ObjKey(ref.namespace, ref.name)
        if self.d.clusters.get(ref.namespace, ref.name) is None:
            return  # the DPUCluster is gone, and with it the way in
        if await self.d.cluster_access.delete_node(cluster_key, name_of(dpu)):
            log.info("DPU Node deleted from its cluster", extra={"object": describe(DPUS.kind, key_of(dpu)),
                                                                 "cluster": f"{ref.namespace}/{ref.name}"})  # fmt: skip

    async def assign_cluster(self, dpu: Obj) -> None:
        """Give a DPU without `spec.cluster.name` a DPUCluster, as DPF's allocator does (patching the DPU)."""
        if not self.allocator.needs_cluster(dpu):
            return
        key = key_of(dpu)
        try:
            await self.allocator.allocate(dpu)
        except NoClusterAvailable as exc:
            if key not in self._unassigned_noted:  # once per DPU, not at every reconcile
                self._unassigned_noted.add(key)
                log.warning(
                    "DPU waits for a DPU cluster", extra={"object": describe(DPUS.kind, key), "error": str(exc)}
                )
                if self.d.events is not None:
                    self.d.events.record(dpu, DPUS.kind, DPUS.api_version, "Warning", "NoDPUCluster", str(exc))
            return  # a DPUCluster becoming Ready (or a DPU leaving one) enqueues it again
        except ApiError as exc:
            if exc.not_found:
                return
            raise
        self._unassigned_noted.discard(key)

    def _want_join_command(self, cluster: ObjKey) -> None:
        if self.cluster_nodes is not None:
            self.cluster_nodes.join_queue.add(cluster)

    # -- cache events --------------------------------------------------------------------------------
    def on_node(self, event: EventType, obj: Obj, old: Obj | None) -> None:
        name = key_of(obj).name
        if event in ("ADDED", "DELETED") or old is None or annotations_of(old) != annotations_of(obj):
            for dpu in self.d.dpus.by_index(NODE_INDEX, name):
                self.d.enqueue_dpu(key_of(dpu))  # hostAnnotations
        if event in ("ADDED", "DELETED", "RESYNC") or old is None or labels_of(old) != labels_of(obj):
            self.host.queue.add(name)
        if event == "DELETED":  # a host that is gone for good gets no more BFBs
            for key in self.d.bfbs.list_keys():
                self.bfb.queue.add(key)

    def on_dpu(self, event: EventType, obj: Obj, old: Obj | None) -> None:
        key = key_of(obj)
        self.allocator.observed(obj)
        if event == "DELETED":
            self.allocator.forget(key)
            self._unassigned_noted.discard(key)
            self.node_effects.dpu_gone(obj)
            self._unblock_bfb(obj)
            self._enqueue_unassigned()  # a place in its cluster is free
            if self.cluster_nodes is not None:
                self.cluster_nodes.dpu_queue.add(key)
            return
        spec_changed = old is None or old.get("spec") != obj.get("spec") or is_deleting(old) != is_deleting(obj)
        if spec_changed or event == "RESYNC":
            self.node_effects.enqueue(key)
            if self.cluster_nodes is not None:
                self.cluster_nodes.dpu_queue.add(key)
        if is_deleting(obj):
            self._unblock_bfb(obj)

    def on_dpuset(self, event: EventType, obj: Obj, old: Obj | None) -> None:
        if event == "DELETED" or is_deleting(obj):
            template = ((obj.get("spec") or {}).get("dpuTemplate") or {}).get("spec") or {}
            name = (template.get("bfb") or {}).get("name")
            bfb = self.d.bfbs.get(key_of(obj).namespace, str(name)) if name else None
            if bfb is not None and is_deleting(bfb):
                self.bfb.queue.add(key_of(bfb))

    def _unblock_bfb(self, dpu: Obj) -> None:
        name = (dpu.get("spec") or {}).get("bfb")
        if name:
            bfb = self.d.bfbs.get(key_of(dpu).namespace, str(name))
            if bfb is not None and is_deleting(bfb):
                self.bfb.queue.add(key_of(bfb))

    def on_bfb(self, event: EventType, obj: Obj, old: Obj | None) -> None:
        key = key_of(obj)
        self.bfb.queue.add(key)
        phase = (obj.get("status") or {}).get("phase")
        old_phase = ((old or {}).get("status") or {}).get("phase")
        if event in ("ADDED", "DELETED") or old is None or old.get("spec") != obj.get("spec") or phase != old_phase:
            for dpu in self.d.dpus.by_index(BFB_INDEX, f"{key.namespace}/{key.name}"):
                self.d.enqueue_dpu(key_of(dpu))

    def on_flavor(self, event: EventType, obj: Obj, old: Obj | None) -> None:
        if event in ("ADDED", "DELETED") or old is None or old.get("spec") != obj.get("spec"):
            key = key_of(obj)
            for dpu in self.d.dpus.by_index(FLAVOR_INDEX, f"{key.namespace}/{key.name}"):
                self.d.enqueue_dpu(key_of(dpu))

    def on_cluster(self, event: EventType, obj: Obj, old: Obj | None) -> None:
        key = key_of(obj)
        if self.cluster_nodes is not None:
            self.cluster_nodes.join_queue.add(key)
        if event == "DELETED" or (obj.get("status") or {}).get("phase") == "Ready":
            self._enqueue_unassigned()
        if event == "DELETED" or old is None or old.get("status") != obj.get("status"):
            for dpu in self.d.dpus.by_index(CLUSTER_INDEX, f"{key.namespace}/{key.name}"):
                self.d.enqueue_dpu(key_of(dpu))

    def _enqueue_unassigned(self) -> None:
        for dpu in self.d.dpus.list():
            if self.allocator.needs_cluster(dpu):
                self.d.enqueue_dpu(key_of(dpu))

    def on_cluster_node(self, cluster: ObjKey, node: str) -> None:
        if self.cluster_nodes is not None:
            self.cluster_nodes.on_cluster_node(cluster, node)

    def on_report(self, node: str, ref: ObjectRef, report: Report | None) -> None:
        if ref.kind == DPUS.kind:
            key = ObjKey(ref.namespace, ref.name)
            self.node_effects.enqueue(key)
            if self.cluster_nodes is not None:
                self.cluster_nodes.dpu_queue.add(key)
        elif ref.kind == "BFB":
            # Download progress comes often from every host: one status write per BFB and BFB_COALESCE.
            self.bfb.queue.add_after(ObjKey(ref.namespace, ref.name), BFB_COALESCE)
        elif ref.kind == HOST_KIND:
            self.host.queue.add(ref.name)

    def on_member(self, node: str, present: bool) -> None:
        self.host.queue.add(node)
        for key in self.d.bfbs.list_keys():
            self.bfb.queue.add(key)

    # -- run -----------------------------------------------------------------------------------------
    def enqueue_all(self) -> None:
        self.host.enqueue_all()
        self.bfb.enqueue_all()
        self.node_effects.enqueue_all()
        if self.cluster_nodes is not None:
            self.cluster_nodes.enqueue_all()
        if self.cluster_status is not None:
            for key in self.d.clusters.list_keys():
                self.cluster_status.queue.add(key)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.node_effects.run(), name="node-effects")
            tg.create_task(self.bfb.run(), name="bfbs")
            tg.create_task(self.host.run(), name="hosts")
            if self.cluster_nodes is not None:
                tg.create_task(self.cluster_nodes.run(), name="cluster-nodes")
            if self.cluster_status is not None:
                tg.create_task(self.cluster_status.run(), name="dpucluster-status")

    def shut_down(self) -> None:
        self.node_effects.queue.shut_down()
        self.bfb.queue.shut_down()
        self.host.queue.shut_down()
        if self.cluster_nodes is not None:
            self.cluster_nodes.join_queue.shut_down()
            self.cluster_nodes.dpu_queue.shut_down()
        if self.cluster_status is not None:
            self.cluster_status.queue.shut_down()
            self.d.clusters.remove_handler(self.cluster_status._on_event)
