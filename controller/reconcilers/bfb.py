"""BFB objects: a "BFB" intent for every host dpfd, their download reports aggregated into the BFB's status.

Like DPF, a BFB carries the `bfb-protection` finalizer; a deleted BFB shows phase Deleting and keeps its
finalizer while a DPU or DPUSet still names it (DPF's webhook refuses such a deletion outright; here it waits,
and says for whom). Its intents are withdrawn at deletion, so the hosts may drop the image.
"""

from __future__ import annotations

import logging

from controller.kube.client import ApiError, KubeClient
from controller.kube.informer import Informer
from controller.kube.objects import (
    Obj,
    ObjKey,
    annotations_of,
    describe,
    finalizer_patch,
    finalizers_of,
    generation_of,
    is_deleting,
    labels_of,
    name_of,
    uid_of,
)
from controller.kube.resources import BFBS
from controller.publish import IntentPublisher
from controller.queue import DONE, Result, WorkQueue, run_workers
from controller.reconcilers.bfb_status import bfb_status, file_name_of
from controller.reconcilers.host_discovery import KnownHosts
from controller.refs import object_ref
from controller.reports import ReportCache
from controller.status import status_differs
from dpfd.api.intents import Intent, ObjectRef
from dpfd.api.wellknown import FINALIZER_BFB

log = logging.getLogger(__name__)

BFB_INDEX = "bfb"  # DPUs (and DPUSets) by "<namespace>/<bfb name>"


def bfb_ref(namespace: str, name: str) -> ObjectRef:
    return object_ref(BFBS.kind, namespace, name)


def bfb_intent_spec(bfb: Obj) -> dict[str, str]:
    spec = bfb.get("spec") or {}
    return {"url": str(spec.get("url") or ""), "fileName": file_name_of(bfb)}


def bfb_intents(bfb: Obj, hosts: list[str]) -> list[Intent]:
    key = ObjKey(str((bfb.get("metadata") or {}).get("namespace") or ""), name_of(bfb))
    ref = bfb_ref(*key)
    spec = bfb_intent_spec(bfb)
    return [
        Intent(
            node=host,
            ref=ref,
            uid=uid_of(bfb),
            generation=generation_of(bfb),
            spec=dict(spec),
            labels=labels_of(bfb),
            annotations=annotations_of(bfb),
        )
        for host in hosts
    ]


def index_bfb_users(dpus: Informer, dpusets: Informer) -> None:
    """Index DPUs and DPUSets by the BFB they name."""

    def of_dpu(o: Obj) -> list[str]:
        name = (o.get("spec") or {}).get("bfb")
        ns = (o.get("metadata") or {}).get("namespace") or ""
        return [f"{ns}/{name}"] if name else []

    def of_dpuset(o: Obj) -> list[str]:
        name = ((((o.get("spec") or {}).get("dpuTemplate") or {}).get("spec") or {}).get("bfb") or {}).get("name")
        ns = (o.get("metadata") or {}).get("namespace") or ""
        return [f"{ns}/{name}"] if name else []

    dpus.add_index(BFB_INDEX, of_dpu)
    dpusets.add_index(BFB_INDEX, of_dpuset)


class BFBReconciler:
    def __init__(
        self,
        client: KubeClient,
        bfbs: Informer,
        dpus: Informer,
        dpusets: Informer,
        reports: ReportCache,
        publisher: IntentPublisher,
        hosts: KnownHosts,
    ) -> None:
        self.client = client
        self.bfbs = bfbs
        self.dpus = dpus
        self.dpusets = dpusets
        self.reports = reports
        self.publisher = publisher
        self.hosts = hosts
        self.queue: WorkQueue[ObjKey] = WorkQueue("bfb")
        self.status_patches = 0

    def enqueue_all(self) -> None:
        for key in self.bfbs.list_keys():
            self.queue.add(key)
        for ref in self.publisher.sources(BFBS.kind):
            self.queue.add(ObjKey(ref.namespace, ref.name))

    async def run(self, workers: int = 2) -> None:
        try:
            await run_workers(self.queue, self.reconcile, workers, lambda k: describe(BFBS.kind, k))
        finally:
            self.queue.shut_down()

    def users(self, key: ObjKey) -> list[str]:
        """Live DPUs and DPUSets naming the BFB, as `Kind name`."""
        value = f"{key.namespace}/{key.name}"
        found = [f"DPU {name_of(o)}" for o in self.dpus.by_index(BFB_INDEX, value) if not is_deleting(o)]
        found += [f"DPUSet {name_of(o)}" for o in self.dpusets.by_index(BFB_INDEX, value) if not is_deleting(o)]
        return sorted(found)

    async def reconcile(self, key: ObjKey) -> Result:
        ref = bfb_ref(*key)
        bfb = self.bfbs.get(key.namespace, key.name)
        if bfb is None:
            self.publisher.declare(ref, [])
            return DONE
        if is_deleting(bfb):
            return await self._deleting(key, ref, bfb)
        if FINALIZER_BFB not in finalizers_of(bfb):
            await self._patch(key, finalizer_patch(bfb, [*finalizers_of(bfb), FINALIZER_BFB]))
        self.publisher.declare(ref, bfb_intents(bfb, self.hosts.all()))
        wanted = bfb_status(bfb, self.hosts.all(), self.reports.for_object(ref))
        await self._write_status(key, bfb, wanted)
        return DONE

    async def _deleting(self, key: ObjKey, ref: ObjectRef, bfb: Obj) -> Result:
        self.publisher.declare(ref, [])
        if FINALIZER_BFB not in finalizers_of(bfb):
            return DONE
        users = self.users(key)
        if users:
            shown = ", ".join(users[:10]) + (f" and {len(users) - 10} more" if len(users) > 10 else "")
            message = f"deletion waits: still used by {shown}"
            await self._write_status(key, bfb, bfb_status(bfb, [], {}, deleting_message=message))
            return DONE  # a user going away enqueues the BFB again
        keep = [f for f in finalizers_of(bfb) if f != FINALIZER_BFB]
        await self._patch(key, finalizer_patch(bfb, keep))
        log.info("BFB deleted: no DPU uses it", extra={"object": describe(BFBS.kind, key)})
        return DONE

    async def _write_status(self, key: ObjKey, bfb: Obj, wanted: Obj) -> None:
        if not status_differs(bfb.get("status") or {}, wanted):
            return
        await self._patch(key, {"status": wanted}, subresource="status")
        self.status_patches += 1
        log.debug("BFB status written", extra={"object": describe(BFBS.kind, key), "phase": wanted.get("phase")})

    async def _patch(self, key: ObjKey, patch: Obj, subresource: str | None = None) -> None:
        try:
            await self.client.patch_no_result(BFBS, key.namespace, key.name, patch, subresource=subresource)
        except ApiError as exc:
            if not exc.not_found:
                raise
