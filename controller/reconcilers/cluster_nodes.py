"""The DPU cluster side of a DPU's context: each DPUCluster's join command, and whether the DPU's Node (named
like the DPU) is Ready in its cluster, with the DPU's `spec.cluster.nodeLabels` applied to it first (DPF's
"DPU Cluster Config" phase). The cluster access itself (tokens, the cluster's API) is controller/dpucluster's.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from typing import Protocol

from controller.kube.informer import Informer
from controller.kube.objects import Obj, ObjKey, describe, is_deleting, key_of
from controller.kube.resources import DPUCLUSTERS, DPUS
from controller.queue import DONE, Result, WorkQueue, run_workers
from controller.reconcilers.dpu_context import Answers, cluster_ref_of
from dpfd.api.wellknown import DPU_NODE_BFB_VERSION, DPU_NODE_HOST

log = logging.getLogger(__name__)

_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
CLUSTER_INDEX = "dpucluster"  # DPUs by "<cluster namespace>/<cluster name>"
JOIN_REFRESH = 3600.0  # seconds: a fresh join command (bootstrap tokens expire)
JOIN_RETRY = 5.0  # seconds before asking an unreachable cluster again


class ClusterAccess(Protocol):
    """What this needs of controller/dpucluster's DpuClusters."""

    def watch(self, cluster_obj: Obj) -> None: ...

    def forget(self, key: ObjKey) -> None: ...

    async def join_command(self, cluster_obj: Obj) -> str: ...

    def node_ready(self, cluster_key: ObjKey, node: str) -> bool | None: ...

    async def label_node(self, cluster_key: ObjKey, node: str, labels: dict[str, str]) -> None: ...

    async def delete_node(self, cluster_key: ObjKey, node: str) -> bool: ...


def index_dpus_by_cluster(dpus: Informer) -> None:
    def of(o: Obj) -> list[str]:
        ref = cluster_ref_of(o)
        return [f"{ref.namespace}/{ref.name}"] if ref is not None else []

    dpus.add_index(CLUSTER_INDEX, of)


def is_label_value(value: str) -> bool:
    return len(value) <= 63 and _LABEL_VALUE.fullmatch(value) is not None


def node_labels_of(dpu: Obj) -> dict[str, str]:
    """The labels the DPU's Node gets: spec.cluster.nodeLabels, plus what DPF adds after the install (the host's
    name, and the BFB version the host reported, when it is a valid label value)."""
    spec = dpu.get("spec") or {}
    labels = {str(k): str(v) for k, v in ((spec.get("cluster") or {}).get("nodeLabels") or {}).items()}
    host = str(spec.get("nodeName") or "")
    if host and is_label_value(host):
        labels.setdefault(DPU_NODE_HOST, host)
    version = str((dpu.get("status") or {}).get("bfbVersion") or "")
    if version and is_label_value(version):
        labels.setdefault(DPU_NODE_BFB_VERSION, version)
    return labels


class ClusterNodeWorker:
    """Keeps `answers.join_commands` (by cluster) and `answers.cluster_node_ready` (by DPU)."""

    def __init__(
        self,
        access: ClusterAccess,
        clusters: Informer,
        dpus: Informer,
        answers: Answers,
        on_answer: Callable[[ObjKey], None],
    ) -> None:
        self.access = access
        self.clusters = clusters
        self.dpus = dpus
        self.answers = answers
        self.on_answer = on_answer
        self.dpu_queue: WorkQueue[ObjKey] = WorkQueue("clusternode")
        self.join_queue: WorkQueue[ObjKey] = WorkQueue("joincommand")
        self._labelled: dict[ObjKey, dict[str, str]] = {}  # DPU -> the nodeLabels last applied to its Node

    def dpus_of(self, cluster: ObjKey) -> list[Obj]:
        return self.dpus.by_index(CLUSTER_INDEX, f"{cluster.namespace}/{cluster.name}")

    def on_cluster_node(self, cluster: ObjKey, node: str) -> None:
        """A Node changed in a DPU cluster: the DPU of that name assigned to that cluster."""
        for dpu in self.dpus_of(cluster):
            if key_of(dpu).name == node:
                self.dpu_queue.add(key_of(dpu))

    def enqueue_all(self) -> None:
        for key in self.clusters.list_keys():
            self.join_queue.add(key)
        for key in self.dpus.list_keys():
            self.dpu_queue.add(key)

    async def run(self) -> None:
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(run_workers(self.join_queue, self.join, 2, lambda k: describe(DPUCLUSTERS.kind, k)))
                tg.create_task(run_workers(self.dpu_queue, self.reconcile, 4, lambda k: describe(DPUS.kind, k)))
        finally:
            self.join_queue.shut_down()
            self.dpu_queue.shut_down()

    async def join(self, key: ObjKey) -> Result:
        cluster = self.clusters.get(key.namespace, key.name)
        if cluster is None or is_deleting(cluster):
            if self.answers.join_commands.pop(key, None) is not None:
                for dpu in self.dpus_of(key):
                    self.on_answer(key_of(dpu))
            return DONE
        if (cluster.get("status") or {}).get("phase") != "Ready":
            return DONE  # its status changing to Ready enqueues it again
        try:
            command = await self.access.join_command(cluster)
        except Exception as exc:
            log.warning(
                "no join command for the DPU cluster yet",
                extra={"object": describe(DPUCLUSTERS.kind, key), "error": str(exc)},
            )
            return Result(requeue_after=JOIN_RETRY)
        if self.answers.join_commands.get(key) != command:
            self.answers.join_commands[key] = command
            for dpu in self.dpus_of(key):
                self.on_answer(key_of(dpu))
        return Result(requeue_after=JOIN_REFRESH)

    async def reconcile(self, key: ObjKey) -> Result:
        dpu = self.dpus.get(key.namespace, key.name)
        if dpu is None or is_deleting(dpu):
            self._labelled.pop(key, None)
            self.answers.cluster_node_ready.pop(key, None)
            return DONE
        cluster = cluster_ref_of(dpu)
        if cluster is None:
            return DONE
        ready = self.access.node_ready(cluster, key.name)
        if ready is None:
            return DONE  # not known (yet): the cluster's watch tells us
        if ready:
            labels = node_labels_of(dpu)
            if labels and self._labelled.get(key) != labels:
                await self.access.label_node(cluster, key.name, labels)
                self._labelled[key] = labels
                log.info(
                    "DPU Node labelled in its cluster",
                    extra={"object": describe(DPUS.kind, key), "cluster": str(cluster)},
                )
        else:
            self._labelled.pop(key, None)  # a Node that comes back is labelled again
        if self.answers.cluster_node_ready.get(key) != ready:
            self.answers.cluster_node_ready[key] = ready
            self.on_answer(key)
        return DONE
