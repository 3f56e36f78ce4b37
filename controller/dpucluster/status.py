"""DPUClusterStatusReconciler: a DPUCluster's status as DPF's static cluster manager and DPUCluster controller
keep it.

Phase Pending (or none) becomes Creating; condition Created says whether spec.kubeconfig names the admin
kubeconfig (reason Created, or EmptyKubeconfig); once Created, a health check (read the admin kubeconfig,
GET /version on the cluster) sets condition Ready (HealthCheckPassed / HealthCheckFailed with the error) and
phase Ready / NotReady. Clusters are re-checked every `health_period` seconds.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError

from controller.dpucluster.clusters import DpuClusterError, DpuClusters
from controller.dpucluster.resources import DPUCLUSTERS
from controller.kube.client import KubeClient
from controller.kube.informer import EventType, Informer
from controller.kube.objects import Obj, ObjKey, describe, generation_of, is_deleting, key_of
from controller.queue import DONE, Result, WorkQueue, run_workers
from dpfd.api.conditions import Condition, set_condition

log = logging.getLogger(__name__)

HEALTH_PERIOD = 30.0


def condition(type_: str, ok: bool, reason: str, message: str, generation: int) -> Condition:
    return Condition(type=type_, status="True" if ok else "False", reason=reason, message=message,
                     observedGeneration=generation)  # fmt: skip


def _parsed(raw: list[dict[str, Any]]) -> list[Condition]:
    out = []
    for c in raw:
        try:
            out.append(Condition.model_validate(c))
        except ValidationError:
            continue  # not a condition we can keep
    return out


def _same(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
    def strip(cs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in c.items() if k != "lastTransitionTime"} for c in cs]

    return strip(a) == strip(b)


class DpuClusterStatusReconciler:
    """Reconciles DPUCluster keys from `informer` (a DPUCluster informer on the host cluster); also tells
    `clusters` which DPU clusters to keep access to."""

    def __init__(
        self,
        client: KubeClient,
        informer: Informer,
        clusters: DpuClusters,
        *,
        health_period: float = HEALTH_PERIOD,
        workers: int = 2,
    ) -> None:
        self.client = client
        self.informer = informer
        self.clusters = clusters
        self.health_period = health_period
        self.workers = workers
        self.queue: WorkQueue[ObjKey] = WorkQueue("dpucluster-status")
        informer.add_handler(self._on_event)

    def _on_event(self, event: EventType, obj: Obj, old: Obj | None) -> None:
        self.queue.add(key_of(obj))

    async def run(self) -> None:
        try:
            await run_workers(self.queue, self.reconcile, self.workers, lambda k: describe("DPUCluster", k))
        finally:
            self.queue.shut_down()

    async def reconcile(self, key: ObjKey) -> Result:
        obj = self.informer.get(key.namespace, key.name)
        if obj is None:
            self.clusters.forget(key)
            return DONE
        if is_deleting(obj):
            return DONE  # access stays until the object is gone: DPUs may still be leaving the cluster
        self.clusters.watch(obj)
        status = obj.get("status") or {}
        phase = status.get("phase") or "Pending"
        if phase == "Pending":
            await self._write(key, {"phase": "Creating"})
            return Result(requeue_after=0.01)  # DPF returns here too; the next pass checks the cluster
        if phase == "Failed":
            return DONE
        generation = generation_of(obj)
        conditions = _parsed(status.get("conditions") or [])
        kubeconfig = (obj.get("spec") or {}).get("kubeconfig")
        created = bool(kubeconfig)
        conditions = set_condition(
            conditions,
            condition("Created", True, "Created", "", generation)
            if created
            else condition("Created", False, "EmptyKubeconfig", "spec.kubeconfig is empty", generation),
        )
        if created:
            try:
                await self.clusters.check(obj)
            except DpuClusterError as e:
                conditions = set_condition(
                    conditions, condition("Ready", False, "HealthCheckFailed", str(e), generation)
                )
                phase = "NotReady"
            else:
                conditions = set_condition(conditions, condition("Ready", True, "HealthCheckPassed", "", generation))
                phase = "Ready"
        elif phase in ("Ready", "NotReady"):
            phase = "NotReady"
        dumped = [c.model_dump(mode="json", exclude_none=True) for c in conditions]
        wanted = {"phase": phase, "conditions": dumped}
        if status.get("phase") != phase or not _same(status.get("conditions") or [], dumped):
            await self._write(key, wanted)
            if phase != status.get("phase"):
                log.info("DPUCluster phase", extra={"object": describe("DPUCluster", key), "phase": phase})
        return Result(requeue_after=self.health_period)

    async def _write(self, key: ObjKey, status: dict[str, Any]) -> None:
        await self.client.patch_no_result(
            DPUCLUSTERS, key.namespace, key.name, {"status": status}, subresource="status"
        )
