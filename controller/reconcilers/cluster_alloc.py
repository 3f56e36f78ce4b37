"""Assigning a DPU with an empty `spec.cluster.name` to a DPUCluster, as DPF's allocator does.

DPF (internal/provisioning/controllers/allocator) considers only Ready DPUClusters with fewer assigned DPUs
than `spec.maxNodes`, and packs: it picks the one with the highest ratio of assigned DPUs to maxNodes. Ties
go to the first by namespace/name, so the choice is stable. Assignments written but not yet seen in the DPU
cache are counted too, so a burst of new DPUs cannot overfill a cluster.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from controller.kube.client import KubeClient
from controller.kube.informer import Informer
from controller.kube.objects import Obj, ObjKey, describe, is_deleting, key_of
from controller.kube.resources import DPUS
from controller.reconcilers.dpu_context import cluster_ref_of

log = logging.getLogger(__name__)

DEFAULT_MAX_NODES = 1000


class NoClusterAvailable(Exception):
    """No DPUCluster is Ready with room for another DPU; the message says what was considered."""


def max_nodes_of(cluster: Obj) -> int:
    try:
        return int((cluster.get("spec") or {}).get("maxNodes") or DEFAULT_MAX_NODES)
    except (TypeError, ValueError):
        return DEFAULT_MAX_NODES


def is_ready(cluster: Obj) -> bool:
    return (cluster.get("status") or {}).get("phase") == "Ready" and not is_deleting(cluster)


def assigned_counts(dpus: Iterable[Obj], extra: dict[ObjKey, ObjKey]) -> dict[ObjKey, int]:
    """DPUs per DPUCluster: the live (not deleting) DPUs the cache shows assigned, plus `extra` (DPU -> cluster)
    assignments the cache does not show yet."""
    counts: dict[ObjKey, int] = {}
    seen: set[ObjKey] = set()
    for dpu in dpus:
        if is_deleting(dpu):
            continue
        ref = cluster_ref_of(dpu)
        key = key_of(dpu)
        if ref is None:
            ref = extra.get(key)
            if ref is None:
                continue
        seen.add(key)
        counts[ref] = counts.get(ref, 0) + 1
    for dpu_key, ref in extra.items():
        if dpu_key not in seen:
            counts[ref] = counts.get(ref, 0) + 1
    return counts


def choose_cluster(clusters: Iterable[Obj], counts: dict[ObjKey, int]) -> Obj:
    """The DPUCluster DPF's bin-packing allocator picks; raises NoClusterAvailable naming what it saw."""
    best: tuple[float, ObjKey, Obj] | None = None
    seen: list[str] = []
    for cluster in sorted(clusters, key=key_of):
        key = key_of(cluster)
        count, limit = counts.get(key, 0), max_nodes_of(cluster)
        if not is_ready(cluster):
            phase = (cluster.get("status") or {}).get("phase") or "no phase"
            seen.append(f"{key} is not Ready ({phase})")
            continue
        if count >= limit:
            seen.append(f"{key} is full ({count}/{limit} DPUs)")
            continue
        ratio = count / limit
        if best is None or ratio > best[0]:
            best = (ratio, key, cluster)
    if best is None:
        detail = "; ".join(seen) if seen else "there are no DPUClusters"
        raise NoClusterAvailable(f"no DPUCluster is Ready with room for another DPU: {detail}")
    return best[2]


def cluster_patch(cluster: Obj) -> Obj:
    """Merge patch setting spec.cluster name and namespace (nodeLabels stay). Not guarded by resourceVersion,
    like DPF's patch: status writes change it all the time, and nothing else sets an empty cluster."""
    key = key_of(cluster)
    return {"spec": {"cluster": {"name": key.name, "namespace": key.namespace}}}


class ClusterAllocator:
    """Assigns DPUs to DPUClusters one at a time (callers serialise through `allocate`'s own bookkeeping)."""

    def __init__(self, client: KubeClient, clusters: Informer, dpus: Informer) -> None:
        self.client = client
        self.clusters = clusters
        self.dpus = dpus
        self._pending: dict[ObjKey, ObjKey] = {}  # DPU -> cluster: written, not yet in the cache

    def observed(self, dpu: Obj) -> None:
        """The cache shows the DPU: a pending assignment it now carries (or that it lost by deletion) is done."""
        key = key_of(dpu)
        if key in self._pending and (cluster_ref_of(dpu) is not None or is_deleting(dpu)):
            del self._pending[key]

    def forget(self, key: ObjKey) -> None:
        self._pending.pop(key, None)

    def needs_cluster(self, dpu: Obj) -> bool:
        return not is_deleting(dpu) and cluster_ref_of(dpu) is None and key_of(dpu) not in self._pending

    async def allocate(self, dpu: Obj) -> ObjKey:
        """Pick a cluster and patch it into the DPU; raises NoClusterAvailable or the API error."""
        key = key_of(dpu)
        counts = assigned_counts(self.dpus.list(), self._pending)
        cluster = choose_cluster(self.clusters.list(), counts)
        ref = key_of(cluster)
        self._pending[key] = ref  # before the write: no other DPU may take this place meanwhile
        try:
            await self.client.patch_no_result(DPUS, key.namespace, key.name, cluster_patch(cluster))
        except BaseException:
            self._pending.pop(key, None)
            raise
        log.info("DPU assigned to a DPU cluster", extra={"object": describe(DPUS.kind, key), "cluster": str(ref)})
        return ref
