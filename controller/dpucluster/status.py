"""DPUClusterStatusReconciler: a DPUCluster's status as DPF's static cluster manager and DPUCluster controller
keep it.

The DPUCluster carries DPF's two finalizers (cluster-manager-clean-up, cluster-manager-internal-clean-up); on
deletion its kamaji objects go with it through owner references, and both are removed. Phase Pending (or none)
becomes Creating; condition Created says whether spec.kubeconfig names the admin
kubeconfig (reason Created, or EmptyKubeconfig); once Created, a health check (read the admin kubeconfig,
GET /version on the cluster) sets condition Ready (HealthCheckPassed / HealthCheckFailed with the error) and
phase Ready / NotReady. Clusters are re-checked every `health_period` seconds.

A kamaji DPUCluster first gets its control plane (controller/dpucluster/kamaji.py): it stays Creating, condition
Created False (reason ClusterNotReady, as DPF's), until Kamaji reports the TenantControlPlane Ready; then spec.kubeconfig
is set to Kamaji's admin kubeconfig Secret and it goes on as a static one. With keepalived, condition KeepalivedReady
(reason Deployed) once its DaemonSet is there. What stops the control plane from being asked for (no Kamaji, no node
port yet) shows in Created's message and is retried.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError

from controller.dpucluster.clusters import DpuClusterError, DpuClusters
from controller.dpucluster.kamaji import KamajiError, KamajiNotInstalled, ensure_control_plane
from controller.dpucluster.resources import DPUCLUSTERS
from controller.kube.client import KubeClient
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
from controller.queue import DONE, Result, WorkQueue, run_workers
from dpfd.api.conditions import Condition, set_condition
from dpfd.api.wellknown import FINALIZER_DPUCLUSTER, FINALIZER_DPUCLUSTER_INTERNAL

log = logging.getLogger(__name__)

# DPF's: the cluster manager's and the provisioning controller's, each removed once its clean-up is done.
FINALIZERS = (FINALIZER_DPUCLUSTER, FINALIZER_DPUCLUSTER_INTERNAL)
HEALTH_PERIOD = 30.0
NOT_READY = "ClusterNotReady"  # DPF's Created reason while the kamaji control plane is being created
KAMAJI_POLL = 1.0  # how often a kamaji DPUCluster's TenantControlPlane is looked at while it is being created


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
        kamaji_poll: float = KAMAJI_POLL,
        workers: int = 2,
    ) -> None:
        self.client = client
        self.informer = informer
        self.clusters = clusters
        self.health_period = health_period
        self.kamaji_poll = kamaji_poll
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
            # DPF's cluster managers clean up through owner references (the kamaji objects go with the DPUCluster),
            # then both finalizers go; access stays until the object is gone.
            if set(finalizers_of(obj)) & set(FINALIZERS):
                keep = [f for f in finalizers_of(obj) if f not in FINALIZERS]
                await self.client.patch_no_result(DPUCLUSTERS, key.namespace, key.name, finalizer_patch(obj, keep))
            return DONE
        if not set(FINALIZERS) <= set(finalizers_of(obj)):
            wanted = [*finalizers_of(obj), *(f for f in FINALIZERS if f not in finalizers_of(obj))]
            await self.client.patch_no_result(DPUCLUSTERS, key.namespace, key.name, finalizer_patch(obj, wanted))
            return DONE  # the informer brings the object back with its finalizers
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
        spec = obj.get("spec") or {}
        kubeconfig = spec.get("kubeconfig")
        if spec.get("type") == "kamaji":
            conditions, done = await self._kamaji(key, obj, conditions, generation)
            if not done:
                return await self._finish(key, status, "Creating", conditions, self.kamaji_poll)
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
        return await self._finish(key, status, phase, conditions, self.health_period)

    async def _kamaji(
        self, key: ObjKey, obj: Obj, conditions: list[Condition], generation: int
    ) -> tuple[list[Condition], bool]:
        """Ensure the kamaji control plane; True once spec.kubeconfig names Kamaji's admin kubeconfig Secret (or
        when there is no Kamaji: then the cluster waits, as a static one, for a kubeconfig someone else names)."""
        try:
            progress = await ensure_control_plane(self.client, obj)
        except KamajiNotInstalled as e:
            log.warning(
                "kamaji DPUCluster without Kamaji", extra={"object": describe("DPUCluster", key), "error": str(e)}
            )
            return conditions, True
        except KamajiError as e:
            return set_condition(conditions, condition("Created", False, NOT_READY, str(e), generation)), False
        if progress.keepalived:
            conditions = set_condition(conditions, condition("KeepalivedReady", True, "Deployed", "", generation))
        kubeconfig = (obj.get("spec") or {}).get("kubeconfig")
        if kubeconfig:
            return conditions, True
        if progress.kubeconfig is not None:
            # spec.kubeconfig is immutable once set: set it only when Kamaji's Secret is there to name
            await self.client.patch_no_result(
                DPUCLUSTERS, key.namespace, key.name, {"spec": {"kubeconfig": progress.kubeconfig}}
            )
            log.info("kamaji control plane ready", extra={"object": describe("DPUCluster", key)})
            return conditions, False  # the next pass (soon: the informer sees the spec change) checks the cluster
        waiting = (
            f"TenantControlPlane {key.namespace}/{key.name}: {progress.tcp_status or 'not reported by Kamaji yet'}"
        )
        conditions = set_condition(conditions, condition("Created", False, NOT_READY, waiting, generation))
        return conditions, False

    async def _finish(
        self, key: ObjKey, status: dict[str, Any], phase: str, conditions: list[Condition], requeue: float
    ) -> Result:
        dumped = [c.model_dump(mode="json", exclude_none=True) for c in conditions]
        wanted = {"phase": phase, "conditions": dumped}
        if status.get("phase") != phase or not _same(status.get("conditions") or [], dumped):
            await self._write(key, wanted)
            if phase != status.get("phase"):
                log.info("DPUCluster phase", extra={"object": describe("DPUCluster", key), "phase": phase})
        return Result(requeue_after=requeue)

    async def _write(self, key: ObjKey, status: dict[str, Any]) -> None:
        await self.client.patch_no_result(
            DPUCLUSTERS, key.namespace, key.name, {"status": status}, subresource="status"
        )
